package cartrecovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/batch"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// cartStatusSQL reads a cart's status. Like every statement here that reads
// or writes one cart, it finds the cart by its key (connection_id,
// checkout_id) alone and compares the tenant with IS NOT DISTINCT FROM, which
// no index serves: with "tenant_id = $1", a plan Postgres made while the
// table was empty (a new installation, before autovacuum's first ANALYZE)
// could take any (tenant_id, ...) index and scan every cart of the tenant for
// each checkout event (TestIntegrationCartPlansUseKeys). The column is NOT
// NULL, so the comparison means "=" here.
const cartStatusSQL = `SELECT status FROM cart_recoveries WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`

// DB is the cart_recoveries and cart_recovery_steps tables. Every query
// takes the tenant and filters on it.
type DB struct {
	pool *pgxpool.Pool
	// openCarts groups the reply route's lookups of open carts by phone.
	openCarts *batch.Batcher[*openCartsLookup]
}

var _ Store = (*DB)(nil)

// NewDB returns the cart recovery tables in pool.
func NewDB(pool *pgxpool.Pool) *DB {
	db := &DB{pool: pool}
	db.openCarts = batch.New(openCartsWorkers, maxOpenCartsGroup, db.lookUpOpenCarts)
	return db
}

// Cart is a cart's row.
type Cart struct {
	ID           int64  `json:"-"`
	TenantID     string `json:"-"`
	ConnectionID string `json:"connection_id"`
	CheckoutID   string `json:"checkout_id"`
	WorkflowID   string `json:"workflow_id"`
	// Phone is E.164, or empty with PhoneProblem saying why.
	Phone             string              `json:"phone,omitempty"`
	PhoneProblem      string              `json:"phone_problem,omitempty"`
	ContactID         string              `json:"contact_id,omitempty"`
	CustomerID        string              `json:"customer_id,omitempty"`
	Email             string              `json:"email,omitempty"`
	FirstName         string              `json:"first_name,omitempty"`
	LastName          string              `json:"last_name,omitempty"`
	Currency          string              `json:"currency,omitempty"`
	Total             string              `json:"total,omitempty"` // decimal string
	RecoveryURL       string              `json:"recovery_url,omitempty"`
	Items             []commerce.LineItem `json:"line_items"`
	Status            Status              `json:"status"`
	Reason            string              `json:"reason,omitempty"`
	FirstSeenAt       *time.Time          `json:"first_seen_at,omitempty"`
	LastUpdateAt      *time.Time          `json:"last_update_at,omitempty"`
	ContactedAt       *time.Time          `json:"contacted_at,omitempty"`
	EndedAt           *time.Time          `json:"ended_at,omitempty"`
	OrderID           string              `json:"order_id,omitempty"`
	ConvertedAt       *time.Time          `json:"converted_at,omitempty"`
	RecoveredAt       *time.Time          `json:"recovered_at,omitempty"`
	RecoveredRevenue  string              `json:"recovered_revenue,omitempty"`
	RecoveredCurrency string              `json:"recovered_currency,omitempty"`
	OptedOut          bool                `json:"opted_out"`
}

// Name is the customer's full name, as far as the shop knows it.
func (c Cart) Name() string {
	switch {
	case c.FirstName != "" && c.LastName != "":
		return c.FirstName + " " + c.LastName
	case c.FirstName != "":
		return c.FirstName
	}
	return c.LastName
}

const cartColumns = `id, tenant_id, connection_id, checkout_id, workflow_id, coalesce(phone, ''), coalesce(phone_problem, ''),
    coalesce(contact_id, ''), coalesce(customer_id, ''), coalesce(email, ''), coalesce(first_name, ''), coalesce(last_name, ''),
    coalesce(currency, ''), coalesce(total::text, ''), coalesce(recovery_url, ''), line_items, status, coalesce(end_reason, ''),
    first_seen_at, last_update_at, contacted_at, ended_at, coalesce(order_id, ''), converted_at, recovered_at,
    coalesce(recovered_revenue::text, ''), coalesce(recovered_currency, ''), opted_out`

