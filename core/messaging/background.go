package messaging

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// DefaultUnknownAfter is how long a send may wait in status sending for the
// status webhook that settles it before the Reconciler marks it unknown.
const DefaultUnknownAfter = 10 * time.Minute

// Reconciler marks sends whose outcome was never learnt: rows left in status
// sending (the process died between the call and the record, or the call's
// answer was lost) for which no status webhook arrived within After. They
// become unknown with reason no_status_webhook, and are never retried: a
// person decides. A status webhook arriving later still settles them.
type Reconciler struct {
	// Pool holds the messages table. Required.
	Pool *pgxpool.Pool
	// After is the bound (default DefaultUnknownAfter).
	After time.Duration
	// Interval is how often Run looks (default a tenth of After, at most a
	// minute).
	Interval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// markUnknown moves stale sending rows to unknown and notifies the inbox of
// each, in one statement.
const markUnknown = `
WITH stale AS (
    UPDATE messages SET status = 'unknown', status_reason = 'no_status_webhook', updated_at = now()
    WHERE status = 'sending' AND updated_at < now() - $1::bigint * interval '1 millisecond'
    RETURNING id, tenant_id, conversation_id
)
SELECT id, pg_notify('` + InboxChannel + `', json_build_object('tenant_id', tenant_id,
       'conversation_id', conversation_id, 'message_id', id, 'kind', 'status')::text)
FROM stale`

// ReconcileOnce marks the stale rows now and returns how many.
func (r *Reconciler) ReconcileOnce(ctx context.Context) (int, error) {
	after := cmp.Or(r.After, DefaultUnknownAfter)
	rows, err := r.Pool.Query(ctx, markUnknown, after.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("marking unanswered sends unknown: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id string
		var ignored any
		return id, row.Scan(&id, &ignored)
	})
	if err != nil {
		return 0, fmt.Errorf("marking unanswered sends unknown: %w", err)
	}
	if len(ids) > 0 {
		cmp.Or(r.Logger, slog.Default()).WarnContext(ctx, "messaging: sends without any status webhook marked unknown",
			"count", len(ids), "after", after, "first", ids[0])
	}
	return len(ids), nil
}

// Run reconciles every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	after := cmp.Or(r.After, DefaultUnknownAfter)
	interval := cmp.Or(r.Interval, min(after/10, time.Minute))
	log := cmp.Or(r.Logger, slog.Default())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "messaging: reconciling sends", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scheduler re-attempts the sends that wait: deferred past quiet hours, or
// queued after a rate limit that outlasted the caller. Each goes through every
// check again (consent may have changed meanwhile, the window may have
// closed) before its provider call. Several schedulers (one per worker) run
// safely at once: each leases the rows it takes.
type Scheduler struct {
	// Service sends. Required.
	Service *Service
	// Pool holds the messages table. Required.
	Pool *pgxpool.Pool
	// Interval is how often Run looks for due rows (default 5 s).
	Interval time.Duration
	// Batch is how many rows one look takes (default 200).
	Batch int
	// Concurrency bounds the re-attempts in flight (default 32); each may
	// wait its recipient's turn.
	Concurrency int
	// Lease is how long a taken row is reserved (default 2 min).
	Lease time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// claimDue leases due waiting rows by pushing deferred_until past the lease.
const claimDue = `
WITH due AS (
    SELECT id FROM messages
    WHERE status IN ('deferred', 'queued') AND deferred_until <= now()
    ORDER BY deferred_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE messages m SET deferred_until = now() + $2::bigint * interval '1 millisecond'
FROM due WHERE m.id = due.id
RETURNING ` + messageColumnsM

// messageColumnsM is messageColumns qualified with the alias m.
const messageColumnsM = `m.id, m.tenant_id, m.connection_id, m.conversation_id, m.contact_id, m.direction, m.kind, m.content,
    COALESCE(m.purpose, ''), m.status, COALESCE(m.status_reason, ''), COALESCE(m.error_code, ''), COALESCE(m.error_detail, ''),
    COALESCE(m.provider_message_id, ''), COALESCE(m.author_id, ''), COALESCE(m.idempotency_key, ''), m.deferred_until,
    m.created_at, m.sent_at, m.delivered_at, m.read_at, m.failed_at, m.updated_at`

// RunOnce re-attempts one batch of due rows and returns how many it took.
func (sc *Scheduler) RunOnce(ctx context.Context) (int, error) {
	lease := cmp.Or(sc.Lease, 2*time.Minute)
	rows, err := sc.Pool.Query(ctx, claimDue, cmp.Or(sc.Batch, 200), lease.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("claiming waiting sends: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
	if err != nil {
		return 0, fmt.Errorf("claiming waiting sends: %w", err)
	}
	log := cmp.Or(sc.Logger, slog.Default())
	sem := make(chan struct{}, cmp.Or(sc.Concurrency, 32))
	var wg sync.WaitGroup
	for _, m := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			actx, cancel := context.WithTimeout(ctx, lease)
			defer cancel()
			got, err := sc.Service.resend(actx, m)
			var ref *RefusedError
			switch {
			case err == nil:
				log.DebugContext(ctx, "messaging: waiting send re-attempted", "message", m.ID, "status", got.Status)
			case errors.As(err, &ref):
				log.InfoContext(ctx, "messaging: waiting send refused", "message", m.ID, "reason", ref.Reason)
			default:
				log.WarnContext(ctx, "messaging: re-attempting a waiting send", "message", m.ID, "error", err)
			}
		}()
	}
	wg.Wait()
	return len(due), nil
}

// Run re-attempts due rows every Interval until ctx ends.
func (sc *Scheduler) Run(ctx context.Context) error {
	log := cmp.Or(sc.Logger, slog.Default())
	t := time.NewTicker(cmp.Or(sc.Interval, 5*time.Second))
	defer t.Stop()
	for {
		for {
			n, err := sc.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, "messaging: scheduling waiting sends", "error", err)
			}
			if err != nil || n < cmp.Or(sc.Batch, 200) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resend re-attempts a waiting (deferred or queued) row.
func (s *Service) resend(ctx context.Context, m Message) (Message, error) {
	var c content
	if err := json.Unmarshal(m.Content, &c); err != nil {
		return s.ledger.settle(ctx, m.TenantID, m.ID, StatusRefused, "unreadable_content", "", err.Error(), nil)
	}
	p := plan{row: m, c: c, kind: requestKind(m.Kind), existing: true}
	ch, err := s.channels.Channel(ctx, m.TenantID, m.ConnectionID)
	if isNotFound(err) || (err == nil && (ch.Status != store.StatusActive || (ch.Connector != Connector && ch.Connector != ConnectorLinkedDevice))) {
		return s.ledger.settle(ctx, m.TenantID, m.ID, StatusRefused, "connection_unavailable", "", "the connection is gone or disabled", nil)
	}
	if err != nil {
		return m, err
	}
	p.channel = ch
	p.rcpt, err = s.dir.Recipient(ctx, m.TenantID, m.ConnectionID, "", m.ContactID)
	if err != nil {
		return m, fmt.Errorf("resolving recipient of %s: %w", m.ID, err)
	}
	if err := s.lookupTemplate(ctx, &p); err != nil {
		return m, err
	}
	return s.run(ctx, p)
}
