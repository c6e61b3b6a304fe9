// Package contacts keeps a tenant's contacts (one per E.164 phone, with their
// WhatsApp id, LID, name, tags, custom fields and external ids; a sender a
// linked device knows only by LID is a contact without a phone until its
// number is learnt), their
// conversations (one per contact and channel connection, with the 24-hour
// customer-service window, assignment, unread count and notes) and the inbound
// side of the message ledger.
//
// Inbound messages arrive as `message.received` events of the Cloud API
// connector; [Service.Route] turns each into an in-process dispatch delivery
// that stores the message, creates or updates the contact and conversation in
// one transaction, and notifies live inboxes on the Postgres channel
// [NotifyChannel].
//
// Every method takes the tenant and filters on it: another tenant's ids are
// store.ErrNotFound, like ids that do not exist.
package contacts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// Config configures a [Service].
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// DefaultRegion is the ISO 3166 region numbers written without an
	// international prefix belong to (default "IT").
	DefaultRegion string
	// Logger receives operational logs; nil means slog.Default().
	Logger *slog.Logger
}

// Service is the contacts and conversations service. It is safe for
// concurrent use.
type Service struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// inbound groups the inbound messages of senders known by phone.
	inbound *inboundGrouper
	// phones caches NormalizePhone in the service's region.
	phones *phoneCache
}

