// Package consent keeps a tenant's consent ledger and decides whether a
// message may go to a contact.
//
// The ledger (table consent_records) is append-only: every opt-in, opt-out
// and confirmation is a new record with its evidence (source, the exact text
// shown and its version, the method, when it happened, IP and user agent), and
// a contact's current state per purpose is derived from its latest record.
// Nothing is ever updated or deleted, so the export an auditor reads is the
// full history.
//
// [Service.Check] is the gate every send passes: exclusion list, opt-out,
// marketing opt-in, quiet hours, in that order. [Service.Route] turns inbound
// STOP / START keywords into ledger records and a one-time confirmation.
//
// # STOP is effective immediately
//
// Check reads the ledger directly (consent state is never cached), so a check
// that starts after an opt-out committed sees it. That alone leaves a gap: a
// send that checked just before the STOP committed can still reach the
// provider just after. [Service.CheckTx] closes it with a per-contact lock
// protocol in Postgres:
//
//   - a sender runs its last check and the provider call inside
//     [Service.Hold] or [Service.HoldCheck] (or opens a READ COMMITTED
//     transaction, calls CheckTx in it and keeps it open until the provider
//     answered): a shared transaction-scoped advisory lock on the contact is
//     held meanwhile, and the check reads the ledger with a snapshot taken
//     after the lock. [Service.HoldCheckGroup] does the same for many sends
//     in one transaction, taking their locks in key order;
//   - every consent record and exclusion is written in a transaction that
//     first takes the same lock exclusively.
//
// So a STOP waits for sends to that contact already past their check, and a
// send that checks after the STOP started waits for it and then sees it: every
// marketing message either reached the provider before the STOP was stored or
// is refused. Limits: the lock is keyed by a 32-bit hash of the contact id,
// so two contacts can share a lock (more waiting, never less safety);
// a sender that does not use CheckTx (or holds no transaction across the
// provider call) only gets Check's weaker guarantee; an exclusion added for
// a number that has no contact yet cannot wait for sends that create the
// contact at that moment; and a message the provider accepted before the STOP
// is out of our hands.
package consent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// Purposes of consent records and of sends. The ledger holds consent for
// marketing and utility; service (replies inside the customer-service window)
// and authentication (one-time codes) are send purposes that need no opt-in.
const (
	PurposeMarketing      = "marketing"
	PurposeUtility        = "utility"
	PurposeService        = "service"
	PurposeAuthentication = "authentication"
)

// LedgerPurposes are the purposes the ledger records consent for. A STOP opts
// out of all of them.
var LedgerPurposes = []string{PurposeMarketing, PurposeUtility}

// Actions of consent records.
const (
	ActionOptIn     = "opt_in"
	ActionOptOut    = "opt_out"
	ActionConfirmed = "confirmed"
)

// States derived from the ledger for a contact and purpose.
const (
	// StateIn: the latest record is an opt-in or a confirmation.
	StateIn = "in"
	// StateOut: the latest record is an opt-out.
	StateOut = "out"
	// StateNone: there is no record.
	StateNone = "none"
)

// Reasons a [Decision] refuses a send.
const (
	ReasonExcluded           = "excluded"
	ReasonOptedOut           = "opted_out"
	ReasonNoMarketingConsent = "no_marketing_consent"
	ReasonQuietHours         = "quiet_hours"
)

// Sources and methods this package writes itself.
const (
	SourceKeyword = "whatsapp_keyword"
	MethodKeyword = "keyword"
)

