package shopify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func invoke[T any](t *testing.T, h *testkit.Harness, conn sdk.Connection, action, params, idem string) (T, error) {
	t.Helper()
	var out T
	raw, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: conn, Action: action, Params: json.RawMessage(params), IdempotencyKey: idem})
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s result %s: %v", action, raw, err)
	}
	return out, nil
}

var anna = fakeshopify.Customer{Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi", Locale: "it",
	SMSConsent: &fakeshopify.Consent{State: "subscribed", OptInLevel: "confirmed_opt_in", UpdatedAt: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC), CollectedFrom: "SHOPIFY"},
	Address:    &fakeshopify.Address{FirstName: "Anna", LastName: "Rossi", Phone: "333 123 4567", CountryCode: "IT"}}

// TestGetCheckout: a checkout first seen by webhook is fetched by its token,
// as the cart-recovery workflow does.
func TestGetCheckout(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 6, 16, 9, 0, 0, 0, time.UTC)
	co := shop.PutCheckout(fakeshopify.Checkout{Customer: &anna, CreatedAt: created, UpdatedAt: created.Add(time.Minute),
		ShippingAddress: &fakeshopify.Address{FirstName: "Anna", LastName: "Rossi", Phone: "+39 347 000 1111", CountryCode: "IT"},
		LineItems: []fakeshopify.LineItem{{Title: "Maglietta", VariantTitle: "M", SKU: "TS-M", ProductID: 11, VariantID: 12, Quantity: 2, Price: "19.90"},
			{Title: "Cappello", Quantity: 1, Price: "5.00"}}})

	// Unknown token before any webhook named it.
	_, err := invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id":"`+co.Token+`"}`, "")
	testkit.RequireKind(t, err, sdk.KindNotFound)

	req := signedDelivery("checkouts/create", shop.CheckoutPayload(co), shop.ClientSecret)
	req.Headers["X-Shopify-Shop-Domain"] = []string{shop.Domain}
	if _, err := h.HandleWebhook(t.Context(), conn, req); err != nil {
		t.Fatal(err)
	}
	got, err := invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id":"`+co.Token+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	// The customer record has no phone of its own, so the shipping
	// address's is used.
	want := commerce.Checkout{
		ID: co.Token,
		Contact: commerce.Contact{Phone: "+393470001111", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
			CustomerID: itoa(co.Customer.ID), Country: "IT", Locale: "it"},
		Currency: "EUR", Subtotal: "44.80", Total: "44.80",
		LineItems: []commerce.LineItem{{Title: "Maglietta", VariantTitle: "M", SKU: "TS-M", ProductID: "11", VariantID: "12", Quantity: 2, Price: "19.90"},
			{Title: "Cappello", Quantity: 1, Price: "5.00"}},
		RecoveryURL:      shop.RecoveryURL(co),
		MarketingConsent: &commerce.MarketingConsent{State: "subscribed", OptInLevel: "confirmed_opt_in", UpdatedAt: &anna.SMSConsent.UpdatedAt, Source: "shopify"},
		CreatedAt:        created, UpdatedAt: created.Add(time.Minute),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checkout (-want +got):\n%s", diff)
	}
	// By numeric id too; the token is still what it is called.
	got, err = invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id":"`+itoa(co.ID)+`"}`, "")
	if err != nil || got.ID != co.Token {
		t.Errorf("by id: %+v %v", got.ID, err)
	}
	_, err = invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id":"999"}`, "")
	testkit.RequireKind(t, err, sdk.KindNotFound)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestGetOrder(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, map[string]any{"default_country": "it"})
	at := time.Date(2025, 6, 16, 10, 0, 0, 0, time.UTC)
	o := shop.PutOrder(fakeshopify.Order{Customer: &anna, Email: "anna.rossi@example.com", Phone: "3331234567", CreatedAt: at, UpdatedAt: at.Add(time.Hour),
		LineItems: []fakeshopify.LineItem{{Title: "Maglietta", Quantity: 1, Price: "19.90"}}, FinancialStatus: "partially_refunded", FulfillmentStatus: "fulfilled",
		Fulfillments: []fakeshopify.Fulfillment{{ShipmentStatus: "in_transit", TrackingCompany: "DHL", TrackingNumber: "JD014600003", TrackingURL: "https://dhl.example/JD014600003", UpdatedAt: at.Add(time.Hour)}},
		Refunds:      []fakeshopify.Refund{{Amount: "5.00"}}})
	got, err := invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id":"`+itoa(o.ID)+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	want := commerce.Order{
		ID: itoa(o.ID), Name: o.Name,
		Contact: commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
			CustomerID: itoa(o.Customer.ID), Country: "IT"},
		Currency: "EUR", Total: "19.90", LineItems: []commerce.LineItem{{Title: "Maglietta", Quantity: 1, Price: "19.90"}},
		FinancialStatus: commerce.FinancialPartiallyRefunded, FulfillmentStatus: "fulfilled", StatusURL: got.StatusURL,
		Fulfillments: []commerce.Fulfillment{{ID: itoa(o.Fulfillments[0].ID), OrderID: itoa(o.ID), Status: "success", ShipmentStatus: commerce.ShipmentInTransit,
			TrackingCompany: "DHL", TrackingNumber: "JD014600003", TrackingURL: "https://dhl.example/JD014600003", UpdatedAt: at.Add(time.Hour)}},
		CreatedAt: at, UpdatedAt: at.Add(time.Hour), RefundedAmount: "5.00",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got.StatusURL, "https://"+shop.Domain+"/") {
		t.Errorf("status url %q", got.StatusURL)
	}
	_, err = invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id":"42"}`, "")
	testkit.RequireKind(t, err, sdk.KindNotFound)
	_, err = invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id":"#1001"}`, "")
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

