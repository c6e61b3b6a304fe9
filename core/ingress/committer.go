package ingress

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// NotifyChannel is the Postgres channel notified when new events are stored,
// so dispatchers wake up at once instead of waiting for their next poll.
const NotifyChannel = "ponte_events"

// ErrClosed is returned by [Committer.Commit] after [Committer.Close].
var ErrClosed = errors.New("ingress: committer closed")

// EventSink stores events durably. *Committer implements it.
type EventSink interface {
	// Commit stores events for a connection, deduplicated on (connection,
	// DedupeKey), and returns only once they are committed. inserted counts
	// the events that were new.
	Commit(ctx context.Context, tenantID, connectionID string, events []sdk.Event) (inserted int, err error)
}

// CommitterConfig tunes a [Committer]. Zero values take the defaults.
type CommitterConfig struct {
	// Writers is how many batches may be in flight at once (default 2). While
	// one writer waits for Postgres to commit, the next batch gathers. More
	// writers mean smaller batches and more commits (each a WAL flush) for
	// the same load: on 2 cores at 3,000 webhooks/s, 2 writers made half the
	// commits of 4, and p99 ranged 56-86 ms against 77-104 ms
	// (BenchmarkIngressStripe in core/server).
	Writers int
	// MaxBatchRequests caps the requests written in one transaction (default 256).
	MaxBatchRequests int
	// MaxBatchEvents caps the events written in one transaction (default 4096).
	MaxBatchEvents int
	// Timeout bounds one batch's statement (default 10s).
	Timeout time.Duration
	// Metrics receives batch figures; nil means none.
	Metrics Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Committer stores events with group commit: concurrent Commit calls hand
// their events to a few writer goroutines, each of which writes every request
// waiting at that moment in one INSERT (one transaction, one fsync) and then
// answers them all. Under load this turns thousands of tiny transactions per
// second into tens of larger ones, which is what lets ingress sustain
// thousands of webhooks per second on a small machine; when idle, a lone
// request is written at once, without waiting for company.
//
// A request is answered with success only once the transaction holding its own
// rows has committed. When a batch fails, each of its requests is retried in a
// transaction of its own, so one bad request (say, a payload Postgres refuses)
// fails alone.
type Committer struct {
	pool    *pgxpool.Pool
	cfg     CommitterConfig
	log     *slog.Logger
	metrics Metrics

	reqs chan *commitRequest
	wake chan struct{} // to the notifier: new events were committed

	mu      sync.RWMutex // guards closed against sends racing Close
	closed  bool
	writers sync.WaitGroup // the writer goroutines
	wg      sync.WaitGroup // the notifier
}

type commitRequest struct {
	tenantID, connectionID string
	events                 []sdk.Event
	// payloads and correlations are encoded by the caller's goroutine, so the
	// writer, the one serial part, does no JSON work.
	correlations [][]byte
	done         chan commitResult
}

type commitResult struct {
	inserted int
	err      error
}

// NewCommitter starts a Committer writing to pool. Call Close to stop it.
func NewCommitter(pool *pgxpool.Pool, cfg CommitterConfig) *Committer {
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.MaxBatchRequests <= 0 {
		cfg.MaxBatchRequests = 256
	}
	if cfg.MaxBatchEvents <= 0 {
		cfg.MaxBatchEvents = 4096
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &Committer{
		pool:    pool,
		cfg:     cfg,
		log:     cmp.Or(cfg.Logger, slog.Default()),
		metrics: cfg.Metrics,
		reqs:    make(chan *commitRequest, cfg.MaxBatchRequests*cfg.Writers),
		wake:    make(chan struct{}, 1),
	}
	if c.metrics == nil {
		c.metrics = nopMetrics{}
	}
	for range cfg.Writers {
		c.writers.Add(1)
		go c.writer()
	}
	c.wg.Add(1)
	go c.notifier()
	return c
}

// Close stops accepting requests, writes those already queued and waits for
// the writers to finish.
func (c *Committer) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.reqs)
	c.mu.Unlock()
	c.writers.Wait()
	close(c.wake)
	c.wg.Wait()
}

