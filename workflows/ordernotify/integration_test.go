package ordernotify

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
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

var update = flag.Bool("update", false, "rewrite testdata/delivered_history.json from a run against the Temporal dev server")

func TestMain(m *testing.M) { testenv.Main(m) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newPool returns a pool on a fresh, migrated database with tenants ten_a and
// ten_b, shop connections con_shop (ten_a), con_off (ten_a, notifications
// disabled) and con_b (ten_b), and the WhatsApp number con_wa (ten_a).
func newPool(t *testing.T) *pgxpool.Pool {
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
  ('con_shop', 'ten_a', 'shopify', 'shop'), ('con_off', 'ten_a', 'shopify', 'off'),
  ('con_b', 'ten_b', 'shopify', 'b'), ('con_wa', 'ten_a', 'cloudapi', 'number');`); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestIntegrationDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := NewDB(newPool(t))
	ref := OrderRef{TenantID: "ten_a", ConnectionID: "con_shop", OrderID: "9001"}
	wf := WorkflowID(ref.TenantID, ref.ConnectionID, ref.OrderID)

	p, err := db.Begin(ctx, ref, wf)
	if err != nil || p.Stage != "" || len(p.Handled) != 0 {
		t.Fatalf("Begin of a new order = %+v, %v", p, err)
	}
	// Another tenant naming the same shop connection's order is refused.
	if _, err := db.Begin(ctx, OrderRef{TenantID: "ten_b", ConnectionID: "con_shop", OrderID: "9001"}, wf); err == nil {
		t.Errorf("another tenant took over the order's row")
	}

	tmpl := &messaging.Template{Name: "order_shipped", Language: "it", Params: []string{"Maria"}}
	sending := Notification{OrderRef: ref, Kind: KindShipped, Status: StatusSending, Mode: ModeTemplate,
		ChannelConnectionID: "con_wa", To: phone, Content: Content{Template: tmpl}}
	got, err := db.Claim(ctx, sending)
	if err != nil || got.Status != StatusSending || got.Content.Template == nil || got.Content.Template.Params[0] != "Maria" {
		t.Fatalf("Claim = %+v, %v", got, err)
	}
	// A second claim of the kind (a retried activity, a second run) gets
	// the first decision, whatever it asks for.
	again, err := db.Claim(ctx, Notification{OrderRef: ref, Kind: KindShipped, Status: StatusSkipped, Reason: "no_phone"})
	if err != nil || again.Status != StatusSending || again.Mode != ModeTemplate {
		t.Fatalf("second Claim = %+v, %v", again, err)
	}
	// Sending is not handled: the stage stays.
	if p, _ := db.Begin(ctx, ref, wf); p.Stage != "" || len(p.Handled) != 0 {
		t.Errorf("progress while sending = %+v", p)
	}
	sent := got
	sent.Status, sent.MessageID = StatusSent, "msg_1"
	if got, err = db.Settle(ctx, sent); err != nil || got.Status != StatusSent || got.MessageID != "msg_1" {
		t.Fatalf("Settle = %+v, %v", got, err)
	}
	// Settling again (a replayed activity) changes nothing.
	late := sent
	late.Status, late.Reason, late.MessageID = StatusFailed, "late", ""
	if got, err = db.Settle(ctx, late); err != nil || got.Status != StatusSent || got.MessageID != "msg_1" {
		t.Fatalf("second Settle = %+v, %v", got, err)
	}
	// A lower stage handled later does not lower the order's stage; the
	// review request is not a stage.
	for _, n := range []Notification{
		{OrderRef: ref, Kind: KindConfirmation, Status: StatusSkipped, Reason: "no_phone"},
		{OrderRef: ref, Kind: KindReviewRequest, Status: StatusRefused, Reason: messaging.ReasonOptedOut, To: "+393330000000"},
	} {
		if _, err := db.Claim(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	p, err = db.Begin(ctx, ref, wf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Progress{Stage: KindShipped, Handled: []Kind{KindShipped, KindConfirmation, KindReviewRequest}}, p); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	o, ns, err := db.Order(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if o.Stage != KindShipped || o.Phone != "+393330000000" || o.WorkflowID != wf {
		t.Errorf("order row %+v", o)
	}
	var kinds []string
	for _, n := range ns {
		kinds = append(kinds, fmt.Sprintf("%s/%s/%s/%s", n.Kind, n.Status, n.Reason, n.MessageID))
	}
	if diff := cmp.Diff([]string{"shipped/sent//msg_1", "confirmation/skipped/no_phone/", "review_request/refused/opted_out/"}, kinds); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if _, _, err := db.Order(ctx, OrderRef{TenantID: "ten_b", ConnectionID: "con_shop", OrderID: "9001"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant read the order: %v", err)
	}
	// Claim creates the order's row when Begin never ran (RecordFailure
	// after a lost Begin).
	other := OrderRef{TenantID: "ten_a", ConnectionID: "con_shop", OrderID: "9002"}
	if _, err := db.Claim(ctx, Notification{OrderRef: other, Kind: KindDelivered, Status: StatusFailed, Reason: "x"}); err != nil {
		t.Fatalf("Claim without Begin: %v", err)
	}
	if o, _, err := db.Order(ctx, other); err != nil || o.Stage != KindDelivered {
		t.Errorf("order without Begin: %+v, %v", o, err)
	}
}

type itEnv struct {
	pool  *pgxpool.Pool
	db    *DB
	temp  client.Client
	msgr  *fakeMessenger
	queue string
}

func newITEnv(t *testing.T) *itEnv {
	t.Helper()
	ctx := context.Background()
	pool := newPool(t)
	settings := automations.NewStore(pool)
	on := DefaultSettings()
	on.Enabled, on.ChannelConnectionID = true, "con_wa"
	on.ReviewRequest = &ReviewRequest{Message: Message{Template: "order_review", Language: "en",
		Variables: []string{VarName, VarReviewURL}}, After: "2s", ReviewURL: "https://shop.example/review"}
	off := on
	off.Enabled = false
	for conn, s := range map[string]Settings{"con_shop": on, "con_off": off} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := settings.Put(ctx, "ten_a", conn, SettingsKind, s); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: "default",
		Logger: log.NewStructuredLogger(discard())})
	if err != nil {
		t.Fatalf("dialing temporal: %v", err)
	}
	t.Cleanup(c.Close)
	e := &itEnv{pool: pool, db: NewDB(pool), temp: c, msgr: newFakeMessenger(time.Now),
		queue: fmt.Sprintf("ordernotify-test-%d", time.Now().UnixNano())}
	w := worker.New(c, e.queue, worker.Options{})
	Register(w, &Activities{Store: e.db, Settings: AutomationSettings{Store: settings}, Messenger: e.msgr,
		Window: DirectoryWindow{Directory: messaging.NewSQLDirectory(pool)}, Logger: discard()})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	d, err := dispatch.New(dispatch.Config{Pool: pool, Router: Route(AutomationSettings{Store: settings}, e.queue), Temporal: c,
		PollInterval: 100 * time.Millisecond, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(dctx) }()
	t.Cleanup(func() { stop(); <-done })
	return e
}

func (e *itEnv) insert(t *testing.T, tenant, conn, orderID, typ string, payload any) {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.pool.Exec(context.Background(), `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
VALUES ($1, $2, $3, $4, now(), jsonb_build_object('order', $5::text), $6)`,
		tenant, conn, fmt.Sprintf("evt_%d", time.Now().UnixNano()), typ, orderID, b)
	if err != nil {
		t.Fatalf("inserting event: %v", err)
	}
}

// waitSent waits until the fake provider has n messages.
func (e *itEnv) waitSent(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.msgr.sent()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d messages, want %d: %q", len(got), n, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitClosed waits for the run of workflowID to complete.
func (e *itEnv) waitClosed(t *testing.T, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.temp.GetWorkflow(ctx, workflowID, "").Get(ctx, nil); err != nil {
		t.Fatalf("workflow %s: %v", workflowID, err)
	}
}

func (e *itEnv) waitDispatched(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM event_dispatch WHERE dispatched_at IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events not dispatched", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The whole path against real servers: stored shop events are dispatched to
// the order's workflow, which sends the confirmation, the delivery and, 2 s
// later (shortened by configuration), the review request, and ends. The shop
// repeating its events later starts a second run that sends nothing; a
// refund after that is sent. A shop with notifications off starts nothing.
func TestIntegrationOrderNotifications(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	ref := OrderRef{TenantID: "ten_a", ConnectionID: "con_shop", OrderID: "7001"}
	wf := WorkflowID(ref.TenantID, ref.ConnectionID, ref.OrderID)
	now := time.Now().UTC().Truncate(time.Second)
	o := commerce.Order{ID: "7001", Name: "#1042", Contact: commerce.Contact{Phone: phone, FirstName: "Maria"},
		Currency: "EUR", Total: "20.00", FinancialStatus: commerce.FinancialPaid,
		LineItems: []commerce.LineItem{{Title: "Mug", Quantity: 1, Price: "20.00"}}, CreatedAt: now, UpdatedAt: now}
	delivered := commerce.Fulfillment{ID: "f1", OrderID: "7001", Status: "success", ShipmentStatus: commerce.ShipmentDelivered,
		TrackingCompany: "BRT", TrackingNumber: "T1"}

	e.insert(t, "ten_a", "con_off", "7001", commerce.EventOrderCreated, o)
	e.insert(t, "ten_a", "con_shop", "7001", commerce.EventOrderCreated, o)
	e.waitSent(t, 1)
	delivered.UpdatedAt = time.Now().UTC()
	e.insert(t, "ten_a", "con_shop", "7001", commerce.EventFulfillmentUpdated, delivered)
	got := e.waitSent(t, 3)
	e.waitClosed(t, wf)
	want := []string{
		`template:order_confirmation["Maria" "#1042" "20.00 EUR"]`,
		`template:order_delivered["Maria" "#1042"]`,
		`template:order_review["Maria" "https://shop.example/review"]`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	times := e.msgr.callTimes()
	if gap := times[2].Sub(delivered.UpdatedAt); gap < 2*time.Second {
		t.Errorf("review request %s after the delivery, want at least 2s", gap)
	}
	if *update {
		writeHistory(t, e.temp, wf)
	}

	// A month later, say, the shop repeats itself: a second run, nothing
	// sent. Then a refund: sent, and that run ends too.
	e.insert(t, "ten_a", "con_shop", "7001", commerce.EventOrderUpdated, o)
	e.insert(t, "ten_a", "con_shop", "7001", commerce.EventFulfillmentCreated, delivered)
	e.waitDispatched(t)
	e.waitClosed(t, wf)
	refundedOrder := o
	refundedOrder.FinancialStatus, refundedOrder.RefundedAmount, refundedOrder.UpdatedAt = commerce.FinancialRefunded, "20.00", now.Add(time.Hour)
	e.insert(t, "ten_a", "con_shop", "7001", commerce.EventOrderRefunded, refundedOrder)
	got = e.waitSent(t, 4)
	e.waitClosed(t, wf)
	want = append(want, `template:order_refunded["Maria" "#1042" "20.00 EUR"]`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sent after the later runs (-want +got):\n%s", diff)
	}
	wantKeys := []string{wf + ":confirmation", wf + ":delivered", wf + ":refunded", wf + ":review_request"}
	if diff := cmp.Diff(wantKeys, e.msgr.keys()); diff != "" {
		t.Errorf("idempotency keys (-want +got):\n%s", diff)
	}

	row, ns, err := e.db.Order(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if row.Stage != KindRefunded || row.Phone != phone {
		t.Errorf("order row %+v", row)
	}
	var kinds []string
	for _, n := range ns {
		kinds = append(kinds, string(n.Kind)+"/"+string(n.Status))
		if n.MessageID == "" {
			t.Errorf("%s notification without its message id", n.Kind)
		}
	}
	slices.Sort(kinds)
	if diff := cmp.Diff([]string{"confirmation/sent", "delivered/sent", "refunded/sent", "review_request/sent"}, kinds); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	// The disabled shop's event started nothing.
	if _, _, err := e.db.Order(ctx, OrderRef{TenantID: "ten_a", ConnectionID: "con_off", OrderID: "7001"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a disabled shop's order has a row: %v", err)
	}
	if _, err := e.temp.DescribeWorkflowExecution(ctx, WorkflowID("ten_a", "con_off", "7001"), ""); err == nil {
		t.Errorf("a disabled shop's order started a workflow")
	}
}

// Inside the customer's 24-hour window (the customer wrote an hour ago on the
// sending number) the free text goes instead of the template.
func TestIntegrationFreeTextInWindow(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	customer := "+393339998877"
	rc, err := messaging.NewSQLDirectory(e.pool).Recipient(ctx, "ten_a", "con_wa", customer, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE conversations SET last_inbound_at = now() - interval '1 hour' WHERE id = $1`, rc.ConversationID); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	o := commerce.Order{ID: "7002", Name: "#1043", Contact: commerce.Contact{Phone: customer, FirstName: "Ugo"},
		Currency: "EUR", Total: "5.00", FinancialStatus: commerce.FinancialPaid, CreatedAt: now, UpdatedAt: now}
	e.insert(t, "ten_a", "con_shop", "7002", commerce.EventOrderCreated, o)
	got := e.waitSent(t, 1)
	want := "text:Hi Ugo, thank you for your order #1043 (5.00 EUR)! We are preparing it and will send you the tracking details soon."
	if len(got) != 1 || got[0] != want {
		t.Errorf("sent %q, want %q", got, want)
	}
	// The send is recorded right after the provider call.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, ok, err := e.db.Notification(ctx, OrderRef{TenantID: "ten_a", ConnectionID: "con_shop", OrderID: "7002"}, KindConfirmation)
		if err != nil {
			t.Fatal(err)
		}
		if ok && n.Status != StatusSending {
			if n.Mode != ModeText || n.Status != StatusSent || n.MessageID == "" {
				t.Errorf("notification %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification still %+v", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
	if err := os.WriteFile(filepath.Join("testdata", "delivered_history.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
