package cartrecovery

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

var update = flag.Bool("update", false, "rewrite testdata/recovered_history.json from a run against the Temporal dev server")

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeMessenger stands in for the messaging core: it records requests and
// answers each with a ledger row, like messaging.Service does for a repeated
// key (the first answer again).
type fakeMessenger struct {
	mu     sync.Mutex
	reqs   []messaging.SendRequest
	byKey  map[string]error
	refuse func(messaging.SendRequest) error
}

func (f *fakeMessenger) Send(_ context.Context, req messaging.SendRequest) (messaging.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := messaging.Message{ID: "msg_" + req.IdempotencyKey, To: req.To}
	if err, ok := f.byKey[req.IdempotencyKey]; ok {
		return msg, err
	}
	f.reqs = append(f.reqs, req)
	var err error
	if f.refuse != nil {
		err = f.refuse(req)
	}
	if f.byKey == nil {
		f.byKey = map[string]error{}
	}
	f.byKey[req.IdempotencyKey] = err
	return msg, err
}

func (f *fakeMessenger) sent() []messaging.SendRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]messaging.SendRequest(nil), f.reqs...)
}

// fakeShop stands in for a shop connector's create_discount.
type fakeShop struct {
	mu    sync.Mutex
	calls []invoke.Call
	fail  error
}

func (f *fakeShop) Invoke(_ context.Context, call invoke.Call) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.fail != nil {
		return nil, f.fail
	}
	if call.Action != commerce.ActionCreateDiscount {
		return nil, sdk.Invalid("no action %s", call.Action)
	}
	var p commerce.DiscountParams
	if err := json.Unmarshal(call.Params, &p); err != nil {
		return nil, sdk.Invalid("bad params: %v", err)
	}
	return json.Marshal(commerce.Discount{Code: p.Prefix + "K" + fmt.Sprint(len(f.calls)), Percent: p.Percent, ID: "d1"})
}

type itEnv struct {
	pool     *pgxpool.Pool
	db       *DB
	settings *automations.Store
	contacts *contacts.Service
	consent  *consent.Service
	msgr     *fakeMessenger
	shop     *fakeShop
	acts     *Activities
}

func newITEnv(t *testing.T) *itEnv {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `
INSERT INTO tenants (id, name) VALUES ('ten_a', 'a'), ('ten_b', 'b');
INSERT INTO connections (id, tenant_id, connector, name) VALUES
  ('con_shop', 'ten_a', 'shopify', 'shop'), ('con_wa', 'ten_a', 'cloudapi', 'wa'),
  ('con_shop_b', 'ten_b', 'shopify', 'shop b'), ('con_wa_b', 'ten_b', 'cloudapi', 'wa b');`); err != nil {
		t.Fatal(err)
	}
	cs, err := contacts.New(contacts.Config{Pool: pool, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e := &itEnv{pool: pool, db: NewDB(pool), settings: automations.NewStore(pool), contacts: cs,
		consent: consent.New(pool, consent.Options{Logger: quiet}), msgr: &fakeMessenger{}, shop: &fakeShop{}}
	e.acts = &Activities{Store: e.db, Settings: e.settings, Invoker: e.shop, Messenger: e.msgr, Consent: e.consent,
		Inbox: e.contacts, Logger: quiet}
	return e
}

func (e *itEnv) putSettings(t *testing.T, tenant, conn string, s Settings) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatalf("test settings invalid: %v", err)
	}
	if err := e.settings.Put(context.Background(), tenant, conn, SettingsKind, s); err != nil {
		t.Fatal(err)
	}
}

func itCheckout(id, phone string, updated time.Time) commerce.Checkout {
	return commerce.Checkout{ID: id, Contact: commerce.Contact{Phone: phone, FirstName: "Anna", LastName: "Rossi",
		Email: "anna@example.com", CustomerID: "cust_1"},
		Currency: "EUR", Total: "49.90", RecoveryURL: "https://shop.example.com/cart/c/" + id + "?key=k1",
		LineItems: []commerce.LineItem{{Title: "Blue mug", Quantity: 2, Price: "20.00"}, {Title: "Tea", Quantity: 1, Price: "9.90"}},
		CreatedAt: updated, UpdatedAt: updated}
}

