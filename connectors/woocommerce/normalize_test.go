package woocommerce

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// mutate returns the fixture with fn applied to its JSON object.
func mutate(t testing.TB, raw []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOrderStatesToEvents replays WooCommerce's order payloads (the REST
// documentation's order 727 and store orders in every status) as signed
// order.updated deliveries through the real plugin protocol and checks the
// events each state produces. The same state always gives the same events,
// whatever the topic, which is what lets the reconciliation poll dedupe
// against webhooks.
func TestOrderStatesToEvents(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)
	processing := readFixture(t, "order_727_processing.json")
	pending := readFixture(t, "order_pending_it.json")
	completed := readFixture(t, "order_completed_tracking.json")
	status := func(raw []byte, s string) []byte {
		return mutate(t, raw, func(m map[string]any) { m["status"] = s })
	}

	tests := map[string]struct {
		body []byte
		want []string
	}{
		"processing, paid by transfer": {processing, []string{
			"order.created order:727:created",
			"order.updated order:727:updated:2017-03-22T19:28:08:processing",
			"order.paid order:727:paid",
		}},
		"pending is a cart": {pending, []string{
			"checkout.created checkout:4312:created",
			"checkout.updated checkout:4312:updated:2026-11-20T10:02:44:pending",
		}},
		"pending, never changed since created": {mutate(t, pending, func(m map[string]any) { m["date_modified_gmt"] = m["date_created_gmt"] }), []string{
			"checkout.created checkout:4312:created",
		}},
		"failed payment is a cart": {status(pending, "failed"), []string{
			"checkout.created checkout:4312:created",
			"checkout.updated checkout:4312:updated:2026-11-20T10:02:44:failed",
		}},
		"block checkout draft is a cart": {status(pending, "checkout-draft"), []string{
			"checkout.created checkout:4312:created",
			"checkout.updated checkout:4312:updated:2026-11-20T10:02:44:checkout-draft",
		}},
		"completed with tracking": {completed, []string{
			"order.created order:5120:created",
			"order.updated order:5120:updated:2026-11-21T15:40:12:completed",
			"order.paid order:5120:paid",
			"order.fulfilled order:5120:fulfilled",
		}},
		"refunded": {status(completed, "refunded"), []string{
			"order.created order:5120:created",
			"order.updated order:5120:updated:2026-11-21T15:40:12:refunded",
			"order.paid order:5120:paid",
			"order.refunded order:5120:refunded",
		}},
		"on-hold awaiting a transfer": {mutate(t, processing, func(m map[string]any) {
			m["status"], m["date_paid_gmt"] = "on-hold", nil
		}), []string{
			"order.created order:727:created",
			"order.updated order:727:updated:2017-03-22T19:28:08:on-hold",
		}},
		"unpaid cart cancelled by the hold-stock timer": {status(pending, "cancelled"), []string{
			"checkout.deleted checkout:4312:deleted",
		}},
		"transfer order cancelled before payment": {mutate(t, processing, func(m map[string]any) {
			m["status"], m["date_paid_gmt"] = "cancelled", nil
		}), []string{
			"order.updated order:727:updated:2017-03-22T19:28:08:cancelled",
			"order.cancelled order:727:cancelled",
		}},
		"paid order cancelled": {status(processing, "cancelled"), []string{
			"order.updated order:727:updated:2017-03-22T19:28:08:cancelled",
			"order.paid order:727:paid",
			"order.cancelled order:727:cancelled",
		}},
		"a plugin's own status": {status(completed, "shipped"), []string{
			"order.created order:5120:created",
			"order.updated order:5120:updated:2026-11-21T15:40:12:shipped",
			"order.paid order:5120:paid",
		}},
		"trashed": {status(pending, "trash"), []string{
			"checkout.deleted checkout:4312:deleted",
			"order.deleted order:4312:deleted",
		}},
		"admin draft": {status(pending, "auto-draft"), nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, topic := range []string{"order.updated", "order.created"} {
				res, err := h.HandleWebhook(t.Context(), conn, signed(topic, tc.body, testWebhookSecret))
				if err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
				if diff := cmp.Diff(tc.want, eventKeys(res.Events), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s events (-want +got):\n%s", topic, diff)
				}
				for _, e := range res.Events {
					if e.OccurredAt.IsZero() || !json.Valid(e.Payload) || e.Correlation[commerce.CorrelationCheckout] == "" {
						t.Errorf("%s: event %s lacks a time, a payload or its checkout correlation: %+v", topic, e.DedupeKey, e)
					}
				}
			}
		})
	}
}