// Options configure a [Service]. Zero values take the defaults.
type Options struct {
	// Notifier sends the STOP / START confirmations. Required by Route.
	Notifier Notifier
	// Contacts resolves the sender of a keyword to a contact. Required by
	// Route.
	Contacts ContactResolver
	// SettingsTTL is how long a tenant's settings are cached (default 5s). A
	// change made through this Service is seen at once by it; other processes
	// see it within the TTL.
	SettingsTTL time.Duration
	// ConfirmationLease is how long a delivery owns the sending of a
	// confirmation before another may try (default 2m).
	ConfirmationLease time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// Service is the consent ledger, exclusion list, messaging settings and the
// send gate of every tenant. It is safe for concurrent use.
type Service struct {
	pool     *pgxpool.Pool
	notifier Notifier
	contacts ContactResolver
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration
	lease    time.Duration

	mu       sync.Mutex
	settings map[string]cachedSettings
}

// New returns a Service on the database behind pool.
func New(pool *pgxpool.Pool, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{
		pool:     pool,
		notifier: opts.Notifier,
		contacts: opts.Contacts,
		log:      cmp.Or(opts.Logger, slog.Default()),
		now:      now,
		ttl:      cmp.Or(opts.SettingsTTL, 5*time.Second),
		lease:    cmp.Or(opts.ConfirmationLease, 2*time.Minute),
		settings: map[string]cachedSettings{},
	}
}

// Record is one entry of the consent ledger.
type Record struct {
	ID        int64  `json:"id"`
	TenantID  string `json:"tenant_id"`
	ContactID string `json:"contact_id"`
	// Phone is the contact's number (E.164), for the reader of an export;
	// "" for a contact known only by its WhatsApp LID.
	Phone       string          `json:"phone"`
	Purpose     string          `json:"purpose"`
	Action      string          `json:"action"`
	Source      string          `json:"source"`
	Method      string          `json:"method,omitempty"`
	TextShown   string          `json:"text_shown,omitempty"`
	TextVersion string          `json:"text_version,omitempty"`
	IP          string          `json:"ip,omitempty"`
	UserAgent   string          `json:"user_agent,omitempty"`
	Evidence    json.RawMessage `json:"evidence"`
	OccurredAt  time.Time       `json:"occurred_at"`
	RecordedAt  time.Time       `json:"recorded_at"`
}

// NewRecord is a consent change to append to the ledger.
type NewRecord struct {
	ContactID string
	// Purposes the change applies to (marketing, utility); one record is
	// written per purpose, all in one transaction.
	Purposes []string
	// Action is opt_in, opt_out or confirmed.
	Action string
	// Source says where consent was collected: "api", "checkout", "import", ...
	Source string
	// Method says how: "checkbox", "double_opt_in", "verbal", ...
	Method string
	// TextShown is the exact wording the contact agreed to, and TextVersion
	// its version, when the caller has them.
	TextShown   string
	TextVersion string
	IP          string
	UserAgent   string
	// Evidence is any further proof as a JSON object (form id, order id, ...).
	Evidence json.RawMessage
	// OccurredAt is when the contact gave or withdrew consent; zero means now.
	// It may not be in the future.
	OccurredAt time.Time
}

// ContactConsent is a contact's current state per purpose and the history it
// is derived from, newest first.
type ContactConsent struct {
	ContactID string
	// States maps each ledger purpose to StateIn, StateOut or StateNone.
	States map[string]string
	// Latest maps each purpose with a record to that record.
	Latest  map[string]Record
	History []Record
}

// lockNamespace is the first key of the two-key advisory locks this package
// takes; the second is hashtext(contact id). The two-key space is separate
// from the one-key space (the migrations lock), and this value keeps it apart
// from other two-key users. Fixed forever: "CONS" in ASCII.
const lockNamespace int32 = 0x434f4e53

// lockContactExclusive takes the consent lock of a contact exclusively in tx:
// it waits for the sends of the contact under [Service.Hold] to finish, and
// later ones wait for tx.
func lockContactExclusive(ctx context.Context, tx pgx.Tx, contactID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockNamespace, contactID); err != nil {
		return fmt.Errorf("locking consent of contact %s: %w", contactID, err)
	}
	return nil
}

var validPurposes = map[string]bool{PurposeMarketing: true, PurposeUtility: true}
var validActions = map[string]bool{ActionOptIn: true, ActionOptOut: true, ActionConfirmed: true}

// maxFuture tolerates clock skew between a caller and Ponte.
const maxFuture = 5 * time.Minute