func TestIntegrationStorage(t *testing.T) {
	t.Parallel()
	e := newITEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ref := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c1"}

	st, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: ref, Checkout: itCheckout("c1", "+393331234567", at), At: at})
	if err != nil || st != (CartState{Status: StatusWaiting}) {
		t.Fatalf("RecordCheckout = %+v, %v", st, err)
	}
	// An update without a phone keeps the one known; the odd total is not
	// stored as money.
	co := itCheckout("c1", "", at.Add(time.Minute))
	co.Total = "forty"
	if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: ref, Checkout: co, At: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	cart, err := e.db.Cart(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if cart.Phone != "+393331234567" || cart.PhoneProblem != "" || cart.Total != "49.90" || cart.Name() != "Anna Rossi" ||
		!cart.LastUpdateAt.Equal(at.Add(time.Minute)) || !cart.FirstSeenAt.Equal(at) || len(cart.Items) != 2 ||
		cart.WorkflowID != WorkflowID("ten_a", "con_shop", "c1") {
		t.Errorf("cart %+v", cart)
	}
	if _, err := e.db.Cart(ctx, CartRef{TenantID: "ten_b", ConnectionID: "con_shop", CheckoutID: "c1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant read the cart: %v", err)
	}

	// Invalid and missing phones are recorded with their reason.
	for id, phone := range map[string]string{"c_bad": "+39123", "c_none": ""} {
		r := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: id}
		if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: r, Checkout: itCheckout(id, phone, at), At: at}); err != nil {
			t.Fatal(err)
		}
		c, _ := e.db.Cart(ctx, r)
		want := map[string]string{"c_bad": commerce.PhoneInvalid, "c_none": commerce.PhoneMissing}[id]
		if c.Phone != "" || c.PhoneProblem != want {
			t.Errorf("%s: phone %q problem %q, want %q", id, c.Phone, c.PhoneProblem, want)
		}
	}

	// A sent step makes the cart contacted, once.
	step := StepRecord{CartRef: ref, Step: 1, Status: StepSent, MessageID: "msg_1", At: at.Add(time.Hour)}
	for range 2 {
		if err := e.db.RecordStep(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	later := step
	later.Status, later.At = StepFailed, at.Add(2*time.Hour)
	if err := e.db.RecordStep(ctx, later); err != nil {
		t.Fatal(err)
	}
	steps, err := e.db.Steps(ctx, ref)
	if err != nil || len(steps) != 1 || steps[0].Status != StepSent || !steps[0].At.Equal(at.Add(time.Hour)) {
		t.Fatalf("steps %+v, %v", steps, err)
	}
	refs, err := e.db.OpenCarts(ctx, "ten_a", "+393331234567")
	if err != nil || len(refs) != 1 || refs[0] != ref {
		t.Errorf("OpenCarts = %v, %v", refs, err)
	}
	if refs, _ := e.db.OpenCarts(ctx, "ten_b", "+393331234567"); len(refs) != 0 {
		t.Errorf("tenant b found tenant a's carts: %v", refs)
	}

	// Ending is final: a second end and a later checkout change nothing.
	if st, err := e.db.End(ctx, EndRecord{CartRef: ref, Status: StatusEnded, Reason: ReasonReplied, At: at.Add(3 * time.Hour)}); err != nil || st != StatusEnded {
		t.Fatalf("End = %s, %v", st, err)
	}
	if st, err := e.db.End(ctx, EndRecord{CartRef: ref, Status: StatusSkipped, Reason: commerce.PhoneMissing, At: at.Add(4 * time.Hour)}); err != nil || st != StatusEnded {
		t.Fatalf("second End = %s, %v", st, err)
	}
	st, err = e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: ref, Checkout: itCheckout("c1", "+393339999999", at.Add(5*time.Hour)), At: at.Add(5 * time.Hour)})
	if err != nil || st != (CartState{Status: StatusEnded, Reason: ReasonReplied, StepsDone: 1}) {
		t.Fatalf("RecordCheckout on an ended cart = %+v, %v", st, err)
	}
	if refs, _ := e.db.OpenCarts(ctx, "ten_a", "+393331234567"); len(refs) != 0 {
		t.Errorf("an ended cart is still open: %v", refs)
	}

	// An order after the end: the cart was contacted before it, so it is
	// recovered with the order's revenue, once.
	order := OrderInfo{OrderID: "o1", Total: "52.40", Currency: "EUR", At: at.Add(6 * time.Hour)}
	if st, ok, err := e.db.ApplyOrder(ctx, ref, order, true); err != nil || !ok || st != StatusRecovered {
		t.Fatalf("ApplyOrder = %s, %v, %v", st, ok, err)
	}
	again := order
	again.Total = "99.00"
	if st, ok, err := e.db.ApplyOrder(ctx, ref, again, true); err != nil || ok || st != StatusRecovered {
		t.Fatalf("repeated ApplyOrder = %s, %v, %v", st, ok, err)
	}
	cart, _ = e.db.Cart(ctx, ref)
	if cart.RecoveredRevenue != "52.40" || cart.RecoveredCurrency != "EUR" || cart.OrderID != "o1" || cart.Reason != ReasonReplied ||
		!cart.RecoveredAt.Equal(order.At) {
		t.Errorf("recovered cart %+v", cart)
	}

	// An order placed before the message went out is not a recovery.
	early := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c_early"}
	if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: early, Checkout: itCheckout("c_early", "+393331234568", at), At: at}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RecordStep(ctx, StepRecord{CartRef: early, Step: 1, Status: StepSent, At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st, _, err := e.db.ApplyOrder(ctx, early, OrderInfo{OrderID: "o2", Total: "10", At: at.Add(30 * time.Minute)}, false); err != nil || st != StatusConverted {
		t.Errorf("order before the message: %s, %v", st, err)
	}

	// An order that overtakes its checkout's events leaves a tombstone, so
	// the checkout arriving afterwards starts nothing.
	ghost := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c_ghost"}
	if st, _, err := e.db.ApplyOrder(ctx, ghost, OrderInfo{OrderID: "o3", Total: "5", At: at}, false); err != nil || st != "" {
		t.Errorf("ApplyOrder without tombstone = %q, %v", st, err)
	}
	if st, ok, err := e.db.ApplyOrder(ctx, ghost, OrderInfo{OrderID: "o3", Total: "5", At: at}, true); err != nil || !ok || st != StatusConverted {
		t.Errorf("ApplyOrder with tombstone = %q, %v, %v", st, ok, err)
	}
	st, err = e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: ghost, Checkout: itCheckout("c_ghost", "+393331234569", at), At: at})
	if err != nil || st.Status != StatusConverted {
		t.Errorf("checkout after its order = %+v, %v", st, err)
	}
}

