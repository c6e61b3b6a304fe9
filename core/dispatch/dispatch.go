// Package dispatch drains the event outbox: events that ingress committed and
// nobody has delivered yet. Each event goes through a [Router] that says which
// workflows it concerns; the dispatcher signals them in Temporal and marks the
// event dispatched.
//
// Delivery is at least once: a dispatcher that dies after signalling but
// before marking leaves the event to be delivered again, so workflows ignore
// event ids they have seen. Marking is exactly once: dispatched_at is set by
// the first dispatcher to finish and never moved. Several dispatchers (one per
// worker process) run safely at once: each claims a batch with FOR UPDATE SKIP
// LOCKED in a short transaction that also leases the rows (pushes
// next_attempt_at into the future), so no transaction stays open while
// Temporal is called, and a crashed dispatcher's claim simply expires. The
// lease is short (20 s) and renewed while a batch is being delivered, so
// events a killed process had claimed are delivered again within the lease,
// and a slow batch keeps its events however long it takes.
package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// NotifyChannel is the Postgres channel ingress notifies after committing new
// events (the same string as ingress.NotifyChannel).
const NotifyChannel = "ponte_events"

// Event is a stored inbound event as routers see it.
type Event struct {
	ID           int64
	TenantID     string
	ConnectionID string
	// Connector is the name of the connection's connector, e.g. "stripe".
	Connector   string
	DedupeKey   string
	Type        string
	OccurredAt  time.Time
	ReceivedAt  time.Time
	Correlation map[string]string
	Payload     json.RawMessage
	// Attempts counts earlier deliveries of this event that failed.
	Attempts int
}

// Delivery is one signal an event turns into.
type Delivery struct {
	// WorkflowID is the target workflow, derived from a business key.
	WorkflowID string
	// WorkflowType and TaskQueue start the workflow when it is not running,
	// with StartArgs (SignalWithStartWorkflow).
	WorkflowType string
	TaskQueue    string
	StartArgs    []any
	// SignalName and SignalArg are the signal sent.
	SignalName string
	SignalArg  any
	// SignalOnly delivers to a running workflow and never starts one
	// (SignalWorkflow). When no run is open, IfNotRunning is called to apply
	// the event some other way; without it the event is recorded as not
	// delivered, with the reason, and not retried.
	SignalOnly   bool
	IfNotRunning func(ctx context.Context) error
	// Apply, when set, makes this an in-process delivery: the event is applied
	// by this function (updating contacts from an inbound message, a message
	// status to the ledger) and no workflow is signalled. Delivery being at
	// least once, Apply must be idempotent. Its errors are retried with
	// backoff unless [Permanent].
	Apply func(ctx context.Context) error
}

// Router maps an event to the deliveries it needs; none means no workflow
// cares, and the event is marked dispatched.
//
// An error is retried with backoff, unless it is [Permanent], in which case the
// event is marked done with the error as its reason.
type Router interface {
	Route(ctx context.Context, ev Event) ([]Delivery, error)
}

// RouterFunc is a function that is a Router.
type RouterFunc func(ctx context.Context, ev Event) ([]Delivery, error)

// Route implements Router.
func (f RouterFunc) Route(ctx context.Context, ev Event) ([]Delivery, error) { return f(ctx, ev) }

// Routes is a Router made of several: an event gets the deliveries of all.
type Routes []Router

// Route implements Router.
func (rs Routes) Route(ctx context.Context, ev Event) ([]Delivery, error) {
	var all []Delivery
	for _, r := range rs {
		ds, err := r.Route(ctx, ev)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	return all, nil
}

// PermanentError marks an error that retrying cannot fix. The event is marked
// done with the error's text as the reason it was not (fully) delivered.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the dispatcher records it and stops retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Temporal is the part of the Temporal client the dispatcher uses;
// client.Client implements it.
type Temporal interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID string, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	SignalWorkflow(ctx context.Context, workflowID string, runID string, signalName string, arg any) error
}