// phoneCacheSize is how many numbers a generation of the phone cache holds:
// at most about 2 × 16,384 × 100 bytes, some 3 MB.
const phoneCacheSize = 16384

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil {
		return nil, errors.New("contacts: Pool is required")
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "IT"
	}
	if _, err := NormalizePhone("+393331234567", cfg.DefaultRegion); err != nil {
		return nil, fmt.Errorf("contacts: checking default region: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	region := strings.ToUpper(cfg.DefaultRegion)
	s := &Service{pool: cfg.Pool, log: cfg.Logger, phones: newPhoneCache(region, phoneCacheSize)}
	s.inbound = newInboundGrouper(s)
	return s, nil
}

// NormalizePhone is [NormalizePhone] with the service's default region.
// Valid numbers are remembered, so a sender's number is parsed once.
func (s *Service) NormalizePhone(raw string) (string, error) { return s.phones.normalize(raw) }

// Contact is a person a tenant talks to.
type Contact struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	// Phone is E.164; "" for a contact WhatsApp knows only by LID (a
	// linked device received its message without the number), until an
	// event brings the number.
	Phone string `json:"phone,omitempty"`
	// WaID is WhatsApp's id of the number (digits), when known.
	WaID string `json:"wa_id,omitempty"`
	// LID is the linked-device id, when known.
	LID  string   `json:"lid,omitempty"`
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags"`
	// Fields are custom fields, any JSON values by name.
	Fields map[string]json.RawMessage `json:"fields"`
	// ExternalIDs are the contact's ids in other systems, e.g.
	// {"shopify_customer": "123"}.
	ExternalIDs map[string]string `json:"external_ids"`
	// MergedInto is set on a contact that was linked into another: this one
	// is kept as a record and its phone resolves to MergedInto.
	MergedInto string     `json:"merged_into,omitempty"`
	MergedAt   *time.Time `json:"merged_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// ContactHints are what a caller of Resolve knows about a contact besides its
// phone. Empty fields are ignored. WaID and LID are recorded when they
// differ; Name is only set on a contact that has none (a name an agent chose
// wins over a profile name).
type ContactHints struct {
	WaID string
	LID  string
	Name string
}

const contactColumns = `id, tenant_id, COALESCE(phone, ''), COALESCE(wa_id, ''), COALESCE(lid, ''), COALESCE(name, ''), tags, fields, external_ids,
	COALESCE(merged_into, ''), merged_at, created_at, updated_at`

func scanContact(row pgx.Row) (Contact, error) {
	var c Contact
	var fields, ext []byte
	err := row.Scan(&c.ID, &c.TenantID, &c.Phone, &c.WaID, &c.LID, &c.Name, &c.Tags, &fields, &ext, &c.MergedInto, &c.MergedAt, &c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return Contact{}, err
	}
	if err := json.Unmarshal(fields, &c.Fields); err != nil {
		return Contact{}, fmt.Errorf("decoding contact fields: %w", err)
	}
	if err := json.Unmarshal(ext, &c.ExternalIDs); err != nil {
		return Contact{}, fmt.Errorf("decoding contact external ids: %w", err)
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c, nil
}

// phoneError turns a phone normalisation failure into a field problem.
func phoneError(field string, err error) error {
	return &store.ValidationError{Problems: []store.FieldProblem{{Field: field, Message: strings.TrimPrefix(err.Error(), ErrInvalidPhone.Error()+": ")}}}
}

// Resolve returns the tenant's contact for phone, creating it when there is
// none (an upsert: concurrent calls for a new phone create one contact). The
// phone is normalised to E.164 first (a *store.ValidationError for "phone"
// when it is not a valid number). A phone that was linked into another
// contact resolves to that contact.
func (s *Service) Resolve(ctx context.Context, tenantID, phone string, hints ContactHints) (Contact, error) {
	e164, err := s.NormalizePhone(phone)
	if err != nil {
		return Contact{}, phoneError("phone", err)
	}
	c, err := scanContact(s.pool.QueryRow(ctx, upsertContactSQL+` RETURNING `+contactColumns,
		store.NewID("ct"), tenantID, e164, hints.WaID, hints.LID, strings.TrimSpace(hints.Name)))
	if err != nil {
		if pgCode(err) == pgForeignKeyViolation {
			return Contact{}, fmt.Errorf("resolving contact: tenant: %w", store.ErrNotFound)
		}
		return Contact{}, fmt.Errorf("resolving contact: %w", err)
	}
	if c.MergedInto != "" {
		return s.GetContact(ctx, tenantID, c.MergedInto)
	}
	return c, nil
}

// upsertContactSQL inserts a contact or updates the one with the same phone:
// ids learnt when they differ, the name only when the contact has none.
// DO UPDATE (not DO NOTHING) so the row is always returned, also when another
// transaction inserted it concurrently. $1 id, $2 tenant, $3 phone, $4 wa_id,
// $5 lid, $6 name.
const upsertContactSQL = `
	INSERT INTO contacts AS c (id, tenant_id, phone, wa_id, lid, name)
	VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''))
	ON CONFLICT (tenant_id, phone) DO UPDATE SET ` + upsertContactSet

// upsertContactSet is the DO UPDATE of the contact upserts.
const upsertContactSet = `
		wa_id = COALESCE(EXCLUDED.wa_id, c.wa_id),
		lid = COALESCE(EXCLUDED.lid, c.lid),
		name = COALESCE(c.name, EXCLUDED.name),
		updated_at = CASE
			WHEN EXCLUDED.wa_id IS DISTINCT FROM c.wa_id AND EXCLUDED.wa_id IS NOT NULL
			  OR EXCLUDED.lid IS DISTINCT FROM c.lid AND EXCLUDED.lid IS NOT NULL
			  OR c.name IS NULL AND EXCLUDED.name IS NOT NULL
			THEN now() ELSE c.updated_at END`

// GetContact returns one of the tenant's contacts, merged ones included
// (with MergedInto set), or store.ErrNotFound.
func (s *Service) GetContact(ctx context.Context, tenantID, id string) (Contact, error) {
	c, err := scanContact(s.pool.QueryRow(ctx, `SELECT `+contactColumns+` FROM contacts WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Contact{}, fmt.Errorf("reading contact %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Contact{}, fmt.Errorf("reading contact: %w", err)
	}
	return c, nil
}

// ContactFilter selects contacts. Zero fields do not filter.
type ContactFilter struct {
	// Phone matches contacts whose phone starts with it (digits and "+";
	// national numbers are not normalised).
	Phone string
	// Name matches contacts whose name contains it, case-insensitively.
	Name string
	// Tag matches contacts carrying the tag.
	Tag string
	// AssignedTo limits the result to contacts with a conversation assigned
	// to this user (an operator's view).
	AssignedTo string
	Cursor     string
	Limit      int
}

type contactCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// ListContacts returns the tenant's contacts matching f, newest first, and
// the cursor of the next page ("" on the last). Merged contacts are left out.
func (s *Service) ListContacts(ctx context.Context, tenantID string, f ContactFilter) ([]Contact, string, error) {
	limit := pageSize(f.Limit)
	args := []any{tenantID}
	where := []string{"tenant_id = $1", "merged_into IS NULL"}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Phone != "" {
		p := strings.Map(func(r rune) rune {
			if r == '+' || r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, f.Phone)
		where = append(where, "phone LIKE "+arg(likePrefix(p)))
	}
	if f.Name != "" {
		where = append(where, "name ILIKE "+arg("%"+likeEscape(f.Name)+"%"))
	}
	if f.Tag != "" {
		// tags <> '{}' lets the plan use contacts_tags, which leaves out
		// contacts without tags.
		where = append(where, "tags @> ARRAY["+arg(f.Tag)+"]::text[] AND tags <> '{}'::text[]")
	}
	if f.AssignedTo != "" {
		where = append(where, "EXISTS (SELECT 1 FROM conversations cv WHERE cv.tenant_id = $1 AND cv.contact_id = contacts.id AND cv.assignee_id = "+arg(f.AssignedTo)+")")
	}
	if f.Cursor != "" {
		var cur contactCursor
		if err := decodeCursor(f.Cursor, &cur); err != nil {
			return nil, "", err
		}
		where = append(where, "(created_at, id) < ("+arg(cur.CreatedAt)+", "+arg(cur.ID)+")")
	}
	q := `SELECT ` + contactColumns + ` FROM contacts WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing contacts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) { return scanContact(r) })
	if err != nil {
		return nil, "", fmt.Errorf("listing contacts: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(contactCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return out, next, nil
}

// ContactUpdate changes a contact; nil fields are left alone.
type ContactUpdate struct {
	Name *string
	LID  *string
	// Tags replaces the contact's tags.
	Tags *[]string
	// Fields are merged into the custom fields; a JSON null removes a field.
	Fields map[string]json.RawMessage
	// ExternalIDs are merged into the external ids; an empty value removes one.
	ExternalIDs map[string]string
}

var (
	tagPattern      = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} _.:/-]{0,63}$`)
	fieldKeyPattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$`)
)

const (
	maxTags        = 100
	maxFields      = 100
	maxFieldBytes  = 4096
	maxNameRunes   = 200
	maxExternalLen = 200
)

// CheckTag returns a *store.ValidationError when tag is not a valid tag:
// 1-64 letters, digits, spaces and _ . : / -, starting with a letter or digit.
func CheckTag(field, tag string) error {
	if !tagPattern.MatchString(tag) {
		return &store.ValidationError{Problems: []store.FieldProblem{{Field: field, Message: "a tag is 1-64 letters, digits, spaces or _ . : / -, starting with a letter or digit"}}}
	}
	return nil
}

func (u ContactUpdate) check() error {
	var problems []store.FieldProblem
	add := func(field, msg string) { problems = append(problems, store.FieldProblem{Field: field, Message: msg}) }
	if u.Name != nil && utf8.RuneCountInString(*u.Name) > maxNameRunes {
		add("name", fmt.Sprintf("must be at most %d characters", maxNameRunes))
	}
	if u.LID != nil && len(*u.LID) > maxExternalLen {
		add("lid", "too long")
	}
	if u.Tags != nil {
		if len(*u.Tags) > maxTags {
			add("tags", fmt.Sprintf("at most %d tags", maxTags))
		}
		for i, t := range *u.Tags {
			if CheckTag("", t) != nil {
				add(fmt.Sprintf("tags[%d]", i), "a tag is 1-64 letters, digits, spaces or _ . : / -, starting with a letter or digit")
			}
		}
	}
	if len(u.Fields) > maxFields {
		add("fields", fmt.Sprintf("at most %d fields per update", maxFields))
	}
	for k, v := range u.Fields {
		switch {
		case !fieldKeyPattern.MatchString(k):
			add("fields."+k, "a field name is 1-64 letters, digits, _ . -, starting with a letter")
		case len(v) > maxFieldBytes:
			add("fields."+k, fmt.Sprintf("a field value is at most %d bytes of JSON", maxFieldBytes))
		case !json.Valid(v):
			add("fields."+k, "not valid JSON")
		}
	}
	for k, v := range u.ExternalIDs {
		if !fieldKeyPattern.MatchString(k) {
			add("external_ids."+k, "an external id name is 1-64 letters, digits, _ . -, starting with a letter")
		} else if len(v) > maxExternalLen {
			add("external_ids."+k, "too long")
		}
	}
	if problems != nil {
		slices.SortFunc(problems, func(a, b store.FieldProblem) int { return strings.Compare(a.Field, b.Field) })
		return &store.ValidationError{Problems: problems}
	}
	return nil
}

// UpdateContact changes one of the tenant's contacts and returns it. It
// returns store.ErrNotFound for a contact the tenant does not have and a
// *store.ValidationError for bad values.
func (s *Service) UpdateContact(ctx context.Context, tenantID, id string, u ContactUpdate) (Contact, error) {
	if err := u.check(); err != nil {
		return Contact{}, err
	}
	var name, lid *string
	if u.Name != nil {
		n := strings.TrimSpace(*u.Name)
		name = &n
	}
	if u.LID != nil {
		l := strings.TrimSpace(*u.LID)
		lid = &l
	}
	var tags []string
	if u.Tags != nil {
		tags = normalizeTags(*u.Tags)
	}
	setFields, dropFields := map[string]json.RawMessage{}, []string{}
	for k, v := range u.Fields {
		if string(v) == "null" {
			dropFields = append(dropFields, k)
		} else {
			setFields[k] = v
		}
	}
	setExt, dropExt := map[string]string{}, []string{}
	for k, v := range u.ExternalIDs {
		if v == "" {
			dropExt = append(dropExt, k)
		} else {
			setExt[k] = v
		}
	}
	fieldsJSON, _ := json.Marshal(setFields)
	extJSON, _ := json.Marshal(setExt)
	c, err := scanContact(s.pool.QueryRow(ctx, `
		UPDATE contacts SET
			name = CASE WHEN $3::text IS NULL THEN name ELSE NULLIF($3, '') END,
			lid = CASE WHEN $4::text IS NULL THEN lid ELSE NULLIF($4, '') END,
			tags = COALESCE($5::text[], tags),
			fields = (fields || $6::jsonb) - $7::text[],
			external_ids = (external_ids || $8::jsonb) - $9::text[],
			updated_at = now()
		WHERE tenant_id = $1 AND id = $2
		RETURNING `+contactColumns,
		tenantID, id, name, lid, tags, fieldsJSON, dropFields, extJSON, dropExt))
	if errors.Is(err, pgx.ErrNoRows) {
		return Contact{}, fmt.Errorf("updating contact %s: %w", id, store.ErrNotFound)
	}
	if pgCode(err) == pgCheckViolation {
		// contacts_phone_or_lid: the LID is all a LID-only contact has.
		return Contact{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "lid", Message: "a contact without a phone number keeps its LID"}}}
	}
	if err != nil {
		return Contact{}, fmt.Errorf("updating contact: %w", err)
	}
	return c, nil
}

// normalizeTags trims, deduplicates and sorts tags; nil becomes empty so the
// column is replaced.
func normalizeTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		out = append(out, strings.TrimSpace(t))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// AddTag adds a tag to one of the tenant's contacts (no change when it has
// it) and returns the contact.
func (s *Service) AddTag(ctx context.Context, tenantID, contactID, tag string) (Contact, error) {
	tag = strings.TrimSpace(tag)
	if err := CheckTag("tag", tag); err != nil {
		return Contact{}, err
	}
	return s.tagUpdate(ctx, tenantID, contactID, `
		UPDATE contacts SET tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || ARRAY[$3]) t ORDER BY t), updated_at = now()
		WHERE tenant_id = $1 AND id = $2 AND NOT tags @> ARRAY[$3]`, tag)
}

// RemoveTag removes a tag from one of the tenant's contacts (no change when
// it does not have it) and returns the contact.
func (s *Service) RemoveTag(ctx context.Context, tenantID, contactID, tag string) (Contact, error) {
	return s.tagUpdate(ctx, tenantID, contactID, `
		UPDATE contacts SET tags = array_remove(tags, $3), updated_at = now()
		WHERE tenant_id = $1 AND id = $2 AND tags @> ARRAY[$3]`, strings.TrimSpace(tag))
}

func (s *Service) tagUpdate(ctx context.Context, tenantID, contactID, sql, tag string) (Contact, error) {
	if _, err := s.pool.Exec(ctx, sql, tenantID, contactID, tag); err != nil {
		return Contact{}, fmt.Errorf("updating contact tags: %w", err)
	}
	return s.GetContact(ctx, tenantID, contactID)
}

// ErrAlreadyMerged is returned by Link for a contact that was already linked
// into another, or a target that was.
var ErrAlreadyMerged = errors.New("contact already linked into another")

// Link links contact from (typically an unknown sender) into contact into:
// from's conversations and messages move to into (a conversation on a
// number into already talks on is merged into into's, unread counts and
// activity times combined, notes moved), tags, custom fields, external ids,
// the WhatsApp id and name are copied where into has none, and from is kept
// as a record with MergedInto set, so its id stays valid (consent records
// keep pointing at it) and later messages from its phone land on into.
// byUserID records who linked ("" for a service key).
//
// It returns the surviving contact; store.ErrNotFound when either is not the
// tenant's, ErrAlreadyMerged when either was already linked, and a
// *store.ValidationError when from and into are the same contact.
func (s *Service) Link(ctx context.Context, tenantID, fromID, intoID, byUserID string) (Contact, error) {
	if fromID == intoID {
		return Contact{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "into_contact_id", Message: "a contact cannot be linked into itself"}}}
	}
	var out Contact
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock both rows in id order, so two links touching the same pair
		// cannot deadlock.
		rows, err := tx.Query(ctx, `SELECT id, merged_into IS NOT NULL FROM contacts WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE`,
			tenantID, []string{fromID, intoID})
		if err != nil {
			return fmt.Errorf("locking contacts: %w", err)
		}
		type locked struct {
			id     string
			merged bool
		}
		ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (locked, error) {
			var l locked
			return l, r.Scan(&l.id, &l.merged)
		})
		if err != nil {
			return fmt.Errorf("locking contacts: %w", err)
		}
		if len(ls) != 2 {
			return fmt.Errorf("linking contacts: %w", store.ErrNotFound)
		}
		for _, l := range ls {
			if l.merged {
				return fmt.Errorf("linking contact %s: %w", l.id, ErrAlreadyMerged)
			}
		}
		// Conversations on numbers into already uses: move messages and
		// notes, combine the counters, drop from's conversation.
		if _, err := tx.Exec(ctx, `
			WITH pairs AS (
				SELECT f.id AS from_cv, i.id AS into_cv
				FROM conversations f JOIN conversations i
				  ON i.tenant_id = f.tenant_id AND i.connection_id = f.connection_id AND i.contact_id = $3
				WHERE f.tenant_id = $1 AND f.contact_id = $2
			), moved_messages AS (
				UPDATE messages m SET conversation_id = p.into_cv, contact_id = $3, updated_at = now()
				FROM pairs p WHERE m.conversation_id = p.from_cv
			), moved_notes AS (
				UPDATE notes n SET conversation_id = p.into_cv FROM pairs p WHERE n.conversation_id = p.from_cv
			), combined AS (
				UPDATE conversations i SET
					unread_count = i.unread_count + f.unread_count,
					last_inbound_at = GREATEST(i.last_inbound_at, f.last_inbound_at),
					last_message_at = GREATEST(i.last_message_at, f.last_message_at),
					needs_human = i.needs_human OR f.needs_human,
					assignee_id = COALESCE(i.assignee_id, f.assignee_id),
					updated_at = now()
				FROM pairs p JOIN conversations f ON f.id = p.from_cv
				WHERE i.id = p.into_cv
			)
			SELECT count(*) FROM pairs`, tenantID, fromID, intoID); err != nil {
			return fmt.Errorf("merging conversations: %w", err)
		}
		// Delete the emptied conversations in their own statement: the CTE
		// above runs on one snapshot, and the moves must be done first.
		if _, err := tx.Exec(ctx, `
			DELETE FROM conversations f USING conversations i
			WHERE f.tenant_id = $1 AND f.contact_id = $2
			  AND i.tenant_id = f.tenant_id AND i.connection_id = f.connection_id AND i.contact_id = $3`,
			tenantID, fromID, intoID); err != nil {
			return fmt.Errorf("removing merged conversations: %w", err)
		}
		// Conversations on other numbers move as they are.
		if _, err := tx.Exec(ctx, `
			WITH moved AS (
				UPDATE conversations SET contact_id = $3, updated_at = now()
				WHERE tenant_id = $1 AND contact_id = $2 RETURNING id
			)
			UPDATE messages SET contact_id = $3, updated_at = now() WHERE conversation_id IN (SELECT id FROM moved)`,
			tenantID, fromID, intoID); err != nil {
			return fmt.Errorf("moving conversations: %w", err)
		}
		// Messages not yet moved (none expected; kept for rows another
		// package may write without a conversation of from).
		if _, err := tx.Exec(ctx, `UPDATE messages SET contact_id = $3, updated_at = now() WHERE tenant_id = $1 AND contact_id = $2`,
			tenantID, fromID, intoID); err != nil {
			return fmt.Errorf("moving messages: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE contacts i SET
				wa_id = COALESCE(i.wa_id, f.wa_id),
				lid = COALESCE(i.lid, f.lid),
				name = COALESCE(i.name, f.name),
				tags = ARRAY(SELECT DISTINCT t FROM unnest(i.tags || f.tags) t ORDER BY t),
				fields = f.fields || i.fields,
				external_ids = f.external_ids || i.external_ids,
				updated_at = now()
			FROM contacts f
			WHERE i.tenant_id = $1 AND i.id = $3 AND f.tenant_id = $1 AND f.id = $2`,
			tenantID, fromID, intoID); err != nil {
			return fmt.Errorf("merging contact data: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE contacts SET merged_into = $3, merged_at = now(), merged_by = NULLIF($4, ''), updated_at = now()
			WHERE tenant_id = $1 AND id = $2`,
			tenantID, fromID, intoID, byUserID); err != nil {
			return fmt.Errorf("marking contact merged: %w", err)
		}
		out, err = scanContact(tx.QueryRow(ctx, `SELECT `+contactColumns+` FROM contacts WHERE tenant_id = $1 AND id = $2`, tenantID, intoID))
		if err != nil {
			return fmt.Errorf("reading linked contact: %w", err)
		}
		return nil
	})
	if err != nil {
		return Contact{}, err
	}
	s.log.InfoContext(ctx, "contact linked", slog.String("tenant", tenantID), slog.String("from_contact", fromID), slog.String("into_contact", intoID), slog.String("by_user", byUserID))
	return out, nil
}

// Helpers shared by the package.

func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return store.DefaultPageSize
	case limit > store.MaxPageSize:
		return store.MaxPageSize
	}
	return limit
}

// encodeCursor makes an opaque keyset cursor. Not signed: a forged one only
// pages through the caller's own tenant's rows.
func encodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("contacts: encoding cursor: %v", err)) // plain structs only
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return store.ErrInvalidCursor
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return store.ErrInvalidCursor
	}
	return nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func likePrefix(s string) string { return likeEscape(s) + "%" }

const (
	pgForeignKeyViolation = "23503"
	pgUniqueViolation     = "23505"
	pgCheckViolation      = "23514"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
