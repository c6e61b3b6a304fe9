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

// lockGroupSQL takes the consent locks of contacts $2 (namespace $1) in
// shared mode, one statement for a group, in the order of their keys. Shared
// locks do not conflict, but a shared request queues behind an exclusive one
// waiting for the same key (a STOP waiting for the sends in flight): two
// groups taking two contacts in opposite orders, each behind a STOP of the
// other's first, would wait for each other. In key order a group holds
// every key below the one it waits for, so no such cycle forms. It returns
// the transaction's isolation level.
const lockGroupSQL = `
SELECT current_setting('transaction_isolation'), bool_and(pg_advisory_xact_lock_shared($1, k.h) IS NULL)
FROM (SELECT DISTINCT hashtext(c) AS h FROM unnest($2::text[]) AS c ORDER BY 1) AS k`

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
	return s.hold(ctx, []GroupMember{{Ctx: ctx, Req: CheckRequest{TenantID: tenantID, ContactID: contactID}}}, false, nil, send)
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
	members := []GroupMember{{Ctx: ctx, Req: req}}
	err := s.hold(ctx, members, true, nil, func(ctx context.Context) error {
		if !members[0].Decision.Allowed {
			return nil
		}
		return send(ctx)
	})
	return members[0].Decision, err
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
// that takes the hold: see [Service.HoldCheckGroup].
type Prelude struct {
	// SQL and Args are the statement; it runs in a transaction of its own,
	// committed before the hold's transaction begins.
	SQL  string
	Args []any
	// Scan reads the statement's result rows, before the commit: only
	// Committed says the write is durable.
	Scan func(pgx.Rows) error
	// Committed is set by HoldCheckGroup once the statement's transaction
	// committed. When it is false after an error, nothing was written.
	Committed bool
}

// GroupMember is one send of a [Service.HoldCheckGroup].
type GroupMember struct {
	// Ctx is the send's own context. The decision is taken in it, so the
	// mark of a STOP or START confirmation (see Notifier) reaches it.
	Ctx context.Context
	// Req is the send's check; Req.ContactID is required.
	Req CheckRequest
	// Decision is the answer to Req, set before send runs.
	Decision Decision
}

// HoldCheckGroup is [Service.HoldCheck] for many sends at once: one
// transaction takes every member's contact lock in shared mode (one
// statement, in a fixed order) and checks every member (one statement), so
// a group costs the round trip and the statements of a single hold. It is
// for a sender that gathers the sends arriving together, as a database
// gathers concurrent commits.
//
// first, when given, is committed on the same connection in the same round
// trip before the hold's transaction begins: the statement, COMMIT, then
// BEGIN, the locks and the checks, as one pipeline. It is for a sender whose
// last write before the provider calls must be durable before them (ledger
// rows in status "sending"): the commit is synchronous and completes before
// the hold's transaction begins. An error in first skips everything after
// it: nothing is written, nothing is locked, send does not run.
//
// send runs once, after every member's Decision is set, whether or not any
// allows its message: it makes the allowed members' provider calls (in
// parallel, as it likes) and returns when they are done. Every member's
// lock is held until send returns, so an opt-out of any member's contact
// either committed before the check or commits after send returned. Unlike
// Hold's, send's context gives no access to the held transaction.
func (s *Service) HoldCheckGroup(ctx context.Context, members []GroupMember, first *Prelude, send func(ctx context.Context) error) error {
	if len(members) == 0 {
		return errors.New("consent hold: a group needs a member")
	}
	for _, m := range members {
		if err := checkHoldRequest(m.Req); err != nil {
			return err
		}
		if m.Ctx == nil {
			return errors.New("consent hold: a group member needs its context")
		}
	}
	if first != nil {
		if first.SQL == "" || first.Scan == nil {
			return errors.New("consent hold: a prelude needs its statement and its Scan")
		}
		first.Committed = false
	}
	return s.hold(ctx, members, true, first, send)
}