func scanCart(row pgx.Row) (Cart, error) {
	var c Cart
	var items []byte
	err := row.Scan(&c.ID, &c.TenantID, &c.ConnectionID, &c.CheckoutID, &c.WorkflowID, &c.Phone, &c.PhoneProblem,
		&c.ContactID, &c.CustomerID, &c.Email, &c.FirstName, &c.LastName,
		&c.Currency, &c.Total, &c.RecoveryURL, &items, &c.Status, &c.Reason,
		&c.FirstSeenAt, &c.LastUpdateAt, &c.ContactedAt, &c.EndedAt, &c.OrderID, &c.ConvertedAt, &c.RecoveredAt,
		&c.RecoveredRevenue, &c.RecoveredCurrency, &c.OptedOut)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cart{}, store.ErrNotFound
	}
	if err != nil {
		return Cart{}, err
	}
	if err := json.Unmarshal(items, &c.Items); err != nil {
		return Cart{}, fmt.Errorf("decoding line items of cart %d: %w", c.ID, err)
	}
	return c, nil
}

// decimal is the money format of the commerce vocabulary.
var decimal = regexp.MustCompile(`^-?[0-9]{1,15}(\.[0-9]{1,6})?$`)

// money returns s when it is a decimal string, else nil (stored as NULL
// rather than failing the whole record over a connector's odd total).
func money(s string) *string {
	if !decimal.MatchString(s) {
		return nil
	}
	return &s
}

// Cart returns a cart's row, or store.ErrNotFound.
func (db *DB) Cart(ctx context.Context, ref CartRef) (Cart, error) {
	c, err := scanCart(db.pool.QueryRow(ctx, `SELECT `+cartColumns+` FROM cart_recoveries
WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`, ref.TenantID, ref.ConnectionID, ref.CheckoutID))
	if err != nil {
		return Cart{}, fmt.Errorf("reading cart %s: %w", ref.CheckoutID, err)
	}
	return c, nil
}

// RecordCheckout creates the cart's row or updates it with the checkout's
// details while the cart is open; a closed cart is left as it is. It returns
// the cart's state either way.
func (db *DB) RecordCheckout(ctx context.Context, rec CheckoutRecord) (CartState, error) {
	co := rec.Checkout
	phone, problem := co.Phone, ""
	switch {
	case phone == "":
		problem = co.PhoneProblem
		if problem != commerce.PhoneInvalid {
			problem = commerce.PhoneMissing
		}
	case !ValidPhone(phone):
		phone, problem = "", commerce.PhoneInvalid
	}
	items := co.LineItems
	if items == nil {
		items = []commerce.LineItem{}
	}
	itemsJSON, err := json.Marshal(items)
	if err != nil {
		return CartState{}, fmt.Errorf("encoding line items: %w", err)
	}
	var st CartState
	err = db.pool.QueryRow(ctx, `
INSERT INTO cart_recoveries AS c (tenant_id, connection_id, checkout_id, workflow_id, phone, phone_problem, customer_id, email,
    first_name, last_name, currency, total, recovery_url, line_items, first_seen_at, last_update_at)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), NULLIF($10, ''),
    NULLIF($11, ''), $12::numeric, NULLIF($13, ''), $14, $15, $15)
ON CONFLICT (connection_id, checkout_id) DO UPDATE SET
    phone          = COALESCE(EXCLUDED.phone, c.phone),
    phone_problem  = CASE WHEN COALESCE(EXCLUDED.phone, c.phone) IS NULL THEN EXCLUDED.phone_problem END,
    customer_id    = COALESCE(EXCLUDED.customer_id, c.customer_id),
    email          = COALESCE(EXCLUDED.email, c.email),
    first_name     = COALESCE(EXCLUDED.first_name, c.first_name),
    last_name      = COALESCE(EXCLUDED.last_name, c.last_name),
    currency       = COALESCE(EXCLUDED.currency, c.currency),
    total          = COALESCE(EXCLUDED.total, c.total),
    recovery_url   = COALESCE(EXCLUDED.recovery_url, c.recovery_url),
    line_items     = EXCLUDED.line_items,
    first_seen_at  = COALESCE(c.first_seen_at, EXCLUDED.first_seen_at),
    last_update_at = GREATEST(c.last_update_at, EXCLUDED.last_update_at),
    updated_at     = now()
WHERE c.status IN ('waiting', 'contacted')
RETURNING status, coalesce(end_reason, ''), (SELECT count(*) FROM cart_recovery_steps s WHERE s.cart_id = c.id)`,
		rec.TenantID, rec.ConnectionID, rec.CheckoutID, rec.WorkflowID(), phone, problem, co.CustomerID, co.Email,
		co.FirstName, co.LastName, co.Currency, money(co.Total), co.RecoveryURL, itemsJSON, rec.At,
	).Scan(&st.Status, &st.Reason, &st.StepsDone)
	if errors.Is(err, pgx.ErrNoRows) {
		// The row exists and is closed: the update's WHERE left it alone.
		err = db.pool.QueryRow(ctx, `
SELECT status, coalesce(end_reason, ''), (SELECT count(*) FROM cart_recovery_steps s WHERE s.cart_id = c.id)
FROM cart_recoveries c WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`,
			rec.TenantID, rec.ConnectionID, rec.CheckoutID).Scan(&st.Status, &st.Reason, &st.StepsDone)
	}
	if err != nil {
		return CartState{}, fmt.Errorf("recording checkout %s: %w", rec.CheckoutID, err)
	}
	return st, nil
}

