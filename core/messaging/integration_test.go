package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pgRig is a migrated database with a tenant and a Cloud API connection row.
type pgRig struct {
	url      string
	st       *store.Store
	pool     *pgxpool.Pool
	tenantID string
	connID   string
}

func newPGRig(t testing.TB) *pgRig {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, withPoolSize(url, 40), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ten, err := st.CreateTenant(ctx, "messaging")
	if err != nil {
		t.Fatal(err)
	}
	r := &pgRig{url: url, st: st, pool: st.Pool(), tenantID: ten.ID, connID: store.NewID("con")}
	if _, err := r.pool.Exec(ctx, `INSERT INTO connections (id, tenant_id, connector, name, config)
        VALUES ($1, $2, 'cloudapi', 'number', '{"phone_number_id":"1001","throughput_tier":1000}')`, r.connID, r.tenantID); err != nil {
		t.Fatal(err)
	}
	return r
}

// withPoolSize sets the pool size in a database URL.
func withPoolSize(url string, n int) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", url, sep, n)
}

// openWindow records a customer message on the contact's conversation now.
func (r *pgRig) openWindow(t testing.TB, phone string) {
	t.Helper()
	rc, err := NewSQLDirectory(r.pool).Recipient(context.Background(), r.tenantID, r.connID, phone, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(context.Background(), `UPDATE conversations SET last_inbound_at = now() WHERE id = $1`, rc.ConversationID); err != nil {
		t.Fatal(err)
	}
}

// loggingInvoker accepts every send like the provider, logging when each
// arrived; fail, when set, decides an error for a call instead.
type loggingInvoker struct {
	mu   sync.Mutex
	log  []loggedCall
	fail func(c invoke.Call) error
}

type loggedCall struct {
	To       string
	LedgerID string
	At       time.Time
}

func (l *loggingInvoker) Invoke(_ context.Context, c invoke.Call) (json.RawMessage, error) {
	var p struct {
		To       string `json:"to"`
		LedgerID string `json:"ledger_id"`
	}
	_ = json.Unmarshal(c.Params, &p)
	l.mu.Lock()
	l.log = append(l.log, loggedCall{To: p.To, LedgerID: p.LedgerID, At: time.Now()})
	n := len(l.log)
	fail := l.fail
	l.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return nil, err
		}
	}
	return json.RawMessage(fmt.Sprintf(`{"message_id":"wamid.%s.%d","wa_id":"x"}`, p.LedgerID, n)), nil
}

func (l *loggingInvoker) calls() []loggedCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedCall(nil), l.log...)
}

