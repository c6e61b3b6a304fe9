package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ledger is the SQL of the messages table.
type ledger struct {
	pool *pgxpool.Pool
	sent *sentWriter // groups markSent; nil writes each on its own
}

const messageColumns = `id, tenant_id, connection_id, conversation_id, contact_id, direction, kind, content,
    COALESCE(purpose, ''), status, COALESCE(status_reason, ''), COALESCE(error_code, ''), COALESCE(error_detail, ''),
    COALESCE(provider_message_id, ''), COALESCE(author_id, ''), COALESCE(idempotency_key, ''), deferred_until,
    created_at, sent_at, delivered_at, read_at, failed_at, updated_at`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.TenantID, &m.ConnectionID, &m.ConversationID, &m.ContactID, &m.Direction, &m.Kind,
		&m.Content, &m.Purpose, &m.Status, &m.StatusReason, &m.ErrorCode, &m.ErrorDetail, &m.ProviderMessageID,
		&m.AuthorID, &m.IdempotencyKey, &m.DeferredUntil, &m.CreatedAt, &m.SentAt, &m.DeliveredAt, &m.ReadAt,
		&m.FailedAt, &m.UpdatedAt)
	if err != nil {
		return Message{}, err
	}
	if m.Direction == "out" && len(m.Content) > 0 {
		var c struct {
			To string `json:"to"`
		}
		if json.Unmarshal(m.Content, &c) == nil {
			m.To = c.To
		}
	}
	return m, nil
}

// getSQL and byKeySQL read a tenant's ledger row by id and by idempotency key.
//
// A row looked up by id checks its tenant with IS NOT DISTINCT FROM, which
// no index can serve, so the primary key is the only way any plan can find
// it. With "tenant_id = $1", a generic plan Postgres made while the table
// was empty (a new installation, before autovacuum's first ANALYZE) could
// take the (tenant_id, idempotency_key) index and scan every row of the
// tenant for each send, and keep doing so until the next ANALYZE
// (TestIntegrationLedgerPlansUseKeys). Both columns are NOT NULL, so the
// comparison means "=" here.
const (
	getSQL   = `SELECT ` + messageColumns + ` FROM messages WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1`
	byKeySQL = `SELECT ` + messageColumns + ` FROM messages WHERE tenant_id = $1 AND idempotency_key = $2`
)

