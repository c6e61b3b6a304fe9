package woocommerce

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// TestWebhookSignature covers the ways a delivery fails verification; each
// is an Auth error (the host answers 401 and says nothing of why).
func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)
	body := readFixture(t, "order_pending_it.json")

	tests := map[string]func(r *sdk.WebhookRequest){
		"missing signature": func(r *sdk.WebhookRequest) { delete(r.Headers, "X-Wc-Webhook-Signature") },
		"empty signature":   func(r *sdk.WebhookRequest) { r.Headers["X-Wc-Webhook-Signature"] = []string{""} },
		"not base64":        func(r *sdk.WebhookRequest) { r.Headers["X-Wc-Webhook-Signature"] = []string{"%%%not-base64%%%"} },
		"hex instead of base64": func(r *sdk.WebhookRequest) {
			r.Headers["X-Wc-Webhook-Signature"] = []string{"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}
		},
		"signed with another key": func(r *sdk.WebhookRequest) {
			r.Headers["X-Wc-Webhook-Signature"] = []string{Sign([]byte("someone-elses-secret-123"), r.Body)}
		},
		"body changed after": func(r *sdk.WebhookRequest) { r.Body = append([]byte(nil), r.Body...); r.Body[len(r.Body)-2] = ' ' },
		"signature of a prefix": func(r *sdk.WebhookRequest) {
			r.Headers["X-Wc-Webhook-Signature"] = []string{Sign([]byte(testWebhookSecret), r.Body[:10])}
		},
		"ping body with signature": func(r *sdk.WebhookRequest) { r.Body = []byte("webhook_id=41") },
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := signed("order.updated", body, testWebhookSecret)
			mut(&req)
			_, err := h.HandleWebhook(t.Context(), conn, req)
			testkit.RequireKind(t, err, sdk.KindAuth)
		})
	}

	t.Run("connection without a webhook secret", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig("https://shop.example")
		delete(cfg, "webhook_secret")
		_, err := h.HandleWebhook(t.Context(), connWith(t, cfg, testWebhookURL), signed("order.updated", body, ""))
		testkit.RequireKind(t, err, sdk.KindAuth)
	})
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		res, err := h.HandleWebhook(t.Context(), conn, signed("order.updated", body, testWebhookSecret))
		if err != nil || len(res.Events) == 0 {
			t.Fatalf("a valid delivery: %d events, %v", len(res.Events), err)
		}
	})
}

// TestWebhookPingAndTopics: WooCommerce's unsigned ping answers 200 with no
// events; a topic Ponte did not subscribe to likewise; the topic may come
// as Resource and Event headers only; order.deleted carries only the id.
func TestWebhookPingAndTopics(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	conn := connWith(t, testConfig("https://shop.example"), testWebhookURL)

	ping := sdk.WebhookRequest{Method: http.MethodPost, Body: []byte("webhook_id=41"),
		Headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}, "User-Agent": {"WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"}}}
	res, err := h.HandleWebhook(t.Context(), conn, ping)
	if err != nil || len(res.Events) != 0 || res.Response != nil {
		t.Errorf("ping: %+v, %v; want an empty 200", res, err)
	}
	// Only the exact ping form is let through unsigned.
	for _, body := range []string{"webhook_id=41&x=1", "webhook_id=", `{"webhook_id":41}`, ""} {
		_, err := h.HandleWebhook(t.Context(), conn, sdk.WebhookRequest{Method: http.MethodPost, Body: []byte(body)})
		testkit.RequireKind(t, err, sdk.KindAuth)
	}

	product := []byte(`{"id": 99, "name": "Mug"}`)
	res, err = h.HandleWebhook(t.Context(), conn, signed("product.updated", product, testWebhookSecret))
	if err != nil || len(res.Events) != 0 {
		t.Errorf("product.updated: %+v, %v; want an empty 200", res, err)
	}

	req := signed("customer.updated", readFixture(t, "customer_25.json"), testWebhookSecret)
	delete(req.Headers, "X-Wc-Webhook-Topic")
	res, err = h.HandleWebhook(t.Context(), conn, req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"customer.updated customer:25:updated:2017-03-21T19:09:30"}, eventKeys(res.Events)); diff != "" {
		t.Errorf("topic from resource and event (-want +got):\n%s", diff)
	}

	// A customer without date_modified: the content names the version.
	noDate := mutate(t, readFixture(t, "customer_25.json"), func(m map[string]any) { m["date_modified_gmt"] = nil })
	changed := mutate(t, noDate, func(m map[string]any) { m["first_name"] = "Johnny" })
	var keys []string
	for _, b := range [][]byte{noDate, noDate, changed} {
		res, err := h.HandleWebhook(t.Context(), conn, signed("customer.updated", b, testWebhookSecret))
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("customer without date: %v, %v", res.Events, err)
		}
		keys = append(keys, res.Events[0].DedupeKey)
	}
	if keys[0] != keys[1] || keys[1] == keys[2] || !strings.HasPrefix(keys[0], "customer:25:updated:h") {
		t.Errorf("keys of undated customer versions: %v", keys)
	}

	res, err = h.HandleWebhook(t.Context(), conn, signed("order.deleted", []byte(`{"id":4312}`), testWebhookSecret))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"checkout.deleted checkout:4312:deleted", "order.deleted order:4312:deleted"}, eventKeys(res.Events)); diff != "" {
		t.Errorf("order.deleted (-want +got):\n%s", diff)
	}

	for _, tc := range []struct{ topic, body string }{
		{"order.updated", `<html>not json</html>`},
		{"order.updated", `{"id": "not a number"}`},
		{"order.updated", `{"status": "pending"}`},
		{"order.deleted", `{}`},
		{"customer.created", `[1,2]`},
	} {
		_, err := h.HandleWebhook(t.Context(), conn, signed(tc.topic, []byte(tc.body), testWebhookSecret))
		testkit.RequireKind(t, err, sdk.KindInvalid)
	}
}
