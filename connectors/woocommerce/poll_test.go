package woocommerce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// clock is a settable clock shared by the fake store and the connector.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func orderRequests(fake *fakewoo.Server) []fakewoo.Request {
	var out []fakewoo.Request
	for _, r := range fake.Requests() {
		if r.Route == "orders" {
			out = append(out, r)
		}
	}
	return out
}

func keySet(events []sdk.Event) map[string]bool {
	m := map[string]bool{}
	for _, e := range events {
		m[e.DedupeKey] = true
	}
	return m
}

// TestReconcileCatchesDroppedDelivery loses one webhook delivery on the way
// and shows the reconciliation poll bringing its events in, while the
// events of the orders whose webhooks arrived come back with the same
// dedupe keys (so the host stores nothing twice). A second poll within
// reconcile_minutes asks the store nothing.
func TestReconcileCatchesDroppedDelivery(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now().UTC()}
	h := startHarness(t, clk.now)
	fake := fakewoo.New(t, fakewoo.Options{Now: clk.now})
	in := startIngress(t, h)
	conn := connWith(t, testConfig(fake.URL()), in.url)
	in.setConn(conn)
	ctx := t.Context()
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatal(err)
	}

	cart := fake.PutOrder(fakewoo.Order{Status: "pending", PaymentMethod: "stripe", CustomerID: 7,
		Billing:   fakewoo.Address{FirstName: "Anna", Email: "anna@example.it", Phone: "3331234567", Country: "IT"},
		LineItems: []fakewoo.LineItem{{Name: "Tazza", ProductID: 12, Price: 12.5, Quantity: 2}}})
	clk.advance(time.Second)
	fake.DropDeliveries(1)
	missed := fake.PutOrder(fakewoo.Order{Status: "processing", PaymentMethod: "stripe",
		Billing:   fakewoo.Address{FirstName: "Bruno", Email: "bruno@example.it", Phone: "+39 347 765 4321", Country: "IT"},
		LineItems: []fakewoo.LineItem{{Name: "Piatto", ProductID: 13, Price: 30, Quantity: 1}}})
	clk.advance(time.Second)
	if _, err := fake.UpdateOrder(cart.ID, func(o *fakewoo.Order) { o.Status = "processing" }); err != nil {
		t.Fatal(err)
	}
	delivered := h.Host.Events(testConnID)
	before := keySet(delivered)
	for k := range before {
		if strings.Contains(k, fmt.Sprint(missed.ID)) {
			t.Fatalf("the dropped delivery arrived: %s", k)
		}
	}
	if len(before) == 0 {
		t.Fatal("no webhook arrived")
	}

	clk.advance(30 * time.Second)
	res, err := h.Poll(ctx, conn, "")
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if res.More {
		t.Errorf("more after %d orders", 2)
	}
	var again, fresh []string
	for _, e := range res.Events {
		if before[e.DedupeKey] {
			again = append(again, e.Type+" "+e.DedupeKey)
		} else {
			fresh = append(fresh, e.Type+" "+e.DedupeKey)
		}
	}
	cartID, missedID := fmt.Sprint(cart.ID), fmt.Sprint(missed.ID)
	wantFresh := []string{"order.created order:" + missedID + ":created", "order.paid order:" + missedID + ":paid"}
	if diff := cmp.Diff(wantFresh, fresh); diff != "" {
		t.Errorf("events the poll found that no webhook brought (-want +got):\n%s", diff)
	}
	// The cart's order state as the poll sees it: every event is one the
	// webhooks already stored.
	for _, e := range res.Events {
		if e.Correlation["order"] == cartID && !before[e.DedupeKey] {
			t.Errorf("poll event %s of a delivered order has a key no webhook produced", e.DedupeKey)
		}
	}
	if len(again) == 0 {
		t.Error("the poll did not list the delivered order")
	}
	if err := h.Host.Emit(ctx, testConnID, res.Events...); err != nil {
		t.Fatal(err)
	}
	if got, want := len(h.Host.Events(testConnID)), len(delivered)+len(wantFresh); got != want {
		t.Errorf("%d events stored after the poll, want %d", got, want)
	}

	reqs := orderRequests(fake)
	if len(reqs) != 1 {
		t.Fatalf("%d order list requests", len(reqs))
	}
	q := reqs[0].Query
	wantAfter := clk.now().Add(-10*time.Minute - time.Second).Truncate(time.Second).UTC().Format("2006-01-02T15:04:05")
	if diff := cmp.Diff(url.Values{
		"modified_after": {wantAfter}, "dates_are_gmt": {"true"}, "orderby": {"modified"},
		"order": {"asc"}, "per_page": {"100"}, "page": {"1"},
	}, q); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}

	// Within reconcile_minutes: skipped, cursor unchanged.
	clk.advance(5 * time.Minute)
	res2, err := h.Poll(ctx, conn, res.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Cursor != res.Cursor || len(res2.Events) != 0 || len(orderRequests(fake)) != 1 {
		t.Errorf("poll within the period: cursor %q (was %q), %d events, %d requests", res2.Cursor, res.Cursor, len(res2.Events), len(orderRequests(fake)))
	}
	// After it: a pass from the cursor.
	clk.advance(6 * time.Minute)
	if _, err := h.Poll(ctx, conn, res.Cursor); err != nil {
		t.Fatal(err)
	}
	reqs = orderRequests(fake)
	var cur pollCursor
	if err := json.Unmarshal([]byte(res.Cursor), &cur); err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[1].Query.Get("modified_after") != parseCursorTime(cur.After).Add(-time.Second).Format("2006-01-02T15:04:05") {
		t.Errorf("second pass requests %+v, cursor %+v", reqs, cur)
	}
}

