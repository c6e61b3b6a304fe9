package paymentlink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// DB is the payment_links table. Every query takes the tenant and filters on
// it, so another tenant's link is indistinguishable from a missing one.
type DB struct {
	pool *pgxpool.Pool
}

var _ Store = (*DB)(nil)

// NewDB returns the payment_links table in pool.
func NewDB(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

const linkColumns = `id, tenant_id, connection_id, status, amount, coalesce(currency, ''), coalesce(product_name, ''),
    coalesce(price_id, ''), quantity, metadata, coalesce(url, ''), coalesce(provider_id, ''), workflow_id,
    expires_at, paid_at, amount_paid, coalesce(last_error, ''), created_at, updated_at, coalesce(idempotency_key, ''),
    coalesce(chat_to, ''), coalesce(chat_connection_id, ''), coalesce(chat_message, '')`

// storedLink is a row: the Link plus what the API does not show.
type storedLink struct {
	Link
	idempotencyKey string
}

func scanLink(row pgx.Row) (storedLink, error) {
	var l storedLink
	var md []byte
	err := row.Scan(&l.ID, &l.TenantID, &l.ConnectionID, &l.Status, &l.Amount, &l.Currency, &l.ProductName,
		&l.PriceID, &l.Quantity, &md, &l.URL, &l.ProviderID, &l.WorkflowID,
		&l.ExpiresAt, &l.PaidAt, &l.AmountPaid, &l.LastError, &l.CreatedAt, &l.UpdatedAt, &l.idempotencyKey,
		&l.To, &l.ChannelConnectionID, &l.Message)
	if errors.Is(err, pgx.ErrNoRows) {
		return storedLink{}, store.ErrNotFound
	}
	if err != nil {
		return storedLink{}, err
	}
	l.Metadata = map[string]string{}
	if len(md) > 0 {
		if err := json.Unmarshal(md, &l.Metadata); err != nil {
			return storedLink{}, fmt.Errorf("decoding metadata of %s: %w", l.ID, err)
		}
	}
	return l, nil
}

// GetLink returns a tenant's link, or store.ErrNotFound.
func (db *DB) GetLink(ctx context.Context, tenantID, id string) (Link, error) {
	l, err := scanLink(db.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM payment_links WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return Link{}, fmt.Errorf("reading payment link %s: %w", id, err)
	}
	return l.Link, nil
}

// insert stores a new link. With an idempotency key already used by the
// tenant, it stores nothing and returns the existing row with created false.
func (db *DB) insert(ctx context.Context, l Link, idempotencyKey string) (stored storedLink, created bool, err error) {
	md, err := json.Marshal(l.Metadata)
	if err != nil {
		return storedLink{}, false, fmt.Errorf("encoding metadata: %w", err)
	}
	var key *string
	if idempotencyKey != "" {
		key = &idempotencyKey
	}
	row := db.pool.QueryRow(ctx, `
INSERT INTO payment_links (id, tenant_id, connection_id, idempotency_key, status, amount, currency, product_name,
                           price_id, quantity, metadata, workflow_id, expires_at, chat_to, chat_connection_id, chat_message)
VALUES ($1, $2, $3, $4, 'creating', $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), $9, $10, $11, $12,
        NULLIF($13, ''), NULLIF($14, ''), NULLIF($15, ''))
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
RETURNING `+linkColumns,
		l.ID, l.TenantID, l.ConnectionID, key, l.Amount, l.Currency, l.ProductName, l.PriceID, l.Quantity, md,
		l.WorkflowID, l.ExpiresAt, l.To, l.ChannelConnectionID, l.Message)
	stored, err = scanLink(row)
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, store.ErrNotFound) || key == nil {
		return storedLink{}, false, fmt.Errorf("inserting payment link: %w", err)
	}
	stored, err = scanLink(db.pool.QueryRow(ctx,
		`SELECT `+linkColumns+` FROM payment_links WHERE tenant_id = $1 AND idempotency_key = $2`, l.TenantID, idempotencyKey))
	if err != nil {
		return storedLink{}, false, fmt.Errorf("reading payment link by idempotency key: %w", err)
	}
	return stored, false, nil
}

// MarkOpen implements Store.
func (db *DB) MarkOpen(ctx context.Context, tenantID, id, url, providerID string) error {
	_, err := db.pool.Exec(ctx, `
UPDATE payment_links SET status = 'open', url = $3, provider_id = $4, updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND status = 'creating'`, tenantID, id, url, providerID)
	if err != nil {
		return fmt.Errorf("marking payment link %s open: %w", id, err)
	}
	return nil
}

// Apply implements Store.
func (db *DB) Apply(ctx context.Context, r Record) (bool, error) {
	from := make([]string, len(r.From))
	for i, s := range r.From {
		from[i] = string(s)
	}
	tag, err := db.pool.Exec(ctx, `
UPDATE payment_links
SET status      = COALESCE(NULLIF($4, ''), status),
    paid_at     = COALESCE($5, paid_at),
    amount_paid = COALESCE($6, amount_paid),
    last_error  = COALESCE(NULLIF($7, ''), last_error),
    updated_at  = now()
WHERE tenant_id = $1 AND id = $2 AND status = ANY($3::text[])`,
		r.TenantID, r.LinkID, from, string(r.To), r.PaidAt, r.AmountPaid, r.LastError)
	if err != nil {
		return false, fmt.Errorf("updating payment link %s: %w", r.LinkID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// listCursor is the keyset position after the last link of a page.
type listCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

// list returns up to limit links of a tenant, newest first, after cursor.
func (db *DB) list(ctx context.Context, tenantID string, status Status, limit int, cursor string) ([]Link, string, error) {
	var after *listCursor
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		var c listCursor
		if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" {
			return nil, "", ErrInvalidCursor
		}
		after = &c
	}
	args := []any{tenantID, string(status), limit + 1}
	q := `SELECT ` + linkColumns + ` FROM payment_links
WHERE tenant_id = $1 AND ($2 = '' OR status = $2)`
	if after != nil {
		q += ` AND (created_at, id) < ($4, $5)`
		args = append(args, after.CreatedAt, after.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $3`
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing payment links: %w", err)
	}
	links, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Link, error) {
		l, err := scanLink(row)
		return l.Link, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing payment links: %w", err)
	}
	next := ""
	if len(links) > limit {
		links = links[:limit]
		last := links[len(links)-1]
		b, _ := json.Marshal(listCursor{CreatedAt: last.CreatedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return links, next, nil
}

// connectionStatus returns the status of a tenant's connection and its
// connector, or store.ErrNotFound.
func (db *DB) connectionStatus(ctx context.Context, tenantID, connectionID string) (status, connector string, err error) {
	err = db.pool.QueryRow(ctx, `SELECT status, connector FROM connections WHERE tenant_id = $1 AND id = $2`,
		tenantID, connectionID).Scan(&status, &connector)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", store.ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("reading connection %s: %w", connectionID, err)
	}
	return status, connector, nil
}