// TestIntegrationReport builds carts across and around March 2026 and
// checks the report against figures worked out by hand.
func TestIntegrationReport(t *testing.T) {
	t.Parallel()
	e := newITEnv(t)
	ctx := context.Background()
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	day := func(d int, h int) time.Time {
		return march.Add(time.Duration(d-1)*24*time.Hour + time.Duration(h)*time.Hour)
	}
	mk := func(tenant, conn, id string, seen time.Time) CartRef {
		r := CartRef{TenantID: tenant, ConnectionID: conn, CheckoutID: id}
		if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: r, Checkout: itCheckout(id, "+393331230000", seen), At: seen}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sent := func(r CartRef, step int, at time.Time) {
		must(e.db.RecordStep(ctx, StepRecord{CartRef: r, Step: step, Status: StepSent, At: at}))
	}
	order := func(r CartRef, total, cur string, at time.Time) {
		_, _, err := e.db.ApplyOrder(ctx, r, OrderInfo{OrderID: "o_" + r.CheckoutID, Total: total, Currency: cur, At: at}, false)
		must(err)
	}
	end := func(r CartRef, st Status, reason string, opted bool, at time.Time) {
		_, err := e.db.End(ctx, EndRecord{CartRef: r, Status: st, Reason: reason, OptedOut: opted, At: at})
		must(err)
	}

	// 1: seen, 2 messages, recovered 100.50 EUR in March.
	r1 := mk("ten_a", "con_shop", "r1", day(2, 10))
	sent(r1, 1, day(2, 11))
	sent(r1, 2, day(3, 11))
	order(r1, "100.50", "EUR", day(4, 9))
	// 2: seen, 1 message, recovered 20.25 EUR.
	r2 := mk("ten_a", "con_shop", "r2", day(5, 10))
	sent(r2, 1, day(5, 11))
	order(r2, "20.25", "EUR", day(5, 20))
	// 3: seen, 1 message, recovered 30 USD.
	r3 := mk("ten_a", "con_shop", "r3", day(6, 10))
	sent(r3, 1, day(6, 11))
	order(r3, "30", "USD", day(7, 8))
	// 4: seen, ordered before any message: converted.
	r4 := mk("ten_a", "con_shop", "r4", day(8, 10))
	order(r4, "55.00", "EUR", day(8, 10))
	// 5: seen, 1 message, opted out at step 2 (skipped step).
	r5 := mk("ten_a", "con_shop", "r5", day(9, 10))
	sent(r5, 1, day(9, 11))
	must(e.db.RecordStep(ctx, StepRecord{CartRef: r5, Step: 2, Status: StepSkipped, Reason: ReasonOptedOut, At: day(10, 11)}))
	end(r5, StatusEnded, ReasonOptedOut, true, day(10, 11))
	// 6 and 7: seen, skipped for the phone.
	r6 := mk("ten_a", "con_shop", "r6", day(11, 10))
	end(r6, StatusSkipped, commerce.PhoneMissing, false, day(11, 11))
	r7 := mk("ten_a", "con_shop", "r7", day(12, 10))
	end(r7, StatusSkipped, commerce.PhoneMissing, false, day(12, 11))
	// 8: seen, step 1 skipped for consent, step 2 sent, replied.
	r8 := mk("ten_a", "con_shop", "r8", day(13, 10))
	must(e.db.RecordStep(ctx, StepRecord{CartRef: r8, Step: 1, Status: StepSkipped, Reason: "no_marketing_consent", At: day(13, 11)}))
	sent(r8, 2, day(14, 11))
	end(r8, StatusEnded, ReasonReplied, false, day(14, 15))
	// 9: seen in February, message in February, recovered in March: counts
	// only as recovered (10 EUR).
	r9 := mk("ten_a", "con_shop", "r9", march.Add(-48*time.Hour))
	sent(r9, 1, march.Add(-47*time.Hour))
	order(r9, "10", "EUR", day(1, 5))
	// 10: seen in March, message on 31 March, recovered in April: seen,
	// contacted and one step 1 message in March, not recovered.
	r10 := mk("ten_a", "con_shop", "r10", day(31, 10))
	sent(r10, 1, day(31, 11))
	order(r10, "999", "EUR", march.AddDate(0, 1, 1))
	// 11: another tenant, in March: invisible.
	r11 := mk("ten_b", "con_shop_b", "r11", day(2, 10))
	sent(r11, 1, day(2, 11))
	order(r11, "500", "EUR", day(3, 10))

	// 12: an order whose checkout was never seen: not a cart of the report.
	if _, _, err := e.db.ApplyOrder(ctx, CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "r12"},
		OrderInfo{OrderID: "o12", Total: "70", Currency: "EUR", At: day(15, 10)}, true); err != nil {
		t.Fatal(err)
	}

	rep, err := e.db.Report(ctx, "ten_a", march, march.AddDate(0, 1, 0))
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	want := Report{
		From: march, To: march.AddDate(0, 1, 0),
		CartsSeen: 9, // r1-r8, r10
		Contacted: 6, // r1, r2, r3, r5, r8, r10
		MessagesSent: []StepCount{
			{Step: 1, Count: 5}, // r1, r2, r3, r5, r10
			{Step: 2, Count: 2}, // r1, r8
		},
		Recovered:        4, // r1, r2, r3, r9
		RecoveredRevenue: []Money{{Currency: "EUR", Amount: "130.75"}, {Currency: "USD", Amount: "30"}},
		Converted:        1, // r4
		OptOuts:          1, // r5
		Replied:          1, // r8
		Skipped:          []ReasonCount{{Reason: commerce.PhoneMissing, Count: 2}},
		StepsSkipped:     []ReasonCount{{Reason: "no_marketing_consent", Count: 1}, {Reason: ReasonOptedOut, Count: 1}},
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	empty, err := e.db.Report(ctx, "ten_a", march.AddDate(-1, 0, 0), march.AddDate(-1, 0, 1))
	if err != nil || empty.CartsSeen != 0 || len(empty.MessagesSent) != 0 || empty.RecoveredRevenue == nil {
		t.Errorf("empty period: %+v, %v", empty, err)
	}
}

