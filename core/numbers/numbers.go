// Package numbers keeps the numbers a tenant sends WhatsApp messages from:
// linked devices (a WhatsApp account paired by QR code like WhatsApp Web,
// each its own connection of the linkeddevice connector, created with the
// number) and Cloud API numbers (an existing cloudapi connection given a
// label). A number carries its label, the modules it runs and, for linked
// devices, its pacing; its session state is read from session_states, which
// the node holding the session writes.
package numbers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/sessions"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Number kinds.
const (
	// KindLinkedDevice is a WhatsApp account paired by QR code (whatsmeow).
	KindLinkedDevice = "linked_device"
	// KindCloudAPI is a number of the WhatsApp Cloud API.
	KindCloudAPI = "cloud_api"
)

// The connectors behind the kinds.
const (
	// ConnectorLinkedDevice is the connector of linked-device numbers.
	ConnectorLinkedDevice = "linkeddevice"
	// ConnectorCloudAPI is the connector of Cloud API numbers.
	ConnectorCloudAPI = "cloudapi"
)

// ErrExists is returned by Create when the connection already is a number.
var ErrExists = errors.New("the connection already is a number")

// maxLabelLen bounds a label, like a connection's name (the label is the
// name of a linked device's connection).
const maxLabelLen = 200

// Modules switches what a number is used for.
type Modules struct {
	// Automations: flows and automations may send from the number.
	Automations bool `json:"automations" doc:"Whether automations and flows may send from this number."`
	// Campaigns: campaigns may send from the number.
	Campaigns bool `json:"campaigns" doc:"Whether campaigns may send from this number."`
}

// ModulesUpdate changes modules; nil fields are left alone.
type ModulesUpdate struct {
	Automations *bool `json:"automations,omitempty"`
	Campaigns   *bool `json:"campaigns,omitempty"`
}

// Number is a number a tenant sends from.
type Number struct {
	ID           string
	TenantID     string
	Kind         string // KindLinkedDevice or KindCloudAPI
	Label        string
	ConnectionID string
	Modules      Modules
	// Pacing is the effective pacing of a linked device (defaults
	// applied); PacingSet holds the fields the user chose. Both are zero
	// for Cloud API numbers, which Meta paces.
	Pacing    Pacing
	PacingSet PacingSettings
	// Session is the session as its holder last reported it; nil before
	// the first report (and for Cloud API numbers).
	Session   *sessions.State
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewNumber is what Create needs.
type NewNumber struct {
	// Kind is KindLinkedDevice or KindCloudAPI.
	Kind string
	// Label names the number for people ("Support", "Sales").
	Label string
	// DeviceName (linked devices, optional) is the name the phone shows in
	// its list of linked devices; empty leaves the connector's default.
	DeviceName string
	// Fields (linked devices) are the linkeddevice connector manifest's
	// configuration fields, which the new connection's configuration is
	// validated against as POST /v1/connections does.
	Fields []sdk.ConfigField
	// ConnectionID (Cloud API) is the tenant's existing cloudapi connection.
	ConnectionID string
	// Modules, when set, replaces the default (everything on).
	Modules *Modules
	// Pacing (linked devices) are the pacing fields the user chose.
	Pacing PacingSettings
}

// Update changes a number; nil or empty fields are left alone.
type Update struct {
	Label   *string
	Modules *ModulesUpdate
	// Pacing is a JSON merge patch over the stored pacing settings: fields
	// given replace, null resets a field (or, for the whole object, all of
	// them) to the default. Linked devices only.
	Pacing json.RawMessage
}

// Filter selects and pages numbers.
type Filter struct {
	// Kind, when set, keeps numbers of this kind only.
	Kind string
	// Cursor is the next cursor of the previous page, or "".
	Cursor string
	// Limit is the page size; 0 means store.DefaultPageSize, at most
	// store.MaxPageSize.
	Limit int
}

// Connections is the part of the store that manages connections.
// *store.Store implements it.
type Connections interface {
	CreateConnection(ctx context.Context, tenantID string, in store.NewConnection) (store.Connection, error)
	GetConnection(ctx context.Context, tenantID, id string) (store.Connection, error)
	UpdateConnection(ctx context.Context, tenantID, id string, u store.ConnectionUpdate) (store.Connection, error)
	DeleteConnection(ctx context.Context, tenantID, id string) error
}

// BindingReleaser makes what is bound to one number (flows, automations)
// bound to all numbers again; Delete calls it before a number goes, so
// nothing is left bound to a number that no longer exists.
type BindingReleaser interface {
	ReleaseConnection(ctx context.Context, tenantID, connectionID string) error
}

// Store keeps numbers in Postgres. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	conns    Connections
	releaser BindingReleaser
}

