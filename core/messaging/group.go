package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/batch"
	"github.com/ponte-hub/ponte/core/consent"
)

// holdGrouper takes the first attempts of new sends through the consent
// hold in groups, as a database groups concurrent commits: every send that
// reached its turn hands its plan here and waits, and a few workers each
// take whatever has queued up while their previous group ran. A group costs
// one round trip and the statements of a single send: one INSERT of every
// ledger row (status sending), its COMMIT, one statement taking every
// contact's consent lock, one checking them all, the provider calls in
// parallel under the locks, and the ROLLBACK that releases them. A lone send
// is a group of one, with no added wait.
type holdGrouper struct {
	s     *Service
	guard GroupGuard
	batch *batch.Batcher[*groupSend]
}

// groupSend is one send waiting for its group.
type groupSend struct {
	ctx  context.Context
	p    *plan
	done chan groupResult
}

// groupResult is what came of a send in its group. existing reports that
// the idempotency key was taken (nothing written, nothing called); writeErr
// that the row could not be written (nothing written, nothing called);
// holdErr, with the row written, that the hold failed (nothing called
// unless called is set); paceErr, with the row written and nothing called,
// that the send's context ended while it waited for the number's
// throughput.
type groupResult struct {
	row      Message
	existing bool
	writeErr error
	holdErr  error
	paceErr  error
	refusal  *RefusedError
	called   bool
	out      json.RawMessage
	callErr  error
}

const (
	// groupWorkers is how many groups may be under the hold at once: two,
	// so that while one group's calls leave at the number's rate the next
	// group commits its rows and takes its locks. More workers make smaller
	// groups and cost more per send (at 1,000 sends a second, 8 workers
	// averaged 3 sends a group and 1.13 ms of Postgres CPU a send, 2
	// workers 0.7 ms).
	groupWorkers = 2
	maxGroup     = 64
	// groupTimeout bounds a group's statements (not its calls, which run
	// under each send's own context).
	groupTimeout = 30 * time.Second
)

func newHoldGrouper(s *Service, guard GroupGuard) *holdGrouper {
	g := &holdGrouper{s: s, guard: guard}
	g.batch = batch.New(groupWorkers, maxGroup, g.runLive)
	return g
}

// hold runs one new send through a group. After close the send is a group
// of its own, run in the caller's goroutine.
func (g *holdGrouper) hold(ctx context.Context, p *plan) groupResult {
	gs := &groupSend{ctx: ctx, p: p, done: make(chan groupResult, 1)}
	if !g.batch.Submit(gs) {
		g.runGroup([]*groupSend{gs})
	}
	// Once queued the send is the group's: its row may be written and its
	// call made, so it waits for the answer whatever ctx does (the call
	// itself runs under ctx and ends with it).
	return <-gs.done
}

func (g *holdGrouper) close() { g.batch.Close() }

// runLive runs a gathered group, leaving out the sends whose callers gave
// up while they queued: nothing recorded, nothing sent, so those callers
// may retry with their keys.
func (g *holdGrouper) runLive(group []*groupSend) {
	live := batch.Live(group, func(gs *groupSend) context.Context { return gs.ctx }, func(gs *groupSend, err error) {
		gs.done <- groupResult{writeErr: fmt.Errorf("waiting for a send slot: %w", err)}
	})
	if len(live) > 0 {
		g.runGroup(live)
	}
}

// insertSendingSQL writes the ledger rows of a group's new sends, status
// sending, skipping those whose tenant's idempotency key is taken, and
// returns the rows written.
const insertSendingSQL = `
INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, purpose,
                      idempotency_key, status, author_id, provider_message_id)
SELECT u.id, u.tenant_id, u.conversation_id, u.contact_id, u.connection_id, 'out', u.kind, u.content, NULLIF(u.purpose, ''),
       u.idempotency_key, 'sending', NULLIF(u.author_id, ''), NULLIF(u.provider_message_id, '')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[],
            $10::text[], $11::text[])
     AS u(id, tenant_id, conversation_id, contact_id, connection_id, kind, content, purpose, idempotency_key, author_id,
          provider_message_id)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING ` + messageColumns

