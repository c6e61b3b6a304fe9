package consent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CheckRequest asks whether a message may go to a contact now.
type CheckRequest struct {
	TenantID  string
	ContactID string
	// Phone is the contact's number (E.164), checked against the exclusion
	// list; when empty it is read from the contact.
	Phone string
	// Purpose is marketing, utility, service or authentication.
	Purpose string
	// At is when the message would go out (zero means now); quiet hours are
	// judged at this instant.
	At time.Time
	// ConsentConfirmation marks the one message that confirms a consent
	// change the contact just made (the reply to STOP or START). It goes out
	// even to an opted-out contact, as the STOP keyword's own acknowledgement,
	// but never to an excluded number. The same holds when ctx comes from the
	// Notifier call of [Service.Route] for this contact (see Notifier), so a
	// sender need not know about it.
	ConsentConfirmation bool
}

// Decision is the answer of a check.
type Decision struct {
	Allowed bool
	// Reason says why a send is refused: excluded, opted_out,
	// no_marketing_consent or quiet_hours.
	Reason string
	// DeferUntil is, for quiet_hours, the end of the quiet window (UTC): the
	// earliest time the send would be allowed.
	DeferUntil time.Time
}

// Check decides whether a message may go to a contact, in this order:
//
//  1. the tenant's exclusion list: "excluded" for every purpose;
//  2. opt-out: a marketing send is refused when the contact opted out of
//     marketing, a utility send when it opted out of utility, a service or
//     authentication send only when it opted out of every purpose (STOP):
//     "opted_out";
//  3. a marketing send needs the contact's marketing opt-in (or
//     confirmation): "no_marketing_consent"; other purposes need no opt-in;
//  4. quiet hours, for marketing only: "quiet_hours" with DeferUntil.
//
// Quiet hours apply to marketing alone by design: utility messages (an order
// shipped, an appointment tomorrow), authentication codes and service replies
// are answers to something the contact did or is waiting for right now; held
// until morning, a one-time code is useless and a reply arrives after the
// customer gave up. Promotions are what people do not want at night.
//
// Check runs one query (the exclusion and the latest record of each purpose,
// by index) and reads the tenant's settings from a short cache, so it is cheap
// enough for every send. Consent state itself is never cached: a check sees
// every opt-out committed before it started. Inside [Service.Hold] it runs on
// the held transaction.
func (s *Service) Check(ctx context.Context, req CheckRequest) (Decision, error) {
	if h, ok := ctx.Value(holdKey{}).(*hold); ok && h.tenantID == req.TenantID && h.contactID == req.ContactID {
		return s.check(ctx, h.tx, req)
	}
	return s.check(ctx, s.pool, req)
}

// CheckTx is Check inside the caller's transaction, after taking the
// contact's consent lock in shared mode. The transaction must be READ
// COMMITTED (Postgres's default) and stay open until the provider call
// returned; then no opt-out or exclusion of the contact can commit between
// this check and the call (see the package documentation). The lock is
// released when the transaction ends.
func (s *Service) CheckTx(ctx context.Context, tx pgx.Tx, req CheckRequest) (Decision, error) {
	if err := lockShared(ctx, tx, req.ContactID); err != nil {
		return Decision{}, err
	}
	return s.check(ctx, tx, req)
}

// lockShared takes the contact's consent lock in shared mode and checks the
// isolation level in the same round trip. The check's snapshot must be taken
// after the lock is granted, which READ COMMITTED does per statement and
// REPEATABLE READ would not (its snapshot is the transaction's first).
func lockShared(ctx context.Context, tx pgx.Tx, contactID string) error {
	var isolation string
	err := tx.QueryRow(ctx, `SELECT current_setting('transaction_isolation'), pg_advisory_xact_lock_shared($1, hashtext($2)) IS NULL`,
		lockNamespace, contactID).Scan(&isolation, new(bool))
	if err != nil {
		return fmt.Errorf("locking consent of contact %s: %w", contactID, err)
	}
	if isolation != "read committed" {
		return fmt.Errorf("consent check: transaction isolation is %s; it must be read committed, or the check would not see an opt-out committed while it waited for the lock", isolation)
	}
	return nil
}

// hold is the transaction of a [Service.Hold], found by Check in the context.
type hold struct {
	tenantID, contactID string
	tx                  pgx.Tx
}

type holdKey struct{}