func (s *Service) checkNewRecord(in *NewRecord) error {
	var problems []store.FieldProblem
	add := func(field, msg string) { problems = append(problems, store.FieldProblem{Field: field, Message: msg}) }
	if len(in.Purposes) == 0 {
		add("purposes", "at least one purpose is required (marketing, utility)")
	}
	seen := map[string]bool{}
	for _, p := range in.Purposes {
		if !validPurposes[p] {
			add("purposes", fmt.Sprintf("unknown purpose %q (marketing, utility)", p))
		}
		if seen[p] {
			add("purposes", fmt.Sprintf("purpose %q given twice", p))
		}
		seen[p] = true
	}
	if !validActions[in.Action] {
		add("action", "must be opt_in, opt_out or confirmed")
	}
	in.Source = strings.TrimSpace(in.Source)
	if in.Source == "" || len(in.Source) > 100 {
		add("source", "required, at most 100 characters")
	}
	for field, v := range map[string]string{"method": in.Method, "text_version": in.TextVersion, "ip": in.IP} {
		if len(v) > 100 {
			add(field, "at most 100 characters")
		}
	}
	if len(in.TextShown) > 10000 {
		add("text_shown", "at most 10000 characters")
	}
	if len(in.UserAgent) > 1000 {
		add("user_agent", "at most 1000 characters")
	}
	if len(in.Evidence) == 0 || string(in.Evidence) == "null" {
		in.Evidence = json.RawMessage(`{}`)
	} else {
		var obj map[string]any
		if err := json.Unmarshal(in.Evidence, &obj); err != nil || obj == nil {
			add("evidence", "must be a JSON object")
		}
	}
	now := s.now()
	if in.OccurredAt.IsZero() {
		in.OccurredAt = now
	} else if in.OccurredAt.After(now.Add(maxFuture)) {
		add("occurred_at", "is in the future")
	}
	if len(problems) > 0 {
		return &store.ValidationError{Problems: problems}
	}
	return nil
}

// Record appends a consent change to the ledger, one record per purpose, in
// one transaction that holds the contact's consent lock (see the package
// documentation), so an opt-out is never overtaken by a send that checked
// before it. It returns store.ErrNotFound when the contact is not the
// tenant's and a *store.ValidationError for bad input.
func (s *Service) Record(ctx context.Context, tenantID string, in NewRecord) ([]Record, error) {
	if err := s.checkNewRecord(&in); err != nil {
		return nil, err
	}
	var out []Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var phone string
		err := tx.QueryRow(ctx, `SELECT COALESCE(phone, '') FROM contacts WHERE tenant_id = $1 AND id = $2`, tenantID, in.ContactID).Scan(&phone)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading contact: %w", err)
		}
		if err := lockContactExclusive(ctx, tx, in.ContactID); err != nil {
			return err
		}
		out, err = insertRecords(ctx, tx, tenantID, in.ContactID, in, false)
		for i := range out {
			out[i].Phone = phone
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording consent: %w", err)
	}
	return out, nil
}

const recordColumns = `r.id, r.tenant_id, r.contact_id, COALESCE(c.phone, ''), r.purpose, r.action, r.source, COALESCE(r.method, ''),
       COALESCE(r.text_shown, ''), COALESCE(r.text_version, ''), COALESCE(r.ip, ''), COALESCE(r.user_agent, ''),
       r.evidence, r.occurred_at, r.recorded_at`

func scanRecord(row pgx.Row) (Record, error) {
	var r Record
	err := row.Scan(&r.ID, &r.TenantID, &r.ContactID, &r.Phone, &r.Purpose, &r.Action, &r.Source, &r.Method,
		&r.TextShown, &r.TextVersion, &r.IP, &r.UserAgent, &r.Evidence, &r.OccurredAt, &r.RecordedAt)
	return r, err
}