func decodePayload[T any](t testing.TB, e sdk.Event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatalf("decoding %s payload: %v", e.Type, err)
	}
	return v
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func tsp(s string) *time.Time { t := ts(s); return &t }

// TestCheckoutPayload checks the cart normalized from a pending order: the
// payment link as recovery URL, a national Italian number read with the
// billing country, totals as decimal strings, visible variation attributes.
func TestCheckoutPayload(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)
	res, err := h.HandleWebhook(t.Context(), conn, signed("order.created", readFixture(t, "order_pending_it.json"), testWebhookSecret))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) == 0 {
		t.Fatal("no events")
	}
	e := res.Events[0]
	if diff := cmp.Diff(map[string]string{"checkout": "4312", "customer": "58", "phone": "+393331234567"}, e.Correlation); diff != "" {
		t.Errorf("correlation (-want +got):\n%s", diff)
	}
	want := commerce.Checkout{
		ID: "4312",
		Contact: commerce.Contact{Phone: "+393331234567", Email: "giulia.bianchi@example.it", FirstName: "Giulia", LastName: "Bianchi",
			CustomerID: "58", Country: "IT"},
		Currency: "EUR",
		Subtotal: "29.95",
		Total:    "64.80",
		LineItems: []commerce.LineItem{{Title: "T-shirt Lino - Blu, M", VariantTitle: "Blu / M", SKU: "TSL-BLU-M", ProductID: "311",
			VariantID: "318", Quantity: 2, Price: "14.98"}},
		RecoveryURL: "https://shop.example/checkout/order-pay/4312/?pay_for_order=true&key=wc_order_Xa8Hq2LmRt9Zp",
		CreatedAt:   ts("2026-11-20T10:02:41Z"),
		UpdatedAt:   ts("2026-11-20T10:02:44Z"),
	}
	if diff := cmp.Diff(want, decodePayload[commerce.Checkout](t, e)); diff != "" {
		t.Errorf("checkout (-want +got):\n%s", diff)
	}
}