// NewStore returns a Store on pool, creating and deleting linked devices'
// connections through conns. releaser may be nil while nothing binds to
// numbers.
func NewStore(pool *pgxpool.Pool, conns Connections, releaser BindingReleaser) *Store {
	return &Store{pool: pool, conns: conns, releaser: releaser}
}

func checkLabel(label string) []store.FieldProblem {
	switch {
	case strings.TrimSpace(label) == "":
		return []store.FieldProblem{{Field: "label", Message: "must not be empty"}}
	case utf8.RuneCountInString(label) > maxLabelLen:
		return []store.FieldProblem{{Field: "label", Message: fmt.Sprintf("must be at most %d characters", maxLabelLen)}}
	}
	return nil
}

func problemsOf(err error) []store.FieldProblem {
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return nil
}

// Create creates a number. For a linked device it creates the number's
// connection first (connector linkeddevice, named by the label, configured
// with the device name); a failure after that removes the connection again.
// For a Cloud API number the connection must be one of the tenant's cloudapi
// connections.
//
// It returns a *store.ValidationError (fields label, kind, device_name /
// config.*, connection_id, pacing.*), ErrExists when the connection already
// is a number, or store.ErrNotFound when the tenant does not exist.
func (s *Store) Create(ctx context.Context, tenantID string, in NewNumber) (Number, error) {
	problems := checkLabel(in.Label)
	switch in.Kind {
	case KindLinkedDevice:
		if in.ConnectionID != "" {
			problems = append(problems, store.FieldProblem{Field: "connection_id", Message: "a linked device gets a connection of its own; leave connection_id out"})
		}
		problems = append(problems, problemsOf(in.Pacing.Validate())...)
	case KindCloudAPI:
		if in.DeviceName != "" {
			problems = append(problems, store.FieldProblem{Field: "device_name", Message: "only linked devices have a device name"})
		}
		if !in.Pacing.IsZero() {
			problems = append(problems, store.FieldProblem{Field: "pacing", Message: "pacing applies to linked devices; Meta paces Cloud API numbers"})
		}
		if in.ConnectionID == "" {
			problems = append(problems, store.FieldProblem{Field: "connection_id", Message: "a Cloud API number needs the id of one of your cloudapi connections"})
		}
	default:
		problems = append(problems, store.FieldProblem{Field: "kind", Message: "must be linked_device or cloud_api"})
	}
	if problems != nil {
		return Number{}, &store.ValidationError{Problems: problems}
	}
	modules := Modules{Automations: true, Campaigns: true}
	if in.Modules != nil {
		modules = *in.Modules
	}
	label := strings.TrimSpace(in.Label)

	connID := in.ConnectionID
	if in.Kind == KindCloudAPI {
		c, err := s.conns.GetConnection(ctx, tenantID, connID)
		if errors.Is(err, store.ErrNotFound) {
			return Number{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "connection_id", Message: "none of your connections has this id"}}}
		}
		if err != nil {
			return Number{}, fmt.Errorf("creating number: reading connection %s: %w", connID, err)
		}
		if c.Connector != ConnectorCloudAPI {
			return Number{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "connection_id",
				Message: fmt.Sprintf("must be a %s connection; this one is %s", ConnectorCloudAPI, c.Connector)}}}
		}
	} else {
		cfg := map[string]any{}
		if in.DeviceName != "" {
			cfg["device_name"] = in.DeviceName
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			return Number{}, fmt.Errorf("creating number: encoding connection config: %w", err)
		}
		c, err := s.conns.CreateConnection(ctx, tenantID, store.NewConnection{
			Connector: ConnectorLinkedDevice, Name: label, Config: raw, Fields: in.Fields,
		})
		if err != nil {
			// The connection's config is the number's device_name: say so.
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				out := make([]store.FieldProblem, len(ve.Problems))
				for i, p := range ve.Problems {
					if p.Field == "config.device_name" {
						p.Field = "device_name"
					}
					out[i] = p
				}
				return Number{}, &store.ValidationError{Problems: out}
			}
			return Number{}, fmt.Errorf("creating number: creating its connection: %w", err)
		}
		connID = c.ID
	}

	n, err := s.insert(ctx, tenantID, in.Kind, label, connID, modules, in.Pacing)
	if err != nil && in.Kind == KindLinkedDevice {
		// The store creates connections outside any transaction of ours, so
		// undo by hand; the request may be gone, the clean-up must run.
		if derr := s.conns.DeleteConnection(context.WithoutCancel(ctx), tenantID, connID); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the connection %s created for it: %w", connID, derr))
		}
	}
	if err != nil {
		return Number{}, err
	}
	return n, nil
}