// TestCreateDiscount: a single-use code for one customer, and the same code
// again (not a second discount) when the call is retried with its key.
func TestCreateDiscount(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	cu := shop.PutCustomer(anna)
	params := `{"percent": 15, "valid_for_seconds": 86400, "customer_id": "` + itoa(cu.ID) + `", "prefix": "comeback-", "reference": "checkout bd5a"}`
	before := time.Now().Add(-time.Second)
	d1, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, params, "wf-cart-1/step-2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d1.Code, "COMEBACK-") || len(d1.Code) != len("COMEBACK-")+10 || d1.Percent != 15 || d1.ID == "" {
		t.Errorf("discount %+v", d1)
	}
	if d1.ExpiresAt == nil || d1.ExpiresAt.Before(before.Add(24*time.Hour)) || d1.ExpiresAt.After(time.Now().Add(24*time.Hour+time.Second)) {
		t.Errorf("expires at %v, want a day from now", d1.ExpiresAt)
	}
	d2, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, params, "wf-cart-1/step-2")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d1, d2); diff != "" {
		t.Errorf("retry gave another discount (-first +retry):\n%s", diff)
	}
	d3, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, params, "wf-cart-2/step-2")
	if err != nil || d3.Code == d1.Code {
		t.Errorf("another key: %+v %v", d3, err)
	}
	codes := shop.DiscountCodes()
	if len(codes) != 2 {
		t.Fatalf("%d discounts at the shop, want 2", len(codes))
	}
	c := codes[0]
	if c.UsageLimit != 1 || !c.AppliesOncePerCustomer || c.AllCustomers || len(c.CustomerIDs) != 1 || c.CustomerIDs[0] != "gid://shopify/Customer/"+itoa(cu.ID) || c.Percentage != 0.15 {
		t.Errorf("discount at the shop %+v", c)
	}
	if !strings.Contains(c.Title, "checkout bd5a") {
		t.Errorf("title %q lacks the reference", c.Title)
	}

	// Without a customer it is for everyone, still single use.
	if _, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 10}`, "k3"); err != nil {
		t.Fatal(err)
	}
	if last := shop.DiscountCodes()[2]; !last.AllCustomers || last.UsageLimit != 1 || last.EndsAt != nil {
		t.Errorf("discount for all %+v", last)
	}
	// Shopify's refusals are Invalid with its message.
	_, err = invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 10, "customer_id": "123"}`, "k4")
	if e := testkit.RequireKind(t, err, sdk.KindInvalid); !strings.Contains(e.Message, "does not exist") {
		t.Errorf("message %q", e.Message)
	}
	// The schema refuses what Shopify would.
	_, err = invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 150}`, "k5")
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

func TestListCustomers(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{Country: "DE"})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 7 {
		c := shop.PutCustomer(fakeshopify.Customer{Email: "c" + itoa(int64(i)) + "@example.com", Phone: "0151 2345678" + itoa(int64(i)), Tags: []string{"import"}})
		want[itoa(c.ID)] = "+491512345678" + itoa(int64(i))
	}
	consented := shop.PutCustomer(anna)
	want[itoa(consented.ID)] = "+393331234567"

	got := map[string]string{}
	cursor, pages := "", 0
	for {
		params := `{"limit": 3}`
		if cursor != "" {
			params = `{"limit": 3, "cursor": "` + cursor + `"}`
		}
		page, err := invoke[commerce.CustomerPage](t, h, conn, commerce.ActionListCustomers, params, "")
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range page.Customers {
			got[c.ID] = c.Phone
			if c.ID == itoa(consented.ID) && (c.MarketingConsent == nil || c.MarketingConsent.State != commerce.ConsentSubscribed || c.MarketingConsent.OptInLevel != "confirmed_opt_in") {
				t.Errorf("consent %+v", c.MarketingConsent)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("customers and phones, national numbers read with the shop's country DE (-want +got):\n%s", diff)
	}
}

// TestActionErrors: every failure of the Admin API reaches the host with
// the kind it must act on.
func TestActionErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		setup      func(*fakeshopify.Shop)
		extra      map[string]any
		kind       sdk.ErrorKind
		retryAfter time.Duration
	}{
		"bad token":             {extra: map[string]any{"access_token": "shpat_nope"}, kind: sdk.KindAuth},
		"401":                   {setup: func(s *fakeshopify.Shop) { s.FailNext(401) }, kind: sdk.KindAuth},
		"403":                   {setup: func(s *fakeshopify.Shop) { s.FailNext(403) }, kind: sdk.KindAuth},
		"404 version":           {extra: map[string]any{"api_version": "2020-01"}, kind: sdk.KindNotFound},
		"402 frozen":            {setup: func(s *fakeshopify.Shop) { s.FailNext(402) }, kind: sdk.KindPermanent},
		"423 locked":            {setup: func(s *fakeshopify.Shop) { s.FailNext(423) }, kind: sdk.KindPermanent},
		"429 retry-after":       {setup: func(s *fakeshopify.Shop) { s.FailNext(429) }, kind: sdk.KindRateLimited, retryAfter: 2 * time.Second},
		"500":                   {setup: func(s *fakeshopify.Shop) { s.FailNext(500) }, kind: sdk.KindRetryable},
		"503":                   {setup: func(s *fakeshopify.Shop) { s.FailNext(503) }, kind: sdk.KindRetryable},
		"unreachable":           {extra: map[string]any{"api_base": "http://127.0.0.1:1"}, kind: sdk.KindRetryable},
		"throttled from bucket": {setup: func(s *fakeshopify.Shop) { s.SetAvailable(29) }, kind: sdk.KindRateLimited, retryAfter: 2 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			shop := fakeshopify.New(t, fakeshopify.Options{})
			o := shop.PutOrder(fakeshopify.Order{LineItems: []fakeshopify.LineItem{{Title: "x", Quantity: 1, Price: "1.00"}}})
			h := testkit.Start(t, New)
			if tc.setup != nil {
				tc.setup(shop)
			}
			_, err := invoke[commerce.Order](t, h, fakeConn(t, shop, tc.extra), commerce.ActionGetOrder, `{"order_id":"`+itoa(o.ID)+`"}`, "")
			e := testkit.RequireKind(t, err, tc.kind)
			if tc.retryAfter != 0 && (e.RetryAfter < tc.retryAfter-100*time.Millisecond || e.RetryAfter > tc.retryAfter+200*time.Millisecond) {
				t.Errorf("retry after %v, want about %v", e.RetryAfter, tc.retryAfter)
			}
			if strings.Contains(e.Error(), shop.AccessToken) {
				t.Error("the error carries the token")
			}
		})
	}
}

// TestThrottleRecovers: after waiting what the RateLimited error said, the
// same call succeeds.
func TestThrottleRecovers(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{RestoreRate: 200})
	o := shop.PutOrder(fakeshopify.Order{LineItems: []fakeshopify.LineItem{{Title: "x", Quantity: 1, Price: "1.00"}}})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	shop.SetAvailable(0)
	params := `{"order_id":"` + itoa(o.ID) + `"}`
	_, err := invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, params, "")
	e := testkit.RequireKind(t, err, sdk.KindRateLimited)
	if e.Code != "THROTTLED" || e.RetryAfter <= 0 || e.RetryAfter > time.Second {
		t.Fatalf("throttle error %+v", e)
	}
	time.Sleep(e.RetryAfter + 50*time.Millisecond)
	if _, err := invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, params, ""); err != nil {
		t.Fatalf("after waiting %v: %v", e.RetryAfter, err)
	}
}
