// Package poller drives connectors that cannot push webhooks (calendars, feeds,
// systems with nothing but a list endpoint): every connection of a connector
// whose manifest sets a poll interval is polled that often, with the cursor the
// host keeps for it, and the events found take the same path as webhook events
// (validated against the manifest, committed deduplicated on (connection,
// dedupe key), dispatched from the outbox).
//
// Several `ponte serve` processes may run a Poller against one database: a
// connection is claimed with a Postgres advisory lock for the length of a poll
// (see claim.go), so it is never polled by two at once, and its schedule
// (next due time, back-off) lives in Postgres, so the interval holds across the
// cluster and across restarts.
//
// Order of writes, the one rule everything rests on: the events of a page are
// committed first, the cursor that follows them is stored second. A crash in
// between leaves the old cursor; the next poll fetches the same page again and
// the dedupe key absorbs the repeats. The other order could lose events.
package poller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Host state keys the poller keeps per connection. They live in
// connection_state next to the connectors' own keys; the "ponte." prefix is
// the host's.
const (
	// CursorKey holds the cursor the connector returned last, exactly as
	// returned.
	CursorKey = "ponte.poll_cursor"
	// ScheduleKey holds the poll schedule (JSON: next due time, consecutive
	// failures, last outcome and error).
	ScheduleKey = "ponte.poll_schedule"
)

// Defaults of [Config].
const (
	DefaultTick          = time.Second
	DefaultConcurrency   = 4
	DefaultMaxPages      = 20
	DefaultPollTimeout   = time.Minute
	DefaultMinInterval   = 10 * time.Second
	DefaultRetryBackoff  = 5 * time.Second
	DefaultMaxRetry      = 15 * time.Minute
	DefaultFixBackoff    = 15 * time.Minute
	DefaultMaxFix        = 6 * time.Hour
	DefaultMaxRetryAfter = 24 * time.Hour
)

// Store is what the poller reads connections from. *store.Store implements it.
type Store interface {
	// PollTargets lists the active connections of the named connectors, with
	// their value under stateKey.
	PollTargets(ctx context.Context, connectors []string, stateKey string) ([]store.PollTarget, error)
	// ResolvedConnection returns a connection with its decrypted
	// configuration, or store.ErrNotFound.
	ResolvedConnection(ctx context.Context, id string) (store.Connection, sdk.Config, error)
}

// Config configures a [Poller]. Store, Connectors, Sink and Pool are required;
// zero values of the rest take the defaults.
type Config struct {
	// Store lists and resolves connections.
	Store Store
	// Connectors reaches the plugins and their manifests.
	Connectors pluginhost.Registry
	// Sink stores the events found, normally the ingress *ingress.Committer,
	// so that polled events are stored and dispatched like webhook events.
	Sink ingress.EventSink
	// Pool is the store's pool. The poller does not use its sessions: it opens
	// a pool of its own with the same settings and at most Concurrency
	// sessions, on which it holds its claims (see claim.go for why).
	Pool *pgxpool.Pool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics receives poll figures; nil means none.
	Metrics Metrics

	// Tick is how often the poller looks for connections due (default 1s). A
	// new connection is polled within a tick of its creation.
	Tick time.Duration
	// Concurrency bounds the polls running at once in this process (default 4).
	Concurrency int
	// MaxPages bounds how many times one poll follows PollResult.More before
	// it lets other connections have their turn (default 20); the rest is
	// fetched on the next tick.
	MaxPages int
	// PollTimeout bounds one Poll call to the connector (default 1 min).
	PollTimeout time.Duration
	// Intervals overrides, per connector name, the poll interval the
	// connector's manifest asks for: an operator's say over how hard a
	// provider is polled. Connectors whose manifest sets no interval are
	// never polled, whatever this says.
	Intervals map[string]time.Duration
	// MinInterval is the shortest interval a manifest may ask for (default
	// 10s); shorter ones are raised to it. Intervals are not subject to it.
	MinInterval time.Duration
	// RetryBackoff is the first wait after a transient failure (retryable,
	// plugin unavailable, store error, rate limited without retry-after),
	// doubling per consecutive failure up to MaxRetryBackoff (defaults 5s and
	// 15 min).
	RetryBackoff, MaxRetryBackoff time.Duration
	// FixBackoff is the first wait after a failure that needs a person (auth,
	// invalid, permanent, events that fail validation), doubling up to
	// MaxFixBackoff (defaults 15 min and 6 h). A change of the connection
	// (say, a new token) makes it due at once.
	FixBackoff, MaxFixBackoff time.Duration
	// MaxRetryAfter caps the retry-after a connector asks for (default 24 h).
	MaxRetryAfter time.Duration
}

