package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is an inbound event as stored by the ingress, for the API's read side.
type Event struct {
	ID           int64             `json:"id"`
	TenantID     string            `json:"-"`
	ConnectionID string            `json:"connection_id"`
	DedupeKey    string            `json:"dedupe_key"`
	Type         string            `json:"type"`
	OccurredAt   time.Time         `json:"occurred_at"`
	ReceivedAt   time.Time         `json:"received_at"`
	Correlation  map[string]string `json:"correlation"`
	Payload      json.RawMessage   `json:"payload"`
	// DispatchedAt is when the dispatcher handed the event on, nil while it
	// is pending.
	DispatchedAt     *time.Time `json:"dispatched_at,omitempty"`
	DispatchAttempts int        `json:"dispatch_attempts"`
	LastError        string     `json:"last_error,omitempty"`
}

// EventFilter selects and pages a tenant's events. Zero values select all.
type EventFilter struct {
	// ConnectionID keeps the events of one connection.
	ConnectionID string
	// Type keeps events of one type, e.g. "checkout.session.completed".
	Type string
	// Since keeps events received at or after this time.
	Since time.Time
	// Until keeps events received before this time.
	Until time.Time
	// Cursor is the next cursor of the previous page, or "".
	Cursor string
	// Limit is the page size; 0 means DefaultPageSize, at most MaxPageSize.
	Limit int
}

type eventCursor struct {
	Before int64 `json:"b"`
}

const eventColumns = `e.id, e.tenant_id, e.connection_id, e.dedupe_key, e.type, e.occurred_at, e.received_at, e.correlation, e.payload, d.dispatched_at, COALESCE(d.dispatch_attempts, 0), COALESCE(d.last_error, '')`

// eventsFrom joins each event to its dispatch state (event_dispatch).
const eventsFrom = `events e LEFT JOIN event_dispatch d ON d.event_id = e.id`

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.TenantID, &e.ConnectionID, &e.DedupeKey, &e.Type, &e.OccurredAt, &e.ReceivedAt, &e.Correlation, &e.Payload, &e.DispatchedAt, &e.DispatchAttempts, &e.LastError)
	if e.Correlation == nil {
		e.Correlation = map[string]string{}
	}
	return e, err
}

// ListEvents returns a page of a tenant's events, newest first (by id, which
// follows the order they were stored in), and the cursor of the next page
// ("" on the last page). Time filters apply to received_at.
func (s *Store) ListEvents(ctx context.Context, tenantID string, f EventFilter) ([]Event, string, error) {
	limit := pageSize(f.Limit)
	var c eventCursor
	if f.Cursor != "" {
		if err := DecodeCursor(f.Cursor, &c); err != nil {
			return nil, "", err
		}
		if c.Before <= 0 {
			return nil, "", ErrInvalidCursor
		}
	}
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	// Walks events_tenant_received (tenant_id, id) backwards; the other
	// filters are applied to the rows it visits.
	rows, err := s.pool.Query(ctx, `
		SELECT `+eventColumns+` FROM `+eventsFrom+`
		WHERE e.tenant_id = $1
		  AND ($2 = '' OR e.connection_id = $2)
		  AND ($3 = '' OR e.type = $3)
		  AND ($4::timestamptz IS NULL OR e.received_at >= $4)
		  AND ($5::timestamptz IS NULL OR e.received_at < $5)
		  AND ($6 = 0 OR e.id < $6)
		ORDER BY e.id DESC
		LIMIT $7`,
		tenantID, f.ConnectionID, f.Type, since, until, c.Before, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, "", fmt.Errorf("listing events: %w", err)
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = EncodeCursor(eventCursor{Before: events[limit-1].ID})
	}
	return events, next, nil
}

// GetEvent returns one of a tenant's events or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, tenantID string, id int64) (Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM `+eventsFrom+` WHERE e.tenant_id = $1 AND e.id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("reading event: %w", err)
	}
	return e, nil
}
