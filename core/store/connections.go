package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Connection statuses.
const (
	// StatusActive connections receive webhooks and run actions.
	StatusActive = "active"
	// StatusDisabled connections are kept but not used; ingress refuses their
	// webhooks.
	StatusDisabled = "disabled"
)

// ErrConnectionInUse is returned by DeleteConnection while other records
// (payment links) still refer to the connection; disable it instead.
var ErrConnectionInUse = errors.New("connection is in use")

// NewConnection is what CreateConnection needs.
type NewConnection struct {
	// Connector is the connector's name, e.g. "stripe".
	Connector string
	// Name is for people, e.g. "Stripe (live)".
	Name string
	// Config is the full configuration object, secret fields included.
	Config json.RawMessage
	// Fields are the connector manifest's configuration fields, which Config is
	// validated against.
	Fields []sdk.ConfigField
}

// ConnectionUpdate changes a connection; nil fields are left alone.
type ConnectionUpdate struct {
	// Name, when set, renames the connection.
	Name *string
	// Status, when set, is StatusActive or StatusDisabled.
	Status *string
	// Config, when set, is a JSON merge patch (RFC 7396) over the current
	// configuration: fields given replace, null removes (the default applies
	// again), fields omitted keep their value. So a secret that is not sent
	// again keeps its stored value.
	Config json.RawMessage
	// Fields are the connector manifest's configuration fields; required when
	// Config is set.
	Fields []sdk.ConfigField
}

// ConnectionFilter selects and pages connections.
type ConnectionFilter struct {
	// Connector, when set, keeps connections of this connector only.
	Connector string
	// Cursor is the NextCursor of the previous page, or "".
	Cursor string
	// Limit is the page size; 0 means DefaultPageSize, at most MaxPageSize.
	Limit int
}

type connectionCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

const connectionColumns = `id, tenant_id, connector, name, status, COALESCE(status_reason, ''), config, secret_fields, created_at, updated_at`

func scanConnection(row pgx.Row, extra ...any) (Connection, error) {
	var c Connection
	dest := append([]any{&c.ID, &c.TenantID, &c.Connector, &c.Name, &c.Status, &c.StatusReason, &c.Config, &c.SecretFields, &c.CreatedAt, &c.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Connection{}, err
	}
	if c.SecretFields == nil {
		c.SecretFields = []string{}
	}
	return c, nil
}

// sealSecrets seals a connection's secret fields, bound to its id.
func (s *Store) sealSecrets(connectionID string, secret map[string]any) ([]byte, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	if s.sealer == nil {
		return nil, ErrNoMasterKey
	}
	plain, err := json.Marshal(secret)
	if err != nil {
		return nil, fmt.Errorf("encoding secret fields: %w", err)
	}
	sealed, err := s.sealer.Seal(plain, []byte(connectionID))
	if err != nil {
		return nil, fmt.Errorf("sealing secret fields: %w", err)
	}
	return sealed, nil
}

// openSecrets opens a connection's sealed secret fields.
func (s *Store) openSecrets(connectionID string, sealed []byte) (map[string]any, error) {
	if len(sealed) == 0 {
		return map[string]any{}, nil
	}
	if s.sealer == nil {
		return nil, ErrNoMasterKey
	}
	plain, err := s.sealer.Open(sealed, []byte(connectionID))
	if err != nil {
		return nil, fmt.Errorf("opening secrets of connection %s: %w", connectionID, err)
	}
	m, ok := decodeObject(plain)
	if !ok {
		return nil, fmt.Errorf("opening secrets of connection %s: not a JSON object", connectionID)
	}
	return m, nil
}

// CreateConnection validates in.Config against in.Fields, applies defaults,
// seals the secret fields under the master key (bound to the new connection's
// id) and stores the connection for the tenant. It returns a
// *ValidationError listing every problem, ErrNotFound when the tenant does
// not exist, or ErrNoMasterKey when there are secrets to seal but no key.
func (s *Store) CreateConnection(ctx context.Context, tenantID string, in NewConnection) (Connection, error) {
	var problems []FieldProblem
	if strings.TrimSpace(in.Connector) == "" {
		problems = append(problems, FieldProblem{Field: "connector", Message: "must not be empty"})
	}
	var nameErr *ValidationError
	if errors.As(checkName("name", in.Name), &nameErr) {
		problems = append(problems, nameErr.Problems...)
	}
	cfg, ok := decodeObject(in.Config)
	if !ok {
		problems = append(problems, FieldProblem{Field: "config", Message: "must be a JSON object"})
	}
	var vc validatedConfig
	if ok {
		var err error
		var cfgErr *ValidationError
		vc, err = validateConfig(in.Fields, cfg)
		if errors.As(err, &cfgErr) {
			problems = append(problems, cfgErr.Problems...)
		}
	}
	if problems != nil {
		return Connection{}, &ValidationError{Problems: problems}
	}

	id := NewID("con")
	sealed, err := s.sealSecrets(id, vc.secret)
	if err != nil {
		return Connection{}, fmt.Errorf("creating connection: %w", err)
	}
	public, err := json.Marshal(vc.public)
	if err != nil {
		return Connection{}, fmt.Errorf("creating connection: encoding config: %w", err)
	}
	c, err := scanConnection(s.pool.QueryRow(ctx, `
		INSERT INTO connections (id, tenant_id, connector, name, config, secrets, secret_fields)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING `+connectionColumns,
		id, tenantID, in.Connector, strings.TrimSpace(in.Name), public, sealed, nonNil(vc.secrets)))
	if PGCode(err) == PGForeignKeyViolation {
		return Connection{}, ErrNotFound
	}
	if err != nil {
		return Connection{}, fmt.Errorf("creating connection: %w", err)
	}
	return c, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetConnection returns one of a tenant's connections (without secrets) or
// ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, ErrNotFound
	}
	if err != nil {
		return Connection{}, fmt.Errorf("reading connection: %w", err)
	}
	return c, nil
}

