package stripeconnector

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

const testSecretKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

// stripeMockConn is a connection whose API calls go through rec to stripe-mock.
func stripeMockConn(t *testing.T, rec *recorder, secretKey string) sdk.Connection {
	return testkit.Connection(t, map[string]string{
		"secret_key":     secretKey,
		"webhook_secret": testWebhookSecret,
		"api_base":       rec.URL,
	})
}

// TestIntegrationActionsStripeMock runs every action through the real plugin
// boundary (testkit) against stripe-mock, which validates each request
// against Stripe's OpenAPI spec, and checks what reached Stripe.
func TestIntegrationActionsStripeMock(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	h.CheckManifest(t)
	mock := testenv.StripeMockURL(t)

	t.Run("create with amount, currency and product name", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		conn := stripeMockConn(t, rec, testSecretKey)
		call := sdk.ActionCall{
			Connection:     conn,
			Action:         ActionCreatePaymentLink,
			IdempotencyKey: "paymentlink/pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F/create",
			Params: json.RawMessage(`{"amount": 2500, "currency": "EUR", "product_name": "Order A-1042", "quantity": 2,
				"metadata": {"ponte_payment_link": "pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F", "order": "A-1042"}}`),
		}
		out, err := h.Invoke(t.Context(), call)
		if err != nil {
			t.Fatalf("create_payment_link: %v", err)
		}
		var link PaymentLink
		if err := json.Unmarshal(out, &link); err != nil {
			t.Fatalf("decoding result %s: %v", out, err)
		}
		if !strings.HasPrefix(link.ID, "plink_") || !strings.HasPrefix(link.URL, "https://") || !link.Active ||
			!strings.HasPrefix(link.PriceID, "price_") || link.Metadata == nil {
			t.Errorf("result = %+v, want an active plink_ with a URL and the created price", link)
		}

		want := []recordedRequest{
			{
				Method: "POST", Path: "/v1/prices",
				IdempotencyKey: "paymentlink/pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F/create:price",
				Authorization:  "Bearer " + testSecretKey,
				Form: url.Values{
					"currency":                     {"eur"},
					"unit_amount":                  {"2500"},
					"product_data[name]":           {"Order A-1042"},
					"metadata[ponte_payment_link]": {"pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F"},
					"metadata[order]":              {"A-1042"},
				},
			},
			{
				Method: "POST", Path: "/v1/payment_links",
				IdempotencyKey: "paymentlink/pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F/create",
				Authorization:  "Bearer " + testSecretKey,
				Form: url.Values{
					"line_items[0][price]":                              {link.PriceID},
					"line_items[0][quantity]":                           {"2"},
					"metadata[ponte_payment_link]":                      {"pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F"},
					"metadata[order]":                                   {"A-1042"},
					"payment_intent_data[metadata][ponte_payment_link]": {"pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F"},
					"payment_intent_data[metadata][order]":              {"A-1042"},
				},
			},
		}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("requests to Stripe (-want +got):\n%s", diff)
		}

		// A retry of the same logical call sends the same keys, so Stripe
		// answers from its idempotency cache instead of creating twice.
		if _, err := h.Invoke(t.Context(), call); err != nil {
			t.Fatalf("retrying create_payment_link: %v", err)
		}
		var keys []string
		for _, r := range rec.take() {
			keys = append(keys, r.IdempotencyKey)
		}
		if diff := cmp.Diff([]string{want[0].IdempotencyKey, want[1].IdempotencyKey}, keys); diff != "" {
			t.Errorf("idempotency keys of the retry (-want +got):\n%s", diff)
		}
	})

	t.Run("create with a price id", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		out, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection:     stripeMockConn(t, rec, testSecretKey),
			Action:         ActionCreatePaymentLink,
			IdempotencyKey: "k-price-id",
			Params:         json.RawMessage(`{"price_id": "price_1PfXwJLkdIwHu7ixT2b3c4d5"}`),
		})
		if err != nil {
			t.Fatalf("create_payment_link: %v", err)
		}
		var link PaymentLink
		if err := json.Unmarshal(out, &link); err != nil {
			t.Fatal(err)
		}
		if link.PriceID != "price_1PfXwJLkdIwHu7ixT2b3c4d5" {
			t.Errorf("price_id = %q", link.PriceID)
		}
		want := []recordedRequest{{
			Method: "POST", Path: "/v1/payment_links", IdempotencyKey: "k-price-id", Authorization: "Bearer " + testSecretKey,
			Form: url.Values{"line_items[0][price]": {"price_1PfXwJLkdIwHu7ixT2b3c4d5"}, "line_items[0][quantity]": {"1"}},
		}}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("requests to Stripe (-want +got):\n%s", diff)
		}
	})

	t.Run("get", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		out, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection: stripeMockConn(t, rec, testSecretKey),
			Action:     ActionGetPaymentLink,
			Params:     json.RawMessage(`{"id": "plink_1PfXwJLkdIwHu7ixr3GdS7Hk"}`),
		})
		if err != nil {
			t.Fatalf("get_payment_link: %v", err)
		}
		var link PaymentLink
		if err := json.Unmarshal(out, &link); err != nil {
			t.Fatal(err)
		}
		if link.ID == "" || link.URL == "" {
			t.Errorf("result = %+v", link)
		}
		got := rec.take()
		if len(got) != 1 || got[0].Method != "GET" || got[0].Path != "/v1/payment_links/plink_1PfXwJLkdIwHu7ixr3GdS7Hk" ||
			got[0].IdempotencyKey != "" {
			t.Errorf("requests to Stripe = %+v, want one GET of the link without an idempotency key", got)
		}
	})

	t.Run("deactivate", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		out, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection:     stripeMockConn(t, rec, testSecretKey),
			Action:         ActionDeactivatePaymentLink,
			IdempotencyKey: "paymentlink/pl_1/deactivate",
			Params:         json.RawMessage(`{"id": "plink_1PfXwJLkdIwHu7ixr3GdS7Hk"}`),
		})
		if err != nil {
			t.Fatalf("deactivate_payment_link: %v", err)
		}
		var link PaymentLink
		if err := json.Unmarshal(out, &link); err != nil {
			t.Fatal(err)
		}
		if link.Active {
			t.Errorf("result = %+v, want inactive", link)
		}
		want := []recordedRequest{{
			Method: "POST", Path: "/v1/payment_links/plink_1PfXwJLkdIwHu7ixr3GdS7Hk", IdempotencyKey: "paymentlink/pl_1/deactivate",
			Authorization: "Bearer " + testSecretKey, Form: url.Values{"active": {"false"}},
		}}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("requests to Stripe (-want +got):\n%s", diff)
		}
	})

	t.Run("request Stripe rejects as invalid", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		// stripe-mock checks structure only, and the connector sends none it
		// rejects, so the proxy adds a parameter Stripe does not know.
		rec.injectNext("unknown_parameter=1")
		_, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection:     stripeMockConn(t, rec, testSecretKey),
			Action:         ActionCreatePaymentLink,
			IdempotencyKey: "k-invalid",
			Params:         json.RawMessage(`{"price_id": "price_1"}`),
		})
		e := testkit.RequireKind(t, err, sdk.KindInvalid)
		if !strings.Contains(e.Message, "creating payment link") || !strings.Contains(e.Message, "400") {
			t.Errorf("message %q does not say what failed", e.Message)
		}
		if n := len(rec.take()); n != 1 {
			t.Errorf("%d requests reached Stripe, want 1 (a 400 is not retried)", n)
		}
	})

	t.Run("live key refused", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		// stripe-mock, like Stripe's test environment, refuses live keys with
		// a 401.
		_, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection: stripeMockConn(t, rec, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
			Action:     ActionGetPaymentLink,
			Params:     json.RawMessage(`{"id": "plink_1"}`),
		})
		e := testkit.RequireKind(t, err, sdk.KindAuth)
		if strings.Contains(e.Message, "4eC39HqLyjWDarjtT1zdp7dc") {
			t.Errorf("error message carries the API key: %q", e.Message)
		}
	})

	t.Run("params the host refuses never reach the connector", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, mock)
		_, err := h.Invoke(t.Context(), sdk.ActionCall{
			Connection: stripeMockConn(t, rec, testSecretKey),
			Action:     ActionCreatePaymentLink,
			Params:     json.RawMessage(`{"amount": 100, "currency": "eur"}`),
		})
		testkit.RequireKind(t, err, sdk.KindInvalid)
		if n := len(rec.take()); n != 0 {
			t.Errorf("%d requests reached Stripe, want none", n)
		}
	})
}