// TestReconcileReactivatesDisabledWebhook: Ponte is down, WooCommerce
// fails seven deliveries in a row and disables the webhook (more than 5
// failures counted), as it does; the next reconciliation pass re-activates
// it and brings in the seven orders, and deliveries work again.
func TestReconcileReactivatesDisabledWebhook(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	fake := fakewoo.New(t, fakewoo.Options{})
	in := startIngress(t, h)
	conn := connWith(t, testConfig(fake.URL()), in.url)
	in.setConn(conn)
	ctx := t.Context()
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatal(err)
	}
	ids := stateIDs(t, h)

	in.setDown(true)
	var orders []int64
	for i := range 7 {
		o := fake.PutOrder(fakewoo.Order{Status: "pending", Billing: fakewoo.Address{Phone: fmt.Sprintf("+3933312345%02d", i), Country: "IT"},
			LineItems: []fakewoo.LineItem{{Name: "Tazza", Price: 10}}})
		orders = append(orders, o.ID)
	}
	status := func() string {
		for _, w := range fake.Webhooks() {
			if w.ID == ids["order.created"] {
				return w.Status
			}
		}
		return "missing"
	}
	if s := status(); s != "disabled" {
		t.Fatalf("order.created webhook is %s after 7 failed deliveries, want disabled", s)
	}
	in.setDown(false)

	res, err := h.Poll(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if s := status(); s != "active" {
		t.Errorf("order.created webhook is %s after the poll, want active", s)
	}
	var got []string
	for _, e := range res.Events {
		got = append(got, e.DedupeKey)
	}
	for _, id := range orders {
		if !slices.Contains(got, fmt.Sprintf("checkout:%d:created", id)) {
			t.Errorf("the poll missed order %d: %v", id, got)
		}
	}
	o := fake.PutOrder(fakewoo.Order{Status: "pending", Billing: fakewoo.Address{Phone: "+393330000000", Country: "IT"}})
	d := fake.Deliveries()
	if last := d[len(d)-1]; last.Status != http.StatusOK || !strings.Contains(string(last.Body), fmt.Sprintf(`"id":%d`, o.ID)) {
		t.Errorf("delivery after re-activation: %+v", last)
	}
}

// TestReconcilePaging: more orders changed within one second than fit a
// page. The cursor pages through that second instead of spinning on it,
// then moves on; a page whose orders span seconds moves the cursor to the
// latest of them.
func TestReconcilePaging(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	h := startHarness(t, clk.now)
	fake := fakewoo.New(t, fakewoo.Options{Now: clk.now})
	conn := connWith(t, testConfig(fake.URL()), "")
	for range 150 {
		fake.PutOrder(fakewoo.Order{Status: "pending", LineItems: []fakewoo.LineItem{{Name: "x", Price: 1}}})
	}
	clk.advance(time.Second)
	for range 60 {
		fake.PutOrder(fakewoo.Order{Status: "on-hold", PaymentMethod: "bacs", LineItems: []fakewoo.LineItem{{Name: "y", Price: 2}}})
	}
	clk.advance(time.Minute)

	seen := map[string]bool{}
	var cursors []pollCursor
	cursor := ""
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatalf("still more after %d polls: %+v", i, cursors)
		}
		res, err := h.Poll(t.Context(), conn, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Events {
			seen[e.DedupeKey] = true
		}
		var c pollCursor
		if err := json.Unmarshal([]byte(res.Cursor), &c); err != nil {
			t.Fatal(err)
		}
		cursors = append(cursors, c)
		cursor = res.Cursor
		if !res.More {
			break
		}
	}
	created := 0
	for k := range seen {
		if strings.HasSuffix(k, ":created") {
			created++
		}
	}
	if created != 210 {
		t.Errorf("%d orders seen, want 210", created)
	}
	want := []pollCursor{
		{After: "2026-11-20T10:00:00", Page: 1, More: true}, // a full page: on from its latest second
		{After: "2026-11-20T10:00:00", Page: 2, More: true}, // 100 orders of that one second: its next page
		{After: "2026-11-20T10:00:01", Page: 1, More: true}, // 50 of it and 50 of the next second
		{After: "2026-11-20T10:00:01", Page: 1},             // the 60 of that second: done
	}
	if diff := cmp.Diff(want, cursors); diff != "" {
		t.Errorf("cursors (-want +got):\n%s", diff)
	}
}

// TestReconcileRefusesStoreIgnoringModifiedAfter: a store older than
// WooCommerce 5.8 ignores modified_after and answers old orders; the poll
// stops with a Permanent error instead of replaying the store's history.
func TestReconcileRefusesStoreIgnoringModifiedAfter(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	old := readFixture(t, "order_727_processing.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/wp-json/wc/v3/orders":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(append(append([]byte("["), old...), ']'))
		case "/wp-json/wc/v3/webhooks":
			_, _ = w.Write([]byte("[]"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, err := h.Poll(t.Context(), connWith(t, testConfig(srv.URL), ""), "")
	if e := testkit.RequireKind(t, err, sdk.KindPermanent); !strings.Contains(e.Message, "5.8") {
		t.Errorf("message %q", e.Message)
	}
}