// SetContact records the contact the cart's phone belongs to.
func (db *DB) SetContact(ctx context.Context, ref CartRef, contactID string) error {
	_, err := db.pool.Exec(ctx, `UPDATE cart_recoveries SET contact_id = $4, updated_at = now()
WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1`, ref.TenantID, ref.ConnectionID, ref.CheckoutID, contactID)
	if err != nil {
		return fmt.Errorf("recording contact of cart %s: %w", ref.CheckoutID, err)
	}
	return nil
}

// RecordStep records a step's outcome once (a replayed record changes
// nothing); a sent step marks an open cart contacted.
func (db *DB) RecordStep(ctx context.Context, rec StepRecord) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var cartID int64
		err := tx.QueryRow(ctx, `SELECT id FROM cart_recoveries WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1
FOR UPDATE`, rec.TenantID, rec.ConnectionID, rec.CheckoutID).Scan(&cartID)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO cart_recovery_steps (cart_id, tenant_id, step, status, reason, detail, message_id, discount_code, at)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), $9)
ON CONFLICT (cart_id, step) DO NOTHING`,
			cartID, rec.TenantID, rec.Step, string(rec.Status), rec.Reason, rec.Detail, rec.MessageID, rec.DiscountCode, rec.At)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 || rec.Status != StepSent {
			return nil
		}
		_, err = tx.Exec(ctx, `
UPDATE cart_recoveries
SET status = CASE WHEN status = 'waiting' THEN 'contacted' ELSE status END,
    contacted_at = COALESCE(contacted_at, $2), updated_at = now()
WHERE id = $1`, cartID, rec.At)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording step %d of cart %s: %w", rec.Step, rec.CheckoutID, err)
	}
	return nil
}

// End closes an open cart with a status and reason and returns the status
// the cart has afterwards: the one it already had when it was closed, or
// rec.Status when there is no row (nothing to close).
func (db *DB) End(ctx context.Context, rec EndRecord) (Status, error) {
	if rec.Status != StatusEnded && rec.Status != StatusSkipped {
		return "", fmt.Errorf("ending cart %s: status %q is not ended or skipped", rec.CheckoutID, rec.Status)
	}
	var st Status
	err := db.pool.QueryRow(ctx, `