func (c *Config) setDefaults() {
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	c.Tick = cmp.Or(c.Tick, DefaultTick)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.MaxPages = cmp.Or(c.MaxPages, DefaultMaxPages)
	c.PollTimeout = cmp.Or(c.PollTimeout, DefaultPollTimeout)
	c.MinInterval = cmp.Or(c.MinInterval, DefaultMinInterval)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, DefaultRetryBackoff)
	c.MaxRetryBackoff = max(cmp.Or(c.MaxRetryBackoff, DefaultMaxRetry), c.RetryBackoff)
	c.FixBackoff = cmp.Or(c.FixBackoff, DefaultFixBackoff)
	c.MaxFixBackoff = max(cmp.Or(c.MaxFixBackoff, DefaultMaxFix), c.FixBackoff)
	c.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, DefaultMaxRetryAfter)
}

// Poller polls the connections of polling connectors. Create it with [New]
// and call [Poller.Run] once.
type Poller struct {
	cfg     Config
	log     *slog.Logger
	metrics Metrics
	backoff backoffs
	jitter  jitterFunc

	claims *pgxpool.Pool // set by Run

	sem chan struct{} // one token per running poll

	mu          sync.Mutex
	running     map[string]bool      // connection ids being polled by this process
	busyUntil   map[string]time.Time // connections another poller holds: not tried again before
	listFailing bool                 // the last listing failed (logged once per change)
	wg          sync.WaitGroup
}

// New returns a Poller with cfg; Run starts it.
func New(cfg Config) *Poller {
	cfg.setDefaults()
	return &Poller{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "poller"),
		metrics: cfg.Metrics,
		backoff: backoffs{
			Retry: cfg.RetryBackoff, MaxRetry: cfg.MaxRetryBackoff,
			Fix: cfg.FixBackoff, MaxFix: cfg.MaxFixBackoff,
			MaxRetryAfter: cfg.MaxRetryAfter,
		},
		jitter:    defaultJitter,
		sem:       make(chan struct{}, cfg.Concurrency),
		running:   map[string]bool{},
		busyUntil: map[string]time.Time{},
	}
}

// Run polls until ctx ends, then waits for the polls under way to stop and
// returns nil. It returns an error only when it cannot start. Failures while
// running (the database or a plugin down, a connector failing) are logged,
// counted and retried; they never stop the poller.
func (p *Poller) Run(ctx context.Context) error {
	if p.cfg.Store == nil || p.cfg.Connectors == nil || p.cfg.Sink == nil || p.cfg.Pool == nil {
		return errors.New("poller: Store, Connectors, Sink and Pool are required")
	}
	claims, err := newClaimPool(ctx, p.cfg.Pool, p.cfg.Concurrency)
	if err != nil {
		return err
	}
	defer claims.Close()
	p.claims = claims

	p.log.Info("poller started", "tick", p.cfg.Tick, "concurrency", p.cfg.Concurrency)
	ticker := time.NewTicker(p.cfg.Tick)
	defer ticker.Stop()
	for {
		p.tick(ctx)
		select {
		case <-ctx.Done():
			p.wg.Wait()
			p.log.Info("poller stopped")
			return nil
		case <-ticker.C:
		}
	}
}

