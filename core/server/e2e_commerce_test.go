package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
)

// commerceShop is a Shopify shop at the fake Admin API connected to an
// installation, with a WhatsApp number at the fake Graph API whose cart
// and order templates are approved and synced.
type commerceShop struct {
	in     *installation
	graph  *fakegraph.Server
	shop   *fakeshopify.Shop
	waID   string // the Cloud API connection
	shopID string // the Shopify connection
}

// Templates of the shop's WhatsApp number, as a merchant would submit them.
var commerceTemplates = []fakegraph.Template{
	{Name: "cart_reminder", Language: "en", Category: "MARKETING",
		Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}, you left {{2}} in your cart. Complete your order: {{3}}"}]`)},
	{Name: "cart_last_chance", Language: "en", Category: "MARKETING",
		Components: json.RawMessage(`[{"type":"BODY","text":"Last chance {{1}}: {{2}} are still waiting for you at {{3}}"}]`)},
	{Name: "order_confirmation", Language: "en", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}, thank you for your order {{2}} ({{3}})!"}]`)},
}

func newCommerceShop(t testing.TB, in *installation) *commerceShop {
	t.Helper()
	// Meta retries webhooks for days: the fake keeps retrying its status
	// webhooks while a test has serve down.
	graph := fakegraph.New(t, fakegraph.Options{MaxAttempts: 1000, RetryMax: 500 * time.Millisecond, WebhookWorkers: 32})
	c := &commerceShop{in: in, graph: graph, shop: fakeshopify.New(t, fakeshopify.Options{})}
	var waHook string
	c.waID, waHook = in.connectCloudAPI(c.graph, testNumber)
	c.graph.SetWebhook(waHook, testNumber.AppSecret)
	c.graph.SetStatusOptions(fakegraph.StatusOptions{Statuses: []string{"sent"}})
	for _, tpl := range commerceTemplates {
		tpl.Status = "APPROVED"
		if _, err := c.graph.AddTemplate(testNumber.WABAID, tpl); err != nil {
			t.Fatal(err)
		}
	}
	if status := in.call("POST", "/v1/connections/"+c.waID+"/templates/sync", nil, nil); status != http.StatusOK {
		t.Fatalf("syncing templates: status %d", status)
	}
	var conn struct {
		ID string `json:"id"`
	}
	if status := in.call("POST", "/v1/connections", map[string]any{
		"connector": "shopify", "name": "shop", "config": c.shop.Config(),
	}, &conn); status != http.StatusCreated {
		t.Fatalf("creating the Shopify connection: status %d\n%s", status, in.logs())
	}
	c.shopID = conn.ID
	// Connecting registered the shop's webhooks at Ponte's URL.
	subs := c.shop.Subscriptions()
	if len(subs) == 0 || !strings.Contains(subs[0].CallbackURL, "/hooks/"+c.shopID) {
		t.Fatalf("webhook subscriptions after connecting: %+v", subs)
	}
	return c
}

// cartSettings enables cart recovery with the given step delays: the
// reminder, then the last chance.
func (c *commerceShop) cartSettings(t testing.TB, first, second time.Duration) {
	t.Helper()
	body := map[string]any{
		"enabled": true, "channel_connection_id": c.waID,
		"steps": []map[string]any{
			{"delay": first.String(), "template": "cart_reminder", "language": "en", "variables": []string{"name", "items", "link"}},
			{"delay": second.String(), "template": "cart_last_chance", "language": "en", "variables": []string{"name", "items", "link"}},
		},
	}
	if status := c.in.call("PUT", "/v1/connections/"+c.shopID+"/automations/cart-recovery", body, nil); status != http.StatusOK {
		t.Fatalf("cart recovery settings: status %d", status)
	}
}

func (c *commerceShop) orderSettings(t testing.TB) {
	t.Helper()
	body := map[string]any{
		"enabled": true, "channel_connection_id": c.waID, "confirm_on": "created", "free_text_in_window": false,
		"confirmation": map[string]any{"template": "order_confirmation", "language": "en", "variables": []string{"name", "order", "total"}},
	}
	if status := c.in.call("PUT", "/v1/connections/"+c.shopID+"/automations/order-notifications", body, nil); status != http.StatusOK {
		t.Fatalf("order notification settings: status %d", status)
	}
}

// checkout is an abandoned checkout of a customer who accepted SMS
// marketing at checkout (Shopify's consent for the phone channel).
func (c *commerceShop) checkout(phone, name string) fakeshopify.Checkout {
	return c.shop.PutCheckout(fakeshopify.Checkout{
		Phone: phone, SMSMarketingPhone: phone, BuyerAcceptsSMSMarketing: true, Email: name + "@example.com",
		Customer:  &fakeshopify.Customer{FirstName: name, Phone: phone},
		LineItems: []fakeshopify.LineItem{{Title: "Linen shirt", Quantity: 2, Price: "29.95"}},
	})
}

func (c *commerceShop) deliver(t testing.TB, topic string, payload any) {
	t.Helper()
	status, err := c.shop.Deliver(context.Background(), topic, payload)
	if err != nil || status != http.StatusOK {
		t.Fatalf("delivering %s: status %d, %v\n%s", topic, status, err, c.in.logs())
	}
}