// Config configures a [Dispatcher]. Zero values take the defaults.
type Config struct {
	// Pool is the database holding the events table. Required.
	Pool *pgxpool.Pool
	// Router says where each event goes. Required.
	Router Router
	// Temporal delivers the signals. Required.
	Temporal Temporal
	// BatchSize is how many events one claim takes (default 100).
	BatchSize int
	// Concurrency is how many deliveries of a batch run at once (default
	// 64). In-process deliveries that group their writes (inbound messages,
	// see contacts.Service.ApplyInbound) group only what runs at once: at 8,
	// groups of inbound messages averaged 2 and Postgres spent 1.25 ms a
	// message; at 64, groups of 9 and 0.93 ms.
	Concurrency int
	// PollInterval is how often the outbox is checked without a notification
	// (default 1s); it also bounds how late a retry's due time is noticed.
	PollInterval time.Duration
	// Lease is how long a claimed event is reserved for this dispatcher
	// (default 20s): how long events a crashed process had claimed wait
	// before another dispatcher takes them. It is renewed every third of
	// itself while the batch is delivered, so it need not cover a batch.
	Lease time.Duration
	// DeliveryTimeout bounds one event's deliveries (default 15s).
	DeliveryTimeout time.Duration
	// Yield, when set, says that more urgent work is waiting for the
	// machine (webhooks answered slowly: ingress.Pressure.Busy). The
	// dispatcher then waits before each batch, up to MaxYield, and claims
	// small batches (a tenth of BatchSize) until Yield says false: the
	// events are stored already and can be applied a little later, while a
	// provider waits for each answer. MaxYield (default 1s) bounds each wait,
	// so applying never stops under sustained load, it only slows.
	Yield    func() bool
	MaxYield time.Duration
	// BaseBackoff and MaxBackoff shape the retry delay after a failure:
	// BaseBackoff * 2^attempts with ±20% jitter, capped at MaxBackoff
	// (defaults 1s and 15m). There is no attempt limit: an event waits out a
	// Temporal outage of any length rather than being dropped.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Dispatcher drains the outbox. Run it in every worker process.
type Dispatcher struct {
	cfg Config
	log *slog.Logger
}

// New returns a Dispatcher with cfg.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Pool == nil || cfg.Router == nil || cfg.Temporal == nil {
		return nil, errors.New("dispatch: Pool, Router and Temporal are required")
	}
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 100)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 64)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.Lease = cmp.Or(cfg.Lease, 20*time.Second)
	cfg.DeliveryTimeout = cmp.Or(cfg.DeliveryTimeout, 15*time.Second)
	cfg.MaxYield = cmp.Or(cfg.MaxYield, time.Second)
	cfg.BaseBackoff = cmp.Or(cfg.BaseBackoff, time.Second)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 15*time.Minute)
	return &Dispatcher{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default())}, nil
}

// Run dispatches until ctx ends, woken by notifications on [NotifyChannel] and,
// should those be missed (listener reconnecting, a NOTIFY lost in a crash), by
// polling every PollInterval. It returns nil when ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.listen(ctx, wake)
	}()
	defer wg.Wait()

	ticker := time.NewTicker(d.cfg.PollInterval)
	defer ticker.Stop()
	for {
		for {
			limit := d.giveWay(ctx)
			if ctx.Err() != nil {
				return nil
			}
			n, err := d.dispatch(ctx, limit)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d.log.Error("dispatch: draining the outbox failed", "error", err)
				break
			}
			if n < limit {
				break // drained; a full batch means there may be more right now
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-ticker.C:
		}
	}
}

// listen holds a dedicated connection (not a pool slot, which would starve
// ingress) LISTENing on NotifyChannel, and pokes wake on each notification.
// It reconnects with backoff; meanwhile polling keeps events moving.
func (d *Dispatcher) listen(ctx context.Context, wake chan<- struct{}) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("dispatch: listening for notifications failed; polling meanwhile", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

func (d *Dispatcher) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := pgx.ConnectConfig(ctx, d.cfg.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("listening on %s: %w", NotifyChannel, err)
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("waiting for notification: %w", err)
		}
		select {
		case wake <- struct{}{}:
		default: // a wake-up is already pending; one drain covers both
		}
	}
}

// claimEvents leases up to $1 due events for $2 and returns them. One
// statement, so one short transaction: the row locks taken by FOR UPDATE SKIP
// LOCKED last only until the lease is written, and concurrent dispatchers
// skip rows another is claiming instead of waiting for them. The lease is
// written on the event's narrow dispatch row (event_dispatch), never on the
// event's own row with its payload.
const claimEvents = `
WITH due AS (
    SELECT event_id FROM event_dispatch
    WHERE dispatched_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at, event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE event_dispatch d
    SET next_attempt_at = now() + $2::bigint * interval '1 millisecond'
    FROM due
    WHERE d.event_id = due.event_id
    RETURNING d.event_id, d.dispatch_attempts
)
SELECT e.id, e.tenant_id, e.connection_id, c.connector, e.dedupe_key, e.type,
       e.occurred_at, e.received_at, e.correlation, e.payload, l.dispatch_attempts
FROM leased l
JOIN events e ON e.id = l.event_id
JOIN connections c ON c.id = e.connection_id`

