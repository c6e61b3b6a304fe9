// Package templates keeps the WhatsApp message templates of each channel
// connection: synced from the Cloud API (the connector's list_templates
// action), moved by template status webhooks, created and deleted through the
// connector, and looked up by the messaging core on every template send.
//
// States are Meta's approved / pending / rejected / paused / disabled plus
// Ponte's own incompatible: a template that a feature (cart recovery, a flow)
// found it cannot fill, with the reason in status_reason. Only approved
// templates can be sent ([Service.RequireSendable]).
package templates

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
)

// Statuses of a template.
const (
	StatusApproved     = "approved"
	StatusPending      = "pending"
	StatusRejected     = "rejected"
	StatusPaused       = "paused"
	StatusDisabled     = "disabled"
	StatusIncompatible = "incompatible"
)

// Categories of a template.
const (
	CategoryMarketing      = "marketing"
	CategoryUtility        = "utility"
	CategoryAuthentication = "authentication"
)

// Template is a message template of a connection.
type Template struct {
	ID           string
	TenantID     string
	ConnectionID string
	// ProviderID is Meta's template id.
	ProviderID string
	Name       string
	Language   string
	Category   string
	Status     string
	// StatusReason says why a template is rejected, paused, disabled or
	// incompatible, when known.
	StatusReason string
	// Components are Meta's component objects (HEADER, BODY, FOOTER, BUTTONS).
	Components json.RawMessage
	// Parameters is the number of distinct variables ({{1}}, {{2}}, ...) in
	// the body.
	Parameters int
	SyncedAt   *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Invoker runs connector actions; *invoke.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error)
}

// Options configure a [Service].
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// Service manages templates. It is safe for concurrent use.
type Service struct {
	pool *pgxpool.Pool
	inv  Invoker
	log  *slog.Logger
	now  func() time.Time
}

// New returns a Service on the database behind pool, calling connectors
// through inv.
func New(pool *pgxpool.Pool, inv Invoker, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{pool: pool, inv: inv, log: cmp.Or(opts.Logger, slog.Default()), now: now}
}

// NotSendableError is returned by RequireSendable for a template that exists
// but is not approved, or (Status "", wrapping store.ErrNotFound) does not
// exist on the connection.
type NotSendableError struct {
	Name, Language string
	// Status is the template's status; "" when there is no such template.
	Status string
	// Reason is the template's status reason, when known.
	Reason string
}

func (e *NotSendableError) Error() string {
	if e.Status == "" {
		return fmt.Sprintf("template %s (%s) does not exist on this connection", e.Name, e.Language)
	}
	msg := fmt.Sprintf("template %s (%s) is %s, not approved", e.Name, e.Language, e.Status)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Unwrap makes a missing template errors.Is(err, store.ErrNotFound).
func (e *NotSendableError) Unwrap() error {
	if e.Status == "" {
		return store.ErrNotFound
	}
	return nil
}

const columns = `id, tenant_id, connection_id, COALESCE(provider_id, ''), name, language, category, status,
       COALESCE(status_reason, ''), components, parameters, synced_at, created_at, updated_at`

func scan(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.TenantID, &t.ConnectionID, &t.ProviderID, &t.Name, &t.Language, &t.Category, &t.Status,
		&t.StatusReason, &t.Components, &t.Parameters, &t.SyncedAt, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Template{}, store.ErrNotFound
	}
	return t, err
}

// Get returns the template name in language of a connection of the tenant;
// store.ErrNotFound when there is none. One indexed query, no cache: a
// template paused a moment ago is not sent.
func (s *Service) Get(ctx context.Context, tenantID, connectionID, name, language string) (Template, error) {
	t, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM templates
		WHERE connection_id = $2 AND name = $3 AND language = $4 AND tenant_id = $1`, tenantID, connectionID, name, language))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Template{}, fmt.Errorf("reading template %s (%s): %w", name, language, err)
	}
	return t, err
}

// GetByID returns a template of the tenant; store.ErrNotFound when there is none.
func (s *Service) GetByID(ctx context.Context, tenantID, id string) (Template, error) {
	t, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM templates WHERE id = $2 AND tenant_id = $1`, tenantID, id))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Template{}, fmt.Errorf("reading template %s: %w", id, err)
	}
	return t, err
}

