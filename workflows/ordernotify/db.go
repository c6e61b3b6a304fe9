package ordernotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
)

// NotificationStatus is a notification's state.
type NotificationStatus string

// Notification states. Sending is the decision recorded before the send;
// the others are final.
const (
	StatusSending NotificationStatus = "sending"
	StatusSent    NotificationStatus = "sent"
	StatusSkipped NotificationStatus = "skipped"
	StatusRefused NotificationStatus = "refused"
	StatusFailed  NotificationStatus = "failed"
)

// Modes of a notification's send.
const (
	ModeText     = "text"     // FreeText inside the 24-hour window
	ModeTemplate = "template" // the template
)

// Content is what a notification sends: the template, and the free text
// when it goes as text.
type Content struct {
	Text     string              `json:"text,omitempty"`
	Template *messaging.Template `json:"template,omitempty"`
}

// Notification is a notification of an order as recorded.
type Notification struct {
	OrderRef
	Kind   Kind               `json:"kind"`
	Status NotificationStatus `json:"status"`
	// Reason says why a notification was skipped, refused or failed
	// (machine readable: no_phone, disabled, not_configured, opted_out,
	// outside_window_template_required, template_not_found, ...).
	Reason string `json:"reason,omitempty"`
	// Mode is ModeText or ModeTemplate for notifications that were sent.
	Mode                string  `json:"mode,omitempty"`
	ChannelConnectionID string  `json:"channel_connection_id,omitempty"`
	To                  string  `json:"to,omitempty"`
	Content             Content `json:"-"`
	// MessageID is the messaging ledger's row.
	MessageID string    `json:"message_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// final reports whether the status is an outcome.
func (s NotificationStatus) final() bool { return s != StatusSending && s != "" }

// OrderRecord is an order's row.
type OrderRecord struct {
	OrderRef
	WorkflowID string    `json:"workflow_id"`
	Phone      string    `json:"phone,omitempty"`
	Stage      Kind      `json:"stage,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// DB is the order_notify_orders and order_notifications tables. Every query
// takes the tenant and filters on it.
type DB struct {
	pool *pgxpool.Pool
}

var _ Store = (*DB)(nil)

// NewDB returns the order notification tables in pool.
func NewDB(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// upsertOrder creates the order's row when it has none. $1 tenant, $2
// connection, $3 order, $4 workflow id.
// The statements that read an order's rows, by their primary key
// (connection_id, order_id[, kind]) alone: the tenant is compared with IS NOT
// DISTINCT FROM, which no index serves. With "tenant_id = $1", a plan made
// while the tables were empty (a new installation, before autovacuum's first
// ANALYZE) could take the (tenant_id, updated_at) index and scan every order
// of the tenant for each event (TestIntegrationOrderPlansUseKeys). The
// column is NOT NULL, so the comparison means "=" here; the writes below
// follow the same rule.
const (
	stageSQL        = `SELECT stage FROM order_notify_orders WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`
	handledKindsSQL = `SELECT kind FROM order_notifications
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND status <> 'sending' ORDER BY created_at, kind`
	notificationSQL = `SELECT ` + notificationColumns + ` FROM order_notifications
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND kind = $4`
)

const upsertOrder = `
INSERT INTO order_notify_orders (tenant_id, connection_id, order_id, workflow_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (connection_id, order_id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id
WHERE order_notify_orders.tenant_id = EXCLUDED.tenant_id
RETURNING tenant_id`

// Begin implements Store.
func (db *DB) Begin(ctx context.Context, ref OrderRef, workflowID string) (Progress, error) {
	var tenant string
	err := db.pool.QueryRow(ctx, upsertOrder, ref.TenantID, ref.ConnectionID, ref.OrderID, workflowID).Scan(&tenant)
	if errors.Is(err, pgx.ErrNoRows) {
		// The row is another tenant's: the connection id says otherwise,
		// so this cannot happen short of a forged event.
		return Progress{}, fmt.Errorf("order %s of connection %s belongs to another tenant", ref.OrderID, ref.ConnectionID)
	}
	if err != nil {
		return Progress{}, fmt.Errorf("recording order %s: %w", ref.OrderID, err)
	}
	var p Progress
	var stage *string
	if err := db.pool.QueryRow(ctx, stageSQL, ref.TenantID, ref.ConnectionID, ref.OrderID).Scan(&stage); err != nil {
		return Progress{}, fmt.Errorf("reading order %s: %w", ref.OrderID, err)
	}
	if stage != nil {
		p.Stage = Kind(*stage)
	}
	rows, err := db.pool.Query(ctx, handledKindsSQL, ref.TenantID, ref.ConnectionID, ref.OrderID)
	if err != nil {
		return Progress{}, fmt.Errorf("reading notifications of order %s: %w", ref.OrderID, err)
	}
	p.Handled, err = pgx.CollectRows(rows, pgx.RowTo[Kind])
	if err != nil {
		return Progress{}, fmt.Errorf("reading notifications of order %s: %w", ref.OrderID, err)
	}
	return p, nil
}

const notificationColumns = `tenant_id, connection_id, order_id, kind, status, coalesce(reason, ''), coalesce(mode, ''),
    coalesce(channel_connection_id, ''), coalesce(recipient, ''), content, coalesce(message_id, ''), created_at, updated_at`

func scanNotification(row pgx.Row) (Notification, error) {
	var n Notification
	var content []byte
	err := row.Scan(&n.TenantID, &n.ConnectionID, &n.OrderID, &n.Kind, &n.Status, &n.Reason, &n.Mode,
		&n.ChannelConnectionID, &n.To, &content, &n.MessageID, &n.CreatedAt, &n.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Notification{}, store.ErrNotFound
	}
	if err != nil {
		return Notification{}, err
	}
	if len(content) > 0 {
		if err := json.Unmarshal(content, &n.Content); err != nil {
			return Notification{}, fmt.Errorf("decoding content of %s notification of order %s: %w", n.Kind, n.OrderID, err)
		}
	}
	return n, nil
}

// Notification implements Store.
func (db *DB) Notification(ctx context.Context, ref OrderRef, kind Kind) (Notification, bool, error) {
	n, err := scanNotification(db.pool.QueryRow(ctx, notificationSQL, ref.TenantID, ref.ConnectionID, ref.OrderID, string(kind)))
	if errors.Is(err, store.ErrNotFound) {
		return Notification{}, false, nil
	}
	if err != nil {
		return Notification{}, false, fmt.Errorf("reading %s notification of order %s: %w", kind, ref.OrderID, err)
	}
	return n, true, nil
}

// raiseStage moves the order's stage up to $4 (rank $5) and records the
// phone notified; a lower rank changes only the phone. $1 tenant, $2
// connection, $3 order, $6 phone.
const raiseStage = `
UPDATE order_notify_orders
SET stage      = CASE WHEN $5::smallint > stage_rank THEN $4 ELSE stage END,
    stage_rank = GREATEST(stage_rank, $5::smallint),
    phone      = COALESCE(NULLIF($6, ''), phone),
    updated_at = now()
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`

func (db *DB) raise(ctx context.Context, tx pgx.Tx, n Notification) error {
	if !n.Status.final() {
		return nil
	}
	var stage *string
	if r := n.Kind.Rank(); r > 0 {
		s := string(n.Kind)
		stage = &s
	}
	_, err := tx.Exec(ctx, raiseStage, n.TenantID, n.ConnectionID, n.OrderID, stage, n.Kind.Rank(), n.To)
	if err != nil {
		return fmt.Errorf("raising the stage of order %s: %w", n.OrderID, err)
	}
	return nil
}

// Claim implements Store. The order's row is created if Begin has not (a
// failure recorded for an order whose Begin raced a schema change is still
// recorded).
func (db *DB) Claim(ctx context.Context, n Notification) (Notification, error) {
	content, err := json.Marshal(n.Content)
	if err != nil {
		return Notification{}, fmt.Errorf("encoding notification content: %w", err)
	}
	var stored Notification
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var tenant string
		err := tx.QueryRow(ctx, upsertOrder, n.TenantID, n.ConnectionID, n.OrderID,
			WorkflowID(n.TenantID, n.ConnectionID, n.OrderID)).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("order %s of connection %s belongs to another tenant", n.OrderID, n.ConnectionID)
		}
		if err != nil {
			return err
		}
		stored, err = scanNotification(tx.QueryRow(ctx, `
INSERT INTO order_notifications (tenant_id, connection_id, order_id, kind, status, reason, mode, channel_connection_id,
                                 recipient, content, message_id)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), $10, NULLIF($11, ''))
ON CONFLICT (connection_id, order_id, kind) DO NOTHING
RETURNING `+notificationColumns,
			n.TenantID, n.ConnectionID, n.OrderID, string(n.Kind), string(n.Status), n.Reason, n.Mode, n.ChannelConnectionID,
			n.To, content, n.MessageID))
		if errors.Is(err, store.ErrNotFound) {
			// Claimed before (by an earlier attempt of this activity): that
			// decision stands.
			stored, err = scanNotification(tx.QueryRow(ctx, `SELECT `+notificationColumns+` FROM order_notifications
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND kind = $4`, n.TenantID, n.ConnectionID, n.OrderID, string(n.Kind)))
			return err
		}
		if err != nil {
			return err
		}
		return db.raise(ctx, tx, stored)
	})
	if err != nil {
		return Notification{}, fmt.Errorf("recording %s notification of order %s: %w", n.Kind, n.OrderID, err)
	}
	return stored, nil
}