UPDATE cart_recoveries SET status = $4, end_reason = $5, opted_out = opted_out OR $6, ended_at = $7, updated_at = now()
WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND status IN ('waiting', 'contacted')
RETURNING status`, rec.TenantID, rec.ConnectionID, rec.CheckoutID, string(rec.Status), rec.Reason, rec.OptedOut, rec.At).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		err = db.pool.QueryRow(ctx, cartStatusSQL,
			rec.TenantID, rec.ConnectionID, rec.CheckoutID).Scan(&st)
		if errors.Is(err, pgx.ErrNoRows) {
			return rec.Status, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("ending cart %s: %w", rec.CheckoutID, err)
	}
	return st, nil
}

// ApplyOrder attributes an order to a cart, once: a cart contacted before
// the order (to the second: shops give order times in whole seconds, so a
// message and the order it brought can share one) becomes recovered, with the order's total as revenue; any other
// cart that was open or ended becomes converted (a skipped cart keeps its
// status and reason, and records the order). An open cart's sequence ends
// with reason order_placed.
//
// With tombstone set, an order for a checkout without a row leaves a
// converted row without first_seen_at, so that checkout events dispatched
// after their order (the outbox does not order events) find the cart closed
// and start no sequence. It reports the cart's status and whether anything
// changed.
func (db *DB) ApplyOrder(ctx context.Context, ref CartRef, o OrderInfo, tombstone bool) (Status, bool, error) {
	var st Status
	err := db.pool.QueryRow(ctx, `
UPDATE cart_recoveries SET
    status = CASE WHEN contacted_at IS NOT NULL AND date_trunc('second', contacted_at) <= $5 THEN 'recovered'
                  WHEN status IN ('waiting', 'contacted', 'ended') THEN 'converted'
                  ELSE status END,
    end_reason = CASE WHEN status IN ('waiting', 'contacted') THEN 'order_placed' ELSE end_reason END,
    ended_at = COALESCE(ended_at, $5),
    order_id = NULLIF($4, ''),
    converted_at = $5,
    recovered_at = CASE WHEN contacted_at IS NOT NULL AND date_trunc('second', contacted_at) <= $5 THEN $5 END,
    recovered_revenue = CASE WHEN contacted_at IS NOT NULL AND date_trunc('second', contacted_at) <= $5 THEN $6::numeric END,
    recovered_currency = CASE WHEN contacted_at IS NOT NULL AND date_trunc('second', contacted_at) <= $5 THEN NULLIF($7, '') END,
    updated_at = now()
WHERE connection_id = $2 AND checkout_id = $3 AND tenant_id IS NOT DISTINCT FROM $1 AND converted_at IS NULL
RETURNING status`, ref.TenantID, ref.ConnectionID, ref.CheckoutID, o.OrderID, o.At, money(o.Total), o.Currency).Scan(&st)
	if err == nil {
		return st, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("attributing order %s to cart %s: %w", o.OrderID, ref.CheckoutID, err)
	}
	err = db.pool.QueryRow(ctx, cartStatusSQL,
		ref.TenantID, ref.ConnectionID, ref.CheckoutID).Scan(&st)
	if err == nil {
		return st, false, nil // attributed before: delivery is at least once
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("reading cart %s: %w", ref.CheckoutID, err)
	}
	if !tombstone {
		return "", false, nil
	}
	tag, err := db.pool.Exec(ctx, `
