package contacts

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/batch"
	"github.com/ponte-hub/ponte/core/store"
)

// inboundGroupSQL applies a group of inbound messages from senders known by
// phone in one statement. Its parameters are arrays, one element per
// message: $1 tenant, $2 connection, $3 phone, $4 wa_id or ”, $5 profile
// name or ”, $6 new contact id, $7 new conversation id, $8 new message id,
// $9 kind, $10 content, $11 wamid, $12 message time, $13 inbound time or
// NULL, $14 unread increment (0 or 1). It returns, per message in the order
// given (ord from 1), the contact id, the conversation id and the message id
// ("" when the wamid was already stored: a redelivery), and notifies live
// inboxes of each new message.
//
// The steps, as [inboundByPhoneSQL] and [countSQL] take them for one message:
//   - senders: one contact upsert per (tenant, phone), in that order so
//     that groups lock contacts in one order; a linked contact resolves to
//     the contact it was linked into.
//   - convs: each (tenant, contact, connection) is given its conversation:
//     the one that exists, else a new id (one per key, for every message of
//     the key in the group).
//   - m: the ledger rows, unless the wamid is already stored on the
//     connection (a repeated wamid inside the group is stored once).
//   - cv: the conversations upserted after the messages, so that they count
//     as unread only the messages this statement stored, and move their
//     activity times only forward (GREATEST). Foreign keys are checked at
//     the end of the statement, so the messages may name a conversation
//     inserted after them.
//
// A conversation created by another transaction after this statement's
// snapshot makes its messages name an id that was never inserted: a foreign
// key violation, which fails the whole group; its members are then applied
// one by one ([Service.applyOne]), as they are after any failure.
const inboundGroupSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	                     $9::text[], $10::jsonb[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::int[])
		WITH ORDINALITY AS i(tenant_id, connection_id, phone, wa_id, name, new_contact_id, new_conversation_id, message_id,
		                     kind, content, wamid, at, inbound_at, unread, ord)
), senders AS (
	SELECT DISTINCT ON (tenant_id, phone) tenant_id, phone, new_contact_id, wa_id, name
	FROM input ORDER BY tenant_id, phone, ord
), up AS (
	INSERT INTO contacts AS c (id, tenant_id, phone, wa_id, name)
	SELECT new_contact_id, tenant_id, phone, NULLIF(wa_id, ''), NULLIF(name, '') FROM senders ORDER BY tenant_id, phone
	ON CONFLICT (tenant_id, phone) DO UPDATE SET ` + upsertContactSet + `
	RETURNING c.tenant_id, c.phone, COALESCE(c.merged_into, c.id) AS id
), sent AS (
	SELECT i.*, up.id AS contact_id FROM input i JOIN up ON up.tenant_id = i.tenant_id AND up.phone = i.phone
), keys AS (
	SELECT DISTINCT ON (tenant_id, contact_id, connection_id) tenant_id, contact_id, connection_id, new_conversation_id
	FROM sent ORDER BY tenant_id, contact_id, connection_id, ord
), convs AS (
	SELECT k.tenant_id, k.contact_id, k.connection_id, COALESCE(e.id, k.new_conversation_id) AS id
	FROM keys k LEFT JOIN conversations e
		ON e.tenant_id = k.tenant_id AND e.contact_id = k.contact_id AND e.connection_id = k.connection_id
), placed AS (
	SELECT s.*, cs.id AS conversation_id FROM sent s
	JOIN convs cs ON cs.tenant_id = s.tenant_id AND cs.contact_id = s.contact_id AND cs.connection_id = s.connection_id
), m AS (
	INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content,
	                      provider_message_id, status, created_at)
	SELECT message_id, tenant_id, conversation_id, contact_id, connection_id, 'in', kind, content, wamid, 'received', at
	FROM placed ORDER BY ord
	ON CONFLICT (connection_id, provider_message_id) DO NOTHING
	RETURNING id
), activity AS (
	SELECT p.conversation_id, max(p.inbound_at) AS inbound_at, max(p.at) AS at, count(m.id) AS stored,
	       COALESCE(sum(p.unread) FILTER (WHERE m.id IS NOT NULL), 0)::int AS unread
	FROM placed p LEFT JOIN m ON m.id = p.message_id
	GROUP BY p.conversation_id
), cv AS (
	INSERT INTO conversations AS cv (id, tenant_id, contact_id, connection_id, last_inbound_at, last_message_at, unread_count)
	SELECT cs.id, cs.tenant_id, cs.contact_id, cs.connection_id, a.inbound_at, a.at, a.unread
	FROM convs cs JOIN activity a ON a.conversation_id = cs.id
	ORDER BY cs.tenant_id, cs.contact_id, cs.connection_id
	ON CONFLICT (tenant_id, contact_id, connection_id) DO UPDATE SET
		last_inbound_at = GREATEST(cv.last_inbound_at, EXCLUDED.last_inbound_at),
		last_message_at = GREATEST(cv.last_message_at, EXCLUDED.last_message_at),
		unread_count = cv.unread_count + EXCLUDED.unread_count,
		updated_at = CASE WHEN (SELECT a.stored FROM activity a WHERE a.conversation_id = EXCLUDED.id) > 0
		                  THEN now() ELSE cv.updated_at END
	RETURNING cv.id, cv.tenant_id, cv.assignee_id
)
SELECT p.ord, p.contact_id, p.conversation_id, COALESCE(m.id, ''),
	(CASE WHEN m.id IS NOT NULL THEN pg_notify('` + NotifyChannel + `', json_build_object(
		'tenant_id', cv.tenant_id, 'conversation_id', cv.id, 'message_id', m.id,
		'kind', 'message', 'assignee_id', cv.assignee_id)::text)::text END) IS NOT NULL