// RequireSendable returns the template when it can be sent (approved), and
// otherwise a *NotSendableError with its status, so a send fails before any
// provider call.
func (s *Service) RequireSendable(ctx context.Context, tenantID, connectionID, name, language string) (Template, error) {
	t, err := s.Get(ctx, tenantID, connectionID, name, language)
	if errors.Is(err, store.ErrNotFound) {
		return Template{}, &NotSendableError{Name: name, Language: language}
	}
	if err != nil {
		return Template{}, err
	}
	if t.Status != StatusApproved {
		return t, &NotSendableError{Name: name, Language: language, Status: t.Status, Reason: t.StatusReason}
	}
	return t, nil
}

// Filter narrows List.
type Filter struct {
	ConnectionID string
	Status       string
	Category     string
	// Name matches templates whose name contains it.
	Name   string
	Cursor string
	Limit  int
}

type cursor struct {
	Name     string `json:"n"`
	Language string `json:"l"`
	ID       string `json:"i"`
}

// List returns a page of the tenant's templates ordered by name, language
// and id, and the cursor of the next page ("" on the last).
// store.ErrInvalidCursor for a cursor List did not return.
func (s *Service) List(ctx context.Context, tenantID string, f Filter) ([]Template, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = store.DefaultPageSize
	case limit > store.MaxPageSize:
		limit = store.MaxPageSize
	}
	var after cursor
	if f.Cursor != "" {
		if err := decodeCursor(f.Cursor, &after); err != nil {
			return nil, "", store.ErrInvalidCursor
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM templates
		WHERE tenant_id = $1
		  AND ($2 = '' OR connection_id = $2) AND ($3 = '' OR status = $3) AND ($4 = '' OR category = $4)
		  AND ($5 = '' OR strpos(name, $5) > 0)
		  AND ($6 = '' OR (name, language, id) > ($6, $7, $8))
		ORDER BY name, language, id
		LIMIT $9`, tenantID, f.ConnectionID, f.Status, f.Category, strings.ToLower(f.Name), after.Name, after.Language, after.ID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing templates: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Template, error) { return scan(row) })
	if err != nil {
		return nil, "", fmt.Errorf("listing templates: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		next = encodeCursor(cursor{Name: last.Name, Language: last.Language, ID: last.ID})
	}
	return list, next, nil
}

// MarkIncompatible sets a template's status to incompatible with the reason
// (say which feature found what, e.g. "cart recovery: body has 3 variables,
// the reminder fills 2"). A later sync or status update that changes the
// template (new components, or a rejection, pause or disable) replaces it.
// store.ErrNotFound when the template is not the tenant's.
func (s *Service) MarkIncompatible(ctx context.Context, tenantID, id, reason string) (Template, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len([]rune(reason)) > 500 {
		return Template{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "reason", Message: "required, at most 500 characters"}}}
	}
	t, err := scan(s.pool.QueryRow(ctx, `
		UPDATE templates SET status = 'incompatible', status_reason = $3, updated_at = now()
		WHERE id = $2 AND tenant_id = $1
		RETURNING `+columns, tenantID, id, reason))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Template{}, fmt.Errorf("marking template %s incompatible: %w", id, err)
	}
	return t, err
}

// nameRE and languageRE are Meta's template name rule and the shape of its
// language codes ("it", "en_US", "pt_BR", "zh_HK", "fil").
var (
	nameRE     = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2,3})?$`)
)

// variableRE matches a template variable: positional {{1}} or named
// {{first_name}}.
var variableRE = regexp.MustCompile(`\{\{\s*([a-z0-9_]+)\s*\}\}`)

// countVariables returns the number of distinct variables in text.
func countVariables(text string) int {
	seen := map[string]bool{}
	for _, m := range variableRE.FindAllStringSubmatch(text, -1) {
		seen[m[1]] = true
	}
	return len(seen)
}

// component is the part of a Meta component object this package reads.
type component struct {
	Type    string `json:"type"`
	Format  string `json:"format"`
	Text    string `json:"text"`
	Buttons []struct {
		Type string `json:"type"`
		Text string `json:"text"`
		URL  string `json:"url"`
	} `json:"buttons"`
}

func parseComponents(raw json.RawMessage) ([]component, error) {
	var cs []component
	if len(raw) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, fmt.Errorf("components are not an array of objects: %w", err)
	}
	return cs, nil
}

// bodyParameters counts the distinct variables of the BODY component.
func bodyParameters(raw json.RawMessage) int {
	cs, err := parseComponents(raw)
	if err != nil {
		return 0
	}
	for _, c := range cs {
		if strings.EqualFold(c.Type, "BODY") {
			return countVariables(c.Text)
		}
	}
	return 0
}