// get returns a tenant's message, or ErrNotFound.
func (l *ledger) get(ctx context.Context, tenantID, id string) (Message, error) {
	m, err := scanMessage(l.pool.QueryRow(ctx, getSQL, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("reading message %s: %w", id, err)
	}
	return m, nil
}

// byKey returns the row of a tenant's idempotency key; ok is false when there
// is none.
func (l *ledger) byKey(ctx context.Context, tenantID, key string) (m Message, ok bool, err error) {
	m, err = scanMessage(l.pool.QueryRow(ctx, byKeySQL, tenantID, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("reading message by idempotency key: %w", err)
	}
	return m, true, nil
}

// insertSQL writes a new outbound row unless the tenant's idempotency key is
// taken, returning the row written (none on a conflict).
const insertSQL = `
INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, purpose,
                      idempotency_key, status, status_reason, error_code, error_detail, author_id, deferred_until,
                      provider_message_id)
VALUES ($1, $2, $3, $4, $5, 'out', $6, $7, NULLIF($8, ''), $9, $10, NULLIF($11, ''), NULLIF($12, ''), NULLIF($13, ''),
        NULLIF($14, ''), $15, NULLIF($16, ''))
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING ` + messageColumns

func insertArgs(m Message) []any {
	return []any{m.ID, m.TenantID, m.ConversationID, m.ContactID, m.ConnectionID, m.Kind, m.Content, string(m.Purpose),
		m.IdempotencyKey, string(m.Status), m.StatusReason, m.ErrorCode, m.ErrorDetail, m.AuthorID, m.DeferredUntil,
		m.ProviderMessageID}
}

// insert writes a new outbound row. When the tenant's idempotency key is
// taken (a concurrent or earlier Send), nothing is written and the existing
// row comes back with created false.
func (l *ledger) insert(ctx context.Context, m Message) (Message, bool, error) {
	got, err := scanMessage(l.pool.QueryRow(ctx, insertSQL, insertArgs(m)...))
	return l.inserted(ctx, m, got, err)
}

// inserted completes an insert from the statement's result: the row written,
// or on a conflict (pgx.ErrNoRows) the row holding the key.
func (l *ledger) inserted(ctx context.Context, m, got Message, err error) (Message, bool, error) {
	if err == nil {
		return got, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Message{}, false, fmt.Errorf("recording message: %w", err)
	}
	got, err = keyHolder(ctx, l, m.TenantID, m.IdempotencyKey)
	return got, false, err
}

// keyHolder returns the row holding a tenant's idempotency key, after an
// insert found the key taken.
func keyHolder(ctx context.Context, l ledgerStore, tenantID, key string) (Message, error) {
	got, ok, err := l.byKey(ctx, tenantID, key)
	if err != nil {
		return Message{}, err
	}
	if !ok {
		return Message{}, errors.New("recording message: idempotency key conflict, but no row holds it")
	}
	return got, nil
}

// claim moves a waiting (queued or deferred) row to sending, the last write
// before the provider call of a re-attempt. ok is false when another
// scheduler or a status webhook got there first.
func (l *ledger) claim(ctx context.Context, tenantID, id string) (Message, bool, error) {
	m, err := scanMessage(l.pool.QueryRow(ctx, `
UPDATE messages SET status = 'sending', status_reason = NULL, deferred_until = NULL, updated_at = now()
WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1 AND status IN ('queued', 'deferred')
RETURNING `+messageColumns, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("claiming message %s: %w", id, err)
	}
	return m, true, nil
}

// settle records a final pre-provider outcome (refused, deferred, queued) on
// a waiting row. Only rows not yet handed to the provider move.
func (l *ledger) settle(ctx context.Context, tenantID, id string, status Status, reason, code, detail string, deferUntil *time.Time) (Message, error) {
	m, err := scanMessage(l.pool.QueryRow(ctx, `
UPDATE messages SET status = $3, status_reason = NULLIF($4, ''), error_code = NULLIF($5, ''),
       error_detail = NULLIF($6, ''), deferred_until = $7, updated_at = now()
WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1 AND status IN ('queued', 'deferred', 'sending')
RETURNING `+messageColumns, tenantID, id, string(status), reason, code, detail, deferUntil))
	if errors.Is(err, pgx.ErrNoRows) {
		return l.get(ctx, tenantID, id)
	}
	if err != nil {
		return Message{}, fmt.Errorf("recording outcome of message %s: %w", id, err)
	}
	return m, nil
}

// markSent records the provider's acceptance. The wamid is set if a status
// webhook did not set it first; the status moves to sent only from sending
// (or unknown), never back from delivered or read.
func (l *ledger) markSent(ctx context.Context, tenantID, id, wamid string, at time.Time) (Message, error) {
	if l.sent != nil {
		if m, ok, err := l.sent.write(ctx, tenantID, id, wamid, at); ok {
			return m, err
		}
	}
	m, err := scanMessage(l.pool.QueryRow(ctx, `
UPDATE messages
SET provider_message_id = COALESCE(provider_message_id, NULLIF($3, '')),
    status = CASE WHEN status IN ('sending', 'unknown') THEN 'sent' ELSE status END,
    status_reason = CASE WHEN status IN ('sending', 'unknown') THEN NULL ELSE status_reason END,
    sent_at = COALESCE(sent_at, $4),
    updated_at = now()
WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1
RETURNING `+messageColumns, tenantID, id, wamid, at))
	if err != nil {
		return Message{}, fmt.Errorf("recording message %s as sent: %w", id, err)
	}
	return m, nil
}

// markFailed records a definite provider refusal of a row still sending.
func (l *ledger) markFailed(ctx context.Context, tenantID, id, reason, code, detail string, at time.Time) (Message, error) {
	m, err := scanMessage(l.pool.QueryRow(ctx, `
UPDATE messages SET status = 'failed', status_reason = $3, error_code = NULLIF($4, ''), error_detail = NULLIF($5, ''),
       failed_at = COALESCE(failed_at, $6), updated_at = now()
WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1 AND status IN ('sending', 'unknown')
RETURNING `+messageColumns, tenantID, id, reason, code, detail, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return l.get(ctx, tenantID, id)
	}
	if err != nil {
		return Message{}, fmt.Errorf("recording message %s as failed: %w", id, err)
	}
	return m, nil
}

// note records a reason on a row still sending without changing its status
// (an ambiguous outcome, a rate limit being waited out).
func (l *ledger) note(ctx context.Context, tenantID, id, reason, code, detail string) error {
	_, err := l.pool.Exec(ctx, `
UPDATE messages SET status_reason = $3, error_code = NULLIF($4, ''), error_detail = NULLIF($5, ''), updated_at = now()
WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1 AND status = 'sending'`, tenantID, id, reason, code, detail)
	if err != nil {
		return fmt.Errorf("annotating message %s: %w", id, err)
	}
	return nil
}