// TestIntegrationConcurrentConnections checks that calls for different
// connections at the same time each use their own key and API base.
func TestIntegrationConcurrentConnections(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	mock := testenv.StripeMockURL(t)
	const n = 8
	recs := make([]*recorder, n)
	errs := make(chan error, n)
	for i := range n {
		recs[i] = newRecorder(t, mock)
		go func() {
			key := "sk_test_conn" + string(rune('a'+i))
			_, err := h.Invoke(t.Context(), sdk.ActionCall{
				Connection: stripeMockConn(t, recs[i], key),
				Action:     ActionGetPaymentLink,
				Params:     json.RawMessage(`{"id": "plink_1"}`),
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("get_payment_link: %v", err)
		}
	}
	for i, rec := range recs {
		got := rec.take()
		want := "Bearer sk_test_conn" + string(rune('a'+i))
		if len(got) != 1 || got[0].Authorization != want {
			t.Errorf("connection %d: requests %+v, want one with %q", i, got, want)
		}
	}
}

// TestIntegrationWebhooksThroughPlugin sends signed deliveries through the
// real plugin boundary: events and error kinds must arrive intact.
func TestIntegrationWebhooksThroughPlugin(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := testkit.Connection(t, map[string]string{"secret_key": testSecretKey, "webhook_secret": testWebhookSecret})

	direct := testConnector(t)
	for _, fixture := range []string{
		"checkout_session_completed.json", "checkout_session_expired.json", "payment_intent_succeeded.json",
		"payment_intent_payment_failed.json", "charge_refunded.json", "customer_created.json",
	} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			req := signed(readFixture(t, fixture), testWebhookSecret, time.Now())
			want, err := direct.HandleWebhook(context.Background(), conn, req)
			if err != nil {
				t.Fatalf("direct HandleWebhook: %v", err)
			}
			got, err := h.HandleWebhook(t.Context(), conn, req)
			if err != nil {
				t.Fatalf("HandleWebhook through the plugin: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b json.RawMessage) bool {
				return string(a) == string(b)
			})); diff != "" {
				t.Errorf("result through the plugin differs from the direct one (-direct +plugin):\n%s", diff)
			}
		})
	}

	t.Run("bad signature", func(t *testing.T) {
		t.Parallel()
		_, err := h.HandleWebhook(t.Context(), conn, signed(readFixture(t, "charge_refunded.json"), "whsec_wrong", time.Now()))
		testkit.RequireKind(t, err, sdk.KindAuth)
	})

	t.Run("malformed signed body", func(t *testing.T) {
		t.Parallel()
		_, err := h.HandleWebhook(t.Context(), conn, signed([]byte(`{"id": "evt_1"`), testWebhookSecret, time.Now()))
		testkit.RequireKind(t, err, sdk.KindInvalid)
	})

	// Recorded deliveries: their signatures were made long ago, so a replay
	// must be refused however correct the signature is.
	for _, f := range []string{"stale_signature.json", "unsigned.json"} {
		t.Run("replay "+f, func(t *testing.T) {
			t.Parallel()
			_, _ = h.ReplayWebhook(t, conn, filepath.Join("testdata", "deliveries", f))
		})
	}
}