// hold opens the held transaction, takes the members' locks and, when check
// is set, checks them, all in one batch (after first and its commit, when
// given); then runs send and releases the locks by rolling back.
func (s *Service) hold(ctx context.Context, members []GroupMember, check bool, first *Prelude, send func(ctx context.Context) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("consent hold: acquiring a connection: %w", err)
	}
	defer func() {
		// Nothing is written in the transaction; rolling back just releases
		// the locks. Should the rollback fail, the pool sees the connection
		// still inside a transaction at Release and closes it, which
		// releases the locks too.
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		conn.Release()
	}()
	var isolation string
	states := make([]consentState, len(members))
	b := &pgx.Batch{}
	if first != nil {
		// The statements of a pipeline before an explicit COMMIT form an
		// implicit transaction that the COMMIT ends, synchronously, before
		// the BEGIN below runs; an error in first skips the rest.
		b.Queue(first.SQL, first.Args...).Query(first.Scan)
		b.Queue("COMMIT").Exec(func(pgconn.CommandTag) error {
			first.Committed = true
			return nil
		})
	}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	contactIDs, tenants, phones := make([]string, len(members)), make([]string, len(members)), make([]string, len(members))
	for i, m := range members {
		contactIDs[i], tenants[i], phones[i] = m.Req.ContactID, m.Req.TenantID, m.Req.Phone
	}
	scanLock := func(row pgx.Row) error { return row.Scan(&isolation, new(bool)) }
	scanChecks := func(rows pgx.Rows) error { return scanStates(rows, states) }
	if len(members) == 1 {
		b.Queue(lockSQL, lockNamespace, contactIDs[0]).QueryRow(scanLock)
		if check {
			b.Queue(checkOneSQL, tenants[0], contactIDs[0], phones[0]).Query(scanChecks)
		}
	} else {
		// checkManySQL's cost scales with its arrays, whose length a custom
		// plan knows and the generic plan guesses: left to choose, Postgres
		// would plan it anew for every group (most of a group's cost), for
		// the same plan, one index probe per member whatever the length.
		b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
		b.Queue(lockGroupSQL, lockNamespace, contactIDs).QueryRow(scanLock)
		if check {
			b.Queue(checkManySQL, tenants, contactIDs, phones).Query(scanChecks)
		}
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("consent hold: locking and checking consent of %s: %w", describeContacts(contactIDs), err)
	}
	if isolation != "read committed" {
		// Cannot happen with the BEGIN above; kept as the same guard CheckTx has.
		return fmt.Errorf("consent hold: transaction isolation is %s, not read committed", isolation)
	}
	if check {
		for i := range members {
			if members[i].Decision, err = s.decide(members[i].Ctx, members[i].Req, states[i]); err != nil {
				return err
			}
		}
	}
	sctx := ctx
	if len(members) == 1 {
		sctx = context.WithValue(ctx, holdKey{}, &hold{tenantID: members[0].Req.TenantID, contactID: members[0].Req.ContactID, tx: conn})
	}
	return send(sctx)
}

// describeContacts names the contacts of a hold in an error.
func describeContacts(ids []string) string {
	if len(ids) == 1 {
		return "contact " + ids[0]
	}
	return fmt.Sprintf("%d contacts", len(ids))
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// checkSelect reads, for each row u (tenant_id, contact_id, phone) of its
// FROM clause, whether the number is excluded (the contact's phone when
// u.phone is empty) and the latest action per ledger purpose. Each subquery
// is one probe of an index. A contact known only by its LID has no phone
// (NULL): exclusions are by phone, so it is never excluded; its consent
// records, by contact id, apply. The contact and its records are found by
// contact id alone and their tenant compared with IS NOT DISTINCT FROM,
// which no index serves: a plan cached while the tables were empty cannot
// pick an index by tenant and scan the tenant's rows on every check.
const checkSelect = `
SELECT
    EXISTS (SELECT 1 FROM exclusions e
            WHERE e.tenant_id = u.tenant_id
              AND e.phone = COALESCE(NULLIF(u.phone, ''),
                                     (SELECT c.phone FROM contacts c
                                      WHERE c.id = u.contact_id AND c.tenant_id IS NOT DISTINCT FROM u.tenant_id))),
    COALESCE((SELECT r.action FROM consent_records r
              WHERE r.contact_id = u.contact_id AND r.purpose = 'marketing' AND r.tenant_id IS NOT DISTINCT FROM u.tenant_id
              ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1), ''),
    COALESCE((SELECT r.action FROM consent_records r
              WHERE r.contact_id = u.contact_id AND r.purpose = 'utility' AND r.tenant_id IS NOT DISTINCT FROM u.tenant_id
              ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1), '')`

// checkOneSQL is checkSelect for tenant $1, contact $2 and phone $3. With
// scalar parameters Postgres settles on the generic plan by itself.
const checkOneSQL = checkSelect + `
FROM (VALUES ($1::text, $2::text, $3::text)) AS u(tenant_id, contact_id, phone)`

// checkManySQL is checkSelect for the tenants, contacts and phones of the
// arrays $1, $2 and $3, in their order. Run it with generic plans forced
// (see hold).
const checkManySQL = checkSelect + `
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(tenant_id, contact_id, phone, n)
ORDER BY u.n`

var sendPurposes = map[string]bool{PurposeMarketing: true, PurposeUtility: true, PurposeService: true, PurposeAuthentication: true}

// consentState is what a check reads for one request.
type consentState struct {
	excluded           bool
	marketing, utility string
}

// scanStates reads the check's rows into states, one per request.
func scanStates(rows pgx.Rows, states []consentState) error {
	defer rows.Close()
	n := 0
	for rows.Next() {
		if n == len(states) {
			return errors.New("reading consent state: more rows than requests")
		}
		st := &states[n]
		if err := rows.Scan(&st.excluded, &st.marketing, &st.utility); err != nil {
			return fmt.Errorf("reading consent state: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading consent state: %w", err)
	}
	if n != len(states) {
		return fmt.Errorf("reading consent state: %d rows for %d requests", n, len(states))
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
	states := make([]consentState, 1)
	rows, err := q.Query(ctx, checkOneSQL, req.TenantID, req.ContactID, req.Phone)
	if err == nil {
		err = scanStates(rows, states)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("consent check: reading consent of contact %s: %w", req.ContactID, err)
	}
	return s.decide(ctx, req, states[0])
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
