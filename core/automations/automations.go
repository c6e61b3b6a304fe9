// Package automations stores the per-connection settings of Ponte's
// automations (cart recovery, order notifications): one JSON document per
// shop connection and automation kind, validated by the automation's own
// package before it is stored.
package automations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes automation settings.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Get decodes the settings of kind for the tenant's connection into v and
// reports whether there were any; v is left unchanged when there were not.
func (s *Store) Get(ctx context.Context, tenantID, connectionID, kind string, v any) (bool, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx,
		`SELECT settings FROM automation_settings WHERE tenant_id = $1 AND connection_id = $2 AND kind = $3`,
		tenantID, connectionID, kind).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading %s settings of connection %s: %w", kind, connectionID, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decoding %s settings of connection %s: %w", kind, connectionID, err)
	}
	return true, nil
}

// Put stores v as the settings of kind for the tenant's connection,
// replacing any. The caller has validated v and checked that the connection
// is the tenant's (the foreign key only proves it exists).
func (s *Store) Put(ctx context.Context, tenantID, connectionID, kind string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s settings: %w", kind, err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO automation_settings (tenant_id, connection_id, kind, settings)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (connection_id, kind) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()
		WHERE automation_settings.tenant_id = EXCLUDED.tenant_id`,
		tenantID, connectionID, kind, raw)
	if err != nil {
		return fmt.Errorf("storing %s settings of connection %s: %w", kind, connectionID, err)
	}
	return nil
}

// ChannelKey is the settings field every automation uses for the number it
// sends from (a connection id); empty means any of the tenant's numbers.
const ChannelKey = "channel_connection_id"

// ReleaseConnection unbinds every automation of the tenant from the number
// connectionID (about to be deleted): their settings lose the channel, so
// they send from any of the tenant's numbers again instead of failing on a
// number that is gone. It returns how many settings changed.
func (s *Store) ReleaseConnection(ctx context.Context, tenantID, connectionID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE automation_settings SET settings = settings - $3::text, updated_at = now()
		WHERE tenant_id = $1 AND settings->>$3::text = $2`, tenantID, connectionID, ChannelKey)
	if err != nil {
		return 0, fmt.Errorf("releasing the automations bound to %s: %w", connectionID, err)
	}
	return int(tag.RowsAffected()), nil
}
