package contacts_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/store/storetest"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// groupScenario is a group of inbound messages with every case the group
// statement must treat as applying them one by one does: a sender with a
// conversation already, a new sender writing twice and on two numbers, a
// reaction (not unread), a system notice (opens no window), a wamid already
// stored, a wamid repeated inside the group, a sender linked into another
// contact, and a late message older than the conversation's activity.
type groupScenario struct {
	t0     time.Time
	before []func(tenant, conn, conn2 string) dispatch.Event
	group  []func(tenant, conn, conn2 string) dispatch.Event
}

func newGroupScenario() groupScenario {
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	msg := func(phone, wamid, kind string, at time.Time, second bool) func(tenant, conn, conn2 string) dispatch.Event {
		return func(tenant, conn, conn2 string) dispatch.Event {
			if second {
				conn = conn2
			}
			extra := map[string]any{"text": "hello " + wamid}
			if kind == "reaction" {
				extra = map[string]any{"reaction": map[string]any{"message_id": "wamid.x", "emoji": "👍"}}
			}
			return inbound(tenant, conn, phone, wamid, kind, at, extra)
		}
	}
	return groupScenario{
		t0: t0,
		before: []func(tenant, conn, conn2 string) dispatch.Event{
			msg("+393330000001", "wamid.old1", "text", t0, false),
			msg("+393330000005", "wamid.old5", "text", t0, false), // linked into +393330000006 below
			msg("+393330000006", "wamid.old6", "text", t0, false),
		},
		group: []func(tenant, conn, conn2 string) dispatch.Event{
			msg("+393330000001", "wamid.g1", "text", t0.Add(10*time.Minute), false),
			msg("+393330000002", "wamid.g2", "text", t0.Add(time.Minute), false),
			msg("+393330000002", "wamid.g3", "text", t0.Add(2*time.Minute), false),
			msg("+393330000002", "wamid.g4", "text", t0.Add(3*time.Minute), true),
			msg("+393330000003", "wamid.g5", "reaction", t0.Add(4*time.Minute), false),
			msg("+393330000004", "wamid.g6", "system", t0.Add(5*time.Minute), false),
			msg("+393330000001", "wamid.old1", "text", t0, false),
			msg("+393330000002", "wamid.g2", "text", t0.Add(time.Minute), false),
			msg("+393330000005", "wamid.g7", "text", t0.Add(6*time.Minute), false),
			msg("+393330000001", "wamid.g8", "text", t0.Add(-5*time.Minute), false),
		},
	}
}