// Commit implements [EventSink]. Events must already be validated (see
// [ValidateEvents]); an event with a zero OccurredAt is stored as occurring now.
//
// If ctx ends while the batch holding the events is being written, Commit
// returns ctx's error although the events may yet be committed; the caller
// answers the provider with an error, the provider redelivers, and the
// redelivery is a duplicate. That is the safe direction: never a success for
// rows that are not durable.
func (c *Committer) Commit(ctx context.Context, tenantID, connectionID string, events []sdk.Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	req := &commitRequest{
		tenantID:     tenantID,
		connectionID: connectionID,
		events:       events,
		correlations: make([][]byte, len(events)),
		done:         make(chan commitResult, 1),
	}
	for i, ev := range events {
		corr, err := encodeCorrelation(ev.Correlation)
		if err != nil {
			return 0, fmt.Errorf("encoding correlation of event %q: %w", ev.DedupeKey, err)
		}
		req.correlations[i] = corr
	}

	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case c.reqs <- req:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return 0, fmt.Errorf("queueing events for commit: %w", ctx.Err())
	}

	select {
	case res := <-req.done:
		return res.inserted, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for events to commit: %w", ctx.Err())
	}
}

func encodeCorrelation(m map[string]string) ([]byte, error) {
	if len(m) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}

// writer takes the first waiting request, gathers every other request already
// queued (up to the batch caps) and writes them together.
func (c *Committer) writer() {
	defer c.writers.Done()
	batch := make([]*commitRequest, 0, c.cfg.MaxBatchRequests)
	for first := range c.reqs {
		batch = append(batch[:0], first)
		events := len(first.events)
	gather:
		for len(batch) < c.cfg.MaxBatchRequests && events < c.cfg.MaxBatchEvents {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
				events += len(r.events)
			default:
				break gather
			}
		}
		c.flush(batch)
		clear(batch) // drop references so answered requests can be collected
	}
}