func newPGService(t testing.TB, r *pgRig, inv Invoker) (*Service, *consent.Service) {
	t.Helper()
	cs := consent.New(r.pool, consent.Options{})
	svc, err := New(Config{Pool: r.pool, Invoker: inv, Consent: ConsentService{cs}, Guard: ConsentService{cs},
		Templates: fakeTemplates{"promo/it": {Status: "approved", Category: "marketing"}}, RecipientGap: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return svc, cs
}

// statusEvent builds the dispatch event of a message.status webhook.
func (r *pgRig) statusEvent(id int64, ledgerID, wamid, status string, at time.Time, errs ...map[string]any) dispatch.Event {
	payload := map[string]any{"phone_number_id": "1001", "message_id": wamid, "status": status,
		"timestamp": at.UTC().Format(time.RFC3339), "ledger_id": ledgerID}
	if len(errs) > 0 {
		payload["errors"] = errs
	}
	b, _ := json.Marshal(payload)
	return dispatch.Event{ID: id, TenantID: r.tenantID, ConnectionID: r.connID, Connector: Connector,
		Type: EventMessageStatus, OccurredAt: at, ReceivedAt: time.Now(), Payload: b}
}

func (r *pgRig) apply(t testing.TB, ev dispatch.Event) {
	t.Helper()
	ds, err := Route(r.pool).Route(context.Background(), ev)
	if err != nil || len(ds) != 1 {
		t.Fatalf("route: %v, %d deliveries", err, len(ds))
	}
	if err := ds[0].Apply(context.Background()); err != nil {
		t.Fatalf("apply %s: %v", ev.Payload, err)
	}
}

func TestIntegrationSendAndStatuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	inv := &loggingInvoker{}
	svc, _ := newPGService(t, r, inv)
	r.openWindow(t, "+393330000001")

	listen, err := pgx.Connect(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Close(ctx)
	if _, err := listen.Exec(ctx, "LISTEN "+InboxChannel); err != nil {
		t.Fatal(err)
	}

	req := SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: "+393330000001", Kind: KindText,
		Text: "your order shipped", IdempotencyKey: "order-1:shipped"}
	m, err := svc.Send(ctx, req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if m.Status != StatusSent || m.ProviderMessageID == "" || m.SentAt == nil || m.To != "+393330000001" {
		t.Fatalf("row after Send: %+v", m)
	}
	again, err := svc.Send(ctx, req)
	if err != nil || again.ID != m.ID {
		t.Fatalf("repeated Send: %v, row %s, want %s", err, again.ID, m.ID)
	}
	if n := len(inv.calls()); n != 1 {
		t.Fatalf("%d provider calls, want 1", n)
	}

	// Every webhook twice, read before delivered.
	t0 := time.Now().Truncate(time.Second)
	events := []dispatch.Event{
		r.statusEvent(1, m.ID, m.ProviderMessageID, "sent", t0),
		r.statusEvent(3, m.ID, m.ProviderMessageID, "read", t0.Add(2*time.Second)),
		r.statusEvent(1, m.ID, m.ProviderMessageID, "sent", t0),
		r.statusEvent(2, m.ID, m.ProviderMessageID, "delivered", t0.Add(time.Second)),
		r.statusEvent(3, m.ID, m.ProviderMessageID, "read", t0.Add(2*time.Second)),
		r.statusEvent(2, m.ID, m.ProviderMessageID, "delivered", t0.Add(time.Second)),
	}
	for _, ev := range events {
		r.apply(t, ev)
	}
	got, err := svc.Get(ctx, r.tenantID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusRead || got.DeliveredAt == nil || !got.DeliveredAt.Equal(t0.Add(time.Second)) ||
		got.ReadAt == nil || !got.ReadAt.Equal(t0.Add(2*time.Second)) {
		t.Errorf("final row: status %s delivered %v read %v", got.Status, got.DeliveredAt, got.ReadAt)
	}
	// read and delivered changed the row (sent was already recorded by Send
	// with the same status): two notifications, none for duplicates.
	var notes []string
	for {
		nctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n, err := listen.WaitForNotification(nctx)
		cancel()
		if err != nil {
			break
		}
		notes = append(notes, n.Payload)
	}
	if len(notes) != 2 {
		t.Errorf("%d inbox notifications, want 2: %v", len(notes), notes)
	}
	for _, n := range notes {
		var p map[string]string
		if err := json.Unmarshal([]byte(n), &p); err != nil || p["message_id"] != m.ID || p["kind"] != "status" ||
			p["tenant_id"] != r.tenantID || p["conversation_id"] != m.ConversationID {
			t.Errorf("notification %s", n)
		}
	}

	// Another tenant's ledger id in a webhook finds nothing.
	other := r.statusEvent(9, m.ID, "wamid.other", "failed", t0)
	other.TenantID = "ten_other"
	err = ApplyStatus(ctx, r.pool, other)
	if !errors.Is(err, ErrNoLedgerRow) {
		t.Errorf("status of another tenant: %v, want ErrNoLedgerRow", err)
	}
}

// TestIntegrationReconcile covers sends whose outcome was lost: a status
// webhook carrying the ledger id settles them; without one the Reconciler
// marks them unknown; they are never sent again.
func TestIntegrationReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	// The provider accepts the message, but the answer is lost (the plugin
	// died, the call timed out): what Send sees is an ambiguous error.
	inv := &loggingInvoker{fail: func(invoke.Call) error {
		return fmt.Errorf("invoking: %w", errors.New("rpc error: transport is closing"))
	}}
	svc, _ := newPGService(t, r, inv)
	r.openWindow(t, "+393330000002")
	r.openWindow(t, "+393330000003")

	send := func(key, to string) Message {
		m, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: to, Kind: KindText,
			Text: "hi", IdempotencyKey: key})
		if !errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("Send: %v, want ErrOutcomeUnknown", err)
		}
		if m.Status != StatusSending || m.ProviderMessageID != "" {
			t.Fatalf("row after an ambiguous send: %s wamid %q", m.Status, m.ProviderMessageID)
		}
		return m
	}
	a := send("a", "+393330000002")
	b := send("b", "+393330000003")

	// Retrying either never calls the provider again.
	for _, key := range []string{"a", "b"} {
		m, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: "+393330000002",
			Kind: KindText, Text: "hi", IdempotencyKey: key})
		if err != nil || m.Status != StatusSending {
			t.Fatalf("retry of %s: %v, status %s", key, err, m.Status)
		}
	}
	if n := len(inv.calls()); n != 2 {
		t.Fatalf("%d provider calls, want 2", n)
	}

	// a's status webhook arrives with its ledger id: a is reconciled.
	r.apply(t, r.statusEvent(1, a.ID, "wamid.recovered", "sent", time.Now()))
	got, err := svc.Get(ctx, r.tenantID, a.ID)
	if err != nil || got.Status != StatusSent || got.ProviderMessageID != "wamid.recovered" || got.StatusReason != "" {
		t.Fatalf("a after its webhook: %v %+v", err, got)
	}

	// b hears nothing; past the bound it is unknown. a is not touched.
	rec := &Reconciler{Pool: r.pool, After: time.Nanosecond}
	time.Sleep(5 * time.Millisecond)
	n, err := rec.ReconcileOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ReconcileOnce: %d, %v; want 1", n, err)
	}
	got, _ = svc.Get(ctx, r.tenantID, b.ID)
	if got.Status != StatusUnknown || got.StatusReason != ReasonNoStatusWebhook {
		t.Fatalf("b after reconciling: %s/%s", got.Status, got.StatusReason)
	}
	// A default bound leaves fresh rows alone.
	c := send("c", "+393330000002")
	if n, _ := (&Reconciler{Pool: r.pool}).ReconcileOnce(ctx); n != 0 {
		t.Errorf("default bound marked %d fresh rows", n)
	}
	_ = c
	// A late webhook still settles an unknown row.
	r.apply(t, r.statusEvent(2, b.ID, "wamid.late", "delivered", time.Now()))
	got, _ = svc.Get(ctx, r.tenantID, b.ID)
	if got.Status != StatusDelivered || got.ProviderMessageID != "wamid.late" {
		t.Fatalf("b after a late webhook: %s %q", got.Status, got.ProviderMessageID)
	}
	if n := len(inv.calls()); n != 3 {
		t.Errorf("%d provider calls, want 3 (one per key)", n)
	}
}