INSERT INTO cart_recoveries (tenant_id, connection_id, checkout_id, workflow_id, status, end_reason, ended_at, order_id, converted_at, currency)
VALUES ($1, $2, $3, $4, 'converted', 'order_placed', $5, NULLIF($6, ''), $5, NULLIF($7, ''))
ON CONFLICT (connection_id, checkout_id) DO NOTHING`,
		ref.TenantID, ref.ConnectionID, ref.CheckoutID, ref.WorkflowID(), o.At, o.OrderID, o.Currency)
	if err != nil {
		return "", false, fmt.Errorf("recording order %s of an unseen checkout: %w", o.OrderID, err)
	}
	if tag.RowsAffected() == 0 {
		// A checkout's workflow created the row just now: attribute to it.
		return db.ApplyOrder(ctx, ref, o, false)
	}
	return StatusConverted, true, nil
}

// OpenCarts returns the tenant's carts that are waiting or contacted and
// whose customer's phone is phone. The reply route asks it for every inbound
// message, so lookups made at the same moment share one query (see
// openCartsSQL).
func (db *DB) OpenCarts(ctx context.Context, tenantID, phone string) ([]CartRef, error) {
	l := &openCartsLookup{ctx: ctx, tenantID: tenantID, phone: phone, done: make(chan openCartsResult, 1)}
	db.openCarts.Submit(l) // never closed: an idle batcher holds nothing
	select {
	case r := <-l.done:
		return r.refs, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("finding open carts by phone: %w", ctx.Err())
	}
}

// openCartsSQL finds the open carts of many (tenant, phone) pairs at once,
// each pair through the partial index of open carts by phone; n numbers the
// pairs from 1. The pairs are looked up one by one (LATERAL, kept apart from
// the outer query by OFFSET 0): as a plain join, the plan Postgres made while
// the table was empty hashed every open cart for each lookup, 109 buffers
// at 5,000 carts (TestIntegrationCartPlansUseKeys).
const openCartsSQL = `
SELECT u.n, c.connection_id, c.checkout_id
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(tenant_id, phone, n)
CROSS JOIN LATERAL (
	SELECT c.id, c.connection_id, c.checkout_id FROM cart_recoveries c
	WHERE c.tenant_id = u.tenant_id AND c.phone = u.phone AND c.status IN ('waiting', 'contacted')
	OFFSET 0
) c
ORDER BY u.n, c.id`

const (
	openCartsWorkers  = 2
	maxOpenCartsGroup = 256
	openCartsTimeout  = 10 * time.Second
)

type openCartsLookup struct {
	ctx             context.Context
	tenantID, phone string
	done            chan openCartsResult
}

type openCartsResult struct {
	refs []CartRef
	err  error
}

// lookUpOpenCarts answers a group of lookups with one query. Lookups whose
// callers gave up while they queued are left out.
func (db *DB) lookUpOpenCarts(group []*openCartsLookup) {
	// A caller that gave up has stopped listening: nothing to answer.
	live := batch.Live(group, func(l *openCartsLookup) context.Context { return l.ctx }, nil)
	if len(live) == 0 {
		return
	}
	tenants, phones := make([]string, len(live)), make([]string, len(live))
	for i, l := range live {
		tenants[i], phones[i] = l.tenantID, l.phone
	}
	ctx, cancel := context.WithTimeout(context.Background(), openCartsTimeout)
	defer cancel()
	refs := make([][]CartRef, len(live))
	rows, err := db.pool.Query(ctx, openCartsSQL, tenants, phones)
	if err == nil {
		for rows.Next() {
			var n int
			var r CartRef
			if err = rows.Scan(&n, &r.ConnectionID, &r.CheckoutID); err != nil {
				break
			}
			if n < 1 || n > len(live) {
				err = fmt.Errorf("a row for lookup %d of %d", n, len(live))
				break
			}
			r.TenantID = live[n-1].tenantID
			refs[n-1] = append(refs[n-1], r)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	for i, l := range live {
		if err != nil {
			l.done <- openCartsResult{err: fmt.Errorf("finding open carts by phone: %w", err)}
			continue
		}
		l.done <- openCartsResult{refs: refs[i]}
	}
}

// Steps returns a cart's step records in order.
func (db *DB) Steps(ctx context.Context, ref CartRef) ([]StepRecord, error) {
	rows, err := db.pool.Query(ctx, `
SELECT s.step, s.status, coalesce(s.reason, ''), coalesce(s.detail, ''), coalesce(s.message_id, ''), coalesce(s.discount_code, ''), s.at
FROM cart_recovery_steps s JOIN cart_recoveries c ON c.id = s.cart_id
WHERE c.connection_id = $2 AND c.checkout_id = $3 AND c.tenant_id IS NOT DISTINCT FROM $1 ORDER BY s.step`, ref.TenantID, ref.ConnectionID, ref.CheckoutID)
	if err != nil {
		return nil, fmt.Errorf("reading steps of cart %s: %w", ref.CheckoutID, err)
	}
	steps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StepRecord, error) {
		r := StepRecord{CartRef: ref}
		return r, row.Scan(&r.Step, &r.Status, &r.Reason, &r.Detail, &r.MessageID, &r.DiscountCode, &r.At)
	})
	if err != nil {
		return nil, fmt.Errorf("reading steps of cart %s: %w", ref.CheckoutID, err)
	}
	return steps, nil
}
