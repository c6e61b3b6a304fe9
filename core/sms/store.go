package sms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// db is the SQL of sms_messages and the number lookups.
type db struct{ pool *pgxpool.Pool }

// number is a sending number of the numbers table.
type number struct {
	ID           string
	Kind         string // linked_device or cloud_api
	ConnectionID string
}

// numberByID returns the tenant's number id, or ErrNotFound.
func (d *db) numberByID(ctx context.Context, tenantID, id string) (number, error) {
	var n number
	err := d.pool.QueryRow(ctx, `SELECT id, kind, connection_id FROM numbers WHERE tenant_id = $1 AND id = $2`,
		tenantID, id).Scan(&n.ID, &n.Kind, &n.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return number{}, ErrNotFound
	}
	if err != nil {
		return number{}, fmt.Errorf("looking up number %s: %w", id, err)
	}
	return n, nil
}

// numberByPhone returns the tenant's linked-device number whose account has
// phone (session_states.phone, reported by the session), or ErrNotFound. A
// phone paired again as a new number may appear twice; the connected one,
// else the most recently reported, wins. Cloud API numbers cannot be found
// by phone: their connection does not know its display number, so they are
// named by number id.
func (d *db) numberByPhone(ctx context.Context, tenantID, phone string) (number, error) {
	var n number
	err := d.pool.QueryRow(ctx, `
		SELECT n.id, n.kind, n.connection_id
		FROM numbers n JOIN session_states s ON s.connection_id = n.connection_id
		WHERE n.tenant_id = $1 AND s.tenant_id = $1 AND n.kind = 'linked_device' AND s.phone = $2
		ORDER BY (s.state = 'connected') DESC, s.updated_at DESC
		LIMIT 1`, tenantID, phone).Scan(&n.ID, &n.Kind, &n.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return number{}, ErrNotFound
	}
	if err != nil {
		return number{}, fmt.Errorf("looking up a number by phone: %w", err)
	}
	return n, nil
}

// row is an sms_messages row.
type row struct {
	Sid                 string
	TenantID            string
	MessageID           string
	NumberID            string
	AccountSid          string
	From                string
	To                  string
	MessagingServiceSid string
	NumMedia            int
	StatusCallback      string
	CallbackStatus      string
	LedgerStatus        string
	// Watch makes the Deliverer look at the row (callback_next_at = now).
	Watch     bool
	CreatedAt time.Time
}

const rowColumns = `sid, tenant_id, message_id, COALESCE(number_id, ''), account_sid, from_address, to_address,
	COALESCE(messaging_service_sid, ''), num_media, COALESCE(status_callback, ''), callback_status, ledger_status,
	callback_next_at IS NOT NULL, created_at`

func scanRow(r pgx.Row) (row, error) {
	var x row
	err := r.Scan(&x.Sid, &x.TenantID, &x.MessageID, &x.NumberID, &x.AccountSid, &x.From, &x.To,
		&x.MessagingServiceSid, &x.NumMedia, &x.StatusCallback, &x.CallbackStatus, &x.LedgerStatus, &x.Watch, &x.CreatedAt)
	return x, err
}

// insert records a message. When its ledger row already has one (an
// idempotent replay, or two concurrent requests with one token), nothing is
// written and the existing row comes back: the client sees one sid.
func (d *db) insert(ctx context.Context, r row) (row, error) {
	got, err := scanRow(d.pool.QueryRow(ctx, `
		INSERT INTO sms_messages (sid, tenant_id, message_id, number_id, account_sid, from_address, to_address,
		                          messaging_service_sid, num_media, status_callback, callback_status, ledger_status,
		                          callback_next_at)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, NULLIF($8, ''), $9, NULLIF($10, ''), $11, $12,
		        CASE WHEN $13 THEN now() END)
		ON CONFLICT (message_id) DO NOTHING
		RETURNING `+rowColumns,
		r.Sid, r.TenantID, r.MessageID, r.NumberID, r.AccountSid, r.From, r.To, r.MessagingServiceSid, r.NumMedia,
		r.StatusCallback, r.CallbackStatus, r.LedgerStatus, r.Watch))
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return row{}, err
	}
	got, err = scanRow(d.pool.QueryRow(ctx, `SELECT `+rowColumns+` FROM sms_messages WHERE message_id = $1 AND tenant_id = $2`,
		r.MessageID, r.TenantID))
	if err != nil {
		return row{}, fmt.Errorf("reading the existing row: %w", err)
	}
	return got, nil
}

// get returns a tenant's row, or ErrNotFound.
func (d *db) get(ctx context.Context, tenantID, sid string) (row, error) {
	r, err := scanRow(d.pool.QueryRow(ctx, `SELECT `+rowColumns+` FROM sms_messages WHERE tenant_id = $1 AND sid = $2`, tenantID, sid))
	if errors.Is(err, pgx.ErrNoRows) {
		return row{}, ErrNotFound
	}
	if err != nil {
		return row{}, fmt.Errorf("reading sms message %s: %w", sid, err)
	}
	return r, nil
}