// flush writes a batch in one statement and answers its requests; if the
// statement fails, it writes each request on its own.
func (c *Committer) flush(batch []*commitRequest) {
	start := time.Now()
	inserted, err := c.write(batch)
	c.metrics.BatchCommitted(len(batch), countEvents(batch), time.Since(start), err)
	if err == nil {
		if len(inserted) > 0 {
			c.poke()
		}
		for _, r := range batch {
			r.done <- commitResult{inserted: inserted[r]}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- commitResult{err: fmt.Errorf("storing events: %w", err)}
		return
	}
	c.log.Warn("ingress batch failed; writing its requests one by one",
		"requests", len(batch), "error", err)
	for _, r := range batch {
		one := []*commitRequest{r}
		start := time.Now()
		ins, err := c.write(one)
		c.metrics.BatchCommitted(1, len(r.events), time.Since(start), err)
		if err != nil {
			r.done <- commitResult{err: fmt.Errorf("storing events: %w", err)}
			continue
		}
		if len(ins) > 0 {
			c.poke()
		}
		r.done <- commitResult{inserted: ins[r]}
	}
}

func countEvents(batch []*commitRequest) int {
	n := 0
	for _, r := range batch {
		n += len(r.events)
	}
	return n
}

// insertEvents stores a batch in one statement, which Postgres runs as one
// transaction and commits before it answers; pgx returns only after that
// answer, so a nil error means the rows are durable.
//
// The rows travel as parallel arrays through unnest: one round trip, one
// parsed and cached statement whatever the batch size, no parameter-count
// limit. ON CONFLICT DO NOTHING turns redeliveries into no-ops; RETURNING says
// which rows were new.
//
// The statement does not NOTIFY: Postgres serializes the commits of
// transactions that notify (they queue on one lock through their WAL flush),
// which would undo the group commit's parallel writers. The committer's
// notifier sends one coalesced NOTIFY after the commits instead.
const insertEvents = `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[])
ON CONFLICT (connection_id, dedupe_key) DO NOTHING
RETURNING connection_id, dedupe_key`

// notifyPause is the least time between two NOTIFYs of a committer: under
// load a dispatcher that was woken drains everything committed meanwhile, so
// one wake-up per pause is enough, and the notify lock is taken at most
// 1/notifyPause times a second.
const notifyPause = 5 * time.Millisecond

// notifier sends a NOTIFY on NotifyChannel after commits that stored new
// events, coalescing those that come while one is being sent or within
// notifyPause of the last. It runs until wake is closed.
func (c *Committer) notifier() {
	defer c.wg.Done()
	for range c.wake {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		if _, err := c.pool.Exec(ctx, `SELECT pg_notify('`+NotifyChannel+`', '')`); err != nil {
			// Dispatchers also poll; a lost wake-up delays, never loses.
			c.log.Warn("ingress: notifying dispatchers failed", "error", err)
		}
		cancel()
		time.Sleep(notifyPause)
	}
}

// poke asks the notifier for a NOTIFY without waiting for it.
func (c *Committer) poke() {
	select {
	case c.wake <- struct{}{}:
	default: // one is pending already; it covers this commit too
	}
}

type rowKey struct{ connectionID, dedupeKey string }

type batchRow struct {
	key         rowKey
	tenantID    string
	typ         string
	occurredAt  time.Time
	correlation []byte
	payload     []byte
	req         *commitRequest
}

// write inserts the batch's events and returns how many of each request's
// events were new.
func (c *Committer) write(batch []*commitRequest) (map[*commitRequest]int, error) {
	rows := make([]batchRow, 0, countEvents(batch))
	now := time.Now()
	for _, r := range batch {
		for i, ev := range r.events {
			at := ev.OccurredAt
			if at.IsZero() {
				at = now
			}
			rows = append(rows, batchRow{
				key:         rowKey{r.connectionID, ev.DedupeKey},
				tenantID:    r.tenantID,
				typ:         ev.Type,
				occurredAt:  at,
				correlation: r.correlations[i],
				payload:     ev.Payload,
				req:         r,
			})
		}
	}
	// Sorting gives every writer the same lock order on the unique index, so
	// two batches holding the same redelivered events cannot deadlock. The
	// stable sort keeps the first of in-batch duplicates first; it is the one
	// credited as inserted.
	slices.SortStableFunc(rows, func(a, b batchRow) int {
		return cmp.Or(cmp.Compare(a.key.connectionID, b.key.connectionID), cmp.Compare(a.key.dedupeKey, b.key.dedupeKey))
	})
	rows = slices.CompactFunc(rows, func(a, b batchRow) bool { return a.key == b.key })

	n := len(rows)
	tenants, conns, keys, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	corrs, payloads := make([]string, n), make([]string, n)
	owner := make(map[rowKey]*commitRequest, n)
	for i, r := range rows {
		tenants[i], conns[i], keys[i], types[i] = r.tenantID, r.key.connectionID, r.key.dedupeKey, r.typ
		times[i] = r.occurredAt
		corrs[i], payloads[i] = string(r.correlation), string(r.payload)
		owner[r.key] = r.req
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	res, err := c.pool.Query(ctx, insertEvents, tenants, conns, keys, types, times, corrs, payloads)
	if err != nil {
		return nil, fmt.Errorf("inserting %d events: %w", n, err)
	}
	inserted := make(map[*commitRequest]int, len(batch))
	var k rowKey
	_, err = pgx.ForEachRow(res, []any{&k.connectionID, &k.dedupeKey}, func() error {
		inserted[owner[k]]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inserting %d events: %w", n, err)
	}
	return inserted, nil
}
