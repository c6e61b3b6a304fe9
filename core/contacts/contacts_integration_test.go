package contacts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	st     *store.Store
	pool   *pgxpool.Pool
	svc    *contacts.Service
	tenant string
	conn   string
	conn2  string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ten, err := st.CreateTenant(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := contacts.New(contacts.Config{Pool: st.Pool(), DefaultRegion: "IT"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, pool: st.Pool(), svc: svc, tenant: ten.ID}
	e.conn = e.connection(t, ten.ID, "con_a")
	e.conn2 = e.connection(t, ten.ID, "con_b")
	return e
}

func (e *env) connection(t testing.TB, tenantID, id string) string {
	t.Helper()
	id = id + "_" + tenantID
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO connections (id, tenant_id, connector, name) VALUES ($1, $2, 'cloudapi', $1)`, id, tenantID); err != nil {
		t.Fatal(err)
	}
	return id
}

func inbound(tenantID, connID, from, wamid, typ string, at time.Time, extra map[string]any) dispatch.Event {
	p := map[string]any{"phone_number_id": "111", "from": from, "wa_id": from[1:], "profile_name": "Profile " + from,
		"message_id": wamid, "timestamp": at.UTC().Format(time.RFC3339), "type": typ}
	for k, v := range extra {
		p[k] = v
	}
	b, _ := json.Marshal(p)
	return dispatch.Event{TenantID: tenantID, ConnectionID: connID, Connector: "cloudapi", Type: contacts.EventMessageReceived, Payload: b, OccurredAt: at}
}

type convState struct {
	Unread      int
	LastInbound time.Time
	LastMessage time.Time
	Messages    int
}

func (e *env) state(t *testing.T, convID string) convState {
	t.Helper()
	var s convState
	if err := e.pool.QueryRow(context.Background(), `
		SELECT unread_count, last_inbound_at, last_message_at, (SELECT count(*) FROM messages WHERE conversation_id = $1)
		FROM conversations WHERE id = $1`, convID).Scan(&s.Unread, &s.LastInbound, &s.LastMessage, &s.Messages); err != nil {
		t.Fatal(err)
	}
	s.LastInbound, s.LastMessage = s.LastInbound.UTC(), s.LastMessage.UTC()
	return s
}

func TestIntegrationApplyInboundIdempotentAndOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	later := inbound(e.tenant, e.conn, "+393331234567", "wamid.2", "text", t0.Add(10*time.Minute), map[string]any{"text": "second"})
	earlier := inbound(e.tenant, e.conn, "+393331234567", "wamid.1", "text", t0, map[string]any{"text": "first"})

	r1, err := e.svc.ApplyInbound(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if r1.MessageID == "" || r1.ContactID == "" || r1.ConversationID == "" {
		t.Fatalf("first apply = %+v", r1)
	}
	want := convState{Unread: 1, LastInbound: t0.Add(10 * time.Minute), LastMessage: t0.Add(10 * time.Minute), Messages: 1}
	if diff := cmp.Diff(want, e.state(t, r1.ConversationID)); diff != "" {
		t.Fatalf("after first (-want +got):\n%s", diff)
	}
	// Redelivery: nothing changes.
	r2, err := e.svc.ApplyInbound(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if r2.MessageID != "" || r2.ConversationID != r1.ConversationID {
		t.Fatalf("redelivery = %+v, want no new message in %s", r2, r1.ConversationID)
	}
	if diff := cmp.Diff(want, e.state(t, r1.ConversationID)); diff != "" {
		t.Fatalf("after redelivery (-want +got):\n%s", diff)
	}
	// An older message arriving late is stored and counted, but moves no
	// time backwards.
	r3, err := e.svc.ApplyInbound(ctx, earlier)
	if err != nil {
		t.Fatal(err)
	}
	want.Unread, want.Messages = 2, 2
	if diff := cmp.Diff(want, e.state(t, r3.ConversationID)); diff != "" {
		t.Fatalf("after late message (-want +got):\n%s", diff)
	}
	// A reaction is stored as its own kind and is not unread.
	react := inbound(e.tenant, e.conn, "+393331234567", "wamid.3", "reaction", t0.Add(11*time.Minute), map[string]any{"reaction": map[string]any{"message_id": "wamid.x", "emoji": "👍"}})
	if _, err := e.svc.ApplyInbound(ctx, react); err != nil {
		t.Fatal(err)
	}
	want.Messages, want.LastInbound, want.LastMessage = 3, t0.Add(11*time.Minute), t0.Add(11*time.Minute)
	if diff := cmp.Diff(want, e.state(t, r1.ConversationID)); diff != "" {
		t.Fatalf("after reaction (-want +got):\n%s", diff)
	}
	msgs, _, err := e.svc.ListMessages(ctx, e.tenant, r1.ConversationID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range msgs {
		kinds = append(kinds, m.Kind+":"+m.Direction+":"+m.Status)
	}
	if diff := cmp.Diff([]string{"reaction:in:received", "text:in:received", "text:in:received"}, kinds); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	var content map[string]any
	if err := json.Unmarshal(msgs[1].Content, &content); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"text": "second"}, content); diff != "" {
		t.Errorf("content is not the payload without its envelope (-want +got):\n%s", diff)
	}
	// The contact got the WhatsApp id and the profile name.
	c, err := e.svc.GetContact(ctx, e.tenant, r1.ContactID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Phone != "+393331234567" || c.WaID != "393331234567" || c.Name != "Profile +393331234567" {
		t.Errorf("contact = %+v", c)
	}
	// A name an agent set is not overwritten by a profile name.
	if _, err := e.svc.UpdateContact(ctx, e.tenant, c.ID, contacts.ContactUpdate{Name: ptr("Maria Rossi")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393331234567", "wamid.4", "text", t0.Add(12*time.Minute), nil)); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.svc.GetContact(ctx, e.tenant, r1.ContactID); c.Name != "Maria Rossi" {
		t.Errorf("name = %q after inbound, want the agent's", c.Name)
	}
	// The same sender on another number is another conversation.
	r5, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn2, "+393331234567", "wamid.1", "text", t0, nil))
	if err != nil || r5.MessageID == "" || r5.ConversationID == r1.ConversationID || r5.ContactID != r1.ContactID {
		t.Errorf("other number = %+v, %v", r5, err)
	}
}

func TestIntegrationApplyInboundRejectsMalformed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, ev := range map[string]dispatch.Event{
		"bad phone": inbound(e.tenant, e.conn, "+39", "wamid.1", "text", time.Now(), nil),
		"no wamid":  inbound(e.tenant, e.conn, "+393331234567", "", "text", time.Now(), nil),
		"not json":  {TenantID: e.tenant, ConnectionID: e.conn, Connector: "cloudapi", Type: contacts.EventMessageReceived, Payload: json.RawMessage(`[1]`)},
		"gone conn": inbound(e.tenant, "con_gone", "+393331234567", "wamid.9", "text", time.Now(), nil),
	} {
		if _, err := e.svc.ApplyInbound(context.Background(), ev); !dispatch.IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
}

func TestIntegrationRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.svc.Route()
	ev := inbound(e.tenant, e.conn, "+393331234567", "wamid.1", "text", time.Now(), nil)
	ds, err := r.Route(context.Background(), ev)
	if err != nil || len(ds) != 1 || ds[0].Apply == nil {
		t.Fatalf("Route = %+v, %v", ds, err)
	}
	if err := ds[0].Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, other := range []dispatch.Event{
		{Type: "message.status", Connector: "cloudapi"},
		{Type: contacts.EventMessageReceived, Connector: "stripe"},
	} {
		if ds, err := r.Route(context.Background(), other); err != nil || len(ds) != 0 {
			t.Errorf("Route(%s/%s) = %+v, %v; want nothing", other.Connector, other.Type, ds, err)
		}
	}
}

func TestIntegrationConcurrentNewContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := e.conn
			if i%2 == 1 {
				conn = e.conn2
			}
			_, err := e.svc.ApplyInbound(context.Background(), inbound(e.tenant, conn, "+393339999999", fmt.Sprintf("wamid.%d", i), "text", time.Now(), nil))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var contactsN, convs, msgs, unread int
	if err := e.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM contacts WHERE tenant_id = $1), (SELECT count(*) FROM conversations WHERE tenant_id = $1),
		       (SELECT count(*) FROM messages WHERE tenant_id = $1), (SELECT sum(unread_count) FROM conversations WHERE tenant_id = $1)`,
		e.tenant).Scan(&contactsN, &convs, &msgs, &unread); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, n, n}, []int{contactsN, convs, msgs, unread}); diff != "" {
		t.Errorf("contacts, conversations, messages, unread (-want +got):\n%s", diff)
	}
	// Resolve on the same phone, written another way, is the same contact.
	c, err := e.svc.Resolve(context.Background(), e.tenant, "333 999 9999", contacts.ContactHints{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Phone != "+393339999999" {
		t.Errorf("resolved %+v", c)
	}
	if _, err := e.svc.Resolve(context.Background(), e.tenant, "nope", contacts.ContactHints{}); err == nil {
		t.Error("Resolve accepted a bad phone")
	}
}

func TestIntegrationLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	// A known contact with a conversation on conn, and tags.
	known, err := e.svc.Resolve(ctx, e.tenant, "+393330000001", contacts.ContactHints{Name: "Known"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateContact(ctx, e.tenant, known.ID, contacts.ContactUpdate{Tags: &[]string{"vip"}, ExternalIDs: map[string]string{"shopify_customer": "42"}}); err != nil {
		t.Fatal(err)
	}
	kr, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393330000001", "wamid.k1", "text", t0, nil))
	if err != nil {
		t.Fatal(err)
	}
	// An unknown sender writes on conn (same number: merged conversation)
	// and on conn2 (moved conversation), and gets a note.
	ur, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393330000002", "wamid.u1", "text", t0.Add(time.Hour), nil))
	if err != nil {
		t.Fatal(err)
	}
	ur2, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn2, "+393330000002", "wamid.u2", "text", t0.Add(time.Hour), nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddNote(ctx, e.tenant, ur.ConversationID, "", "probably Known's second phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddTag(ctx, e.tenant, ur.ContactID, "new-lead"); err != nil {
		t.Fatal(err)
	}

	got, err := e.svc.Link(ctx, e.tenant, ur.ContactID, known.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"new-lead", "vip"}, got.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if got.Name != "Known" || got.ExternalIDs["shopify_customer"] != "42" {
		t.Errorf("linked contact = %+v", got)
	}
	// conn: one conversation with both messages, the note and both unread.
	st := e.state(t, kr.ConversationID)
	if st.Messages != 2 || st.Unread != 2 || !st.LastInbound.Equal(t0.Add(time.Hour)) {
		t.Errorf("merged conversation = %+v", st)
	}
	notes, err := e.svc.ListNotes(ctx, e.tenant, kr.ConversationID)
	if err != nil || len(notes) != 1 {
		t.Errorf("notes = %+v, %v", notes, err)
	}
	if _, err := e.svc.GetConversation(ctx, e.tenant, ur.ConversationID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("merged-away conversation still there: %v", err)
	}
	// conn2: the conversation moved to the known contact.
	cv2, err := e.svc.GetConversation(ctx, e.tenant, ur2.ConversationID)
	if err != nil || cv2.ContactID != known.ID {
		t.Errorf("moved conversation = %+v, %v", cv2, err)
	}
	var stray int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE contact_id = $1`, ur.ContactID).Scan(&stray); err != nil || stray != 0 {
		t.Errorf("messages left on the old contact: %d, %v", stray, err)
	}
	// The old contact is kept as a record; its phone resolves to known.
	old, err := e.svc.GetContact(ctx, e.tenant, ur.ContactID)
	if err != nil || old.MergedInto != known.ID || old.MergedAt == nil {
		t.Errorf("old contact = %+v, %v", old, err)
	}
	res, err := e.svc.Resolve(ctx, e.tenant, "+393330000002", contacts.ContactHints{})
	if err != nil || res.ID != known.ID {
		t.Errorf("Resolve(old phone) = %+v, %v; want %s", res, err, known.ID)
	}
	r, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393330000002", "wamid.u3", "text", t0.Add(90*time.Minute), nil))
	if err != nil || r.ContactID != known.ID || r.ConversationID != kr.ConversationID {
		t.Errorf("inbound after link = %+v, %v", r, err)
	}
	// Lists leave the old contact out; linking again is refused.
	list, _, err := e.svc.ListContacts(ctx, e.tenant, contacts.ContactFilter{})
	if err != nil || len(list) != 1 || list[0].ID != known.ID {
		t.Errorf("ListContacts = %+v, %v", list, err)
	}
	if _, err := e.svc.Link(ctx, e.tenant, ur.ContactID, known.ID, ""); !errors.Is(err, contacts.ErrAlreadyMerged) {
		t.Errorf("second link: %v", err)
	}
	if _, err := e.svc.Link(ctx, e.tenant, known.ID, known.ID, ""); err == nil {
		t.Error("linking a contact into itself was accepted")
	}
}

func TestIntegrationWindowAndAssignment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	last := time.Now().UTC().Truncate(time.Second).Add(-23 * time.Hour)
	r, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393331112222", "wamid.1", "text", last, nil))
	if err != nil {
		t.Fatal(err)
	}
	until, open, err := e.svc.Window(ctx, e.tenant, r.ContactID, e.conn, last.Add(23*time.Hour))
	if err != nil || !open || !until.Equal(last.Add(24*time.Hour)) {
		t.Errorf("Window = %v, %v, %v", until, open, err)
	}
	if _, open, _ := e.svc.Window(ctx, e.tenant, r.ContactID, e.conn, last.Add(24*time.Hour)); open {
		t.Error("window open at exactly 24 h")
	}
	if until, open, err := e.svc.Window(ctx, e.tenant, r.ContactID, e.conn2, time.Now()); open || !until.IsZero() || err != nil {
		t.Errorf("window on a number never written to = %v, %v, %v", until, open, err)
	}
	open1 := true
	items, _, err := e.svc.ListConversations(ctx, e.tenant, contacts.ConversationFilter{WindowOpen: &open1})
	if err != nil || len(items) != 1 {
		t.Errorf("window_open=true = %d, %v", len(items), err)
	}
	items, _, _ = e.svc.ListConversations(ctx, e.tenant, contacts.ConversationFilter{WindowOpen: &open1, Now: last.Add(25 * time.Hour)})
	if len(items) != 0 {
		t.Errorf("window_open=true a day later = %d", len(items))
	}

	u, err := e.st.CreateUser(ctx, e.tenant, store.NewUser{Email: "op@example.com", Name: "Op", Role: store.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Assign(ctx, e.tenant, r.ConversationID, "usr_nope"); err == nil {
		t.Error("assigned to a user that does not exist")
	}
	if err := e.svc.Assign(ctx, e.tenant, r.ConversationID, u.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.svc.IsAssigned(ctx, e.tenant, r.ConversationID, u.ID); !ok || err != nil {
		t.Errorf("IsAssigned = %v, %v", ok, err)
	}
	if err := e.svc.Assign(ctx, e.tenant, "cv_nope", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("assign unknown conversation: %v", err)
	}
	// Conversation (upsert) returns the same conversation.
	cv, err := e.svc.Conversation(ctx, e.tenant, r.ContactID, e.conn)
	if err != nil || cv.ID != r.ConversationID || cv.AssigneeID != u.ID {
		t.Errorf("Conversation = %+v, %v", cv, err)
	}
}

func TestWindowAt(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		last *time.Time
		now  time.Time
		want contacts.Window
	}{
		"never wrote":   {nil, base, contacts.Window{}},
		"just wrote":    {&base, base, contacts.Window{Open: true, OpenUntil: base.Add(24 * time.Hour), SecondsLeft: 86400}},
		"one sec left":  {&base, base.Add(24*time.Hour - time.Second), contacts.Window{Open: true, OpenUntil: base.Add(24 * time.Hour), SecondsLeft: 1}},
		"half sec left": {&base, base.Add(24*time.Hour - 500*time.Millisecond), contacts.Window{Open: true, OpenUntil: base.Add(24 * time.Hour), SecondsLeft: 0}},
		"closed at 24h": {&base, base.Add(24 * time.Hour), contacts.Window{OpenUntil: base.Add(24 * time.Hour)}},
		"long closed":   {&base, base.Add(72 * time.Hour), contacts.Window{OpenUntil: base.Add(24 * time.Hour)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, contacts.WindowAt(tc.last, tc.now)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntegrationHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	hub := contacts.NewHub(e.pool, nil)
	defer hub.Close()
	ch, cancel := hub.Subscribe(ctx, e.tenant)
	defer cancel()
	other, cancelOther := hub.Subscribe(ctx, "ten_other")
	defer cancelOther()
	r, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393334445555", "wamid.1", "text", time.Now(), nil))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch:
		if ev.Kind != "message" || ev.ConversationID != r.ConversationID || ev.MessageID != r.MessageID || !ev.AssigneeKnown || ev.AssigneeID != nil {
			t.Errorf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	// A redelivery notifies nothing; the other tenant hears nothing.
	if _, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, "+393334445555", "wamid.1", "text", time.Now(), nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch:
		t.Errorf("redelivery notified %+v", ev)
	case ev := <-other:
		t.Errorf("other tenant got %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// BenchmarkApplyInbound applies inbound messages from many goroutines, each
// from a distinct sender (a new contact and conversation) or a repeat
// sender, against the real Postgres, and reports applies/s.
func BenchmarkApplyInbound(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	// A pool sized like a serving process's (pgxpool's default is only
	// max(4, NumCPU)), so applies wait on Postgres, not on pool slots.
	cfg := e.pool.Config().Copy()
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	svc, err := contacts.New(contacts.Config{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.SetParallelism(8) // 8 x GOMAXPROCS in-flight applies, like a busy dispatcher
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			// Half the messages come from returning senders.
			phone := fmt.Sprintf("+39333%07d", i%5000+int64(i%2)*1_000_000)
			if _, err := svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, phone, fmt.Sprintf("wamid.b%d", i), "text", time.Now(), map[string]any{"text": "hello"})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "applies/s")
	b.Logf("%d applies in %v = %.0f applies/s on %d CPUs (GOMAXPROCS %d)", b.N, elapsed, float64(b.N)/elapsed.Seconds(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
}

func ptr[T any](v T) *T { return &v }