// interval is how often connections of the connector with manifest m are
// polled; 0 means never.
func (p *Poller) interval(m sdk.Manifest) time.Duration {
	if m.PollInterval <= 0 {
		return 0
	}
	if d := p.cfg.Intervals[m.Name]; d > 0 {
		return d
	}
	return max(m.PollInterval, p.cfg.MinInterval)
}

// horizon is how far ahead a stored next due time may lie for a connector
// polled every interval; see due.
func (p *Poller) horizon(interval time.Duration) time.Duration {
	return 2 * max(interval, p.backoff.MaxFix, p.backoff.MaxRetry, p.backoff.MaxRetryAfter)
}

// tick starts a poll of every connection due, most overdue first, as long as
// there are free slots; connections left over stay due for the next tick.
func (p *Poller) tick(ctx context.Context) {
	intervals := map[string]time.Duration{}
	for _, m := range p.cfg.Connectors.Manifests() {
		if d := p.interval(m); d > 0 {
			intervals[m.Name] = d
		}
	}
	if len(intervals) == 0 {
		return
	}
	names := make([]string, 0, len(intervals))
	for n := range intervals {
		names = append(names, n)
	}
	slices.Sort(names)

	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	targets, err := p.cfg.Store.PollTargets(lctx, names, ScheduleKey)
	cancel()
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	wasFailing := p.listFailing
	p.listFailing = err != nil
	p.mu.Unlock()
	if err != nil {
		if !wasFailing {
			p.log.Warn("listing connections to poll failed; retrying every tick", "error", err)
		}
		return
	}
	if wasFailing {
		p.log.Info("listing connections to poll works again")
	}

	type candidate struct {
		target store.PollTarget
		next   time.Time
	}
	now := time.Now()
	var dueNow []candidate
	p.mu.Lock()
	for id, until := range p.busyUntil {
		if !now.Before(until) {
			delete(p.busyUntil, id)
		}
	}
	for _, t := range targets {
		if p.running[t.ID] || !p.busyUntil[t.ID].IsZero() {
			continue
		}
		s := decodeSchedule(t.State)
		if due(s, t.UpdatedAt, now, p.horizon(intervals[t.Connector])) {
			dueNow = append(dueNow, candidate{t, s.NextDue})
		}
	}
	p.mu.Unlock()
	slices.SortStableFunc(dueNow, func(a, b candidate) int { return a.next.Compare(b.next) })

	for _, c := range dueNow {
		select {
		case p.sem <- struct{}{}:
		default:
			return // every slot busy
		}
		p.mu.Lock()
		p.running[c.target.ID] = true
		p.mu.Unlock()
		p.wg.Go(func() {
			defer func() {
				p.mu.Lock()
				delete(p.running, c.target.ID)
				p.mu.Unlock()
				<-p.sem
			}()
			p.attempt(ctx, c.target, intervals[c.target.Connector])
		})
	}
}

// busyRetry bounds how long a connection found claimed by another poller is
// left alone by this one.
const busyRetry = 30 * time.Second

// result is what one attempt did.
type result struct {
	outcome         Outcome
	found, inserted int
}

// attempt polls one connection and records the figures.
func (p *Poller) attempt(ctx context.Context, t store.PollTarget, interval time.Duration) {
	started := time.Now()
	r := p.poll(ctx, t, interval, started)
	if r.outcome == OutcomeBusy {
		// Another poller is polling it and will store the next due time when
		// it is done. Trying the claim again on every tick meanwhile would
		// only cost queries; wait a while (short, in case that poller dies
		// and leaves the connection due).
		p.mu.Lock()
		p.busyUntil[t.ID] = time.Now().Add(max(min(interval, busyRetry), p.cfg.Tick))
		p.mu.Unlock()
	}
	p.metrics.Polled(t.Connector, r.outcome, r.found, r.inserted, time.Since(started))
}