func insertEvent(t *testing.T, pool *pgxpool.Pool, tenant, conn, typ string, corr map[string]string, payload any) {
	t.Helper()
	c, _ := json.Marshal(corr)
	p, _ := json.Marshal(payload)
	_, err := pool.Exec(context.Background(), `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
VALUES ($1, $2, $3, $4, now(), $5, $6)`, tenant, conn, fmt.Sprintf("evt_%d", time.Now().UnixNano()), typ, c, p)
	if err != nil {
		t.Fatalf("inserting event: %v", err)
	}
}

func TestIntegrationRoute(t *testing.T) {
	t.Parallel()
	e := newITEnv(t)
	ctx := context.Background()
	router := Route(e.db, e.settings, "q1", quiet)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	co := itCheckout("c1", "+393331234567", at)
	payload, _ := json.Marshal(co)
	ev := dispatch.Event{ID: 7, TenantID: "ten_a", ConnectionID: "con_shop", Connector: "shopify", Type: commerce.EventCheckoutUpdated,
		OccurredAt: at, Correlation: map[string]string{commerce.CorrelationCheckout: "c1"}, Payload: payload}

	if s, stored, err := SettingsFor(ctx, e.settings, "ten_a", "con_shop"); err != nil || stored || !cmp.Equal(s, DefaultSettings()) {
		t.Errorf("SettingsFor without settings = %+v, %v, %v", s, stored, err)
	}
	// Not set up, then disabled: no delivery.
	if ds, err := router.Route(ctx, ev); err != nil || len(ds) != 0 {
		t.Fatalf("without settings: %d deliveries, %v", len(ds), err)
	}
	s := testSettings()
	s.Enabled = false
	e.putSettings(t, "ten_a", "con_shop", s)
	if ds, err := router.Route(ctx, ev); err != nil || len(ds) != 0 {
		t.Fatalf("disabled: %d deliveries, %v", len(ds), err)
	}
	s.Enabled = true
	e.putSettings(t, "ten_a", "con_shop", s)
	if got, stored, err := SettingsFor(ctx, e.settings, "ten_a", "con_shop"); err != nil || !stored || !cmp.Equal(got, s) {
		t.Errorf("SettingsFor = %+v, %v, %v; want what was stored", got, stored, err)
	}
	ds, err := router.Route(ctx, ev)
	if err != nil || len(ds) != 1 {
		t.Fatalf("enabled: %d deliveries, %v", len(ds), err)
	}
	d := ds[0]
	wantArg := CheckoutEvent{EventID: 7, Type: commerce.EventCheckoutUpdated, OccurredAt: at, Checkout: co}
	if d.WorkflowID != "cartrecovery/ten_a/con_shop/c1" || d.SignalOnly || d.WorkflowType != WorkflowName || d.TaskQueue != "q1" ||
		d.SignalName != SignalCheckout || !cmp.Equal(d.SignalArg, wantArg) ||
		!cmp.Equal(d.StartArgs, []any{WorkflowInput{CartRef: CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c1"}}}) {
		t.Errorf("checkout delivery %+v", d)
	}
	// A deleted checkout never starts a workflow.
	del := ev
	del.Type = commerce.EventCheckoutDeleted
	if ds, _ := router.Route(ctx, del); len(ds) != 1 || !ds[0].SignalOnly || ds[0].IfNotRunning == nil {
		t.Errorf("deleted checkout deliveries %+v", ds)
	}
	// Nor does a completed one: when no workflow runs it is attributed, and
	// leaves a closed row behind for the checkout's late events.
	doneAt := at.Add(time.Minute)
	dco := itCheckout("c_done", "+393331234567", doneAt)
	dco.CompletedAt, dco.OrderID = &doneAt, "o_done"
	dp, _ := json.Marshal(dco)
	done := ev
	done.Payload, done.Correlation = dp, map[string]string{commerce.CorrelationCheckout: "c_done"}
	ds, err = router.Route(ctx, done)
	if err != nil || len(ds) != 1 || !ds[0].SignalOnly || ds[0].IfNotRunning == nil {
		t.Fatalf("completed checkout deliveries %+v, %v", ds, err)
	}
	if err := ds[0].IfNotRunning(ctx); err != nil {
		t.Fatal(err)
	}
	doneRef := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c_done"}
	if st, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: doneRef, Checkout: itCheckout("c_done", "+393331234567", at), At: at}); err != nil ||
		st.Status != StatusConverted {
		t.Errorf("a late event of a completed checkout found %+v, %v", st, err)
	}

	// Events of other kinds, or without the checkout key, are not ours.
	other := ev
	other.Correlation = map[string]string{commerce.CorrelationOrder: "o1"}
	if ds, _ := router.Route(ctx, other); len(ds) != 0 {
		t.Errorf("checkout event without a checkout key routed: %+v", ds)
	}

	// A cart that was contacted, whose workflow has completed.
	ref := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: "c1"}
	if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: ref, Checkout: co, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RecordStep(ctx, StepRecord{CartRef: ref, Step: 1, Status: StepSent, At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// A reply from the cart's phone reaches its workflow; a reaction or a
	// stranger's message reaches nothing.
	reply := func(from, typ string) dispatch.Event {
		p, _ := json.Marshal(map[string]any{"from": from, "message_id": "wamid.1", "type": typ, "text": "is it in stock?",
			"timestamp": at.Add(2 * time.Hour)})
		return dispatch.Event{ID: 8, TenantID: "ten_a", ConnectionID: "con_wa", Connector: "cloudapi", Type: EventMessageReceived, Payload: p}
	}
	ds, err = router.Route(ctx, reply("+393331234567", "text"))
	if err != nil || len(ds) != 1 || ds[0].WorkflowID != ref.WorkflowID() || !ds[0].SignalOnly || ds[0].SignalName != SignalReply ||
		!cmp.Equal(ds[0].SignalArg, ReplyEvent{EventID: 8, ConnectionID: "con_wa", From: "+393331234567", MessageID: "wamid.1", At: at.Add(2 * time.Hour)}) {
		t.Errorf("reply deliveries %+v, %v", ds, err)
	}
	for name, ev := range map[string]dispatch.Event{"reaction": reply("+393331234567", "reaction"), "stranger": reply("+393330000000", "text")} {
		if ds, err := router.Route(ctx, ev); err != nil || len(ds) != 0 {
			t.Errorf("%s: %d deliveries, %v", name, len(ds), err)
		}
	}
	ten := reply("+393331234567", "text")
	ten.TenantID = "ten_b"
	if ds, _ := router.Route(ctx, ten); len(ds) != 0 {
		t.Errorf("tenant b's inbound message reached tenant a's cart")
	}

	// An order naming the checkout: signal only, and attribution when no
	// workflow runs, applied once however often it is delivered.
	order := commerce.Order{ID: "o1", CheckoutID: "c1", Currency: "EUR", Total: "49.90", CreatedAt: at.Add(3 * time.Hour)}
	op, _ := json.Marshal(order)
	oev := dispatch.Event{ID: 9, TenantID: "ten_a", ConnectionID: "con_shop", Connector: "shopify", Type: commerce.EventOrderCreated,
		OccurredAt: at.Add(3 * time.Hour), Correlation: map[string]string{commerce.CorrelationCheckout: "c1", commerce.CorrelationOrder: "o1"}, Payload: op}
	ds, err = router.Route(ctx, oev)
	if err != nil || len(ds) != 1 || !ds[0].SignalOnly || ds[0].SignalName != SignalOrder || ds[0].IfNotRunning == nil {
		t.Fatalf("order deliveries %+v, %v", ds, err)
	}
	for range 2 {
		if err := ds[0].IfNotRunning(ctx); err != nil {
			t.Fatalf("attributing after close: %v", err)
		}
	}
	cart, _ := e.db.Cart(ctx, ref)
	if cart.Status != StatusRecovered || cart.RecoveredRevenue != "49.90" || cart.OrderID != "o1" || !cart.RecoveredAt.Equal(order.CreatedAt) {
		t.Errorf("cart after the order %+v", cart)
	}
	// An order for a checkout nobody followed leaves a tombstone where cart
	// recovery is on, and nothing where it is off.
	for _, tc := range []struct {
		tenant, conn string
		want         bool
	}{{"ten_a", "con_shop", true}, {"ten_b", "con_shop_b", false}} {
		o := oev
		o.TenantID, o.ConnectionID, o.Correlation = tc.tenant, tc.conn, map[string]string{commerce.CorrelationCheckout: "c_unseen"}
		ds, _ := router.Route(ctx, o)
		if err := ds[0].IfNotRunning(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := e.db.Cart(ctx, CartRef{TenantID: tc.tenant, ConnectionID: tc.conn, CheckoutID: "c_unseen"})
		if got := err == nil; got != tc.want {
			t.Errorf("%s: tombstone %v, want %v (%v)", tc.tenant, got, tc.want, err)
		}
	}
}

func TestIntegrationActivities(t *testing.T) {
	t.Parallel()
	e := newITEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // 11:00 in Rome
	record := func(id, phone string) CartRef {
		r := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: id}
		if _, err := e.db.RecordCheckout(ctx, CheckoutRecord{CartRef: r, Checkout: itCheckout(id, phone, at), At: at}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	refOK := record("c_ok", "+393331234567")
	refNone := record("c_none", "")
	refBad := record("c_bad", "+3912")

	prep := func(r CartRef, marketing bool, when time.Time) Preparation {
		t.Helper()
		p, err := e.acts.Prepare(ctx, PrepareInput{CartRef: r, Step: 1, RequireMarketingConsent: marketing, At: when})
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		return p
	}
	if p := prep(refNone, false, at); p.Action != ActionSkipCart || p.Reason != commerce.PhoneMissing {
		t.Errorf("no phone: %+v", p)
	}
	if p := prep(refBad, false, at); p.Action != ActionSkipCart || p.Reason != commerce.PhoneInvalid {
		t.Errorf("invalid phone: %+v", p)
	}
	if p := prep(refOK, false, at); p.Action != ActionSend {
		t.Errorf("utility without opt-in: %+v", p)
	}
	cart, _ := e.db.Cart(ctx, refOK)
	if cart.ContactID == "" {
		t.Fatal("the cart's contact was not recorded")
	}
	if p := prep(refOK, true, at); p.Action != ActionSkipStep || p.Reason != consent.ReasonNoMarketingConsent {
		t.Errorf("marketing without opt-in: %+v", p)
	}
	if _, err := e.consent.Record(ctx, "ten_a", consent.NewRecord{ContactID: cart.ContactID, Purposes: []string{consent.PurposeMarketing},
		Action: consent.ActionOptIn, Source: "checkout", OccurredAt: at.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tz, start, stop := "Europe/Rome", "21:00", "08:00"
	if _, err := e.consent.UpdateSettings(ctx, "ten_a", consent.SettingsUpdate{Timezone: &tz, QuietHoursStart: &start, QuietHoursEnd: &stop}); err != nil {
		t.Fatal(err)
	}
	if p := prep(refOK, true, at); p.Action != ActionSend {
		t.Errorf("marketing with opt-in by day: %+v", p)
	}
	night := time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC) // 23:00 in Rome
	if p := prep(refOK, true, night); p.Action != ActionDefer || !p.DeferUntil.Equal(time.Date(2026, 3, 3, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("marketing at night: %+v, want deferred to 08:00 Rome", p)
	}

	// The send: body parameters in order, the recovery path in the button,
	// the key from the workflow id, step and attempt.
	out, err := e.acts.Send(ctx, SendInput{CartRef: refOK, Step: 2, Attempt: 1, ChannelConnectionID: "con_wa", Code: "COMEBACK-1",
		Template: TemplateRef{Template: "cart_discount", Language: "en", Variables: []string{VarName, VarItems, VarTotal, VarCode},
			ButtonURLVariable: VarLinkPath, Text: "Ciao {{name}}: {{items}} ({{total}}), con {{code}}"}})
	if err != nil || !out.Sent {
		t.Fatalf("Send = %+v, %v", out, err)
	}
	if want := "Ciao Anna: Blue mug ×2, Tea (49.90 EUR), con COMEBACK-1"; e.msgr.sent()[0].TextFallback != want {
		t.Errorf("text fallback %q, want %q (what a linked-device number sends instead)", e.msgr.sent()[0].TextFallback, want)
	}
	req := e.msgr.sent()[0]
	if req.To != "+393331234567" || req.ConnectionID != "con_wa" || req.Kind != messaging.KindTemplate ||
		req.IdempotencyKey != "cartrecovery/ten_a/con_shop/c_ok:step2:retry1" || out.MessageID != "msg_"+req.IdempotencyKey {
		t.Errorf("send request %+v", req)
	}
	var comps []any
	_ = json.Unmarshal(req.Template.Components, &comps)
	wantComps := []any{
		map[string]any{"type": "body", "parameters": []any{
			map[string]any{"type": "text", "text": "Anna"}, map[string]any{"type": "text", "text": "Blue mug ×2, Tea"},
			map[string]any{"type": "text", "text": "49.90 EUR"}, map[string]any{"type": "text", "text": "COMEBACK-1"}}},
		map[string]any{"type": "button", "sub_type": "url", "index": "0", "parameters": []any{
			map[string]any{"type": "text", "text": "cart/c/c_ok?key=k1"}}},
	}
	if diff := cmp.Diff(wantComps, comps); diff != "" || req.Template.Name != "cart_discount" || len(req.Template.Params) != 0 {
		t.Errorf("template %s components (-want +got):\n%s", req.Template.Name, diff)
	}
	// Refusals come back as the outcome, with their reason.
	e.msgr.refuse = func(messaging.SendRequest) error {
		return &messaging.RefusedError{Reason: messaging.ReasonQuietHours, DeferUntil: night, MessageID: "msg_r"}
	}
	out, err = e.acts.Send(ctx, SendInput{CartRef: refOK, Step: 1, ChannelConnectionID: "con_wa",
		Template: TemplateRef{Template: "cart_reminder", Language: "en", Variables: []string{VarName, VarLink}}})
	if err != nil || out.Sent || out.Reason != messaging.ReasonQuietHours || !out.DeferUntil.Equal(night) || out.Status != StepSkipped {
		t.Errorf("refused send = %+v, %v", out, err)
	}
	if got := e.msgr.sent()[1].Template.Params; !cmp.Equal(got, []string{"Anna", "https://shop.example.com/cart/c/c_ok?key=k1"}) {
		t.Errorf("params %v", got)
	}

	// An unknown outcome counts as sent; the provider's definite failure
	// and a request messaging cannot send are failures; other errors are
	// returned for a retry.
	tmpl := TemplateRef{Template: "cart_reminder", Language: "en", Variables: []string{VarName}}
	for i, tc := range []struct {
		err    error
		want   SendOutcome
		errors bool
	}{
		{fmt.Errorf("call timed out: %w", messaging.ErrOutcomeUnknown), SendOutcome{Sent: true, Status: StepSent, Reason: messaging.ReasonOutcomeUnknown}, false},
		{&messaging.FailedError{Reason: messaging.ReasonUndeliverable, Code: "131026", MessageID: "m"},
			SendOutcome{Status: StepFailed, Reason: messaging.ReasonUndeliverable, Detail: "131026", MessageID: "m"}, false},
		{&messaging.InvalidError{Field: "connection_id", Reason: "the connection is disabled"},
			SendOutcome{Status: StepFailed, Reason: "invalid_request", Detail: "connection_id: the connection is disabled"}, false},
		{errors.New("database is down"), SendOutcome{}, true},
	} {
		e.msgr.refuse = func(messaging.SendRequest) error { return tc.err }
		out, err := e.acts.Send(ctx, SendInput{CartRef: refOK, Step: 10 + i, ChannelConnectionID: "con_wa", Template: tmpl})
		if (err != nil) != tc.errors {
			t.Errorf("case %d: error %v", i, err)
		}
		out.At, out.MessageID = time.Time{}, tc.want.MessageID
		if diff := cmp.Diff(tc.want, out); diff != "" {
			t.Errorf("case %d: outcome (-want +got):\n%s", i, diff)
		}
	}

	// The discount: the shop's action with the customer and a stable key.
	d, err := e.acts.CreateDiscount(ctx, DiscountInput{CartRef: refOK, Step: 2, Discount: Discount{Percent: 10, ValidFor: Duration(24 * time.Hour), Prefix: "CB-"}})
	if err != nil || d.Code != "CB-K1" {
		t.Fatalf("CreateDiscount = %+v, %v", d, err)
	}
	call := e.shop.calls[0]
	var params commerce.DiscountParams
	_ = json.Unmarshal(call.Params, &params)
	wantParams := commerce.DiscountParams{Percent: 10, ValidForSeconds: 86400, CustomerID: "cust_1", Email: "anna@example.com", Prefix: "CB-", Reference: "c_ok"}
	if call.IdempotencyKey != "cartrecovery/ten_a/con_shop/c_ok:step2:discount" || call.Action != commerce.ActionCreateDiscount ||
		call.ConnectionID != "con_shop" || params != wantParams {
		t.Errorf("discount call %+v params %+v", call, params)
	}

	// A reply flags the conversation; after a STOP the customer is opted out.
	res, err := e.acts.HandleReply(ctx, ReplyInput{CartRef: refOK, Reply: ReplyEvent{ConnectionID: "con_wa", From: "+393331234567"}})
	if err != nil || res.OptedOut {
		t.Fatalf("HandleReply = %+v, %v", res, err)
	}
	conv, err := e.contacts.Conversation(ctx, "ten_a", cart.ContactID, "con_wa")
	if err != nil || !conv.NeedsHuman {
		t.Errorf("conversation %+v, %v: not flagged", conv, err)
	}
	if _, err := e.consent.Record(ctx, "ten_a", consent.NewRecord{ContactID: cart.ContactID, Purposes: consent.LedgerPurposes,
		Action: consent.ActionOptOut, Source: consent.SourceKeyword}); err != nil {
		t.Fatal(err)
	}
	if res, err := e.acts.HandleReply(ctx, ReplyInput{CartRef: refOK, Reply: ReplyEvent{ConnectionID: "con_wa", From: "+393331234567"}}); err != nil || !res.OptedOut {
		t.Errorf("HandleReply after STOP = %+v, %v", res, err)
	}
	if p := prep(refOK, false, at); p.Action != ActionEnd || p.Reason != consent.ReasonOptedOut {
		t.Errorf("after STOP: %+v", p)
	}
}

// The whole path against real servers: a stored checkout event is
// dispatched, the workflow sends the first step after its (shortened)
// delay, and an order event stops it and counts as recovered in the report.
func TestIntegrationWorkflowLifecycle(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	s := testSettings()
	s.Steps[0].Delay = Duration(time.Second)
	s.Steps[1].Delay = Duration(time.Hour)
	e.putSettings(t, "ten_a", "con_shop", s)

	c := e.startWorker(t)

	checkoutID := fmt.Sprintf("chk%d", time.Now().UnixNano())
	co := itCheckout(checkoutID, "+393331234567", time.Now().UTC())
	corr := map[string]string{commerce.CorrelationCheckout: checkoutID}
	insertEvent(t, e.pool, "ten_a", "con_shop", commerce.EventCheckoutCreated, corr, co)

	deadline := time.Now().Add(20 * time.Second)
	for len(e.msgr.sent()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first step was not sent")
		}
		time.Sleep(50 * time.Millisecond)
	}
	req := e.msgr.sent()[0]
	if req.Template.Name != "cart_reminder" || !cmp.Equal(req.Template.Params, []string{"Anna", "Blue mug ×2, Tea", co.RecoveryURL}) {
		t.Errorf("first message %+v", req.Template)
	}
	ref := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: checkoutID}
	order := commerce.Order{ID: "o_" + checkoutID, CheckoutID: checkoutID, Currency: "EUR", Total: "49.90", CreatedAt: time.Now().UTC()}
	insertEvent(t, e.pool, "ten_a", "con_shop", commerce.EventOrderCreated, corr, order)

	var res Result
	if err := c.GetWorkflow(ctx, ref.WorkflowID(), "").Get(ctx, &res); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if res != (Result{Status: StatusRecovered, Reason: ReasonOrderPlaced, Sent: 1}) {
		t.Errorf("result %+v", res)
	}
	cart, err := e.db.Cart(ctx, ref)
	if err != nil || cart.Status != StatusRecovered || cart.RecoveredRevenue != "49.90" || cart.ContactedAt == nil {
		t.Errorf("cart %+v, %v", cart, err)
	}
	rep, err := e.db.Report(ctx, "ten_a", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || rep.CartsSeen != 1 || rep.Recovered != 1 || !cmp.Equal(rep.RecoveredRevenue, []Money{{"EUR", "49.90"}}) ||
		!cmp.Equal(rep.MessagesSent, []StepCount{{1, 1}}) {
		t.Errorf("report %+v, %v", rep, err)
	}
	if *update {
		writeHistory(t, c, ref.WorkflowID())
	}
}

// startWorker runs a worker with the real activities and a dispatcher with
// the route against the Temporal dev server, until the test ends.
// Routers in after run after this package's route, as in the server's
// dispatch table.
func (e *itEnv) startWorker(t *testing.T, after ...dispatch.Router) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: "default", Logger: discardLogger{}})
	if err != nil {
		t.Fatalf("dialing temporal: %v", err)
	}
	t.Cleanup(c.Close)
	queue := fmt.Sprintf("cr-test-%d", time.Now().UnixNano())
	w := worker.New(c, queue, worker.Options{})
	Register(w, e.acts)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	d, err := dispatch.New(dispatch.Config{Pool: e.pool, Router: append(dispatch.Routes{Route(e.db, e.settings, queue, quiet)}, after...),
		Temporal: c, PollInterval: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(dctx) }()
	t.Cleanup(func() { stop(); <-done })
	return c
}

// waitCart polls a cart's row until cond holds.
func (e *itEnv) waitCart(t *testing.T, ref CartRef, what string, cond func(Cart) bool) Cart {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cart, err := e.db.Cart(context.Background(), ref)
		if err == nil && cond(cart) {
			return cart
		}
		if time.Now().After(deadline) {
			t.Fatalf("cart %s never %s: %+v (%v)", ref.CheckoutID, what, cart, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// After the last step the workflow has completed: an order then is
// attributed by the dispatcher to the row. A reply to an open cart stops it
// and flags the conversation.
func TestIntegrationAfterCloseAndReply(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO connections (id, tenant_id, connector, name) VALUES ('con_shop2', 'ten_a', 'shopify', 'shop 2')`); err != nil {
		t.Fatal(err)
	}
	one := testSettings()
	one.Steps = one.Steps[:1]
	one.Steps[0].Delay = Duration(500 * time.Millisecond)
	e.putSettings(t, "ten_a", "con_shop2", one)
	slow := testSettings()
	slow.Steps[0].Delay = Duration(time.Hour)
	e.putSettings(t, "ten_a", "con_shop", slow)
	// The consent engine's keyword route runs after ours, the less
	// favourable order: a STOP reply must still end the cart as opted out.
	keywords := consent.New(e.pool, consent.Options{Logger: quiet, Notifier: notifyNothing{},
		Contacts: consent.ContactResolverFunc(func(ctx context.Context, tenantID, phone string) (string, error) {
			c, err := e.contacts.Resolve(ctx, tenantID, phone, contacts.ContactHints{})
			return c.ID, err
		})})
	c := e.startWorker(t, consent.Route(keywords))

	// A one-step sequence runs to its end.
	done := CartRef{TenantID: "ten_a", ConnectionID: "con_shop2", CheckoutID: fmt.Sprintf("d%d", time.Now().UnixNano())}
	insertEvent(t, e.pool, "ten_a", "con_shop2", commerce.EventCheckoutUpdated, map[string]string{commerce.CorrelationCheckout: done.CheckoutID},
		itCheckout(done.CheckoutID, "+393331112222", time.Now().UTC()))
	var res Result
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.GetWorkflow(ctx, done.WorkflowID(), "").Get(ctx, &res)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow of the one-step cart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res != (Result{Status: StatusEnded, Reason: ReasonSequenceCompleted, Sent: 1}) {
		t.Errorf("one-step result %+v", res)
	}
	insertEvent(t, e.pool, "ten_a", "con_shop2", commerce.EventOrderPaid, map[string]string{commerce.CorrelationCheckout: done.CheckoutID},
		commerce.Order{ID: "o_late", CheckoutID: done.CheckoutID, Total: "12.00", Currency: "EUR", CreatedAt: time.Now().UTC()})
	cart := e.waitCart(t, done, "recovered", func(c Cart) bool { return c.Status == StatusRecovered })
	if cart.RecoveredRevenue != "12.00" || cart.OrderID != "o_late" || cart.Reason != ReasonSequenceCompleted {
		t.Errorf("late order attributed as %+v", cart)
	}

	// An open cart whose customer writes in the meantime.
	open := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: fmt.Sprintf("r%d", time.Now().UnixNano())}
	insertEvent(t, e.pool, "ten_a", "con_shop", commerce.EventCheckoutCreated, map[string]string{commerce.CorrelationCheckout: open.CheckoutID},
		itCheckout(open.CheckoutID, "+393334445555", time.Now().UTC()))
	e.waitCart(t, open, "recorded", func(Cart) bool { return true })
	insertEvent(t, e.pool, "ten_a", "con_wa", EventMessageReceived, nil, map[string]any{
		"from": "+393334445555", "message_id": "wamid.r1", "type": "text", "text": "Is the mug dishwasher safe?", "timestamp": time.Now().UTC()})
	cart = e.waitCart(t, open, "ended", func(c Cart) bool { return c.Status == StatusEnded })
	if cart.Reason != ReasonReplied || cart.OptedOut {
		t.Errorf("replied cart %+v", cart)
	}
	contact, err := e.contacts.Resolve(ctx, "ten_a", "+393334445555", contacts.ContactHints{})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := e.contacts.Conversation(ctx, "ten_a", contact.ID, "con_wa")
	if err != nil || !conv.NeedsHuman {
		t.Errorf("conversation %+v, %v: not flagged for a human", conv, err)
	}
	for _, r := range e.msgr.sent() {
		if r.To == "+393334445555" {
			t.Errorf("a message went to the customer who replied: %+v", r)
		}
	}

	// A STOP as the reply.
	stopped := CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: fmt.Sprintf("s%d", time.Now().UnixNano())}
	insertEvent(t, e.pool, "ten_a", "con_shop", commerce.EventCheckoutCreated, map[string]string{commerce.CorrelationCheckout: stopped.CheckoutID},
		itCheckout(stopped.CheckoutID, "+393336667777", time.Now().UTC()))
	e.waitCart(t, stopped, "recorded", func(Cart) bool { return true })
	insertEvent(t, e.pool, "ten_a", "con_wa", EventMessageReceived, nil, map[string]any{
		"from": "+393336667777", "message_id": "wamid.s1", "type": "text", "text": "STOP", "timestamp": time.Now().UTC()})
	cart = e.waitCart(t, stopped, "ended", func(c Cart) bool { return c.Status == StatusEnded })
	if cart.Reason != ReasonOptedOut || !cart.OptedOut {
		t.Errorf("cart after a STOP %+v, want opted out", cart)
	}
}

// notifyNothing accepts STOP confirmations without sending them.
type notifyNothing struct{}

func (notifyNothing) Notify(context.Context, consent.NotifyRequest) error { return nil }

func writeHistory(t *testing.T, c client.Client, workflowID string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("reading history: %v", err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "recovered_history.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type discardLogger struct{}

func (discardLogger) Debug(string, ...any) {}
func (discardLogger) Info(string, ...any)  {}
func (discardLogger) Warn(string, ...any)  {}
func (discardLogger) Error(string, ...any) {}