func (s *Store) insert(ctx context.Context, tenantID, kind, label, connID string, modules Modules, pacing PacingSettings) (Number, error) {
	modulesRaw, err := json.Marshal(modules)
	if err != nil {
		return Number{}, fmt.Errorf("creating number: encoding modules: %w", err)
	}
	pacingRaw, err := json.Marshal(pacing)
	if err != nil {
		return Number{}, fmt.Errorf("creating number: encoding pacing: %w", err)
	}
	id := store.NewID("num")
	_, err = s.pool.Exec(ctx, `
		INSERT INTO numbers (id, tenant_id, kind, label, connection_id, modules, pacing)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, tenantID, kind, label, connID, modulesRaw, pacingRaw)
	switch store.PGCode(err) {
	case "":
	case store.PGUniqueViolation:
		return Number{}, ErrExists
	case store.PGForeignKeyViolation:
		return Number{}, store.ErrNotFound // the tenant (or connection) went away
	}
	if err != nil {
		return Number{}, fmt.Errorf("creating number: %w", err)
	}
	return s.Get(ctx, tenantID, id)
}

// Get returns one of a tenant's numbers with its session, or
// store.ErrNotFound.
func (s *Store) Get(ctx context.Context, tenantID, id string) (Number, error) {
	n, err := scanNumber(s.pool.QueryRow(ctx, selectNumbers+` WHERE n.tenant_id = $1 AND n.id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Number{}, store.ErrNotFound
	}
	if err != nil {
		return Number{}, fmt.Errorf("reading number %s: %w", id, err)
	}
	return n, nil
}