// setUp applies the scenario's earlier messages one by one and links
// +393330000005 into +393330000006; it returns the group's events.
func (sc groupScenario) setUp(t *testing.T, e *env, tenant, conn, conn2 string) []dispatch.Event {
	t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for _, f := range sc.before {
		ev := f(tenant, conn, conn2)
		r, err := e.svc.ApplyInboundOne(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		ids[phoneOf(ev)] = r.ContactID
	}
	if _, err := e.svc.Link(ctx, tenant, ids["+393330000005"], ids["+393330000006"], ""); err != nil {
		t.Fatal(err)
	}
	evs := make([]dispatch.Event, len(sc.group))
	for i, f := range sc.group {
		evs[i] = f(tenant, conn, conn2)
	}
	return evs
}

func phoneOf(ev dispatch.Event) string {
	_, rest, _ := strings.Cut(string(ev.Payload), `"from":"`)
	phone, _, _ := strings.Cut(rest, `"`)
	return phone
}

// tenantState is a tenant's contacts and conversations, named by phone and
// by the connection's name, so two tenants compare.
type tenantState struct {
	Contacts      []string
	Conversations []string
}

func (e *env) tenantState(t *testing.T, tenant string) tenantState {
	t.Helper()
	var s tenantState
	rows, err := e.pool.Query(context.Background(), `
		SELECT c.phone || ' wa=' || COALESCE(c.wa_id, '') || ' name=' || COALESCE(c.name, '') ||
		       ' merged=' || COALESCE((SELECT m.phone FROM contacts m WHERE m.id = c.merged_into), '')
		FROM contacts c WHERE c.tenant_id = $1 ORDER BY c.phone`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if s.Contacts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	rows, err = e.pool.Query(context.Background(), `
		SELECT c.phone || ' on ' || n.name || ' unread=' || cv.unread_count ||
		       ' inbound=' || COALESCE(to_char(cv.last_inbound_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), '-') ||
		       ' last=' || COALESCE(to_char(cv.last_message_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), '-') ||
		       ' messages=' || (SELECT count(*) FROM messages m WHERE m.conversation_id = cv.id) ||
		       ' wamids=' || (SELECT string_agg(m.provider_message_id, ',' ORDER BY m.provider_message_id) FROM messages m WHERE m.conversation_id = cv.id)
		FROM conversations cv JOIN contacts c ON c.id = cv.contact_id JOIN connections n ON n.id = cv.connection_id
		WHERE cv.tenant_id = $1 ORDER BY 1`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if s.Conversations, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	return s
}

// listen collects the live inbox notifications of a tenant.
func listen(t *testing.T, e *env) func(wait time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+contacts.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return func(wait time.Duration) []string {
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, wait)
			n, err := conn.WaitForNotification(wctx)
			cancel()
			if err != nil {
				return got
			}
			got = append(got, n.Payload)
		}
	}
}

// TestIntegrationInboundGroupMatchesOneByOne: a group applied by its one
// statement leaves the same contacts, conversations, messages and results
// as the same messages applied one by one, notifies each new message once,
// and a redelivery of the whole group changes nothing.
func TestIntegrationInboundGroupMatchesOneByOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	other, err := e.st.CreateTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	// The second tenant's connections have the first's names.
	oconn, oconn2 := e.connection(t, other.ID, "con_a"), e.connection(t, other.ID, "con_b")
	for _, id := range []string{e.conn, oconn} {
		if _, err := e.pool.Exec(ctx, `UPDATE connections SET name = 'first' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{e.conn2, oconn2} {
		if _, err := e.pool.Exec(ctx, `UPDATE connections SET name = 'second' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	sc := newGroupScenario()
	grouped := sc.setUp(t, e, e.tenant, e.conn, e.conn2)
	single := sc.setUp(t, e, other.ID, oconn, oconn2)

	notes := listen(t, e)
	got, err := e.svc.ApplyInboundGroup(grouped)
	if err != nil {
		t.Fatal(err)
	}
	var want []contacts.InboundResult
	for _, ev := range single {
		r, err := e.svc.ApplyInboundOne(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	// Ids differ between tenants; what must agree is which messages were
	// stored and which results share a contact or a conversation.
	shape := func(rs []contacts.InboundResult) []string {
		var out []string
		for i, r := range rs {
			s := fmt.Sprintf("%d stored=%t", i, r.MessageID != "")
			for j := range i {
				if rs[j].ContactID == r.ContactID {
					s += fmt.Sprintf(" contact-of=%d", j)
					break
				}
			}
			for j := range i {
				if rs[j].ConversationID == r.ConversationID {
					s += fmt.Sprintf(" conversation-of=%d", j)
					break
				}
			}
			out = append(out, s)
		}
		return out
	}
	if diff := cmp.Diff(shape(want), shape(got)); diff != "" {
		t.Errorf("group results differ from one by one (-one by one +group):\n%s", diff)
	}
	for i, r := range got {
		if r.ContactID == "" || r.ConversationID == "" {
			t.Errorf("result %d = %+v, want ids", i, r)
		}
	}
	groupState, oneState := e.tenantState(t, e.tenant), e.tenantState(t, other.ID)
	if diff := cmp.Diff(oneState, groupState); diff != "" {
		t.Errorf("state after the group differs from one by one (-one by one +group):\n%s", diff)
	}
	if len(groupState.Conversations) != 6 {
		t.Errorf("conversations:\n%s", strings.Join(groupState.Conversations, "\n"))
	}

	// Each message the group stored was notified once, the group's tenant
	// only (the other tenant's are on the same channel).
	stored := 0
	for _, r := range got {
		if r.MessageID != "" {
			stored++
		}
	}
	var mine []string
	for _, n := range notes(2 * time.Second) {
		if strings.Contains(n, e.tenant) {
			mine = append(mine, n)
		}
	}
	if len(mine) != stored || stored != 8 {
		t.Errorf("%d notifications for %d stored messages (want 8):\n%s", len(mine), stored, strings.Join(mine, "\n"))
	}

	// The whole group again: nothing stored, nothing counted, no notice.
	again, err := e.svc.ApplyInboundGroup(grouped)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.MessageID != "" || r.ConversationID != got[i].ConversationID || r.ContactID != got[i].ContactID {
			t.Errorf("redelivered %d = %+v, want no message in %s", i, r, got[i].ConversationID)
		}
	}
	if diff := cmp.Diff(groupState, e.tenantState(t, e.tenant)); diff != "" {
		t.Errorf("redelivering the group changed the state (-before +after):\n%s", diff)
	}
	for _, n := range notes(500 * time.Millisecond) {
		if strings.Contains(n, e.tenant) {
			t.Errorf("redelivery notified %s", n)
		}
	}
}

// TestIntegrationInboundGroupFailureAppliesOneByOne: a member the group's
// statement cannot store (its connection is gone) fails the statement; the
// other members are then stored one by one and the bad one alone gets a
// permanent error.
func TestIntegrationInboundGroupFailureAppliesOneByOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().Add(-time.Minute)
	evs := []dispatch.Event{
		inbound(e.tenant, e.conn, "+393331110001", "wamid.f1", "text", now, nil),
		inbound(e.tenant, "con_gone", "+393331110002", "wamid.f2", "text", now, nil),
		inbound(e.tenant, e.conn, "+393331110003", "wamid.f3", "text", now, nil),
	}
	if _, err := e.svc.ApplyInboundGroup(evs); err == nil {
		t.Fatal("the group statement stored a message of a connection that does not exist")
	}
	res, errs, err := e.svc.ApplyInboundGathered(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		switch {
		case i == 1 && !dispatch.IsPermanent(err):
			t.Errorf("gone connection: err = %v, want permanent", err)
		case i != 1 && (err != nil || res[i].MessageID == ""):
			t.Errorf("member %d: %+v, %v; want stored", i, res[i], err)
		}
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE tenant_id = $1`, e.tenant).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d messages stored (%v), want 2", n, err)
	}
}

// TestIntegrationConcurrentInboundGroups: many callers at once, as the
// dispatcher's deliveries are, with senders writing on two numbers and
// every message delivered twice: each message is stored once and counted
// once, whatever groups formed.
func TestIntegrationConcurrentInboundGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const senders, perSender, callers = 12, 20, 48
	var evs []dispatch.Event
	for i := range senders * perSender {
		conn := e.conn
		if (i/senders)%2 == 1 {
			conn = e.conn2
		}
		ev := inbound(e.tenant, conn, fmt.Sprintf("+39333222%04d", i%senders), fmt.Sprintf("wamid.c%d", i), "text",
			time.Now().Add(-time.Duration(i)*time.Second), nil)
		evs = append(evs, ev, ev)
	}
	work := make(chan dispatch.Event)
	var wg sync.WaitGroup
	errs := make(chan error, len(evs))
	for range callers {
		wg.Go(func() {
			for ev := range work {
				if _, err := e.svc.ApplyInbound(context.Background(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, ev := range evs {
		work <- ev
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var contactsN, convs, msgs, unread int
	if err := e.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM contacts WHERE tenant_id = $1), (SELECT count(*) FROM conversations WHERE tenant_id = $1),
		       (SELECT count(*) FROM messages WHERE tenant_id = $1), (SELECT COALESCE(sum(unread_count), 0) FROM conversations WHERE tenant_id = $1)`,
		e.tenant).Scan(&contactsN, &convs, &msgs, &unread); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{senders, 2 * senders, senders * perSender, senders * perSender}, []int{contactsN, convs, msgs, unread}); diff != "" {
		t.Errorf("contacts, conversations, messages, unread (-want +got):\n%s", diff)
	}
}

// TestIntegrationInboundGroupPlanUsesKeys: the group statement, planned on
// empty tables, still finds contacts and conversations by key once they
// have grown (testenv.CheckCachedPlans).
func TestIntegrationInboundGroupPlanUsesKeys(t *testing.T) {
	e := newEnv(t)
	grow := func() { storetest.SeedMessages(t, e.pool, e.tenant, e.conn, 5000, "in") }
	arr := func(v string) string { return "ARRAY[" + v + "]" }
	at := "'" + time.Now().UTC().Format(time.RFC3339) + "'::timestamptz"
	testenv.CheckCachedPlans(t, e.pool, grow, testenv.CachedPlanCheck{
		Name: "inbound group",
		SQL:  contacts.InboundGroupSQL,
		Types: []string{"text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]", "text[]",
			"text[]", "jsonb[]", "text[]", "timestamptz[]", "timestamptz[]", "int[]"},
		Args: []string{arr("'" + e.tenant + "'"), arr("'" + e.conn + "'"), arr("'+393330004321'"), arr("'393330004321'"),
			arr("'P'"), arr("'" + store.NewID("ct") + "'"), arr("'" + store.NewID("cv") + "'"), arr("'" + store.NewID("msg") + "'"),
			arr("'text'"), arr(`'{"text":"hi"}'::jsonb`), arr("'wamid.plan'"), arr(at), arr(at), arr("1")},
		MaxBuffers: 150,
	})
}