FROM placed p LEFT JOIN m ON m.id = p.message_id LEFT JOIN cv ON cv.id = p.conversation_id
ORDER BY p.ord`

const (
	// inboundGroupWorkers is how many groups are applied at once: two, so
	// one group gathers while the other's statement runs.
	inboundGroupWorkers = 2
	maxInboundGroup     = 128
	// inboundGroupTimeout bounds a group's statement.
	inboundGroupTimeout = 30 * time.Second
)

// inboundGrouper applies concurrent inbound messages in groups, as a
// database groups concurrent commits: every ApplyInbound of a sender known
// by phone hands its message here and waits, and each of a few workers
// takes whatever has queued up while its previous group ran. A lone message
// is a group of one, with no added wait. A group costs one round trip, one
// statement and one commit however many messages it holds; at 2,000
// messages a second, groups of 16 took a third of the Postgres CPU a message
// that one statement pair a message did.
type inboundGrouper struct {
	s     *Service
	batch *batch.Batcher[*groupedInbound]
}

type groupedInbound struct {
	ctx  context.Context
	in   inboundMessage
	done chan inboundOutcome
}

type inboundOutcome struct {
	res InboundResult
	err error
}

func newInboundGrouper(s *Service) *inboundGrouper {
	g := &inboundGrouper{s: s}
	g.batch = batch.New(inboundGroupWorkers, maxInboundGroup, g.applyLive)
	return g
}

// apply applies one message in a group and returns its outcome.
func (g *inboundGrouper) apply(ctx context.Context, in inboundMessage) (InboundResult, error) {
	gi := &groupedInbound{ctx: ctx, in: in, done: make(chan inboundOutcome, 1)}
	if !g.batch.Submit(gi) {
		return g.s.applyOne(ctx, in)
	}
	// Once queued the message is the group's: it may be stored whatever ctx
	// does, so the caller learns what became of it.
	o := <-gi.done
	return o.res, o.err
}

// applyLive applies a gathered group, leaving out the messages whose
// callers gave up while they queued (nothing stored: the dispatcher retries
// them).
func (g *inboundGrouper) applyLive(group []*groupedInbound) {
	live := batch.Live(group, func(gi *groupedInbound) context.Context { return gi.ctx }, func(gi *groupedInbound, err error) {
		gi.done <- inboundOutcome{err: fmt.Errorf("waiting to store inbound message: %w", err)}
	})
	if len(live) == 0 {
		return
	}
	results, err := g.s.applyGroup(live)
	if err == nil {
		for i, gi := range live {
			gi.done <- inboundOutcome{res: results[i]}
		}
		return
	}
	// The statement failed as a whole (a member's connection deleted, a
	// conversation created concurrently, a deadlock with another writer):
	// each member on its own, so the failure stays with its cause and the
	// error with the member it concerns.
	if len(live) > 1 {
		g.s.log.Debug("contacts: applying an inbound group failed; applying its messages one by one",
			"messages", len(live), "error", err)
	}
	var wg sync.WaitGroup
	for _, gi := range live {
		wg.Go(func() {
			res, err := g.s.applyOne(gi.ctx, gi.in)
			gi.done <- inboundOutcome{res: res, err: err}
		})
	}
	wg.Wait()
}

// applyGroup runs inboundGroupSQL for the group in one transaction, sent
// as one pgx batch, with asynchronous commit (see applyOne).
func (s *Service) applyGroup(group []*groupedInbound) ([]InboundResult, error) {
	n := len(group)
	text := func() []string { return make([]string, n) }
	tenants, conns, phones, waIDs, names, contactIDs, convIDs, msgIDs, kinds, contents, wamids :=
		text(), text(), text(), text(), text(), text(), text(), text(), text(), text(), text()
	ats := make([]time.Time, n)
	inboundAts := make([]*time.Time, n)
	unread := make([]int32, n)
	for i, gi := range group {
		in := gi.in
		tenants[i], conns[i], phones[i], waIDs[i], names[i] = in.ev.TenantID, in.ev.ConnectionID, *in.phone, in.waID, in.name
		contactIDs[i], convIDs[i], msgIDs[i] = store.NewID("ct"), store.NewID("cv"), store.NewID("msg")
		kinds[i], contents[i], wamids[i] = in.kind, string(in.content), in.wamid
		ats[i], inboundAts[i], unread[i] = in.at, in.inboundAt, int32(in.unread)
	}
	results := make([]InboundResult, n)
	got := 0
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(inboundGroupSQL, tenants, conns, phones, waIDs, names, contactIDs, convIDs, msgIDs, kinds, contents, wamids,
		ats, inboundAts, unread).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var ord int
			var r InboundResult
			var notified bool
			if err := rows.Scan(&ord, &r.ContactID, &r.ConversationID, &r.MessageID, &notified); err != nil {
				return err
			}
			if ord < 1 || ord > n {
				return fmt.Errorf("row for message %d of a group of %d", ord, n)
			}
			results[ord-1] = r
			got++
		}
		return rows.Err()
	})
	b.Queue("COMMIT")
	ctx, cancel := context.WithTimeout(context.Background(), inboundGroupTimeout)
	defer cancel()
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("storing %d inbound messages: %w", n, err)
	}
	if got != n {
		// Cannot happen: every member has a sender and a conversation. Were
		// it to, the group is committed and applying each member again
		// changes nothing but finds its ids.
		return nil, fmt.Errorf("storing %d inbound messages: %d rows came back", n, got)
	}
	return results, nil
}