// poll claims the connection, polls it page by page and stores what it found,
// the cursor and the next schedule.
func (p *Poller) poll(ctx context.Context, t store.PollTarget, interval time.Duration, started time.Time) result {
	log := p.log.With("connection", t.ID, "tenant", t.TenantID, "connector", t.Connector)
	cl, ok, err := tryClaim(ctx, p.claims, t.ID)
	if err != nil {
		if ctx.Err() != nil {
			return result{outcome: OutcomeCanceled}
		}
		// Without a claim there is no schedule to write; the connection stays
		// due and the next tick tries again.
		log.Debug("claiming a connection to poll failed", "error", err)
		return result{outcome: OutcomeStoreError}
	}
	if !ok {
		return result{outcome: OutcomeBusy}
	}
	defer cl.release()

	// Read again under the claim: another poller may have polled the
	// connection between our listing and our claim.
	raw, err := cl.getState(ctx, ScheduleKey)
	if err != nil {
		if ctx.Err() != nil {
			return result{outcome: OutcomeCanceled}
		}
		log.Debug("reading the poll schedule failed", "error", err)
		return result{outcome: OutcomeStoreError}
	}
	prev := decodeSchedule(raw)
	if !due(prev, t.UpdatedAt, time.Now(), p.horizon(interval)) {
		return result{outcome: OutcomeSkipped}
	}

	f := finisher{p: p, log: log, cl: cl, prev: prev, started: started, interval: interval, configAt: t.UpdatedAt}
	conn, cfg, err := p.cfg.Store.ResolvedConnection(ctx, t.ID)
	if errors.Is(err, store.ErrNotFound) {
		return result{outcome: OutcomeSkipped}
	}
	if err != nil {
		return f.fail(ctx, OutcomeStoreError, 0, fmt.Errorf("resolving the connection: %w", err))
	}
	// Listed active, but disabled since: it is not polled.
	if conn.Status != store.StatusActive {
		return result{outcome: OutcomeSkipped}
	}
	f.configAt = conn.UpdatedAt
	client, err := p.cfg.Connectors.Connector(conn.Connector)
	if err != nil {
		return f.fail(ctx, OutcomeUnavailable, 0, err)
	}
	m := client.Manifest()
	if p.interval(m) == 0 {
		return result{outcome: OutcomeSkipped} // a new plugin version stopped polling
	}
	cur, err := cl.getState(ctx, CursorKey)
	if err != nil {
		return f.fail(ctx, OutcomeStoreError, 0, err)
	}
	cursor := string(cur)
	sconn := sdk.Connection{ID: conn.ID, TenantID: conn.TenantID, Config: cfg}

	for page := 1; ; page++ {
		pctx, cancel := context.WithTimeout(ctx, p.cfg.PollTimeout)
		res, err := client.Poll(pctx, sconn, cursor)
		cancel()
		if err != nil {
			outcome, retryAfter := classify(err)
			return f.fail(ctx, outcome, retryAfter, fmt.Errorf("polling: %w", err))
		}
		f.found += len(res.Events)
		if err := ingress.ValidateEvents(m, res.Events); err != nil {
			// Nothing of the page is stored and the cursor stays: storing
			// part of a page and moving on would lose the rest for good.
			return f.fail(ctx, OutcomeBadEvents, 0, fmt.Errorf("the connector returned invalid events: %w", err))
		}
		n, err := p.cfg.Sink.Commit(ctx, conn.TenantID, conn.ID, res.Events)
		if err != nil {
			return f.fail(ctx, OutcomeStoreError, 0, fmt.Errorf("storing polled events: %w", err))
		}
		f.inserted += n
		// Events first, cursor second: the events are committed now, so the
		// cursor past them may be stored. If the process dies before the next
		// statement, the cursor stays where it was, the next poll fetches
		// this page again and the dedupe keys absorb the repeats.
		moved := res.Cursor != cursor
		if moved {
			if err := cl.setState(ctx, CursorKey, []byte(res.Cursor)); err != nil {
				if errors.Is(err, errConnectionGone) {
					return result{outcome: OutcomeSkipped, found: f.found, inserted: f.inserted}
				}
				return f.fail(ctx, OutcomeStoreError, 0, fmt.Errorf("storing the cursor: %w", err))
			}
			cursor = res.Cursor
		}
		if !res.More {
			return f.succeed(ctx, false)
		}
		if !moved {
			// Asking for more without moving the cursor would fetch the same
			// page forever; wait for the next interval instead.
			log.Warn("the connector asked to poll again at once without moving its cursor; waiting for the next interval")
			return f.succeed(ctx, false)
		}
		if page >= p.cfg.MaxPages {
			return f.succeed(ctx, true)
		}
	}
}