// markDone sets dispatched_at once; a note records why an event was dropped
// or only partly delivered.
const markDone = `
UPDATE event_dispatch d
SET dispatched_at = now(), last_error = NULLIF(u.note, '')
FROM unnest($1::bigint[], $2::text[]) AS u(id, note)
WHERE d.event_id = u.id AND d.dispatched_at IS NULL`

// markRetry schedules another attempt.
const markRetry = `
UPDATE event_dispatch d
SET dispatch_attempts = d.dispatch_attempts + 1,
    next_attempt_at = now() + u.delay_ms * interval '1 millisecond',
    last_error = u.err
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(id, delay_ms, err)
WHERE d.event_id = u.id AND d.dispatched_at IS NULL`

// renewLease pushes the lease of claimed events that are still undelivered.
const renewLease = `
UPDATE event_dispatch SET next_attempt_at = now() + $2::bigint * interval '1 millisecond'
WHERE event_id = ANY($1) AND dispatched_at IS NULL`

// yieldPoll is how often a dispatcher giving way asks Yield again.
const yieldPoll = 10 * time.Millisecond

// giveWay waits while Yield says more urgent work is waiting, up to
// MaxYield, and returns how many events the next batch may claim: BatchSize,
// or a tenth of it when the wait ran out with Yield still true.
func (d *Dispatcher) giveWay(ctx context.Context) int {
	if d.cfg.Yield == nil || !d.cfg.Yield() {
		return d.cfg.BatchSize
	}
	deadline := time.Now().Add(d.cfg.MaxYield)
	t := time.NewTicker(yieldPoll)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return d.cfg.BatchSize
		case <-t.C:
		}
		if !d.cfg.Yield() {
			return d.cfg.BatchSize
		}
	}
	return max(1, d.cfg.BatchSize/10)
}

// DispatchOnce claims one batch of due events, delivers them and records the
// outcomes. It returns how many events it claimed.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	return d.dispatch(ctx, d.cfg.BatchSize)
}

// dispatch is DispatchOnce claiming at most limit events.
func (d *Dispatcher) dispatch(ctx context.Context, limit int) (int, error) {
	rows, err := d.cfg.Pool.Query(ctx, claimEvents, limit, d.cfg.Lease.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("claiming events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var ev Event
		var corr []byte
		err := row.Scan(&ev.ID, &ev.TenantID, &ev.ConnectionID, &ev.Connector, &ev.DedupeKey, &ev.Type,
			&ev.OccurredAt, &ev.ReceivedAt, &corr, &ev.Payload, &ev.Attempts)
		if err == nil && len(corr) > 0 {
			err = json.Unmarshal(corr, &ev.Correlation)
		}
		return ev, err
	})
	if err != nil {
		return 0, fmt.Errorf("claiming events: %w", err)
	}
	if len(events) == 0 {
		return 0, nil
	}

	stopRenewing := d.renewWhileDelivering(ctx, events)
	outcomes := make([]outcome, len(events))
	sem := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range events {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			outcomes[i] = d.deliver(ctx, events[i])
		}()
	}
	wg.Wait()
	stopRenewing()

	var doneIDs, retryIDs, delays []int64
	var notes, errs []string
	for i, ev := range events {
		o := outcomes[i]
		switch {
		case o.err == nil:
			doneIDs, notes = append(doneIDs, ev.ID), append(notes, o.note)
		case IsPermanent(o.err):
			d.log.Warn("dispatch: event not deliverable; marked done", "event", ev.ID, "type", ev.Type, "reason", o.err)
			doneIDs, notes = append(doneIDs, ev.ID), append(notes, truncate(o.err.Error()))
		default:
			delay := d.backoff(ev.Attempts)
			d.log.Warn("dispatch: delivering event failed; will retry", "event", ev.ID, "type", ev.Type,
				"attempts", ev.Attempts+1, "retry_in", delay, "error", o.err)
			retryIDs, delays, errs = append(retryIDs, ev.ID), append(delays, delay.Milliseconds()), append(errs, truncate(o.err.Error()))
		}
	}
	// Record outcomes even if ctx was cancelled meanwhile: the deliveries
	// happened, and re-delivering them after a restart is only waste.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if len(doneIDs) > 0 {
		if _, err := d.cfg.Pool.Exec(wctx, markDone, doneIDs, notes); err != nil {
			return len(events), fmt.Errorf("marking %d events dispatched: %w", len(doneIDs), err)
		}
	}
	if len(retryIDs) > 0 {
		if _, err := d.cfg.Pool.Exec(wctx, markRetry, retryIDs, delays, errs); err != nil {
			return len(events), fmt.Errorf("scheduling retries of %d events: %w", len(retryIDs), err)
		}
	}
	return len(events), nil
}

