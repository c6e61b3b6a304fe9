package messaging

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/batch"
)

// sentWriter groups the records of accepted sends: every send whose provider
// call succeeded hands its wamid here and waits, and a few writers each take
// whatever has queued up while the previous UPDATE ran and write it in one
// statement. At a thousand sends a second that is tens of rows per statement
// instead of one, with no added wait when the load is low (a lone request is
// written at once).
type sentWriter struct {
	pool  *pgxpool.Pool
	batch *batch.Batcher[sentReq]
}

type sentReq struct {
	ctx                 context.Context
	tenantID, id, wamid string
	at                  time.Time
	done                chan sentRes
}

type sentRes struct {
	m   Message
	err error
}

const (
	sentWriters  = 2
	maxSentBatch = 256
)

func newSentWriter(pool *pgxpool.Pool) *sentWriter {
	w := &sentWriter{pool: pool}
	w.batch = batch.New(sentWriters, maxSentBatch, w.flush)
	return w
}

// write records one accepted send; ok is false after close.
func (w *sentWriter) write(ctx context.Context, tenantID, id, wamid string, at time.Time) (Message, bool, error) {
	done := make(chan sentRes, 1)
	if !w.batch.Submit(sentReq{ctx: ctx, tenantID: tenantID, id: id, wamid: wamid, at: at, done: done}) {
		return Message{}, false, nil
	}
	select {
	case r := <-done:
		return r.m, true, r.err
	case <-ctx.Done():
		return Message{}, true, fmt.Errorf("recording message %s as sent: %w", id, ctx.Err())
	}
}

func (w *sentWriter) close() { w.batch.Close() }

// markSentBatch is markSent for many rows at once (see ledger.markSent).
const markSentBatch = `
UPDATE messages m
SET provider_message_id = COALESCE(m.provider_message_id, NULLIF(u.wamid, '')),
    status = CASE WHEN m.status IN ('sending', 'unknown') THEN 'sent' ELSE m.status END,
    status_reason = CASE WHEN m.status IN ('sending', 'unknown') THEN NULL ELSE m.status_reason END,
    sent_at = COALESCE(m.sent_at, u.at),
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(tenant_id, id, wamid, at)
WHERE m.id = u.id AND m.tenant_id IS NOT DISTINCT FROM u.tenant_id -- by key alone: see getSQL
RETURNING ` + messageColumnsM

func (w *sentWriter) flush(batch []sentReq) {
	tenants := make([]string, len(batch))
	ids := make([]string, len(batch))
	wamids := make([]string, len(batch))
	ats := make([]time.Time, len(batch))
	for i, r := range batch {
		tenants[i], ids[i], wamids[i], ats[i] = r.tenantID, r.id, r.wamid, r.at
	}
	// The callers' sends happened: record them even if a caller gave up.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := w.pool.Query(ctx, markSentBatch, tenants, ids, wamids, ats)
	var got map[string]Message
	if err == nil {
		var ms []Message
		ms, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
		got = make(map[string]Message, len(ms))
		for _, m := range ms {
			got[m.ID] = m
		}
	}
	for _, r := range batch {
		m, ok := got[r.id]
		switch {
		case err != nil:
			r.done <- sentRes{err: fmt.Errorf("recording message %s as sent: %w", r.id, err)}
		case !ok:
			r.done <- sentRes{err: fmt.Errorf("recording message %s as sent: %w", r.id, ErrNotFound)}
		default:
			r.done <- sentRes{m: m}
		}
	}
}