func TestIntegrationDeferredScheduler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	inv := &loggingInvoker{}
	svc, cs := newPGService(t, r, inv)
	phone := "+393330000004"
	r.openWindow(t, phone)
	rc, _ := NewSQLDirectory(r.pool).Recipient(ctx, r.tenantID, r.connID, phone, "")
	if _, err := cs.Record(ctx, r.tenantID, consent.NewRecord{ContactID: rc.ContactID, Purposes: []string{"marketing"},
		Action: consent.ActionOptIn, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	// Quiet hours from an hour ago until a minute or two from now: the end
	// is cut to the minute, so two minutes ahead leaves at least one before
	// the deferred send comes due (one ahead left seconds on a slow run).
	now := time.Now().UTC()
	start := now.Add(-time.Hour).Format("15:04")
	end := now.Add(2 * time.Minute).Format("15:04")
	if _, err := r.pool.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, quiet_hours_start, quiet_hours_end) VALUES ($1, $2, $3)`,
		r.tenantID, start, end); err != nil {
		t.Fatal(err)
	}
	req := SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phone, Kind: KindText, Text: "sale!",
		Purpose: PurposeMarketing, IdempotencyKey: "promo-1"}
	_, err := svc.Send(ctx, req)
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.Reason != ReasonQuietHours || ref.DeferUntil.IsZero() {
		t.Fatalf("Send in quiet hours: %v", err)
	}
	req.IdempotencyKey, req.AllowDefer = "promo-2", true
	m, err := svc.Send(ctx, req)
	if err != nil || m.Status != StatusDeferred || m.DeferredUntil == nil {
		t.Fatalf("deferred Send: %v, %+v", err, m)
	}
	// Not due yet: the scheduler leaves it.
	sc := &Scheduler{Service: svc, Pool: r.pool}
	if n, err := sc.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("RunOnce before due: %d, %v", n, err)
	}
	// Quiet hours end (the row comes due, settings cleared).
	if _, err := r.pool.Exec(ctx, `UPDATE messages SET deferred_until = now() WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `UPDATE tenant_settings SET quiet_hours_start = NULL, quiet_hours_end = NULL`); err != nil {
		t.Fatal(err)
	}
	svc2, _ := newPGService(t, r, inv) // a fresh consent settings cache
	sc.Service = svc2
	if n, err := sc.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("RunOnce when due: %d, %v", n, err)
	}
	got, _ := svc.Get(ctx, r.tenantID, m.ID)
	if got.Status != StatusSent || len(inv.calls()) != 1 {
		t.Fatalf("deferred row after scheduling: %s, %d calls", got.Status, len(inv.calls()))
	}
}