// Settle implements Store. A row no longer sending is returned unchanged.
func (db *DB) Settle(ctx context.Context, n Notification) (Notification, error) {
	var stored Notification
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		stored, err = scanNotification(tx.QueryRow(ctx, `
UPDATE order_notifications
SET status = $5, reason = NULLIF($6, ''), mode = COALESCE(NULLIF($7, ''), mode), message_id = NULLIF($8, ''), updated_at = now()
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND kind = $4 AND status = 'sending'
RETURNING `+notificationColumns,
			n.TenantID, n.ConnectionID, n.OrderID, string(n.Kind), string(n.Status), n.Reason, n.Mode, n.MessageID))
		if errors.Is(err, store.ErrNotFound) {
			stored, err = scanNotification(tx.QueryRow(ctx, `SELECT `+notificationColumns+` FROM order_notifications
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND kind = $4`, n.TenantID, n.ConnectionID, n.OrderID, string(n.Kind)))
			return err
		}
		if err != nil {
			return err
		}
		return db.raise(ctx, tx, stored)
	})
	if err != nil {
		return Notification{}, fmt.Errorf("settling %s notification of order %s: %w", n.Kind, n.OrderID, err)
	}
	return stored, nil
}

// Order returns an order's row and its notifications (oldest first), or
// store.ErrNotFound when the tenant has no such order.
func (db *DB) Order(ctx context.Context, ref OrderRef) (OrderRecord, []Notification, error) {
	var o OrderRecord
	var stage *string
	err := db.pool.QueryRow(ctx, `
SELECT tenant_id, connection_id, order_id, workflow_id, coalesce(phone, ''), stage, created_at, updated_at
FROM order_notify_orders WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`,
		ref.TenantID, ref.ConnectionID, ref.OrderID).Scan(&o.TenantID, &o.ConnectionID, &o.OrderID, &o.WorkflowID,
		&o.Phone, &stage, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OrderRecord{}, nil, fmt.Errorf("order %s: %w", ref.OrderID, store.ErrNotFound)
	}
	if err != nil {
		return OrderRecord{}, nil, fmt.Errorf("reading order %s: %w", ref.OrderID, err)
	}
	if stage != nil {
		o.Stage = Kind(*stage)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+notificationColumns+` FROM order_notifications
WHERE connection_id = $2 AND order_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, kind`, ref.TenantID, ref.ConnectionID, ref.OrderID)
	if err != nil {
		return OrderRecord{}, nil, fmt.Errorf("reading notifications of order %s: %w", ref.OrderID, err)
	}
	ns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Notification, error) { return scanNotification(row) })
	if err != nil {
		return OrderRecord{}, nil, fmt.Errorf("reading notifications of order %s: %w", ref.OrderID, err)
	}
	return o, ns, nil
}
