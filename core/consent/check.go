package consent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// lockSQL takes contact $2's consent lock (namespace $1) in shared mode and
// returns the transaction's isolation level.
const lockSQL = `SELECT current_setting('transaction_isolation'), pg_advisory_xact_lock_shared($1, hashtext($2)) IS NULL`

// lockShared takes the contact's consent lock in shared mode and checks the
// isolation level in the same round trip. The check's snapshot must be taken
// after the lock is granted, which READ COMMITTED does per statement and
// REPEATABLE READ would not (its snapshot is the transaction's first).
func lockShared(ctx context.Context, tx pgx.Tx, contactID string) error {
	var isolation string
	err := tx.QueryRow(ctx, lockSQL, lockNamespace, contactID).Scan(&isolation, new(bool))
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
	tx                  querier
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
// uses. send's error is returned unchanged. A sender that checks right
// before its call should use [Service.HoldCheck], which saves that round trip.
func (s *Service) Hold(ctx context.Context, tenantID, contactID string, send func(ctx context.Context) error) error {
	if tenantID == "" || contactID == "" {
		return errors.New("consent hold: a tenant and a contact are required")
	}
	_, err := s.hold(ctx, tenantID, contactID, nil, nil, send)
	return err
}

// HoldCheck is Check followed by send under [Service.Hold], for a sender
// whose last step before the provider call is the consent check: the
// transaction's start, the lock and the check go to Postgres as one
// pipelined batch, one round trip instead of three. The check runs after the
// lock is granted (the statements of a pipeline run in order, and READ
// COMMITTED takes each statement's snapshot when it starts), so it sees
// every opt-out committed before the lock, and none can commit until send
// returns. send runs only when the decision allows the message; its error
// is returned unchanged with the decision. req.ContactID is required.
func (s *Service) HoldCheck(ctx context.Context, req CheckRequest, send func(ctx context.Context) error) (Decision, error) {
	if err := checkHoldRequest(req); err != nil {
		return Decision{}, err
	}
	return s.hold(ctx, req.TenantID, req.ContactID, &req, nil, send)
}

// checkHoldRequest refuses a hold's check request that names no tenant or
// contact, or an unknown purpose.
func checkHoldRequest(req CheckRequest) error {
	if req.TenantID == "" || req.ContactID == "" {
		return errors.New("consent hold: a tenant and a contact are required")
	}
	if !sendPurposes[req.Purpose] {
		return fmt.Errorf("consent check: unknown purpose %q", req.Purpose)
	}
	return nil
}

// Prelude is a write committed on a hold's connection in the round trip
// that takes the hold: see [Service.HoldCheckAfter].
type Prelude struct {
	// SQL and Args are the statement; it runs in a transaction of its own,
	// committed before the hold's transaction begins.
	SQL  string
	Args []any
	// Scan reads the statement's result row. It is called whether or not
	// the statement returned a row (pgx.ErrNoRows from the row's Scan then),
	// and before the commit: only Committed says the write is durable.
	Scan func(pgx.Row) error
	// Committed is set by HoldCheckAfter once the statement's transaction
	// committed. When it is false after an error, nothing was written.
	Committed bool
}

// HoldCheckAfter is [Service.HoldCheck] preceded by first, committed on the
// same connection in the same round trip: the statement, COMMIT, then the
// hold's BEGIN, lock and check, as one pipeline. It is for a sender whose
// last write before the provider call must be durable before the call (a
// ledger row in status "sending"): the write and the hold then cost one
// round trip and one connection instead of two of each. The commit is
// synchronous and completes before the hold's transaction begins, so the
// row is durable before send runs.
//
// send runs when the decision allows the message, whatever first returned:
// a sender whose write found an existing row (an idempotency key already
// used) tells so from its Scan and returns from send without calling.
func (s *Service) HoldCheckAfter(ctx context.Context, req CheckRequest, first *Prelude, send func(ctx context.Context) error) (Decision, error) {
	if err := checkHoldRequest(req); err != nil {
		return Decision{}, err
	}
	if first == nil || first.SQL == "" || first.Scan == nil {
		return Decision{}, errors.New("consent hold: a prelude needs its statement and its Scan")
	}
	first.Committed = false
	return s.hold(ctx, req.TenantID, req.ContactID, &req, first, send)
}

// hold opens the held transaction, takes the lock and, when req is given,
// checks it, all in one batch (after first and its commit, when given);
// then runs send (when allowed) and releases the lock by rolling back.
func (s *Service) hold(ctx context.Context, tenantID, contactID string, req *CheckRequest, first *Prelude, send func(ctx context.Context) error) (Decision, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("consent hold: acquiring a connection: %w", err)
	}
	defer func() {
		// Nothing is written in the transaction; rolling back just releases
		// the lock. Should the rollback fail, the pool sees the connection
		// still inside a transaction at Release and closes it, which
		// releases the lock too.
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		conn.Release()
	}()
	var isolation string
	var st consentState
	b := &pgx.Batch{}
	if first != nil {
		// The statements of a pipeline before an explicit COMMIT form an
		// implicit transaction that the COMMIT ends, synchronously, before
		// the BEGIN below runs; an error in first skips the rest.
		b.Queue(first.SQL, first.Args...).QueryRow(first.Scan)
		b.Queue("COMMIT").Exec(func(pgconn.CommandTag) error {
			first.Committed = true
			return nil
		})
	}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(lockSQL, lockNamespace, contactID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&isolation, new(bool))
	})
	if req != nil {
		b.Queue(checkQuery, req.TenantID, req.ContactID, req.Phone).QueryRow(st.scan)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return Decision{}, fmt.Errorf("consent hold: locking and checking consent of contact %s: %w", contactID, err)
	}
	if isolation != "read committed" {
		// Cannot happen with the BEGIN above; kept as the same guard CheckTx has.
		return Decision{}, fmt.Errorf("consent hold: transaction isolation is %s, not read committed", isolation)
	}
	dec := Decision{Allowed: true}
	if req != nil {
		if dec, err = s.decide(ctx, *req, st); err != nil || !dec.Allowed {
			return dec, err
		}
	}
	return dec, send(context.WithValue(ctx, holdKey{}, &hold{tenantID: tenantID, contactID: contactID, tx: conn}))
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkQuery reads, for tenant $1, contact $2 and phone $3 (or the contact's
// phone when $3 is empty), whether the number is excluded and the latest
// action per ledger purpose. Each subquery is one probe of an index. A
// contact known only by its LID has no phone (NULL): exclusions are by
// phone, so it is never excluded; its consent records, by contact id, apply.
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

// consentState is what checkQuery reads.
type consentState struct {
	excluded           bool
	marketing, utility string
}

func (st *consentState) scan(row pgx.Row) error {
	if err := row.Scan(&st.excluded, &st.marketing, &st.utility); err != nil {
		return fmt.Errorf("reading consent state: %w", err)
	}
	return nil
}

func (s *Service) check(ctx context.Context, q querier, req CheckRequest) (Decision, error) {
	if req.TenantID == "" || (req.ContactID == "" && req.Phone == "") {
		return Decision{}, errors.New("consent check: a tenant and a contact or phone are required")
	}
	if !sendPurposes[req.Purpose] {
		return Decision{}, fmt.Errorf("consent check: unknown purpose %q", req.Purpose)
	}
	var st consentState
	if err := st.scan(q.QueryRow(ctx, checkQuery, req.TenantID, req.ContactID, req.Phone)); err != nil {
		return Decision{}, fmt.Errorf("consent check: reading consent of contact %s: %w", req.ContactID, err)
	}
	return s.decide(ctx, req, st)
}

// decide turns the consent state of a contact into the decision on req.
func (s *Service) decide(ctx context.Context, req CheckRequest, cs consentState) (Decision, error) {
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	if cs.excluded {
		return Decision{Reason: ReasonExcluded}, nil
	}
	if req.ConsentConfirmation || isConfirmationCall(ctx, req) {
		return Decision{Allowed: true}, nil
	}
	mState, uState := stateOf(cs.marketing), stateOf(cs.utility)
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
