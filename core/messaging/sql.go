package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// SQLDirectory resolves recipients on the contacts and conversations tables,
// creating the contact and the conversation of a first message in the same
// statement that reads them: one round trip per send in the common case.
type SQLDirectory struct{ pool *pgxpool.Pool }

var _ Directory = (*SQLDirectory)(nil)

// NewSQLDirectory returns a Directory on pool.
func NewSQLDirectory(pool *pgxpool.Pool) *SQLDirectory { return &SQLDirectory{pool: pool} }

// resolveByPhone upserts the contact ($4 phone) and its conversation on
// connection $2. Rows another transaction inserts concurrently are invisible
// to this statement's snapshot, so a race yields no row and the caller tries
// again (the second try sees the committed rows).
const resolveByPhone = `
WITH ins_ct AS (
    INSERT INTO contacts (id, tenant_id, phone) VALUES ($3, $1, $4)
    ON CONFLICT (tenant_id, phone) DO NOTHING
    RETURNING id, phone, COALESCE(wa_id, '') AS wa_id, COALESCE(lid, '') AS lid
), ct AS (
    SELECT id, phone, wa_id, lid FROM ins_ct
    UNION ALL
    SELECT id, phone, COALESCE(wa_id, ''), COALESCE(lid, '') FROM contacts WHERE tenant_id = $1 AND phone = $4
    LIMIT 1
), ins_cv AS (
    INSERT INTO conversations (id, tenant_id, contact_id, connection_id)
    SELECT $5, $1, ct.id, $2 FROM ct
    ON CONFLICT (tenant_id, contact_id, connection_id) DO NOTHING
    RETURNING id, last_inbound_at
)
SELECT ct.id, ct.phone, ct.wa_id, ct.lid, cv.id, cv.last_inbound_at
FROM ct, LATERAL (
    SELECT id, last_inbound_at FROM ins_cv
    UNION ALL
    SELECT id, last_inbound_at FROM conversations
    WHERE tenant_id = $1 AND contact_id = ct.id AND connection_id = $2
    LIMIT 1
) cv`

// resolveByID reads the contact $3 (a phone NULL for a contact known only by
// LID reads as "") and upserts its conversation on connection $2.
const resolveByID = `
WITH ct AS (
    SELECT id, COALESCE(phone, '') AS phone, COALESCE(wa_id, '') AS wa_id, COALESCE(lid, '') AS lid
    FROM contacts WHERE tenant_id = $1 AND id = $3
), ins_cv AS (
    INSERT INTO conversations (id, tenant_id, contact_id, connection_id)
    SELECT $4, $1, ct.id, $2 FROM ct
    ON CONFLICT (tenant_id, contact_id, connection_id) DO NOTHING
    RETURNING id, last_inbound_at
)
SELECT ct.id, ct.phone, ct.wa_id, ct.lid, cv.id, cv.last_inbound_at
FROM ct, LATERAL (
    SELECT id, last_inbound_at FROM ins_cv
    UNION ALL
    SELECT id, last_inbound_at FROM conversations
    WHERE tenant_id = $1 AND contact_id = ct.id AND connection_id = $2
    LIMIT 1
) cv`

// findByPhone reads an existing contact and conversation: the common case,
// and cheaper than the upsert.
const findByPhone = `
SELECT ct.id, ct.phone, COALESCE(ct.wa_id, ''), COALESCE(ct.lid, ''), cv.id, cv.last_inbound_at
FROM contacts ct
JOIN conversations cv ON cv.tenant_id = ct.tenant_id AND cv.contact_id = ct.id AND cv.connection_id = $2
WHERE ct.tenant_id = $1 AND ct.phone = $3`

// Recipient implements Directory.
func (d *SQLDirectory) Recipient(ctx context.Context, tenantID, connectionID, phone, contactID string) (Recipient, error) {
	if contactID == "" {
		var r Recipient
		err := d.pool.QueryRow(ctx, findByPhone, tenantID, connectionID, phone).Scan(&r.ContactID, &r.Phone, &r.WAID, &r.LID,
			&r.ConversationID, &r.LastInboundAt)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Recipient{}, fmt.Errorf("resolving recipient: %w", err)
		}
	}
	for range 3 {
		var row pgx.Row
		if contactID != "" {
			row = d.pool.QueryRow(ctx, resolveByID, tenantID, connectionID, contactID, store.NewID("cv"))
		} else {
			row = d.pool.QueryRow(ctx, resolveByPhone, tenantID, connectionID, store.NewID("ct"), phone, store.NewID("cv"))
		}
		var r Recipient
		err := row.Scan(&r.ContactID, &r.Phone, &r.WAID, &r.LID, &r.ConversationID, &r.LastInboundAt)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Recipient{}, fmt.Errorf("resolving recipient: %w", err)
		}
		if contactID != "" {
			// Either the contact does not exist, or its conversation was
			// created concurrently; the latter is worth another look.
			var exists bool
			if err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2)`,
				tenantID, contactID).Scan(&exists); err != nil {
				return Recipient{}, fmt.Errorf("resolving recipient: %w", err)
			}
			if !exists {
				return Recipient{}, fmt.Errorf("contact %s: %w", contactID, ErrNotFound)
			}
		}
	}
	return Recipient{}, errors.New("resolving recipient: contact or conversation kept changing")
}

// SQLChannels reads connections from the connections table, caching each for
// a short while: a send needs the tier on every call, and a tier change
// taking effect within ttl is soon enough.
type SQLChannels struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[[2]string]cachedChannel
}

type cachedChannel struct {
	ch      Channel
	expires time.Time
}

var _ Channels = (*SQLChannels)(nil)

// NewSQLChannels returns Channels on pool caching answers for ttl (default
// 30 s when 0).
func NewSQLChannels(pool *pgxpool.Pool, ttl time.Duration) *SQLChannels {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &SQLChannels{pool: pool, ttl: ttl, now: time.Now, cache: map[[2]string]cachedChannel{}}
}

// Channel implements Channels; a connection that is not the tenant's is an
// error wrapping ErrNotFound.
func (c *SQLChannels) Channel(ctx context.Context, tenantID, connectionID string) (Channel, error) {
	key := [2]string{tenantID, connectionID}
	now := c.now()
	c.mu.Lock()
	if e, ok := c.cache[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.ch, nil
	}
	c.mu.Unlock()
	var ch Channel
	var tier string
	err := c.pool.QueryRow(ctx, `SELECT connector, status, COALESCE(config->>'throughput_tier', '') FROM connections WHERE tenant_id = $1 AND id = $2`,
		tenantID, connectionID).Scan(&ch.Connector, &ch.Status, &tier)
	if errors.Is(err, pgx.ErrNoRows) {
		return Channel{}, fmt.Errorf("connection %s: %w", connectionID, ErrNotFound)
	}
	if err != nil {
		return Channel{}, fmt.Errorf("reading connection %s: %w", connectionID, err)
	}
	ch.Tier = parseTier(tier)
	c.mu.Lock()
	c.cache[key] = cachedChannel{ch: ch, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return ch, nil
}

// parseTier reads the connection's throughput_tier; Meta's default of 80
// msg/s stands for anything missing or unreadable.
func parseTier(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 80
	}
	return n
}
