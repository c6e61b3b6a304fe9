package woocommerce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func invoke[T any](t testing.TB, h *testkit.Harness, conn sdk.Connection, action, params, key string) (T, error) {
	t.Helper()
	var v T
	out, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: conn, Action: action, Params: json.RawMessage(params), IdempotencyKey: key})
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s result %s: %v", action, out, err)
	}
	return v, nil
}

// TestGetOrderAndCheckout fetches orders in several states.
func TestGetOrderAndCheckout(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, clk.now)
	fake := fakewoo.New(t, fakewoo.Options{Now: clk.now})
	conn := connWith(t, testConfig(fake.URL()), "")

	cart := fake.PutOrder(fakewoo.Order{Status: "pending", PaymentMethod: "stripe", CustomerID: 58,
		Billing:   fakewoo.Address{FirstName: "Giulia", LastName: "Bianchi", Email: "giulia@example.it", Phone: "333 123 4567", Country: "IT"},
		LineItems: []fakewoo.LineItem{{Name: "Tazza", ProductID: 12, SKU: "TZ-1", Price: 12.5, Quantity: 2}}, ShippingTotal: "4.90"})
	id := fmt.Sprint(cart.ID)

	co, err := invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id": "`+id+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	want := commerce.Checkout{
		ID:          id,
		Contact:     commerce.Contact{Phone: "+393331234567", Email: "giulia@example.it", FirstName: "Giulia", LastName: "Bianchi", CustomerID: "58", Country: "IT"},
		Currency:    "EUR",
		Subtotal:    "25.00",
		Total:       "29.90",
		LineItems:   []commerce.LineItem{{Title: "Tazza", SKU: "TZ-1", ProductID: "12", Quantity: 2, Price: "12.50"}},
		RecoveryURL: cart.PaymentURL,
		CreatedAt:   clk.now(),
		UpdatedAt:   clk.now(),
	}
	if diff := cmp.Diff(want, co); diff != "" {
		t.Errorf("checkout (-want +got):\n%s", diff)
	}
	if !strings.Contains(co.RecoveryURL, "/checkout/order-pay/"+id+"/") {
		t.Errorf("recovery url %q", co.RecoveryURL)
	}

	clk.advance(time.Hour)
	if _, err := fake.UpdateOrder(cart.ID, func(o *fakewoo.Order) { o.Status = "processing" }); err != nil {
		t.Fatal(err)
	}
	co, err = invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id": "`+id+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	if co.OrderID != id || co.CompletedAt == nil || !co.CompletedAt.Equal(clk.now()) {
		t.Errorf("checkout of a paid order: order_id %q, completed_at %v", co.OrderID, co.CompletedAt)
	}
	ord, err := invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id": "`+id+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	if ord.ID != id || ord.Name != "#"+id || ord.CheckoutID != id || ord.FinancialStatus != commerce.FinancialPaid || ord.PaidAt == nil || ord.PaymentURL != "" {
		t.Errorf("order %+v", ord)
	}

	if _, err := fake.UpdateOrder(cart.ID, func(o *fakewoo.Order) { o.Status = "cancelled" }); err != nil {
		t.Fatal(err)
	}
	_, err = invoke[commerce.Checkout](t, h, conn, commerce.ActionGetCheckout, `{"checkout_id": "`+id+`"}`, "")
	testkit.RequireKind(t, err, sdk.KindNotFound)
	_, err = invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id": "999999"}`, "")
	if e := testkit.RequireKind(t, err, sdk.KindNotFound); e.Code != "woocommerce_rest_shop_order_invalid_id" {
		t.Errorf("code %q", e.Code)
	}
	// The schema refuses an id that is not one, before the connector runs.
	_, err = invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id": "../customers"}`, "")
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