// runGroup takes a group through the hold and answers each send. When the
// rows cannot be written together (one send's row breaks a constraint, say),
// each send is tried in a group of its own, so one bad row fails only its
// own send.
func (g *holdGrouper) runGroup(group []*groupSend) {
	results, committed := g.holdGroup(group)
	if !committed && len(group) > 1 {
		var wg sync.WaitGroup
		for _, gs := range group {
			wg.Go(func() { g.runGroup([]*groupSend{gs}) })
		}
		wg.Wait()
		return
	}
	for i, gs := range group {
		gs.done <- results[i]
	}
}

// holdGroup is one group's round trip: the rows, the hold, the checks and
// the allowed calls. committed reports whether the rows' statement
// committed; when it did not, nothing was written or called.
func (g *holdGrouper) holdGroup(group []*groupSend) ([]groupResult, bool) {
	n := len(group)
	cols := make([][]string, 11)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	members := make([]consent.GroupMember, n)
	now := g.s.clock.Now()
	for i, gs := range group {
		r := gs.p.row
		for j, v := range []string{r.ID, r.TenantID, r.ConversationID, r.ContactID, r.ConnectionID, r.Kind, string(r.Content),
			string(r.Purpose), r.IdempotencyKey, r.AuthorID, r.ProviderMessageID} {
			cols[j][i] = v
		}
		members[i] = consent.GroupMember{Ctx: gs.ctx, Req: consent.CheckRequest{TenantID: r.TenantID, ContactID: gs.p.rcpt.ContactID,
			Phone: gs.p.rcpt.Phone, Purpose: string(r.Purpose), At: now}}
	}
	results := make([]groupResult, n)
	written := map[string]Message{}
	first := &consent.Prelude{SQL: insertSendingSQL, Scan: func(rows pgx.Rows) error {
		ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
		for _, m := range ms {
			written[m.ID] = m
		}
		return err
	}}
	for _, c := range cols {
		first.Args = append(first.Args, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	err := g.guard.HoldCheckGroup(ctx, members, first, func(context.Context) error {
		var wg sync.WaitGroup
		for i, gs := range group {
			row, created := written[gs.p.row.ID]
			if !created || !members[i].Decision.Allowed {
				continue
			}
			res := &results[i]
			wg.Go(func() {
				p := *gs.p
				p.row = row
				if p.turn != nil {
					// The token is taken as the call goes, so the calls of
					// a group leave at the number's rate, not together.
					if err := g.s.pacer.WaitThroughput(gs.ctx, p.row.ConnectionID, p.channel.Tier); err != nil {
						res.paceErr = err
						return
					}
					p.turn.Sent()
				}
				res.called = true
				res.out, res.callErr = g.s.call(gs.ctx, &p)
			})
		}
		wg.Wait()
		return nil
	})
	for i, gs := range group {
		if !results[i].called && gs.p.turn != nil {
			gs.p.turn.Release() // nothing went to the recipient
		}
	}
	if !first.Committed {
		if err == nil {
			err = errors.New("the ledger rows' commit was not confirmed")
		}
		for i := range results {
			results[i] = groupResult{writeErr: fmt.Errorf("recording message: %w", err)}
		}
		return results, false
	}
	for i, gs := range group {
		res := &results[i]
		row, created := written[gs.p.row.ID]
		if !created {
			res.existing = true
			continue
		}
		res.row = row
		switch {
		case err != nil:
			res.holdErr = fmt.Errorf("checking consent: %w", err)
		case !members[i].Decision.Allowed:
			res.refusal = consentRefusal(ConsentDecision{Allowed: false, Reason: members[i].Decision.Reason,
				DeferUntil: members[i].Decision.DeferUntil})
		}
	}
	return results, true
}