// TestIntegrationStopWins runs a marketing send to 1,000 opted-in contacts
// while each of them sends STOP (an opt-out recorded by the consent engine):
// no marketing message may reach the provider after its contact's opt-out
// was stored.
func TestIntegrationStopWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	inv := &loggingInvoker{}
	svc, cs := newPGService(t, r, inv)
	const n = 1000
	phones := make([]string, n)
	contacts := make([]string, n)
	for i := range n {
		phones[i] = fmt.Sprintf("+3934%08d", i)
		rc, err := NewSQLDirectory(r.pool).Recipient(ctx, r.tenantID, r.connID, phones[i], "")
		if err != nil {
			t.Fatal(err)
		}
		contacts[i] = rc.ContactID
		if _, err := cs.Record(ctx, r.tenantID, consent.NewRecord{ContactID: rc.ContactID, Purposes: []string{"marketing"},
			Action: consent.ActionOptIn, Source: "import"}); err != nil {
			t.Fatal(err)
		}
	}
	stored := make([]time.Time, n) // when each opt-out's Record returned: after its commit
	var wg sync.WaitGroup
	wg.Go(func() {
		sem := make(chan struct{}, 8)
		var inner sync.WaitGroup
		for i := range n {
			sem <- struct{}{}
			inner.Go(func() {
				defer func() { <-sem }()
				_, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phones[i],
					Kind: KindTemplate, Template: &Template{Name: "promo", Language: "it"}, IdempotencyKey: "campaign:" + phones[i]})
				var ref *RefusedError
				if err != nil && !errors.As(err, &ref) {
					t.Errorf("Send to %s: %v", phones[i], err)
				}
			})
		}
		inner.Wait()
	})
	wg.Go(func() {
		sem := make(chan struct{}, 8)
		var inner sync.WaitGroup
		for i := n - 1; i >= 0; i-- { // opposite order, so the two sweeps cross
			sem <- struct{}{}
			inner.Go(func() {
				defer func() { <-sem }()
				if _, err := cs.Record(ctx, r.tenantID, consent.NewRecord{ContactID: contacts[i],
					Purposes: []string{"marketing", "utility"}, Action: consent.ActionOptOut, Source: "whatsapp_keyword",
					Method: "keyword", Evidence: json.RawMessage(fmt.Sprintf(`{"message_id":"wamid.stop.%d"}`, i))}); err != nil {
					t.Errorf("opt-out %d: %v", i, err)
				}
				stored[i] = time.Now()
			})
		}
		inner.Wait()
	})
	wg.Wait()
	index := map[string]int{}
	for i, p := range phones {
		index[p] = i
	}
	sent, late := 0, 0
	for _, c := range inv.calls() {
		sent++
		if i := index[c.To]; c.At.After(stored[i]) {
			late++
			t.Errorf("marketing message to %s reached the provider %v after its STOP was stored", c.To, c.At.Sub(stored[i]))
			rows, _ := r.pool.Query(ctx, `SELECT action, purpose, occurred_at, recorded_at, clock_timestamp() FROM consent_records WHERE contact_id = $1 ORDER BY id`, contacts[i])
			for rows.Next() {
				var a, p string
				var o, rc, ct time.Time
				_ = rows.Scan(&a, &p, &o, &rc, &ct)
				t.Logf("  %s %s occurred %v recorded %v (now %v)", a, p, o.Format(time.RFC3339Nano), rc.Format(time.RFC3339Nano), ct.Format(time.RFC3339Nano))
			}
			rows.Close()
			t.Logf("  call at %v, stored %v", c.At.Format(time.RFC3339Nano), stored[i].Format(time.RFC3339Nano))
		}
	}
	var refused int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = 'refused' AND status_reason = 'opted_out'`,
		r.tenantID).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sent before the STOP, %d refused as opted out, %d late", sent, refused, late)
	if sent+refused != n {
		t.Errorf("sent %d + refused %d != %d", sent, refused, n)
	}
}

// TestIntegrationSameKeyRace covers the ledger row committed in the round
// trip of a group's consent hold (holdGrouper): a send whose idempotency key
// was taken between its lookup and its write answers with the existing row
// and calls nothing, whether it lost the race to a concurrent Send or found
// the row at the write itself.
func TestIntegrationSameKeyRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	inv := &loggingInvoker{}
	svc, _ := newPGService(t, r, inv)
	r.openWindow(t, "+393330000077")
	req := SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: "+393330000077", Kind: KindText,
		Text: "your table is ready", IdempotencyKey: "table-7"}

	const senders = 16
	ids := make(chan string, senders)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			m, err := svc.Send(ctx, req)
			if err != nil {
				errs <- err
				return
			}
			ids <- m.ID
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent Send failed: %v", err)
	}
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Errorf("concurrent Sends answered with rows %v, want one", seen)
	}
	if n := len(inv.calls()); n != 1 {
		t.Fatalf("%d provider calls for one key, want 1", n)
	}

	// The write itself finding the key taken (the lookup before it missed):
	// the existing row, no call.
	p, err := svc.plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := svc.attempt(ctx, &p)
	if err != nil || !seen[m.ID] || m.Status != StatusSent {
		t.Errorf("attempt with a taken key: %v, row %s %s; want the existing sent row", err, m.ID, m.Status)
	}
	if n := len(inv.calls()); n != 1 {
		t.Errorf("%d provider calls after the attempt with a taken key, want 1", n)
	}
	var rows int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND idempotency_key = $2`, r.tenantID, "table-7").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d ledger rows for the key (%v), want 1", rows, err)
	}
}

