package shopify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// TestFakeDeliveries runs the path the end-to-end tests use: Connect
// registers the ingress at the fake shop, the fake's payload builders and
// signed deliveries produce every topic, the connector turns each into the
// right event, and a redelivery (same webhook id) is stored once.
func TestFakeDeliveries(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{Country: "IT"})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := h.HandleWebhook(r.Context(), conn, sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body, ReceivedAt: time.Now()})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if err := h.Host.Emit(r.Context(), conn.ID, res.Events...); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer ingress.Close()
	conn.WebhookURL = ingress.URL + "/hooks/" + conn.ID
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}

	cu := fakeshopify.Customer{Email: "anna@example.com", FirstName: "Anna", Phone: "+39 333 123 4567",
		SMSConsent: &fakeshopify.Consent{State: "subscribed", OptInLevel: "single_opt_in", UpdatedAt: time.Now().UTC().Truncate(time.Second), CollectedFrom: "SHOPIFY"}}
	co := shop.PutCheckout(fakeshopify.Checkout{Customer: &cu, Phone: "333 123 4567", LineItems: []fakeshopify.LineItem{{Title: "Maglietta", Quantity: 1, Price: "19.90"}}})
	o := shop.PutOrder(fakeshopify.Order{CheckoutToken: co.Token, Customer: co.Customer, LineItems: co.LineItems,
		Fulfillments: []fakeshopify.Fulfillment{{TrackingCompany: "DHL", TrackingNumber: "JD1", ShipmentStatus: "delivered",
			Destination: &fakeshopify.Address{Phone: "333 123 4567", CountryCode: "IT"}}}})
	deliveries := []struct {
		topic   string
		payload json.RawMessage
	}{
		{"checkouts/create", shop.CheckoutPayload(co)},
		{"checkouts/update", shop.CheckoutPayload(co)},
		{"orders/create", shop.OrderPayload(o)},
		{"orders/paid", shop.OrderPayload(o)},
		{"fulfillments/create", shop.FulfillmentPayload(o.Fulfillments[0])},
		{"orders/fulfilled", shop.OrderPayload(o)},
		{"refunds/create", shop.RefundPayload(fakeshopify.Refund{OrderID: o.ID, Amount: "19.90"})},
		{"orders/cancelled", shop.OrderPayload(o)},
		{"customers/update", shop.CustomerPayload(*co.Customer)},
		{"checkouts/delete", shop.CheckoutDeletePayload(co)},
		{"app/uninstalled", shop.UninstalledPayload()},
	}
	for _, d := range deliveries {
		if status, err := shop.Deliver(t.Context(), d.topic, d.payload); err != nil || status != http.StatusOK {
			t.Fatalf("%s: %d %v", d.topic, status, err)
		}
	}
	if status, err := shop.Redeliver(t.Context(), shop.Deliveries()[0].WebhookID); err != nil || status != http.StatusOK {
		t.Fatalf("redelivery: %d %v", status, err)
	}

	type row struct{ Type, Checkout, Order, Customer, Phone string }
	var got []row
	for _, e := range h.Host.Events(conn.ID) {
		got = append(got, row{e.Type, e.Correlation[commerce.CorrelationCheckout], e.Correlation[commerce.CorrelationOrder],
			e.Correlation[commerce.CorrelationCustomer], e.Correlation[commerce.CorrelationPhone]})
	}
	cid, oid := itoa(co.Customer.ID), itoa(o.ID)
	const phone = "+393331234567"
	want := []row{
		{commerce.EventCheckoutCreated, co.Token, "", cid, phone},
		{commerce.EventCheckoutUpdated, co.Token, "", cid, phone},
		{commerce.EventOrderCreated, co.Token, oid, cid, phone},
		{commerce.EventOrderPaid, co.Token, oid, cid, phone},
		{commerce.EventFulfillmentCreated, "", oid, "", phone},
		{commerce.EventOrderFulfilled, co.Token, oid, cid, phone},
		{commerce.EventOrderRefunded, "", oid, "", ""},
		{commerce.EventOrderCancelled, co.Token, oid, cid, phone},
		{commerce.EventCustomerUpdated, "", "", cid, phone},
		{commerce.EventCheckoutDeleted, co.Token, "", "", ""},
		{sdk.EventConnectionRevoked, "", "", "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}