// waitSent waits until the fake Graph API has accepted want messages to
// phone that match, and returns them.
func (c *commerceShop) waitSent(t testing.TB, phone string, want int, match func(fakegraph.SentMessage) bool, within time.Duration) []fakegraph.SentMessage {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got []fakegraph.SentMessage
		for _, m := range c.graph.SentTo(phone) {
			if match(m) {
				got = append(got, m)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) < want {
				t.Fatalf("%d of %d messages to %s after %s; sent:%s\n%s", len(got), want, phone, within, describeSent(c.graph.Sent()), c.in.logs())
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func template(name string) func(fakegraph.SentMessage) bool {
	return func(m fakegraph.SentMessage) bool { return m.Type == "template" && m.Template == name }
}

type cartReport struct {
	CartsSeen        int `json:"carts_seen"`
	Contacted        int `json:"contacted"`
	Recovered        int `json:"recovered"`
	RecoveredRevenue []struct {
		Currency string `json:"currency"`
		Amount   string `json:"amount"`
	} `json:"recovered_revenue"`
	MessagesSent []struct {
		Step  int `json:"step"`
		Count int `json:"count"`
	} `json:"messages_sent"`
}

func (c *commerceShop) report(t testing.TB) cartReport {
	t.Helper()
	var rep cartReport
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if status := c.in.call("GET", "/v1/reports/cart-recovery?from="+from+"&to="+to, nil, &rep); status != http.StatusOK {
		t.Fatalf("cart recovery report: status %d", status)
	}
	return rep
}

// A signed Shopify checkout webhook reaches Ponte, which starts the cart's
// workflow on the Temporal dev server; after the (shortened) delay the fake
// Graph API receives the reminder template carrying the checkout's
// recovery link. The order placed from that checkout then stops the
// sequence (the last chance is never sent), sends the order confirmation,
// and the report counts the recovered revenue.
func TestIntegrationCartRecoveryShopify(t *testing.T) {
	in := newInstallation(t, "cloudapi", "shopify")
	in.start()
	c := newCommerceShop(t, in)
	c.cartSettings(t, 2*time.Second, 8*time.Second)
	c.orderSettings(t)

	const phone = "+393471112233"
	co := c.checkout(phone, "Giulia")
	c.deliver(t, "checkouts/create", c.shop.CheckoutPayload(co))
	// Shopify delivers at least once: the same webhook again changes nothing.
	if _, err := c.shop.Redeliver(context.Background(), c.shop.Deliveries()[len(c.shop.Deliveries())-1].WebhookID); err != nil {
		t.Fatal(err)
	}

	sent := c.waitSent(t, phone, 1, template("cart_reminder"), 60*time.Second)
	link := c.shop.RecoveryURL(co)
	if !strings.Contains(sent[0].Body, link) || !strings.Contains(sent[0].Body, "Giulia") || !strings.Contains(sent[0].Body, "Linen shirt") {
		t.Fatalf("reminder body %q, want the name, the items and the recovery link %s", sent[0].Body, link)
	}

	// The customer buys from the checkout: the sequence stops and the order
	// is confirmed.
	order := c.shop.PutOrder(fakeshopify.Order{
		CheckoutToken: co.Token, Phone: phone, Email: "giulia@example.com", FinancialStatus: "paid",
		Customer:  &fakeshopify.Customer{FirstName: "Giulia", Phone: phone},
		LineItems: []fakeshopify.LineItem{{Title: "Linen shirt", Quantity: 2, Price: "29.95"}},
	})
	c.deliver(t, "orders/create", c.shop.OrderPayload(order))
	conf := c.waitSent(t, phone, 1, template("order_confirmation"), 60*time.Second)
	if !strings.Contains(conf[0].Body, "Giulia") || !strings.Contains(conf[0].Body, "59.90") || !strings.Contains(conf[0].Body, order.Name) {
		t.Errorf("confirmation body %q, want the name, the order %s and the total", conf[0].Body, order.Name)
	}

	// Past the last chance's delay: it was never sent, and the reminder
	// only once.
	time.Sleep(12 * time.Second)
	if n := len(c.waitSent(t, phone, 0, template("cart_last_chance"), 0)); n != 0 {
		t.Errorf("last chance sent %d times after the order", n)
	}
	if n := len(c.waitSent(t, phone, 1, template("cart_reminder"), 0)); n != 1 {
		t.Errorf("reminder sent %d times, want 1", n)
	}

	rep := c.report(t)
	if rep.CartsSeen != 1 || rep.Contacted != 1 || rep.Recovered != 1 || len(rep.RecoveredRevenue) != 1 ||
		rep.RecoveredRevenue[0].Currency != "EUR" || rep.RecoveredRevenue[0].Amount != "59.90" {
		var status, reason, orderID string
		_ = in.openPool().QueryRow(context.Background(), `SELECT status, COALESCE(end_reason, ''), COALESCE(order_id, '') FROM cart_recoveries WHERE tenant_id = $1`, in.tenantID).Scan(&status, &reason, &orderID)
		t.Errorf("report = %+v, want 1 seen, contacted and recovered for 59.90 EUR; cart %s (%s) order %q", rep, status, reason, orderID)
	}
}