// TestIntegrationSendGroups: sends gathered into one group get one row
// each, a call each when allowed, the same key once, and a refusal for the
// contact without consent; a row that cannot be written (its conversation
// gone) fails its own send alone, the group's others going through.
func TestIntegrationSendGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPGRig(t)
	inv := &loggingInvoker{}
	svc, cs := newPGService(t, r, inv)
	if svc.groups == nil {
		t.Fatal("the service takes sends through no groups")
	}
	planned := func(to, key string, purpose Purpose) *plan {
		t.Helper()
		r.openWindow(t, to)
		p, err := svc.plan(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: to, Kind: KindText,
			Text: "hello", Purpose: purpose, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	run := func(plans ...*plan) []groupResult {
		t.Helper()
		group := make([]*groupSend, len(plans))
		for i, p := range plans {
			group[i] = &groupSend{ctx: ctx, p: p, done: make(chan groupResult, 1)}
		}
		svc.groups.runGroup(group)
		out := make([]groupResult, len(plans))
		for i, gs := range group {
			out[i] = <-gs.done
		}
		return out
	}
	optedIn := planned("+393330000101", "g-1", PurposeMarketing)
	if _, err := cs.Record(ctx, r.tenantID, consent.NewRecord{ContactID: optedIn.rcpt.ContactID, Purposes: []string{consent.PurposeMarketing},
		Action: consent.ActionOptIn, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	noConsent := planned("+393330000102", "g-2", PurposeMarketing)
	service := planned("+393330000103", "g-3", PurposeService)
	sameKey := planned("+393330000104", "g-3", PurposeService) // the key of the send before

	res := run(optedIn, noConsent, service, sameKey)
	for i, want := range []struct {
		called, existing, refused bool
	}{{called: true}, {refused: true}, {called: true}, {existing: true}} {
		got := res[i]
		if got.writeErr != nil || got.holdErr != nil || got.callErr != nil || got.called != want.called ||
			got.existing != want.existing || (got.refusal != nil) != want.refused {
			t.Errorf("send %d: %+v, want %+v", i, got, want)
		}
		if !want.existing && (got.row.Status != StatusSending || got.row.ID == "") {
			t.Errorf("send %d: row %s status %s, want its row in status sending", i, got.row.ID, got.row.Status)
		}
	}
	if res[1].refusal != nil && res[1].refusal.Reason != ReasonNoMarketingConsent {
		t.Errorf("refusal %q, want %s", res[1].refusal.Reason, ReasonNoMarketingConsent)
	}
	if calls := inv.calls(); len(calls) != 2 {
		t.Errorf("%d calls, want 2 (opted in, service)", len(calls))
	}

	// A row whose conversation is gone breaks the group's statement: it
	// fails alone, the others are written and called.
	good1 := planned("+393330000105", "g-5", PurposeService)
	bad := planned("+393330000106", "g-6", PurposeService)
	bad.row.ConversationID = "cv_gone"
	good2 := planned("+393330000107", "g-7", PurposeService)
	res = run(good1, bad, good2)
	if res[1].writeErr == nil || res[1].called {
		t.Errorf("the bad row: %+v, want a write error and no call", res[1])
	}
	for _, i := range []int{0, 2} {
		if res[i].writeErr != nil || !res[i].called || res[i].callErr != nil {
			t.Errorf("send %d beside the bad row: %+v, want written and called", i, res[i])
		}
	}
	var rows int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND idempotency_key IN ('g-5', 'g-6', 'g-7')`, r.tenantID).Scan(&rows); err != nil || rows != 2 {
		t.Errorf("%d rows for the three keys (%v), want 2", rows, err)
	}
	if calls := inv.calls(); len(calls) != 4 {
		t.Errorf("%d calls in all, want 4", len(calls))
	}

	// A repeated request answers at once with its row, though the
	// recipient's next turn is a minute away; a new message to the
	// recipient waits that turn (here until its deadline, recording
	// nothing).
	cs2 := consent.New(r.pool, consent.Options{})
	slow, err := New(Config{Pool: r.pool, Invoker: inv, Consent: ConsentService{cs2}, Guard: ConsentService{cs2},
		Templates: fakeTemplates{}, RecipientGap: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	r.openWindow(t, "+393330000108")
	req := SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: "+393330000108", Kind: KindText, Text: "hi", IdempotencyKey: "g-8"}
	first, err := slow.Send(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	again, err := slow.Send(ctx, req)
	if err != nil || again.ID != first.ID || time.Since(start) > 5*time.Second {
		t.Errorf("repeated request: row %s (first %s), %v, after %v; want the first row at once", again.ID, first.ID, err, time.Since(start))
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req.IdempotencyKey = "g-9"
	if _, err := slow.Send(short, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a new message inside the recipient's gap: %v, want it to wait past its deadline", err)
	}
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND idempotency_key = 'g-9'`, r.tenantID).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d rows for the message that waited (%v), want 0", rows, err)
	}
	if calls := inv.calls(); len(calls) != 5 {
		t.Errorf("%d calls in all, want 5", len(calls))
	}
}
