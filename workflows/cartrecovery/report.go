package cartrecovery

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report is cart recovery's figures for a tenant over [From, To). Each
// figure counts its own event in the period: a cart seen in March and
// recovered in April is seen in March's report and recovered in April's.
type Report struct {
	From time.Time `json:"from" doc:"Start of the period (inclusive)."`
	To   time.Time `json:"to" doc:"End of the period (exclusive)."`
	// CartsSeen counts checkouts first seen abandoned in the period.
	CartsSeen int `json:"carts_seen" doc:"Checkouts first seen in the period."`
	// Contacted counts carts that received their first message in the period.
	Contacted int `json:"contacted" doc:"Carts that received their first message in the period."`
	// MessagesSent counts the messages sent in the period, per step.
	MessagesSent []StepCount `json:"messages_sent" doc:"Messages sent in the period, per step of the sequence."`
	// Recovered counts orders in the period from carts that had received a
	// message before the order.
	Recovered int `json:"recovered" doc:"Orders in the period from carts that had received a message first."`
	// RecoveredRevenue sums those orders' totals, per currency.
	RecoveredRevenue []Money `json:"recovered_revenue" doc:"The recovered orders' totals, per currency."`
	// Converted counts orders in the period from carts that had not
	// received a message (they came back on their own). Orders whose
	// checkout was never seen abandoned do not count.
	Converted int `json:"converted" doc:"Orders in the period from carts that had not received a message."`
	// OptOuts counts carts whose customer opted out during the sequence.
	OptOuts int `json:"opt_outs" doc:"Carts whose sequence ended in the period because the customer opted out."`
	// Replied counts carts whose sequence a reply ended (handed to a human).
	Replied int `json:"replied" doc:"Carts whose sequence ended in the period because the customer replied."`
	// Skipped counts carts skipped in the period, by reason (no_phone,
	// invalid_phone).
	Skipped []ReasonCount `json:"skipped" doc:"Carts that could not be contacted at all, by reason (no_phone, invalid_phone)."`
	// StepsSkipped counts steps that were not sent in the period, by reason
	// (no_marketing_consent, discount_failed, template refusals, ...).
	StepsSkipped []ReasonCount `json:"steps_skipped" doc:"Steps not sent (skipped or failed), by reason."`
}

// StepCount is a count for one step of the sequence.
type StepCount struct {
	Step  int `json:"step" doc:"The step, from 1."`
	Count int `json:"count"`
}

// Money is an amount in one currency.
type Money struct {
	Currency string `json:"currency" doc:"ISO 4217 code as the shop reports it."`
	Amount   string `json:"amount" doc:"Decimal string, e.g. 149.80."`
}

// ReasonCount is a count for one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Report computes the tenant's cart recovery figures over [from, to).
func (db *DB) Report(ctx context.Context, tenantID string, from, to time.Time) (Report, error) {
	rep := Report{From: from, To: to, MessagesSent: []StepCount{}, RecoveredRevenue: []Money{},
		Skipped: []ReasonCount{}, StepsSkipped: []ReasonCount{}}
	if !from.Before(to) {
		return rep, nil
	}
	b := &pgx.Batch{}
	b.Queue(`
SELECT
    count(*) FILTER (WHERE first_seen_at >= $2 AND first_seen_at < $3),
    count(*) FILTER (WHERE contacted_at >= $2 AND contacted_at < $3),
    count(*) FILTER (WHERE recovered_at >= $2 AND recovered_at < $3),
    count(*) FILTER (WHERE converted_at >= $2 AND converted_at < $3 AND recovered_at IS NULL AND first_seen_at IS NOT NULL),
    count(*) FILTER (WHERE opted_out AND ended_at >= $2 AND ended_at < $3),
    count(*) FILTER (WHERE end_reason = 'replied' AND ended_at >= $2 AND ended_at < $3)
FROM cart_recoveries
WHERE tenant_id = $1 AND (first_seen_at >= $2 AND first_seen_at < $3 OR contacted_at >= $2 AND contacted_at < $3
    OR converted_at >= $2 AND converted_at < $3 OR ended_at >= $2 AND ended_at < $3)`, tenantID, from, to).QueryRow(func(row pgx.Row) error {
		return row.Scan(&rep.CartsSeen, &rep.Contacted, &rep.Recovered, &rep.Converted, &rep.OptOuts, &rep.Replied)
	})
	b.Queue(`
SELECT coalesce(recovered_currency, ''), sum(recovered_revenue)::text
FROM cart_recoveries
WHERE tenant_id = $1 AND recovered_at >= $2 AND recovered_at < $3 AND recovered_revenue IS NOT NULL
GROUP BY 1 ORDER BY 1`, tenantID, from, to).Query(func(rows pgx.Rows) error {
		var err error
		rep.RecoveredRevenue, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Money, error) {
			var m Money
			return m, row.Scan(&m.Currency, &m.Amount)
		})
		return err
	})
	b.Queue(`
SELECT step, count(*) FROM cart_recovery_steps
WHERE tenant_id = $1 AND at >= $2 AND at < $3 AND status = 'sent'
GROUP BY step ORDER BY step`, tenantID, from, to).Query(func(rows pgx.Rows) error {
		var err error
		rep.MessagesSent, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (StepCount, error) {
			var c StepCount
			return c, row.Scan(&c.Step, &c.Count)
		})
		return err
	})
	reasons := func(dst *[]ReasonCount) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			var err error
			*dst, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ReasonCount, error) {
				var c ReasonCount
				return c, row.Scan(&c.Reason, &c.Count)
			})
			return err
		}
	}
	b.Queue(`
SELECT coalesce(end_reason, ''), count(*) FROM cart_recoveries
WHERE tenant_id = $1 AND status = 'skipped' AND ended_at >= $2 AND ended_at < $3
GROUP BY 1 ORDER BY 2 DESC, 1`, tenantID, from, to).Query(reasons(&rep.Skipped))
	b.Queue(`
SELECT coalesce(reason, status), count(*) FROM cart_recovery_steps
WHERE tenant_id = $1 AND at >= $2 AND at < $3 AND status <> 'sent'
GROUP BY 1 ORDER BY 2 DESC, 1`, tenantID, from, to).Query(reasons(&rep.StepsSkipped))
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return Report{}, fmt.Errorf("computing the cart recovery report: %w", err)
	}
	return rep, nil
}
