package paymentlink

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

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

var update = flag.Bool("update", false, "rewrite testdata/paid_history.json and testdata/chat_paid_history.json from runs against the Temporal dev server")

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeInvoker stands in for the Stripe connector.
type fakeInvoker struct {
	mu    sync.Mutex
	calls []invoke.Call
}

func (f *fakeInvoker) Invoke(_ context.Context, call invoke.Call) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	switch call.Action {
	case ActionCreatePaymentLink:
		return json.RawMessage(`{"id":"plink_` + call.IdempotencyKey + `","url":"https://buy.stripe.com/test_` + call.IdempotencyKey + `","active":true,"livemode":false,"metadata":{}}`), nil
	case ActionDeactivatePaymentLink:
		return json.RawMessage(`{}`), nil
	}
	return nil, sdk.Invalid("no action %s", call.Action)
}

func (f *fakeInvoker) Validate(_ context.Context, call invoke.Call) error {
	var p createParams
	if err := json.Unmarshal(call.Params, &p); err != nil {
		return err
	}
	if p.PriceID == "price_bad" {
		return sdk.Invalid("no such price")
	}
	return nil
}

type itEnv struct {
	pool    *pgxpool.Pool
	db      *DB
	svc     *Service
	temp    client.Client
	invoker *fakeInvoker
	queue   string
}

func newITEnv(t *testing.T) *itEnv { return newITEnvWith(t, nil) }

// newITEnvWith is newITEnv with a Messenger for chat links (nil: none).
func newITEnvWith(t *testing.T, messenger Messenger) *itEnv {
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
INSERT INTO connections (id, tenant_id, connector, name) VALUES ('con_a', 'ten_a', 'stripe', 'a'), ('con_b', 'ten_b', 'stripe', 'b');
INSERT INTO connections (id, tenant_id, connector, name, status) VALUES ('con_off', 'ten_a', 'stripe', 'off', 'disabled');
INSERT INTO connections (id, tenant_id, connector, name) VALUES ('con_wa', 'ten_a', 'cloudapi', 'whatsapp');`); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: "default",
		Logger: slogDiscard()})
	if err != nil {
		t.Fatalf("dialing temporal: %v", err)
	}
	t.Cleanup(c.Close)
	e := &itEnv{pool: pool, db: NewDB(pool), temp: c, invoker: &fakeInvoker{}, queue: fmt.Sprintf("pl-test-%d", time.Now().UnixNano())}
	e.svc = NewService(e.db, c, e.queue, e.invoker)
	w := worker.New(c, e.queue, worker.Options{})
	Register(w, &Activities{Store: e.db, Invoker: e.invoker, Messenger: messenger})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return e
}

func slogDiscard() *slogLogger { return &slogLogger{slog.New(slog.NewTextHandler(io.Discard, nil))} }

type slogLogger struct{ l *slog.Logger }

func (s *slogLogger) Debug(msg string, kv ...any) { s.l.Debug(msg, kv...) }
func (s *slogLogger) Info(msg string, kv ...any)  { s.l.Info(msg, kv...) }
func (s *slogLogger) Warn(msg string, kv ...any)  { s.l.Warn(msg, kv...) }
func (s *slogLogger) Error(msg string, kv ...any) { s.l.Error(msg, kv...) }

func (e *itEnv) waitStatus(t *testing.T, tenant, id string, want Status) Link {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := e.svc.Get(context.Background(), tenant, id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if l.Status == want {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s is %s, want %s (last_error %q)", id, l.Status, want, l.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *itEnv) insertEvent(t *testing.T, tenant, conn, linkID, typ, payload string) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
VALUES ($1, $2, $3, $4, now(), jsonb_build_object('payment_link', $5::text), $6)`,
		tenant, conn, fmt.Sprintf("evt_%d", time.Now().UnixNano()), typ, linkID, payload)
	if err != nil {
		t.Fatalf("inserting event: %v", err)
	}
}