// finisher ends a claimed poll: it writes the next schedule on the claiming
// session and logs changes of outcome.
type finisher struct {
	p               *Poller
	log             *slog.Logger
	cl              *claim
	prev            schedule
	started         time.Time
	interval        time.Duration
	configAt        time.Time
	found, inserted int
}

func (f *finisher) succeed(ctx context.Context, more bool) result {
	now := time.Now()
	next := schedule{
		NextDue:     nextDue(f.p.backoff, f.p.jitter, OutcomeOK, 0, 0, f.interval, more, f.started, now),
		LastAttempt: f.started,
		LastSuccess: now,
		LastOutcome: OutcomeOK,
		ConfigAt:    f.configAt,
	}
	if f.prev.LastOutcome.failed() {
		f.log.Info("polling a connection works again", "previous_outcome", f.prev.LastOutcome,
			"failures", f.prev.Failures, "found", f.found, "inserted", f.inserted)
	} else {
		f.log.Debug("polled a connection", "found", f.found, "inserted", f.inserted, "more", more)
	}
	return f.write(ctx, next, OutcomeOK)
}

func (f *finisher) fail(ctx context.Context, outcome Outcome, retryAfter time.Duration, err error) result {
	if ctx.Err() != nil {
		// Stopping, not failing: the claim goes with the session and the next
		// poller starts from the stored cursor.
		return result{outcome: OutcomeCanceled, found: f.found, inserted: f.inserted}
	}
	now := time.Now()
	failures := f.prev.Failures + 1
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	next := schedule{
		NextDue:     nextDue(f.p.backoff, f.p.jitter, outcome, failures, retryAfter, f.interval, false, f.started, now),
		LastAttempt: f.started,
		LastSuccess: f.prev.LastSuccess,
		Failures:    failures,
		LastOutcome: outcome,
		LastError:   msg,
		ConfigAt:    f.configAt,
	}
	// Warn once per change of outcome, not on every attempt: a connection
	// whose token expired would otherwise log every back-off for days.
	level := slog.LevelDebug
	if outcome != f.prev.LastOutcome {
		level = slog.LevelWarn
	}
	f.log.Log(ctx, level, "polling a connection failed", "outcome", outcome, "error", msg,
		"failures", failures, "next_poll", next.NextDue.UTC().Format(time.RFC3339))
	return f.write(ctx, next, outcome)
}

func (f *finisher) write(ctx context.Context, s schedule, outcome Outcome) result {
	r := result{outcome: outcome, found: f.found, inserted: f.inserted}
	b, err := marshalSchedule(s)
	if err == nil {
		err = f.cl.setState(ctx, ScheduleKey, b)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.outcome = OutcomeCanceled
	case errors.Is(err, errConnectionGone):
		r.outcome = OutcomeSkipped
	default:
		// The poll's own work is stored; without its schedule the connection
		// is due again at the next tick, which costs one early poll.
		f.log.Warn("storing the poll schedule failed", "error", err)
	}
	return r
}