// insertRecords writes one record per purpose. With keyword set, a record of
// the same inbound message (evidence.message_id) that already exists is kept
// and nothing is written for its purpose.
func insertRecords(ctx context.Context, tx pgx.Tx, tenantID, contactID string, in NewRecord, keyword bool) ([]Record, error) {
	conflict := ""
	if keyword {
		conflict = `ON CONFLICT (contact_id, purpose, (evidence->>'message_id')) WHERE source = 'whatsapp_keyword' DO NOTHING`
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO consent_records AS r (tenant_id, contact_id, purpose, action, source, method, text_shown, text_version,
		                                  ip, user_agent, evidence, occurred_at)
		SELECT $1, $2, p, $4, $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), NULLIF($10, ''), $11, $12
		FROM unnest($3::text[]) AS p
		`+conflict+`
		RETURNING r.id, r.tenant_id, r.contact_id, '', r.purpose, r.action, r.source, COALESCE(r.method, ''),
		          COALESCE(r.text_shown, ''), COALESCE(r.text_version, ''), COALESCE(r.ip, ''), COALESCE(r.user_agent, ''),
		          r.evidence, r.occurred_at, r.recorded_at`,
		tenantID, contactID, in.Purposes, in.Action, in.Source, in.Method, in.TextShown, in.TextVersion, in.IP, in.UserAgent,
		in.Evidence, in.OccurredAt)
	if err != nil {
		return nil, fmt.Errorf("inserting consent records: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, fmt.Errorf("inserting consent records: %w", err)
	}
	return recs, nil
}

// stateOf derives a state from the action of the latest record ("" for none).
func stateOf(action string) string {
	switch action {
	case ActionOptIn, ActionConfirmed:
		return StateIn
	case ActionOptOut:
		return StateOut
	}
	return StateNone
}

// ContactConsent returns a contact's current state per purpose and its
// history. store.ErrNotFound when the contact is not the tenant's.
func (s *Service) ContactConsent(ctx context.Context, tenantID, contactID string) (ContactConsent, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2)`, tenantID, contactID).Scan(&exists); err != nil {
		return ContactConsent{}, fmt.Errorf("reading contact: %w", err)
	}
	if !exists {
		return ContactConsent{}, store.ErrNotFound
	}
	// The same order the state is derived in: latest occurrence first, the
	// later write first among records of the same instant.
	rows, err := s.pool.Query(ctx, `
		SELECT `+recordColumns+`
		FROM consent_records r JOIN contacts c ON c.id = r.contact_id
		WHERE r.tenant_id = $1 AND r.contact_id = $2
		ORDER BY r.occurred_at DESC, r.id DESC`, tenantID, contactID)
	if err != nil {
		return ContactConsent{}, fmt.Errorf("reading consent history: %w", err)
	}
	history, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) { return scanRecord(row) })
	if err != nil {
		return ContactConsent{}, fmt.Errorf("reading consent history: %w", err)
	}
	cc := ContactConsent{ContactID: contactID, States: map[string]string{}, Latest: map[string]Record{}, History: history}
	for _, p := range LedgerPurposes {
		cc.States[p] = StateNone
	}
	for _, r := range history {
		if _, seen := cc.Latest[r.Purpose]; !seen {
			cc.Latest[r.Purpose] = r
			cc.States[r.Purpose] = stateOf(r.Action)
		}
	}
	if cc.History == nil {
		cc.History = []Record{}
	}
	return cc, nil
}

// ExportFilter narrows an export.
type ExportFilter struct {
	// ContactID, when set, exports only that contact's records
	// (store.ErrNotFound when it is not the tenant's).
	ContactID string
}

// Export calls fn with every record of the tenant, oldest first, streaming
// from the database (memory stays flat for any ledger size). It stops at fn's
// first error and returns it.
func (s *Service) Export(ctx context.Context, tenantID string, f ExportFilter, fn func(Record) error) error {
	if f.ContactID != "" {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2)`, tenantID, f.ContactID).Scan(&exists); err != nil {
			return fmt.Errorf("reading contact: %w", err)
		}
		if !exists {
			return store.ErrNotFound
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+recordColumns+`
		FROM consent_records r JOIN contacts c ON c.id = r.contact_id
		WHERE r.tenant_id = $1 AND ($2 = '' OR r.contact_id = $2)
		ORDER BY r.id`, tenantID, f.ContactID)
	if err != nil {
		return fmt.Errorf("exporting consent records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("exporting consent records: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("exporting consent records: %w", err)
	}
	return nil
}

// e164 is a phone number as Ponte stores it.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ValidPhone reports whether phone is an E.164 number (+ and 7 to 15 digits).
func ValidPhone(phone string) bool { return e164.MatchString(phone) }