// Hold runs send under the contact's consent lock, held in shared mode by a
// transaction that stays open until send returns: an opt-out or exclusion of
// the contact either committed before send started (so a Check made inside
// send sees it) or commits only after send returned. Senders of one contact
// do not block each other; a consent change waits for them, and senders that
// arrive after it wait for it.
//
// Check called with send's context for the same tenant and contact runs on
// the held transaction, so a send needs no second connection for its check.
// Do not call Check concurrently with that context. The pool must be sized
// for one connection per send in flight under Hold, plus what send itself
// uses. send's error is returned unchanged.
func (s *Service) Hold(ctx context.Context, tenantID, contactID string, send func(ctx context.Context) error) error {
	if tenantID == "" || contactID == "" {
		return errors.New("consent hold: a tenant and a contact are required")
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("consent hold: beginning transaction: %w", err)
	}
	// Nothing is written in tx; rolling back just releases the lock.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := lockShared(ctx, tx, contactID); err != nil {
		return fmt.Errorf("consent hold: %w", err)
	}
	return send(context.WithValue(ctx, holdKey{}, &hold{tenantID: tenantID, contactID: contactID, tx: tx}))
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkQuery reads, for tenant $1, contact $2 and phone $3 (or the contact's
// phone when $3 is empty), whether the number is excluded and the latest
// action per ledger purpose. Each subquery is one probe of an index.
const checkQuery = `
WITH target AS (
    SELECT COALESCE(NULLIF($3::text, ''), (SELECT phone FROM contacts WHERE tenant_id = $1 AND id = $2)) AS phone
)
SELECT
    EXISTS (SELECT 1 FROM exclusions e, target t WHERE e.tenant_id = $1 AND e.phone = t.phone),
    COALESCE((SELECT action FROM consent_records
              WHERE contact_id = $2 AND purpose = 'marketing' AND tenant_id = $1
              ORDER BY occurred_at DESC, id DESC LIMIT 1), ''),
    COALESCE((SELECT action FROM consent_records
              WHERE contact_id = $2 AND purpose = 'utility' AND tenant_id = $1
              ORDER BY occurred_at DESC, id DESC LIMIT 1), '')`

var sendPurposes = map[string]bool{PurposeMarketing: true, PurposeUtility: true, PurposeService: true, PurposeAuthentication: true}

func (s *Service) check(ctx context.Context, q querier, req CheckRequest) (Decision, error) {
	if req.TenantID == "" || (req.ContactID == "" && req.Phone == "") {
		return Decision{}, errors.New("consent check: a tenant and a contact or phone are required")
	}
	if !sendPurposes[req.Purpose] {
		return Decision{}, fmt.Errorf("consent check: unknown purpose %q", req.Purpose)
	}
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	var excluded bool
	var marketing, utility string
	if err := q.QueryRow(ctx, checkQuery, req.TenantID, req.ContactID, req.Phone).Scan(&excluded, &marketing, &utility); err != nil {
		return Decision{}, fmt.Errorf("consent check: reading consent of contact %s: %w", req.ContactID, err)
	}
	if excluded {
		return Decision{Reason: ReasonExcluded}, nil
	}
	if req.ConsentConfirmation || isConfirmationCall(ctx, req) {
		return Decision{Allowed: true}, nil
	}
	mState, uState := stateOf(marketing), stateOf(utility)
	switch req.Purpose {
	case PurposeMarketing:
		if mState == StateOut {
			return Decision{Reason: ReasonOptedOut}, nil
		}
		if mState != StateIn {
			return Decision{Reason: ReasonNoMarketingConsent}, nil
		}
	case PurposeUtility:
		if uState == StateOut {
			return Decision{Reason: ReasonOptedOut}, nil
		}
	default: // service, authentication
		if mState == StateOut && uState == StateOut {
			return Decision{Reason: ReasonOptedOut}, nil
		}
	}
	if req.Purpose != PurposeMarketing {
		return Decision{Allowed: true}, nil
	}
	st, err := s.settingsFor(ctx, req.TenantID)
	if err != nil {
		return Decision{}, fmt.Errorf("consent check: %w", err)
	}
	if until, quiet := st.quietUntil(at); quiet {
		return Decision{Reason: ReasonQuietHours, DeferUntil: until.UTC()}, nil
	}
	return Decision{Allowed: true}, nil
}