// ByConnection returns the tenant's number on connectionID, or
// store.ErrNotFound when the connection is not a number.
func (s *Store) ByConnection(ctx context.Context, tenantID, connectionID string) (Number, error) {
	n, err := scanNumber(s.pool.QueryRow(ctx, selectNumbers+` WHERE n.tenant_id = $1 AND n.connection_id = $2`, tenantID, connectionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Number{}, store.ErrNotFound
	}
	if err != nil {
		return Number{}, fmt.Errorf("reading the number of connection %s: %w", connectionID, err)
	}
	return n, nil
}

type cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

// List returns a page of a tenant's numbers, oldest first, and the cursor of
// the next page ("" on the last page). A cursor this package did not hand
// out is store.ErrInvalidCursor.
func (s *Store) List(ctx context.Context, tenantID string, f Filter) ([]Number, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = store.DefaultPageSize
	case limit > store.MaxPageSize:
		limit = store.MaxPageSize
	}
	var after cursor
	if f.Cursor != "" {
		if err := store.DecodeCursor(f.Cursor, &after); err != nil || after.ID == "" {
			return nil, "", store.ErrInvalidCursor
		}
	}
	// One extra row tells whether there is a next page without a count.
	rows, err := s.pool.Query(ctx, selectNumbers+`
		WHERE n.tenant_id = $1
		  AND ($2 = '' OR n.kind = $2)
		  AND ($3 = '' OR (n.created_at, n.id) > ($4, $3))
		ORDER BY n.created_at, n.id
		LIMIT $5`, tenantID, f.Kind, after.ID, after.CreatedAt, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing numbers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Number, error) { return scanNumber(r) })
	if err != nil {
		return nil, "", fmt.Errorf("listing numbers: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = store.EncodeCursor(cursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return out, next, nil
}

// Update changes a number's label, modules or pacing and returns it. A
// linked device's connection is renamed with it, so both lists agree. It
// returns store.ErrNotFound or a *store.ValidationError.
func (s *Store) Update(ctx context.Context, tenantID, id string, u Update) (Number, error) {
	var problems []store.FieldProblem
	if u.Label != nil {
		problems = append(problems, checkLabel(*u.Label)...)
	}
	if problems != nil {
		return Number{}, &store.ValidationError{Problems: problems}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Number{}, fmt.Errorf("updating number %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// Lock the row: two PATCHes of different pacing fields must both land.
	var (
		kind, label, connID   string
		modulesRaw, pacingRaw []byte
	)
	err = tx.QueryRow(ctx, `SELECT kind, label, connection_id, modules, pacing FROM numbers
		WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id).Scan(&kind, &label, &connID, &modulesRaw, &pacingRaw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Number{}, store.ErrNotFound
	}
	if err != nil {
		return Number{}, fmt.Errorf("updating number %s: %w", id, err)
	}
	var modules Modules
	if err := json.Unmarshal(modulesRaw, &modules); err != nil {
		return Number{}, fmt.Errorf("updating number %s: decoding stored modules: %w", id, err)
	}
	pacing, err := decodePacing(pacingRaw)
	if err != nil {
		return Number{}, fmt.Errorf("updating number %s: decoding stored pacing: %w", id, err)
	}
	if m := u.Modules; m != nil {
		if m.Automations != nil {
			modules.Automations = *m.Automations
		}
		if m.Campaigns != nil {
			modules.Campaigns = *m.Campaigns
		}
	}
	if len(u.Pacing) > 0 {
		if kind != KindLinkedDevice {
			return Number{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "pacing", Message: "pacing applies to linked devices; Meta paces Cloud API numbers"}}}
		}
		if pacing, err = mergePacing(pacing, u.Pacing); err != nil {
			return Number{}, err
		}
		if err := pacing.Validate(); err != nil {
			return Number{}, err
		}
	}
	newLabel := label
	if u.Label != nil {
		newLabel = strings.TrimSpace(*u.Label)
	}
	if modulesRaw, err = json.Marshal(modules); err != nil {
		return Number{}, fmt.Errorf("updating number %s: encoding modules: %w", id, err)
	}
	if pacingRaw, err = json.Marshal(pacing); err != nil {
		return Number{}, fmt.Errorf("updating number %s: encoding pacing: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE numbers SET label = $3, modules = $4, pacing = $5, updated_at = now()
		WHERE tenant_id = $1 AND id = $2`, tenantID, id, newLabel, modulesRaw, pacingRaw); err != nil {
		return Number{}, fmt.Errorf("updating number %s: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Number{}, fmt.Errorf("updating number %s: %w", id, err)
	}
	if kind == KindLinkedDevice && newLabel != label {
		if _, err := s.conns.UpdateConnection(ctx, tenantID, connID, store.ConnectionUpdate{Name: &newLabel}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Number{}, fmt.Errorf("renaming the connection of number %s: %w", id, err)
		}
	}
	return s.Get(ctx, tenantID, id)
}

// Delete deletes a number. What was bound to it is released first (bound to
// every number again); a linked device's connection goes with it (and its
// session state and lease with the connection), while a Cloud API number's
// connection stays, only its label goes. It returns store.ErrNotFound.
func (s *Store) Delete(ctx context.Context, tenantID, id string) error {
	n, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return err
	}
	if s.releaser != nil {
		if err := s.releaser.ReleaseConnection(ctx, tenantID, n.ConnectionID); err != nil {
			return fmt.Errorf("deleting number %s: releasing what is bound to it: %w", id, err)
		}
	}
	if n.Kind == KindLinkedDevice {
		// numbers.connection_id cascades: the row goes with the connection.
		err := s.conns.DeleteConnection(ctx, tenantID, n.ConnectionID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("deleting number %s: deleting its connection: %w", id, err)
		}
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM numbers WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("deleting number %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 && n.Kind == KindCloudAPI {
		return store.ErrNotFound // deleted concurrently
	}
	return nil
}

// PacingFor is [PacingFor] on the store's pool.
func (s *Store) PacingFor(ctx context.Context, tenantID, connectionID string) (Pacing, error) {
	return PacingFor(ctx, s.pool, tenantID, connectionID)
}

const selectNumbers = `SELECT n.id, n.tenant_id, n.kind, n.label, n.connection_id, n.modules, n.pacing,
	n.created_at, n.updated_at,
	s.state, COALESCE(s.reason, ''), s.since, s.retry_at, s.banned_until,
	COALESCE(s.qr_code, ''), s.qr_expires_at, COALESCE(s.pairing_code, ''), COALESCE(s.phone, ''),
	COALESCE(s.jid, ''), COALESCE(s.lid, ''), COALESCE(s.push_name, ''), COALESCE(s.platform, ''),
	s.phone_seen_at, s.connected_at, s.updated_at
	FROM numbers n LEFT JOIN session_states s ON s.connection_id = n.connection_id AND s.tenant_id = n.tenant_id`

func scanNumber(row pgx.Row) (Number, error) {
	var (
		n                     Number
		modulesRaw, pacingRaw []byte
		st                    sessions.State
		state                 *string
		since, updated        *time.Time
	)
	err := row.Scan(&n.ID, &n.TenantID, &n.Kind, &n.Label, &n.ConnectionID, &modulesRaw, &pacingRaw,
		&n.CreatedAt, &n.UpdatedAt,
		&state, &st.Reason, &since, &st.RetryAt, &st.BannedUntil,
		&st.QRCode, &st.QRExpiresAt, &st.PairingCode, &st.Phone,
		&st.JID, &st.LID, &st.PushName, &st.Platform,
		&st.PhoneSeenAt, &st.ConnectedAt, &updated)
	if err != nil {
		return Number{}, err
	}
	if err := json.Unmarshal(modulesRaw, &n.Modules); err != nil {
		return Number{}, fmt.Errorf("decoding modules of number %s: %w", n.ID, err)
	}
	if n.Kind == KindLinkedDevice {
		if n.PacingSet, err = decodePacing(pacingRaw); err != nil {
			return Number{}, fmt.Errorf("decoding pacing of number %s: %w", n.ID, err)
		}
		n.Pacing = n.PacingSet.Effective()
	}
	if state != nil {
		st.ConnectionID, st.TenantID, st.State = n.ConnectionID, n.TenantID, *state
		if since != nil {
			st.Since = *since
		}
		if updated != nil {
			st.UpdatedAt = *updated
		}
		n.Session = &st
	}
	return n, nil
}
