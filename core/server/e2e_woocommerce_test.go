package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
)

// A WooCommerce store through every real part: connecting registers the
// store's webhooks (the store pings Ponte while they are created), an
// unpaid order is an abandoned cart whose reminder carries the order's
// payment_url, and paying the order ends the sequence as recovered and
// sends the order confirmation.
func TestIntegrationCartRecoveryWooCommerce(t *testing.T) {
	in := newInstallation(t, "cloudapi", "woocommerce")
	in.start()
	graph := fakegraph.New(t)
	waID, _ := in.connectCloudAPI(graph, testNumber)
	// Reminding the customer to pay an order they placed is a utility
	// message (a payment reminder), so it needs no marketing opt-in.
	for _, tpl := range []fakegraph.Template{
		{Name: "order_payment_pending", Language: "it", Category: "UTILITY", Status: "APPROVED",
			Components: json.RawMessage(`[{"type":"BODY","text":"Ciao {{1}}, il tuo ordine ({{2}}) attende il pagamento: {{3}}"}]`)},
		{Name: "order_confirmation", Language: "it", Category: "UTILITY", Status: "APPROVED",
			Components: json.RawMessage(`[{"type":"BODY","text":"Grazie {{1}}, ordine {{2}} confermato ({{3}})"}]`)},
	} {
		if _, err := graph.AddTemplate(testNumber.WABAID, tpl); err != nil {
			t.Fatal(err)
		}
	}
	if status := in.call("POST", "/v1/connections/"+waID+"/templates/sync", nil, nil); status != http.StatusOK {
		t.Fatalf("syncing templates: status %d", status)
	}

	store := fakewoo.New(t, fakewoo.Options{})
	var conn struct {
		ID string `json:"id"`
	}
	const webhookSecret = "e2e-webhook-secret-0123456789"
	if status := in.call("POST", "/v1/connections", map[string]any{
		"connector": "woocommerce", "name": "negozio",
		"config": map[string]any{"store_url": store.URL(), "consumer_key": fakewoo.DefaultConsumerKey,
			"consumer_secret": fakewoo.DefaultConsumerSecret, "webhook_secret": webhookSecret, "default_country": "IT"},
	}, &conn); status != http.StatusCreated {
		t.Fatalf("creating the WooCommerce connection: status %d\n%s", status, in.logs())
	}
	hooks := store.Webhooks()
	if len(hooks) != 5 {
		t.Fatalf("webhooks after connecting: %+v", hooks)
	}
	for _, h := range hooks {
		if h.Status != "active" || !strings.HasSuffix(h.DeliveryURL, "/hooks/"+conn.ID) {
			t.Errorf("webhook %+v, want active and delivering to the connection", h)
		}
	}
	if status := in.call("PUT", "/v1/connections/"+conn.ID+"/automations/cart-recovery", map[string]any{
		"enabled": true, "channel_connection_id": waID,
		"steps": []map[string]any{{"delay": "2s", "template": "order_payment_pending", "language": "it", "variables": []string{"name", "total", "link"}},
			{"delay": "8s", "template": "order_payment_pending", "language": "it", "variables": []string{"name", "total", "link"}}},
	}, nil); status != http.StatusOK {
		t.Fatalf("cart recovery settings: status %d", status)
	}
	if status := in.call("PUT", "/v1/connections/"+conn.ID+"/automations/order-notifications", map[string]any{
		"enabled": true, "channel_connection_id": waID, "confirm_on": "paid", "free_text_in_window": false,
		"confirmation": map[string]any{"template": "order_confirmation", "language": "it", "variables": []string{"name", "order", "total"}},
	}, nil); status != http.StatusOK {
		t.Fatalf("order notification settings: status %d", status)
	}

	// A national Italian number: read with the billing country.
	const phone = "+393481234567"
	order := store.PutOrder(fakewoo.Order{Status: "pending", Currency: "EUR", Total: "42.50", PaymentMethod: "stripe",
		Billing:   fakewoo.Address{FirstName: "Marco", LastName: "Bianchi", Country: "IT", Phone: "348 123 4567", Email: "marco@example.com"},
		LineItems: []fakewoo.LineItem{{Name: "Caffè in grani", Quantity: 2, Total: "42.50"}}})
	if order.PaymentURL == "" {
		t.Fatalf("the fake gave the order no payment_url: %+v", order)
	}
	wait := func(template string, within time.Duration) []fakegraph.SentMessage {
		t.Helper()
		var got []fakegraph.SentMessage
		eventually(t, within, func() bool {
			got = got[:0]
			for _, m := range graph.SentTo(phone) {
				if m.Template == template {
					got = append(got, m)
				}
			}
			return len(got) > 0
		}, func() string {
			return "no " + template + " to " + phone + ":" + describeSent(graph.Sent()) + "\n" + in.logs()
		})
		return got
	}
	reminder := wait("order_payment_pending", 60*time.Second)
	if !strings.Contains(reminder[0].Body, order.PaymentURL) || !strings.Contains(reminder[0].Body, "Marco") {
		t.Fatalf("reminder %q, want the name and the payment URL %s", reminder[0].Body, order.PaymentURL)
	}

	// The customer pays: processing, with date_paid.
	paidAt := time.Now().UTC().Format("2006-01-02T15:04:05")
	if _, err := store.UpdateOrder(order.ID, func(o *fakewoo.Order) {
		o.Status, o.DatePaid, o.TransactionID = "processing", &paidAt, "ch_e2e"
	}); err != nil {
		t.Fatal(err)
	}
	conf := wait("order_confirmation", 60*time.Second)
	if !strings.Contains(conf[0].Body, "Marco") || !strings.Contains(conf[0].Body, "42.50") {
		t.Errorf("confirmation %q", conf[0].Body)
	}
	// The second reminder's time passes without it.
	time.Sleep(10 * time.Second)
	n := 0
	for _, m := range graph.SentTo(phone) {
		if m.Template == "order_payment_pending" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d payment reminders, want 1 (the payment ends the sequence)", n)
	}
	c := &commerceShop{in: in}
	if rep := c.report(t); rep.Recovered != 1 || len(rep.RecoveredRevenue) != 1 || rep.RecoveredRevenue[0].Amount != "42.50" {
		t.Errorf("report %+v, want 1 recovered for 42.50", rep)
	}
}
