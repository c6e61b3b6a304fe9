package fakewoo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type client struct {
	t           testing.TB
	base        string
	key, secret string
}

func (c client) do(method, route string, q url.Values, body any) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := c.base + "/wp-json/wc/v3/" + route
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(method, u, rd)
	if c.key != "" {
		req.SetBasicAuth(c.key, c.secret)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func errCode(b []byte) string {
	var e struct {
		Code string `json:"code"`
		Data struct {
			Status int `json:"status"`
		} `json:"data"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Code + "/" + strconv.Itoa(e.Data.Status)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	ro := New(t, Options{ReadOnly: true})
	tests := map[string]struct {
		c      client
		method string
		want   string
	}{
		"no key":        {client{t: t, base: s.URL()}, http.MethodGet, "woocommerce_rest_cannot_view/401"},
		"no key, write": {client{t: t, base: s.URL()}, http.MethodPost, "woocommerce_rest_cannot_create/401"},
		"wrong key":     {client{t: t, base: s.URL(), key: "ck_x", secret: DefaultConsumerSecret}, http.MethodGet, "woocommerce_rest_authentication_error/401"},
		"wrong secret":  {client{t: t, base: s.URL(), key: DefaultConsumerKey, secret: "cs_x"}, http.MethodGet, "woocommerce_rest_authentication_error/401"},
		"read-only key": {client{t: t, base: ro.URL(), key: DefaultConsumerKey, secret: DefaultConsumerSecret}, http.MethodPost, "woocommerce_rest_cannot_create/401"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			status, _, body := tc.c.do(tc.method, "webhooks", nil, map[string]any{"topic": "order.created", "delivery_url": "https://x.example"})
			if status != 401 || errCode(body) != tc.want {
				t.Errorf("%d %s, want %s", status, body, tc.want)
			}
		})
	}
}

// receiver records deliveries and answers with a settable status.
type receiver struct {
	mu     sync.Mutex
	status int
	got    []*http.Request
	bodies [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	r.bodies = append(r.bodies, b)
	w.WriteHeader(r.status)
}

func (r *receiver) set(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// TestWebhooksAndDeliveries: ping on create, signed deliveries with
// WooCommerce's headers, disabling after more than five failures, no reset
// of the count on re-activation over REST, delete needing force.
func TestWebhooksAndDeliveries(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	c := client{t: t, base: s.URL(), key: DefaultConsumerKey, secret: DefaultConsumerSecret}
	rcv := &receiver{status: 200}
	hs := httptest.NewServer(rcv)
	defer hs.Close()

	status, _, body := c.do(http.MethodPost, "webhooks", nil, map[string]any{"topic": "order.created", "delivery_url": hs.URL, "secret": "s3cret-s3cret"})
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	var hook map[string]any
	_ = json.Unmarshal(body, &hook)
	if _, ok := hook["secret"]; ok || hook["status"] != "active" || hook["resource"] != "order" || hook["event"] != "created" {
		t.Errorf("webhook %s", body)
	}
	id := int64(hook["id"].(float64))
	if len(rcv.got) != 1 || string(rcv.bodies[0]) != "webhook_id="+strconv.FormatInt(id, 10) || rcv.got[0].Header.Get("X-WC-Webhook-Signature") != "" {
		t.Fatalf("ping: %d requests, %q", len(rcv.got), rcv.bodies)
	}

	o := s.PutOrder(Order{Status: "pending", LineItems: []LineItem{{Name: "Mug", Price: 9.5, Quantity: 2}}})
	if o.Total != "19.00" || o.DateModifiedGMT == "" || o.PaymentURL == "" {
		t.Errorf("order %+v", o)
	}
	req, b := rcv.got[1], rcv.bodies[1]
	want := map[string]string{
		"X-Wc-Webhook-Topic": "order.created", "X-Wc-Webhook-Resource": "order", "X-Wc-Webhook-Event": "created",
		"X-Wc-Webhook-Id": strconv.FormatInt(id, 10), "X-Wc-Webhook-Signature": Sign("s3cret-s3cret", b), "X-Wc-Webhook-Source": s.URL() + "/",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if req.Header.Get("X-Wc-Webhook-Delivery-Id") == "" {
		t.Error("no delivery id")
	}

	// Seven failures: counted 1..6, the seventh disables.
	rcv.set(500)
	for i := range 7 {
		if st := s.Webhooks()[0].Status; st != "active" {
			t.Fatalf("disabled after %d failures", i)
		}
		s.PutOrder(Order{Status: "pending"})
	}
	w := s.Webhooks()[0]
	if w.Status != "disabled" || w.FailureCount != 6 {
		t.Fatalf("after 7 failures: %s, count %d", w.Status, w.FailureCount)
	}
	before := len(s.Deliveries())
	s.PutOrder(Order{Status: "pending"})
	if len(s.Deliveries()) != before {
		t.Error("a disabled webhook delivered")
	}
	// Re-activated over REST: the count stays, so one more failure disables
	// it again; a success resets it.
	if st, _, b := c.do(http.MethodPut, "webhooks/"+strconv.FormatInt(id, 10), nil, map[string]any{"status": "active"}); st != 200 {
		t.Fatalf("put: %d %s", st, b)
	}
	s.PutOrder(Order{Status: "pending"})
	if w := s.Webhooks()[0]; w.Status != "disabled" {
		t.Errorf("after re-activation and one failure: %s", w.Status)
	}
	_ = s.SetWebhookStatus(id, "active")
	rcv.set(200)
	s.PutOrder(Order{Status: "pending"})
	if w := s.Webhooks()[0]; w.Status != "active" || w.FailureCount != 0 {
		t.Errorf("after a success: %s %d", w.Status, w.FailureCount)
	}
	// A dropped delivery never reaches the receiver and counts as failed.
	n := len(rcv.got)
	s.DropDeliveries(1)
	s.PutOrder(Order{Status: "pending"})
	if len(rcv.got) != n || s.Webhooks()[0].FailureCount != 1 {
		t.Errorf("dropped delivery: %d new requests, count %d", len(rcv.got)-n, s.Webhooks()[0].FailureCount)
	}

	if st, _, b := c.do(http.MethodDelete, "webhooks/"+strconv.FormatInt(id, 10), nil, nil); st != 501 || errCode(b) != "woocommerce_rest_trash_not_supported/501" {
		t.Errorf("delete without force: %d %s", st, b)
	}
	if st, _, _ := c.do(http.MethodDelete, "webhooks/"+strconv.FormatInt(id, 10), url.Values{"force": {"true"}}, nil); st != 200 {
		t.Errorf("delete: %d", st)
	}
	if st, _, b := c.do(http.MethodDelete, "webhooks/"+strconv.FormatInt(id, 10), url.Values{"force": {"true"}}, nil); st != 404 || errCode(b) != "woocommerce_rest_webhook_invalid_id/404" {
		t.Errorf("delete again: %d %s", st, b)
	}
}

// TestOrderList: modified_after is exclusive, paging headers, trash hidden.
func TestOrderList(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := New(t, Options{Now: clock})
	c := client{t: t, base: s.URL(), key: DefaultConsumerKey, secret: DefaultConsumerSecret}
	var ids []int64
	for i := range 5 {
		mu.Lock()
		now = now.Add(time.Second)
		mu.Unlock()
		ids = append(ids, s.PutOrder(Order{Status: "pending", Number: "A" + strconv.Itoa(i)}).ID)
	}
	if err := s.DeleteOrder(ids[4]); err != nil {
		t.Fatal(err)
	}
	list := func(q url.Values) ([]int64, http.Header) {
		st, h, b := c.do(http.MethodGet, "orders", q, nil)
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		var os []Order
		_ = json.Unmarshal(b, &os)
		var out []int64
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out, h
	}
	got, h := list(url.Values{"modified_after": {"2026-11-20T10:00:02"}, "dates_are_gmt": {"true"}, "orderby": {"modified"}, "order": {"asc"}, "per_page": {"2"}})
	if diff := cmp.Diff(ids[2:4], got); diff != "" {
		t.Errorf("page 1 (-want +got):\n%s", diff)
	}
	if h.Get("X-WP-Total") != "2" || h.Get("X-WP-TotalPages") != "1" {
		t.Errorf("headers %v", h)
	}
	got, h = list(url.Values{"per_page": {"3"}, "page": {"2"}})
	if diff := cmp.Diff(ids[:1], got); diff != "" { // default: newest first
		t.Errorf("page 2 (-want +got):\n%s", diff)
	}
	if h.Get("X-WP-Total") != "4" || h.Get("X-WP-TotalPages") != "2" {
		t.Errorf("headers %v", h)
	}
	if st, _, b := c.do(http.MethodGet, "orders", url.Values{"per_page": {"101"}}, nil); st != 400 || errCode(b) != "rest_invalid_param/400" {
		t.Errorf("per_page 101: %d %s", st, b)
	}
	if st, _, b := c.do(http.MethodGet, "orders/424242", nil, nil); st != 404 || errCode(b) != "woocommerce_rest_shop_order_invalid_id/404" {
		t.Errorf("missing order: %d %s", st, b)
	}
}

func TestCoupons(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	c := client{t: t, base: s.URL(), key: DefaultConsumerKey, secret: DefaultConsumerSecret}
	st, _, b := c.do(http.MethodPost, "coupons", nil, map[string]any{"code": "SAVE-10", "discount_type": "percent", "amount": "10"})
	if st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	st, _, b = c.do(http.MethodPost, "coupons", nil, map[string]any{"code": "save-10", "discount_type": "percent", "amount": "10"})
	if st != 400 || errCode(b) != "woocommerce_rest_coupon_code_already_exists/400" {
		t.Errorf("duplicate: %d %s", st, b)
	}
	st, _, b = c.do(http.MethodGet, "coupons", url.Values{"code": {"SAVE-10"}}, nil)
	var list []Coupon
	_ = json.Unmarshal(b, &list)
	if st != 200 || len(list) != 1 || list[0].Code != "save-10" {
		t.Errorf("by code: %d %s", st, b)
	}
	for name, body := range map[string]map[string]any{
		"no code":   {"amount": "10"},
		"bad type":  {"code": "x1", "discount_type": "bogus"},
		"bad email": {"code": "x2", "email_restrictions": []string{"nope"}},
	} {
		if st, _, b := c.do(http.MethodPost, "coupons", nil, body); st != 400 {
			t.Errorf("%s: %d %s", name, st, b)
		}
	}
}