// LookupConnection returns a connection of any tenant (without secrets) or
// ErrNotFound. It is for host-side callers that are handed a connection id by
// a plugin, never for the API.
func (s *Store) LookupConnection(ctx context.Context, id string) (Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, ErrNotFound
	}
	if err != nil {
		return Connection{}, fmt.Errorf("reading connection: %w", err)
	}
	return c, nil
}

// ListConnections returns a page of a tenant's connections, oldest first, and
// the cursor of the next page ("" on the last page). A cursor that this
// package did not hand out is ErrInvalidCursor.
func (s *Store) ListConnections(ctx context.Context, tenantID string, f ConnectionFilter) ([]Connection, string, error) {
	limit := pageSize(f.Limit)
	var after connectionCursor
	if f.Cursor != "" {
		if err := DecodeCursor(f.Cursor, &after); err != nil {
			return nil, "", err
		}
	}
	// The row comparison (created_at, id) > (...) walks the
	// connections_tenant index; fetching one extra row tells whether there is
	// a next page without a count query.
	rows, err := s.pool.Query(ctx, `
		SELECT `+connectionColumns+` FROM connections
		WHERE tenant_id = $1
		  AND ($2 = '' OR connector = $2)
		  AND ($3 = '' OR (created_at, id) > ($4, $3))
		ORDER BY created_at, id
		LIMIT $5`,
		tenantID, f.Connector, after.ID, after.CreatedAt, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing connections: %w", err)
	}
	conns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Connection, error) { return scanConnection(r) })
	if err != nil {
		return nil, "", fmt.Errorf("listing connections: %w", err)
	}
	next := ""
	if len(conns) > limit {
		conns = conns[:limit]
		last := conns[limit-1]
		next = EncodeCursor(connectionCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return conns, next, nil
}

// UpdateConnection changes one of a tenant's connections and returns it as
// stored. A configuration change is merged over the current configuration
// (see ConnectionUpdate.Config), validated as a whole and re-sealed. It
// returns ErrNotFound or a *ValidationError.
func (s *Store) UpdateConnection(ctx context.Context, tenantID, id string, u ConnectionUpdate) (Connection, error) {
	var problems []FieldProblem
	if u.Name != nil {
		var nameErr *ValidationError
		if errors.As(checkName("name", *u.Name), &nameErr) {
			problems = append(problems, nameErr.Problems...)
		}
	}
	if u.Status != nil && *u.Status != StatusActive && *u.Status != StatusDisabled {
		problems = append(problems, FieldProblem{Field: "status", Message: "must be active or disabled"})
	}
	var patch map[string]any
	if u.Config != nil {
		var ok bool
		if patch, ok = decodeObject(u.Config); !ok {
			problems = append(problems, FieldProblem{Field: "config", Message: "must be a JSON object"})
		}
	}
	if problems != nil {
		return Connection{}, &ValidationError{Problems: problems}
	}

	var out Connection
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// FOR UPDATE serializes concurrent updates of the same connection, so
		// two merges cannot each drop the other's change.
		var sealed []byte
		cur, err := scanConnection(tx.QueryRow(ctx, `SELECT `+connectionColumns+`, secrets FROM connections WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id), &sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading connection: %w", err)
		}
		name, status := cur.Name, cur.Status
		if u.Name != nil {
			name = strings.TrimSpace(*u.Name)
		}
		if u.Status != nil {
			status = *u.Status
		}
		public, secrets := []byte(cur.Config), sealed
		secretFields := cur.SecretFields
		if patch != nil {
			old, ok := decodeObject(cur.Config)
			if !ok {
				return fmt.Errorf("stored config of connection %s is not a JSON object", id)
			}
			oldSecrets, err := s.openSecrets(id, sealed)
			if err != nil {
				return err
			}
			for k, v := range oldSecrets {
				old[k] = v
			}
			vc, err := validateConfig(u.Fields, mergePatch(old, patch))
			if err != nil {
				return err
			}
			if secrets, err = s.sealSecrets(id, vc.secret); err != nil {
				return err
			}
			if public, err = json.Marshal(vc.public); err != nil {
				return fmt.Errorf("encoding config: %w", err)
			}
			secretFields = nonNil(vc.secrets)
		}
		out, err = scanConnection(tx.QueryRow(ctx, `
			UPDATE connections
			SET name = $3, status = $4, config = $5, secrets = $6, secret_fields = $7, updated_at = now(),
			    -- a status the user sets replaces the reason Ponte gave for its own
			    status_reason = CASE WHEN status = $4 THEN status_reason END
			WHERE tenant_id = $1 AND id = $2
			RETURNING `+connectionColumns,
			tenantID, id, name, status, public, secrets, secretFields))
		if err != nil {
			return fmt.Errorf("writing connection: %w", err)
		}
		return nil
	})
	if err != nil {
		var ve *ValidationError
		if errors.Is(err, ErrNotFound) || errors.As(err, &ve) {
			return Connection{}, err
		}
		return Connection{}, fmt.Errorf("updating connection: %w", err)
	}
	return out, nil
}

// RevokeConnection disables a connection because its provider revoked it
// (a connector's sdk.EventConnectionRevoked), recording the reason. It
// reports whether the connection was active; an already disabled connection
// is left as is. It returns ErrNotFound for an unknown id.
func (s *Store) RevokeConnection(ctx context.Context, id, reason string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE connections SET status = 'disabled', status_reason = $2, updated_at = now()
		WHERE id = $1 AND status = 'active'`, id, reason)
	if err != nil {
		return false, fmt.Errorf("revoking connection %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM connections WHERE id = $1)`, id).Scan(&exists); err != nil {
		return false, fmt.Errorf("revoking connection %s: %w", id, err)
	}
	if !exists {
		return false, ErrNotFound
	}
	return false, nil
}

// DeleteConnection deletes one of a tenant's connections, with its stored
// events and state. It returns ErrNotFound, or ErrConnectionInUse while
// payment links refer to it.
func (s *Store) DeleteConnection(ctx context.Context, tenantID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM connections WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if PGCode(err) == PGForeignKeyViolation {
		return ErrConnectionInUse
	}
	if err != nil {
		return fmt.Errorf("deleting connection: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ResolvedConnection returns a connection of any tenant with its full
// configuration, secrets decrypted, as plugins receive it. It is for the
// ingress and the action path, which are handed a connection id by a webhook
// URL or a workflow; it returns ErrNotFound, or ErrNoMasterKey when the
// connection has secrets and the store has no key. The status is returned
// as is: callers decide what a disabled connection means for them.
func (s *Store) ResolvedConnection(ctx context.Context, id string) (Connection, sdk.Config, error) {
	var sealed []byte
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+`, secrets FROM connections WHERE id = $1`, id), &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, nil, ErrNotFound
	}
	if err != nil {
		return Connection{}, nil, fmt.Errorf("reading connection: %w", err)
	}
	cfg, ok := decodeObject(c.Config)
	if !ok {
		return Connection{}, nil, fmt.Errorf("stored config of connection %s is not a JSON object", id)
	}
	secret, err := s.openSecrets(id, sealed)
	if err != nil {
		return Connection{}, nil, err
	}
	for k, v := range secret {
		cfg[k] = v
	}
	full, err := json.Marshal(cfg)
	if err != nil {
		return Connection{}, nil, fmt.Errorf("encoding config of connection %s: %w", id, err)
	}
	return c, sdk.Config(full), nil
}