// TestOrderPayload checks an order normalized from a completed order with
// a partial refund and two shipments recorded by the Shipment Tracking
// extension (a custom carrier with its link, a predefined one without).
func TestOrderPayload(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)
	res, err := h.HandleWebhook(t.Context(), conn, signed("order.updated", readFixture(t, "order_completed_tracking.json"), testWebhookSecret))
	if err != nil {
		t.Fatal(err)
	}
	var fulfilled *sdk.Event
	for i, e := range res.Events {
		if e.Type == commerce.EventOrderFulfilled {
			fulfilled = &res.Events[i]
		}
	}
	if fulfilled == nil {
		t.Fatalf("no order.fulfilled among %v", eventKeys(res.Events))
	}
	if !fulfilled.OccurredAt.Equal(ts("2026-11-21T16:40:12Z")) {
		t.Errorf("fulfilled at %v, want date_completed_gmt", fulfilled.OccurredAt)
	}
	want := commerce.Order{
		ID: "5120", Name: "#5120", CheckoutID: "5120",
		Contact:  commerce.Contact{Phone: "+33612345678", Email: "marc.dupont@example.fr", FirstName: "Marc", LastName: "Dupont", Country: "FR"},
		Currency: "EUR", Total: "120.00",
		LineItems:         []commerce.LineItem{{Title: "Sac en cuir", SKU: "SAC-001", ProductID: "880", Quantity: 1, Price: "120.00"}},
		FinancialStatus:   commerce.FinancialPartiallyRefunded,
		FulfillmentStatus: "fulfilled",
		Fulfillments: []commerce.Fulfillment{
			{ID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", OrderID: "5120", Status: "success", TrackingCompany: "Colissimo", TrackingNumber: "6A12345678901",
				TrackingURL: "https://www.laposte.fr/outils/suivre-vos-envois?code=6A12345678901", UpdatedAt: time.Unix(1763740800, 0).UTC()},
			{ID: "0f9e8d7c6b5a49382716051f2e3d4c5b", OrderID: "5120", Status: "success", TrackingCompany: "ups", TrackingNumber: "1Z999AA10123456784",
				TrackingURL: "https://www.ups.com/track?tracknum=1Z999AA10123456784", UpdatedAt: time.Unix(1763827200, 0).UTC()},
		},
		CreatedAt:      ts("2026-11-18T08:15:00Z"),
		UpdatedAt:      ts("2026-11-21T15:40:12Z"),
		PaidAt:         tsp("2026-11-18T09:15:31Z"),
		RefundedAmount: "20.00",
	}
	if diff := cmp.Diff(want, decodePayload[commerce.Order](t, *fulfilled)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestPhones checks phone normalization: an invalid number is reported,
// never an error, and default_country reads national numbers of orders
// without an address country.
func TestPhones(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	pending := readFixture(t, "order_pending_it.json")
	noCountry := mutate(t, pending, func(m map[string]any) {
		for _, k := range []string{"billing", "shipping"} {
			m[k].(map[string]any)["country"] = ""
		}
	})
	noPhone := mutate(t, pending, func(m map[string]any) { m["billing"].(map[string]any)["phone"] = "" })
	shippingPhone := mutate(t, noPhone, func(m map[string]any) { m["shipping"].(map[string]any)["phone"] = "+39 347 000 1122" })
	withDefault := testConfig("https://shop.example")
	withDefault["default_country"] = "IT"

	tests := map[string]struct {
		cfg  map[string]any
		body []byte
		want commerce.Contact
	}{
		"the documentation's fictional 555 number": {testConfig("https://shop.example"), readFixture(t, "order_727_processing.json"),
			commerce.Contact{PhoneRaw: "(555) 555-5555", PhoneProblem: commerce.PhoneInvalid, Country: "US"}},
		"national number, no country anywhere": {testConfig("https://shop.example"), noCountry,
			commerce.Contact{PhoneRaw: "333 123 4567", PhoneProblem: commerce.PhoneInvalid}},
		"national number read with default_country": {withDefault, noCountry,
			commerce.Contact{Phone: "+393331234567", Country: "IT"}},
		"no phone": {testConfig("https://shop.example"), noPhone,
			commerce.Contact{PhoneProblem: commerce.PhoneMissing, Country: "IT"}},
		"shipping phone when billing has none": {testConfig("https://shop.example"), shippingPhone,
			commerce.Contact{Phone: "+393470001122", Country: "IT"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := h.HandleWebhook(t.Context(), connWith(t, tc.cfg, testWebhookURL), signed("order.updated", tc.body, testWebhookSecret))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) == 0 {
				t.Fatal("no events")
			}
			var got commerce.Contact
			if err := json.Unmarshal(res.Events[0].Payload, &got); err != nil {
				t.Fatal(err)
			}
			got = commerce.Contact{Phone: got.Phone, PhoneRaw: got.PhoneRaw, PhoneProblem: got.PhoneProblem, Country: got.Country}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("contact (-want +got):\n%s", diff)
			}
			if p, ok := res.Events[0].Correlation[commerce.CorrelationPhone]; ok != (tc.want.Phone != "") || p != tc.want.Phone {
				t.Errorf("phone correlation %q, want %q", p, tc.want.Phone)
			}
		})
	}
}

// TestCustomerEvents replays the documentation's customer 25 as
// customer.created and customer.updated.
func TestCustomerEvents(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)
	body := readFixture(t, "customer_25.json")
	var got []string
	for _, topic := range []string{"customer.created", "customer.updated"} {
		res, err := h.HandleWebhook(t.Context(), conn, signed(topic, body, testWebhookSecret))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, eventKeys(res.Events)...)
		if len(res.Events) != 1 {
			continue
		}
		want := commerce.Customer{
			ID:        "25",
			Contact:   commerce.Contact{Phone: "+14155552671", Email: "john.doe@example.com", FirstName: "John", LastName: "Doe", CustomerID: "25", Country: "US"},
			CreatedAt: ts("2017-03-21T19:09:28Z"),
			UpdatedAt: ts("2017-03-21T19:09:30Z"),
		}
		if diff := cmp.Diff(want, decodePayload[commerce.Customer](t, res.Events[0])); diff != "" {
			t.Errorf("%s customer (-want +got):\n%s", topic, diff)
		}
		if diff := cmp.Diff(map[string]string{"customer": "25", "phone": "+14155552671"}, res.Events[0].Correlation); diff != "" {
			t.Errorf("%s correlation (-want +got):\n%s", topic, diff)
		}
	}
	if diff := cmp.Diff([]string{"customer.created customer:25:created", "customer.updated customer:25:updated:2017-03-21T19:09:30"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