// renewWhileDelivering renews the lease of a claimed batch every third of the
// lease until the returned function is called; that function returns once no
// renewal is running, so the outcomes written after it are never overwritten
// by a late renewal. A failed renewal is logged and tried again at the next
// tick: at worst another dispatcher delivers an event twice, which delivery
// tolerates.
func (d *Dispatcher) renewWhileDelivering(ctx context.Context, events []Event) (stop func()) {
	ids := make([]int64, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(ctx, d.cfg.Lease/3)
			_, err := d.cfg.Pool.Exec(rctx, renewLease, ids, d.cfg.Lease.Milliseconds())
			cancel()
			if err != nil && ctx.Err() == nil {
				d.log.Warn("dispatch: renewing the lease of a batch being delivered", "events", len(ids), "error", err)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

type outcome struct {
	note string // set when the event was done but not (fully) delivered
	err  error
}

// deliver routes one event and sends its signals. Every delivery is attempted
// even when one fails, so a retry repeats fewer surprises; the event is
// retried if any transient failure remains.
func (d *Dispatcher) deliver(ctx context.Context, ev Event) outcome {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DeliveryTimeout)
	defer cancel()
	deliveries, err := d.cfg.Router.Route(ctx, ev)
	if err != nil {
		return outcome{err: fmt.Errorf("routing: %w", err)}
	}
	var transient error
	var notes []string
	for _, dl := range deliveries {
		err := d.send(ctx, dl)
		switch {
		case err == nil:
		case IsPermanent(err):
			notes = append(notes, err.Error())
		default:
			transient = errors.Join(transient, err)
		}
	}
	if transient != nil {
		return outcome{err: transient}
	}
	if len(notes) > 0 && len(notes) == len(deliveries) {
		return outcome{err: Permanent(errors.New(joinNotes(notes)))}
	}
	return outcome{note: joinNotes(notes)}
}

func joinNotes(notes []string) string { return strings.Join(notes, "; ") }

func (d *Dispatcher) send(ctx context.Context, dl Delivery) error {
	if dl.Apply != nil {
		return dl.Apply(ctx)
	}
	if dl.SignalOnly {
		err := d.cfg.Temporal.SignalWorkflow(ctx, dl.WorkflowID, "", dl.SignalName, dl.SignalArg)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			if dl.IfNotRunning == nil {
				return Permanent(fmt.Errorf("workflow %s is not running", dl.WorkflowID))
			}
			if err := dl.IfNotRunning(ctx); err != nil {
				return fmt.Errorf("applying event to closed workflow %s: %w", dl.WorkflowID, err)
			}
			return nil
		}
		if err != nil {
			return classify(fmt.Errorf("signalling workflow %s: %w", dl.WorkflowID, err))
		}
		return nil
	}
	_, err := d.cfg.Temporal.SignalWithStartWorkflow(ctx, dl.WorkflowID, dl.SignalName, dl.SignalArg,
		client.StartWorkflowOptions{ID: dl.WorkflowID, TaskQueue: dl.TaskQueue}, dl.WorkflowType, dl.StartArgs...)
	if err != nil {
		return classify(fmt.Errorf("signal-with-start of workflow %s: %w", dl.WorkflowID, err))
	}
	return nil
}

// classify makes Temporal's refusals of the request itself permanent: an
// invalid argument (an id too long, an unknown search attribute) fails the
// same way every time. Everything else (unavailable, deadline, resource
// exhausted) is worth retrying.
func classify(err error) error {
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) {
		return Permanent(err)
	}
	return err
}

// backoff returns the delay before retry number attempts+1.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	delay := d.cfg.BaseBackoff
	for range attempts {
		if delay >= d.cfg.MaxBackoff/2 {
			delay = d.cfg.MaxBackoff // doubling on would pass the cap (or overflow)
			break
		}
		delay *= 2
	}
	delay = min(delay, d.cfg.MaxBackoff)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(delay) * jitter)
}

func truncate(s string) string {
	const maxLen = 2000
	if len(s) <= maxLen {
		return s
	}
	// Cut on a rune boundary: Postgres refuses invalid UTF-8.
	return strings.ToValidUTF8(s[:maxLen], "") + "…"
}
