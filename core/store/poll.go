package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PollTarget is an active connection of a connector that the host polls,
// with one value of its connection state (the poller keeps its schedule
// there).
type PollTarget struct {
	ID        string
	TenantID  string
	Connector string
	// UpdatedAt is when the connection was last changed; a poller uses it to
	// retry at once a connection whose configuration was fixed.
	UpdatedAt time.Time
	// State is the value stored under the state key asked for, or nil.
	State []byte
}

// PollTargets lists the active connections, of every tenant, of the named
// connectors, each with its connection_state value under stateKey (nil when
// there is none), ordered by id. It is for the host's poller, never for the
// API. Disabled connections are left out, so they stop being polled.
func (s *Store) PollTargets(ctx context.Context, connectors []string, stateKey string) ([]PollTarget, error) {
	if len(connectors) == 0 {
		return nil, nil
	}
	if err := checkStateKey(stateKey); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT c.id, c.tenant_id, c.connector, c.updated_at, st.value
		FROM connections c
		LEFT JOIN connection_state st ON st.connection_id = c.id AND st.key = $2
		WHERE c.status = 'active' AND c.connector = ANY($1)
		ORDER BY c.id`,
		connectors, stateKey)
	if err != nil {
		return nil, fmt.Errorf("listing connections to poll: %w", err)
	}
	targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PollTarget, error) {
		var t PollTarget
		err := r.Scan(&t.ID, &t.TenantID, &t.Connector, &t.UpdatedAt, &t.State)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing connections to poll: %w", err)
	}
	return targets, nil
}