// The whole path against real servers: create (idempotently), the workflow
// creates the link, a stored payment event is dispatched to it and marks it
// paid, and a refund after the workflow completed is applied to the row.
func TestIntegrationPaymentLinkLifecycle(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	req := CreateRequest{ConnectionID: "con_a", Amount: 1500, Currency: "EUR", ProductName: "Blue mug",
		Metadata: map[string]string{"order": "1042"}, IdempotencyKey: "idem-1"}
	link, err := e.svc.Create(ctx, "ten_a", req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if link.Status != StatusCreating || link.WorkflowID != WorkflowID("ten_a", link.ID) || link.Currency != "eur" {
		t.Errorf("created link %+v", link)
	}
	if d := time.Until(link.ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("expires in %s, want 24h", d)
	}
	again, err := e.svc.Create(ctx, "ten_a", req)
	if err != nil || again.ID != link.ID {
		t.Fatalf("repeated Create = %s, %v; want the same link %s", again.ID, err, link.ID)
	}
	changed := req
	changed.Amount = 1600
	if _, err := e.svc.Create(ctx, "ten_a", changed); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("Create with a reused key and another amount = %v, want ErrIdempotencyConflict", err)
	}
	// The same key in another tenant is another link.
	other, err := e.svc.Create(ctx, "ten_b", CreateRequest{ConnectionID: "con_b", PriceID: "price_1", IdempotencyKey: "idem-1"})
	if err != nil || other.ID == link.ID {
		t.Fatalf("other tenant's Create = %v, %v", other.ID, err)
	}

	open := e.waitStatus(t, "ten_a", link.ID, StatusOpen)
	if open.URL != "https://buy.stripe.com/test_"+link.ID || open.ProviderID != "plink_"+link.ID {
		t.Errorf("open link url %q provider id %q", open.URL, open.ProviderID)
	}
	e.invoker.mu.Lock()
	var createCalls []invoke.Call
	for _, c := range e.invoker.calls {
		if c.Action == ActionCreatePaymentLink && c.TenantID == "ten_a" {
			createCalls = append(createCalls, c)
		}
	}
	e.invoker.mu.Unlock()
	if len(createCalls) != 1 {
		t.Fatalf("create_payment_link called %d times for tenant a, want 1", len(createCalls))
	}
	var params createParams
	_ = json.Unmarshal(createCalls[0].Params, &params)
	if createCalls[0].IdempotencyKey != link.ID || params.Metadata[MetadataKey] != link.ID || params.Metadata["order"] != "1042" ||
		params.Amount == nil || *params.Amount != 1500 || params.Currency != "eur" || params.Quantity != 1 {
		t.Errorf("create call %+v params %+v", createCalls[0], params)
	}

	// Dispatch a payment, then a forged event naming tenant a's link from
	// tenant b's connection, which must reach nothing.
	d, err := dispatch.New(dispatch.Config{Pool: e.pool, Router: Route(e.db), Temporal: e.temp, PollInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = d.Run(dctx) }()
	e.insertEvent(t, "ten_b", "con_b", link.ID, EventChargeRefunded, `{"refunded":true}`)
	e.insertEvent(t, "ten_a", "con_a", link.ID, EventCheckoutSessionCompleted, `{"object":"checkout.session","payment_status":"paid","amount":1500}`)
	paid := e.waitStatus(t, "ten_a", link.ID, StatusPaid)
	if paid.AmountPaid == nil || *paid.AmountPaid != 1500 || paid.PaidAt == nil {
		t.Errorf("paid link amount_paid %v paid_at %v", paid.AmountPaid, paid.PaidAt)
	}
	var final Status
	if err := e.temp.GetWorkflow(ctx, link.WorkflowID, "").Get(ctx, &final); err != nil || final != StatusPaid {
		t.Fatalf("workflow result %s, %v", final, err)
	}
	if *update {
		writeHistory(t, e.temp, link.WorkflowID, "paid_history.json")
	}

	// The workflow has completed: a refund is applied to the row directly.
	e.insertEvent(t, "ten_a", "con_a", link.ID, EventChargeRefunded, `{"object":"charge","refunded":true}`)
	e.waitStatus(t, "ten_a", link.ID, StatusRefunded)

	// The forged event was recorded as undeliverable, never applied.
	var note string
	if err := e.pool.QueryRow(ctx, `SELECT coalesce(d.last_error, '') FROM events e JOIN event_dispatch d ON d.event_id = e.id WHERE e.tenant_id = 'ten_b' AND e.type = $1`, EventChargeRefunded).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if note == "" {
		t.Errorf("the cross-tenant event left no reason")
	}
	if _, err := e.svc.Get(ctx, "ten_b", link.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("tenant b read tenant a's link: %v", err)
	}

	// A second Create with the same key after completion must not start a
	// second workflow (or a second provider link).
	if _, err := e.svc.Create(ctx, "ten_a", req); err != nil {
		t.Fatalf("Create after completion: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	e.invoker.mu.Lock()
	n := 0
	for _, c := range e.invoker.calls {
		if c.Action == ActionCreatePaymentLink && c.IdempotencyKey == link.ID {
			n++
		}
	}
	e.invoker.mu.Unlock()
	if n != 1 {
		t.Errorf("provider link created %d times", n)
	}
}

func writeHistory(t *testing.T, c client.Client, workflowID, file string) {
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
	if err := os.WriteFile(filepath.Join("testdata", file), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationServiceValidation(t *testing.T) {
	t.Parallel()
	e := newITEnv(t)
	ctx := context.Background()
	tests := map[string]struct {
		tenant string
		req    CreateRequest
		field  string
	}{
		"no connection":        {"ten_a", CreateRequest{Amount: 1, Currency: "eur", ProductName: "x"}, "connection_id"},
		"other tenant's conn":  {"ten_a", CreateRequest{ConnectionID: "con_b", Amount: 1, Currency: "eur", ProductName: "x"}, "connection_id"},
		"disabled connection":  {"ten_a", CreateRequest{ConnectionID: "con_off", Amount: 1, Currency: "eur", ProductName: "x"}, "connection_id"},
		"zero amount":          {"ten_a", CreateRequest{ConnectionID: "con_a", Currency: "eur", ProductName: "x"}, "amount"},
		"bad currency":         {"ten_a", CreateRequest{ConnectionID: "con_a", Amount: 1, Currency: "euro", ProductName: "x"}, "currency"},
		"price and amount":     {"ten_a", CreateRequest{ConnectionID: "con_a", Amount: 1, PriceID: "price_1"}, "price_id"},
		"too long":             {"ten_a", CreateRequest{ConnectionID: "con_a", PriceID: "price_1", ExpiresIn: 31 * 24 * time.Hour}, "expires_in"},
		"reserved metadata":    {"ten_a", CreateRequest{ConnectionID: "con_a", PriceID: "price_1", Metadata: map[string]string{MetadataKey: "x"}}, "metadata"},
		"connector refuses":    {"ten_a", CreateRequest{ConnectionID: "con_a", PriceID: "price_bad"}, "connection_id"},
		"negative quantity":    {"ten_a", CreateRequest{ConnectionID: "con_a", PriceID: "price_1", Quantity: -1}, "quantity"},
		"missing product name": {"ten_a", CreateRequest{ConnectionID: "con_a", Amount: 1, Currency: "eur"}, "product_name"},
	}
	for name, tc := range tests {
		_, err := e.svc.Create(ctx, tc.tenant, tc.req)
		var inv *InvalidError
		if !errors.As(err, &inv) || !errors.Is(err, ErrInvalid) || inv.Field != tc.field {
			t.Errorf("%s: Create = %v, want an InvalidError on %s", name, err, tc.field)
		}
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM payment_links`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused requests stored %d links (%v)", n, err)
	}

	// Listing pages through a tenant's links, newest first, and only its own.
	var ids []string
	for i := range 5 {
		l, err := e.svc.Create(ctx, "ten_a", CreateRequest{ConnectionID: "con_a", PriceID: fmt.Sprintf("price_%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{l.ID}, ids...)
	}
	if _, err := e.svc.Create(ctx, "ten_b", CreateRequest{ConnectionID: "con_b", PriceID: "price_b"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for {
		page, next, err := e.svc.List(ctx, "ten_a", ListQuery{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, l := range page {
			got = append(got, l.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("listed %v, want %v", got, ids)
	}
	if _, _, err := e.svc.List(ctx, "ten_a", ListQuery{Cursor: "garbage!"}); !errors.Is(err, ErrInvalidCursor) {
		t.Errorf("List with a bad cursor = %v", err)
	}
}

// recordingMessenger stands in for the messaging core: it records the sends
// of chat links and accepts them.
type recordingMessenger struct {
	mu   sync.Mutex
	sent []messaging.SendRequest
}

func (m *recordingMessenger) Send(_ context.Context, req messaging.SendRequest) (messaging.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, req)
	return messaging.Message{ID: fmt.Sprintf("msg_%d", len(m.sent)), Status: messaging.StatusSent}, nil
}

func (m *recordingMessenger) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for _, r := range m.sent {
		keys = append(keys, r.IdempotencyKey)
	}
	return keys
}

// A link created for a chat: the workflow sends its URL to the customer
// once it is open and confirms the payment in the chat once paid, each
// once. With -update its history becomes testdata/chat_paid_history.json,
// which TestReplayChatPaidHistory replays.
func TestIntegrationPaymentLinkChat(t *testing.T) {
	msgr := &recordingMessenger{}
	e := newITEnvWith(t, msgr)
	ctx := context.Background()
	link, err := e.svc.Create(ctx, "ten_a", CreateRequest{ConnectionID: "con_a", Amount: 2400, Currency: "EUR", ProductName: "Dinner for two",
		To: "+393331112222", ChannelConnectionID: "con_wa", Message: "Your booking deposit:", IdempotencyKey: "chat-1"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	open := e.waitStatus(t, "ten_a", link.ID, StatusOpen)
	deadline := time.Now().Add(20 * time.Second)
	for len(msgr.keys()) < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	d, err := dispatch.New(dispatch.Config{Pool: e.pool, Router: Route(e.db), Temporal: e.temp, PollInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = d.Run(dctx) }()
	e.insertEvent(t, "ten_a", "con_a", link.ID, EventCheckoutSessionCompleted, `{"object":"checkout.session","payment_status":"paid","amount":2400}`)
	e.waitStatus(t, "ten_a", link.ID, StatusPaid)
	var final Status
	if err := e.temp.GetWorkflow(ctx, link.WorkflowID, "").Get(ctx, &final); err != nil || final != StatusPaid {
		t.Fatalf("workflow result %s, %v", final, err)
	}

	if diff := cmp.Diff([]string{link.WorkflowID + ":link", link.WorkflowID + ":paid"}, msgr.keys()); diff != "" {
		t.Fatalf("chat sends by idempotency key (-want +got):\n%s", diff)
	}
	msgr.mu.Lock()
	first, second := msgr.sent[0], msgr.sent[1]
	msgr.mu.Unlock()
	if first.To != "+393331112222" || first.ConnectionID != "con_wa" || first.Kind != messaging.KindText ||
		first.Text != "Your booking deposit:\n"+open.URL || first.Purpose != messaging.PurposeUtility {
		t.Errorf("link message %+v", first)
	}
	if second.To != "+393331112222" || second.Kind != messaging.KindText || second.Text != "Payment received, thank you!" {
		t.Errorf("payment confirmation %+v", second)
	}
	if *update {
		writeHistory(t, e.temp, link.WorkflowID, "chat_paid_history.json")
	}
}