// TestCreateDiscount creates a single-use coupon and shows that a retry
// with the same idempotency key returns the same coupon instead of making a
// second one.
func TestCreateDiscount(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, clk.now)
	fake := fakewoo.New(t, fakewoo.Options{Now: clk.now})
	conn := connWith(t, testConfig(fake.URL()), "")
	cust := fake.PutCustomer(fakewoo.Customer{Email: "anna@example.it", FirstName: "Anna"})

	params := `{"percent": 15, "valid_for_seconds": 172800, "email": "giulia@example.it", "prefix": "COMEBACK-", "reference": "checkout 4312"}`
	d1, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, params, "wf-1/step-2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d1.Code, "comeback-") || len(d1.Code) != len("comeback-")+10 || d1.Percent != 15 ||
		d1.ExpiresAt == nil || !d1.ExpiresAt.Equal(clk.now().Add(48*time.Hour)) || d1.ID == "" {
		t.Errorf("discount %+v", d1)
	}
	clk.advance(time.Minute)
	d2, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, params, "wf-1/step-2")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if diff := cmp.Diff(d1, d2); diff != "" {
		t.Errorf("retry returned another discount (-first +retry):\n%s", diff)
	}
	d3, err := invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 10, "customer_id": "`+fmt.Sprint(cust.ID)+`"}`, "wf-2/step-2")
	if err != nil {
		t.Fatal(err)
	}
	if d3.Code == d1.Code || d3.ExpiresAt != nil {
		t.Errorf("second discount %+v", d3)
	}

	coupons := fake.Coupons()
	if len(coupons) != 2 {
		t.Fatalf("%d coupons at the store, want 2", len(coupons))
	}
	one := 1
	exp := "2026-11-22T10:00:00"
	want := []fakewoo.Coupon{
		{Code: d1.Code, Amount: "15", DiscountType: "percent", IndividualUse: true, UsageLimit: &one, UsageLimitPerUser: &one,
			EmailRestrictions: []string{"giulia@example.it"}, DateExpiresGMT: &exp, Description: "Created by Ponte for checkout 4312"},
		{Code: d3.Code, Amount: "10", DiscountType: "percent", IndividualUse: true, UsageLimit: &one, UsageLimitPerUser: &one,
			EmailRestrictions: []string{"anna@example.it"}, Description: "Created by Ponte"},
	}
	if diff := cmp.Diff(want, coupons, cmpopts.IgnoreFields(fakewoo.Coupon{}, "ID", "Status", "DateCreated", "DateCreatedGMT",
		"DateModified", "DateModifiedGMT", "DateExpires", "ProductIDs", "ExcludedProductIDs", "ProductCategories",
		"ExcludedProductCategories", "MinimumAmount", "MaximumAmount", "UsedBy", "MetaData")); diff != "" {
		t.Errorf("coupons (-want +got):\n%s", diff)
	}

	// The store refuses the email: Invalid with WooCommerce's message.
	_, err = invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 10, "email": "not-an-email"}`, "wf-3/step-2")
	if e := testkit.RequireKind(t, err, sdk.KindInvalid); !strings.Contains(e.Message, "Invalid email address restriction") {
		t.Errorf("message %q", e.Message)
	}
	// A customer who does not exist: NotFound.
	_, err = invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 10, "customer_id": "424242"}`, "wf-4/step-2")
	testkit.RequireKind(t, err, sdk.KindNotFound)
	// Out of range: refused by the schema.
	_, err = invoke[commerce.Discount](t, h, conn, commerce.ActionCreateDiscount, `{"percent": 150}`, "wf-5/step-2")
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

// TestListCustomers pages through the store's customers.
func TestListCustomers(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	fake := fakewoo.New(t, fakewoo.Options{})
	conn := connWith(t, testConfig(fake.URL()), "")
	var ids []string
	for i := range 5 {
		c := fake.PutCustomer(fakewoo.Customer{Email: fmt.Sprintf("c%d@example.it", i), FirstName: fmt.Sprintf("C%d", i),
			Billing: fakewoo.Address{Phone: fmt.Sprintf("333 000 00%02d", i), Country: "IT"}})
		ids = append(ids, fmt.Sprint(c.ID))
	}
	fake.PutCustomer(fakewoo.Customer{Email: "admin@example.it", Role: "administrator"})

	var got []string
	var cursors []string
	cursor := ""
	for range 10 {
		params := `{"limit": 2}`
		if cursor != "" {
			params = `{"limit": 2, "cursor": "` + cursor + `"}`
		}
		page, err := invoke[commerce.CustomerPage](t, h, conn, commerce.ActionListCustomers, params, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Customers {
			got = append(got, c.ID)
			if !strings.HasPrefix(c.Phone, "+39333000") || c.MarketingConsent != nil {
				t.Errorf("customer %+v", c)
			}
		}
		cursors = append(cursors, page.NextCursor)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("customers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"2", "3", ""}, cursors); diff != "" {
		t.Errorf("cursors (-want +got):\n%s", diff)
	}
	_, err := invoke[commerce.CustomerPage](t, h, conn, commerce.ActionListCustomers, `{"limit": 500}`, "")
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

// TestErrorKinds maps the store's failures to the kinds the host acts on.
func TestErrorKinds(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	gone := fakewoo.New(t, fakewoo.Options{})
	goneConn := connWith(t, testConfig(gone.URL()), "")
	gone.Close()

	tests := map[int]struct {
		kind       sdk.ErrorKind
		code       string
		retryAfter time.Duration
	}{
		http.StatusBadRequest:          {sdk.KindInvalid, "rest_invalid_param", 0},
		http.StatusUnauthorized:        {sdk.KindAuth, "woocommerce_rest_cannot_view", 0},
		http.StatusForbidden:           {sdk.KindAuth, "woocommerce_rest_cannot_view", 0},
		http.StatusNotFound:            {sdk.KindNotFound, "woocommerce_rest_invalid_id", 0},
		http.StatusTooManyRequests:     {sdk.KindRateLimited, "too_many_requests", 7 * time.Second},
		http.StatusInternalServerError: {sdk.KindRetryable, "internal_server_error", 0},
		http.StatusBadGateway:          {sdk.KindRetryable, "", 0},
		http.StatusServiceUnavailable:  {sdk.KindRetryable, "internal_server_error", 0},
	}
	for status, tc := range tests {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			fake := fakewoo.New(t, fakewoo.Options{})
			conn := connWith(t, testConfig(fake.URL()), "")
			fake.FailNext(status)
			_, err := invoke[commerce.Order](t, h, conn, commerce.ActionGetOrder, `{"order_id": "1"}`, "")
			e := testkit.RequireKind(t, err, tc.kind)
			if e.Code != tc.code || e.RetryAfter != tc.retryAfter {
				t.Errorf("code %q retry after %v, want %q %v: %v", e.Code, e.RetryAfter, tc.code, tc.retryAfter, e)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		_, err := invoke[commerce.Order](t, h, goneConn, commerce.ActionGetOrder, `{"order_id": "1"}`, "")
		testkit.RequireKind(t, err, sdk.KindRetryable)
	})
	t.Run("poll", func(t *testing.T) {
		t.Parallel()
		fake := fakewoo.New(t, fakewoo.Options{})
		fake.FailNext(http.StatusUnauthorized)
		_, err := h.Poll(t.Context(), connWith(t, testConfig(fake.URL()), ""), "")
		testkit.RequireKind(t, err, sdk.KindAuth)
	})
}

// TestMapError covers statuses the fake does not produce.
func TestMapError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		re   RESTError
		kind sdk.ErrorKind
	}{
		"invalid id answered 400": {RESTError{HTTPStatus: 400, Code: "woocommerce_rest_webhook_invalid_id"}, sdk.KindNotFound},
		"timeout":                 {RESTError{HTTPStatus: 408}, sdk.KindRetryable},
		"trash not supported":     {RESTError{HTTPStatus: 501, Code: "woocommerce_rest_trash_not_supported"}, sdk.KindPermanent},
		"conflict":                {RESTError{HTTPStatus: 409}, sdk.KindPermanent},
		"429 without a hint":      {RESTError{HTTPStatus: 429}, sdk.KindRateLimited},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := MapError("op", tc.re)
			if e.Kind != tc.kind {
				t.Errorf("kind %s, want %s", e.Kind, tc.kind)
			}
			if tc.kind == sdk.KindRateLimited && e.RetryAfter != DefaultRetryAfter {
				t.Errorf("retry after %v", e.RetryAfter)
			}
		})
	}
}
