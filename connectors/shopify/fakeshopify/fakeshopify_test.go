package fakeshopify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// post sends one GraphQL operation and returns the status and decoded body.
func post(t *testing.T, s *Shop, token, version, query string, vars map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/admin/api/"+version+"/graphql.json", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Access-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return resp.StatusCode, out
}

func errorCode(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

const createSub = `mutation C($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) { webhookSubscription { id } userErrors { field message } } }`

func TestAuthAndVersion(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	status, out := post(t, s, "shpat_wrong", "2025-07", `query { shop { name } }`, nil)
	if status != 401 || out["errors"] != "[API] Invalid API key or access token (unrecognized login or wrong password)" {
		t.Errorf("bad token: %d %v", status, out)
	}
	status, out = post(t, s, s.AccessToken, "2019-04", `query { shop { name } }`, nil)
	if status != 404 || out["errors"] != "Not Found" {
		t.Errorf("old version: %d %v", status, out)
	}
	status, out = post(t, s, s.AccessToken, "2025-07", `query { shop { name } }`, nil)
	if status != 200 || out["data"].(map[string]any)["shop"].(map[string]any)["name"] != "Ponte Test Shop" {
		t.Errorf("shop: %d %v", status, out)
	}
	status, out = post(t, s, s.AccessToken, "2025-07", `query { products(first: 1) { nodes { id } } }`, nil)
	if status != 200 || errorCode(out) != "undefinedField" {
		t.Errorf("unknown field: %d %v", status, out)
	}
}

func TestSubscriptionValidation(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	userErr := func(out map[string]any) string {
		d := out["data"].(map[string]any)["webhookSubscriptionCreate"].(map[string]any)
		ue, _ := d["userErrors"].([]any)
		if len(ue) == 0 {
			return ""
		}
		return ue[0].(map[string]any)["message"].(string)
	}
	tests := []struct {
		name     string
		vars     map[string]any
		code     string
		userErr  string
		wantSubs int
	}{
		{"bad topic", map[string]any{"topic": "ORDERS_EXPLODED", "webhookSubscription": map[string]any{"callbackUrl": "https://x.example/h"}}, "INVALID_VARIABLE", "", 0},
		{"http to the internet", map[string]any{"topic": "ORDERS_CREATE", "webhookSubscription": map[string]any{"callbackUrl": "http://x.example/h"}}, "", "Address protocol http:// is not supported", 0},
		{"created", map[string]any{"topic": "ORDERS_CREATE", "webhookSubscription": map[string]any{"callbackUrl": "https://x.example/h", "format": "JSON"}}, "", "", 1},
		{"taken", map[string]any{"topic": "ORDERS_CREATE", "webhookSubscription": map[string]any{"callbackUrl": "https://x.example/h"}}, "", "Address for this topic has already been taken", 1},
		{"same address other topic", map[string]any{"topic": "ORDERS_PAID", "webhookSubscription": map[string]any{"callbackUrl": "https://x.example/h"}}, "", "", 2},
		{"loopback http for tests", map[string]any{"topic": "ORDERS_PAID", "webhookSubscription": map[string]any{"callbackUrl": "http://127.0.0.1:9/h"}}, "", "", 3},
	}
	for _, tc := range tests { // in order: each builds on the last
		_, out := post(t, s, s.AccessToken, "2025-07", createSub, tc.vars)
		if got := errorCode(out); got != tc.code {
			t.Errorf("%s: error code %q, want %q (%v)", tc.name, got, tc.code, out)
			continue
		}
		if tc.code == "" {
			if got := userErr(out); got != tc.userErr {
				t.Errorf("%s: user error %q, want %q", tc.name, got, tc.userErr)
			}
		}
		if n := len(s.Subscriptions()); n != tc.wantSubs {
			t.Errorf("%s: %d subscriptions, want %d", tc.name, n, tc.wantSubs)
		}
	}
	_, out := post(t, s, s.AccessToken, "2025-07", `mutation D($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } } }`,
		map[string]any{"id": "gid://shopify/WebhookSubscription/1"})
	d := out["data"].(map[string]any)["webhookSubscriptionDelete"].(map[string]any)
	if d["deletedWebhookSubscriptionId"] != nil || !strings.Contains(d["userErrors"].([]any)[0].(map[string]any)["message"].(string), "does not exist") {
		t.Errorf("delete of an unknown id: %v", d)
	}
}

// TestBucket: the leaky bucket throttles at its size, restores at its
// rate, refuses queries over its size, and reports itself in every answer.
func TestBucket(t *testing.T) {
	t.Parallel()
	s := New(t, Options{BucketSize: 100, RestoreRate: 10})
	q := `query Q($first: Int!) { customers(first: $first) { nodes { id } pageInfo { hasNextPage endCursor } } }`
	// first: 30 asks 2 + 30*3 = 92 points, but with no customers costs 2.
	for range 3 {
		if _, out := post(t, s, s.AccessToken, "2025-07", q, map[string]any{"first": 30}); errorCode(out) != "" {
			t.Fatalf("cheap query throttled: %v", out)
		}
	}
	s.SetAvailable(50)
	_, out := post(t, s, s.AccessToken, "2025-07", q, map[string]any{"first": 30})
	if errorCode(out) != "THROTTLED" {
		t.Fatalf("want THROTTLED, got %v", out)
	}
	cost := out["extensions"].(map[string]any)["cost"].(map[string]any)
	ts := cost["throttleStatus"].(map[string]any)
	if cost["requestedQueryCost"].(float64) != 92 || ts["maximumAvailable"].(float64) != 100 || ts["restoreRate"].(float64) != 10 ||
		ts["currentlyAvailable"].(float64) < 50 || ts["currentlyAvailable"].(float64) > 52 || cost["actualQueryCost"] != nil {
		t.Errorf("cost extension %v", cost)
	}
	_, out = post(t, s, s.AccessToken, "2025-07", q, map[string]any{"first": 40})
	if errorCode(out) != "MAX_COST_EXCEEDED" {
		t.Errorf("want MAX_COST_EXCEEDED for 122 points, got %v", out)
	}
	s.SetAvailable(91)
	time.Sleep(200 * time.Millisecond) // restores 2 points
	if _, out := post(t, s, s.AccessToken, "2025-07", q, map[string]any{"first": 30}); errorCode(out) != "" {
		t.Errorf("after restoring: %v", out)
	}
}

func TestDiscountCreate(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	cu := s.PutCustomer(Customer{Email: "a@example.com"})
	m := `mutation M($basicCodeDiscount: DiscountCodeBasicInput!) { discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) { codeDiscountNode { id } userErrors { field code message } } }`
	input := func(code string, pct float64, ctx any) map[string]any {
		return map[string]any{"basicCodeDiscount": map[string]any{"title": "t", "code": code, "startsAt": "2025-06-16T10:00:00Z",
			"usageLimit": 1, "customerGets": map[string]any{"value": map[string]any{"percentage": pct}, "items": map[string]any{"all": true}}, "context": ctx}}
	}
	mine := map[string]any{"customers": map[string]any{"add": []string{"gid://shopify/Customer/" + itoaT(cu.ID)}}}
	tests := []struct {
		name, code string
		vars       map[string]any
	}{
		{"created", "", input("SAVE10", 0.1, mine)},
		{"taken, any case", "TAKEN", input("save10", 0.1, mine)},
		{"percentage as a whole number", "VALUE_OUTSIDE_RANGE", input("X1", 10, mine)},
		{"no context", "BLANK", input("X2", 0.1, nil)},
		{"unknown customer", "INVALID", input("X3", 0.1, map[string]any{"customers": map[string]any{"add": []string{"gid://shopify/Customer/1"}}})},
	}
	for _, tc := range tests {
		_, out := post(t, s, s.AccessToken, "2025-07", m, tc.vars)
		d := out["data"].(map[string]any)["discountCodeBasicCreate"].(map[string]any)
		ue, _ := d["userErrors"].([]any)
		got := ""
		if len(ue) > 0 {
			got = ue[0].(map[string]any)["code"].(string)
		}
		if got != tc.code {
			t.Errorf("%s: user error %q, want %q (%v)", tc.name, got, tc.code, d)
		}
	}
	if n := len(s.DiscountCodes()); n != 1 {
		t.Errorf("%d discounts, want 1", n)
	}
}

func itoaT(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestDeliver: a webhook is signed as Shopify signs it, carries Shopify's
// headers, and a redelivery keeps the webhook id.
func TestDeliver(t *testing.T) {
	t.Parallel()
	s := New(t, Options{ClientSecret: "s3cret"})
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	if _, err := s.Deliver(t.Context(), "orders/create", []byte(`{}`)); err == nil {
		t.Error("delivery without a subscription succeeded")
	}
	s.AddSubscription("CHECKOUTS_CREATE", recv.URL)
	co := s.PutCheckout(Checkout{Email: "a@example.com", LineItems: []LineItem{{Title: "x", Quantity: 3, Price: "1.10"}}})
	status, err := s.Deliver(t.Context(), "checkouts/create", s.CheckoutPayload(co))
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("deliver: %d %v", status, err)
	}
	r, body := got[0], bodies[0]
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); r.Header.Get("X-Shopify-Hmac-Sha256") != want {
		t.Errorf("signature %q, want %q", r.Header.Get("X-Shopify-Hmac-Sha256"), want)
	}
	for _, h := range []string{"X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Api-Version", "X-Shopify-Webhook-Id", "X-Shopify-Triggered-At", "X-Shopify-Event-Id"} {
		if r.Header.Get(h) == "" {
			t.Errorf("no %s", h)
		}
	}
	if r.Header.Get("X-Shopify-Topic") != "checkouts/create" {
		t.Errorf("topic %q", r.Header.Get("X-Shopify-Topic"))
	}
	var p map[string]any
	_ = json.Unmarshal(body, &p)
	if p["token"] != co.Token || p["total_price"] != "3.30" || p["abandoned_checkout_url"] != s.RecoveryURL(co) {
		t.Errorf("payload %v", p)
	}
	if _, err := s.Redeliver(t.Context(), r.Header.Get("X-Shopify-Webhook-Id")); err != nil {
		t.Fatal(err)
	}
	ds := s.Deliveries()
	if len(ds) != 2 || ds[1].WebhookID != ds[0].WebhookID || ds[1].Status != http.StatusAccepted || !bytes.Equal(ds[1].Body, ds[0].Body) {
		t.Errorf("deliveries %+v", ds)
	}
	if diff := cmp.Diff(got[0].Header.Get("X-Shopify-Triggered-At"), got[1].Header.Get("X-Shopify-Triggered-At")); diff != "" {
		t.Errorf("redelivery changed triggered-at: %s", diff)
	}
}
