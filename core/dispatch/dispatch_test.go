package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newDB returns a migrated database with one tenant and connection, and a
// trigger counting how often each event's dispatched_at is set and changed.
func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `
INSERT INTO tenants (id, name) VALUES ('ten_1', 't');
INSERT INTO connections (id, tenant_id, connector, name) VALUES ('con_1', 'ten_1', 'stripe', 'c');
CREATE TABLE marks (event_id bigint NOT NULL, remark boolean NOT NULL);
CREATE FUNCTION count_marks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.dispatched_at IS NULL AND NEW.dispatched_at IS NOT NULL THEN
        INSERT INTO marks VALUES (NEW.event_id, false);
    ELSIF OLD.dispatched_at IS NOT NULL AND NEW.dispatched_at IS DISTINCT FROM OLD.dispatched_at THEN
        INSERT INTO marks VALUES (NEW.event_id, true);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER count_marks BEFORE UPDATE ON event_dispatch FOR EACH ROW EXECUTE FUNCTION count_marks();`)
	if err != nil {
		t.Fatalf("preparing database: %v", err)
	}
	return pool
}

func insertEvents(t *testing.T, pool *pgxpool.Pool, n int, correlation func(i int) string) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		var id int64
		err := pool.QueryRow(context.Background(), `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
VALUES ('ten_1', 'con_1', $1, 'thing.happened', now(), $2, '{"n":1}') RETURNING id`,
			fmt.Sprintf("evt_%d_%d", time.Now().UnixNano(), i), correlation(i)).Scan(&id)
		if err != nil {
			t.Fatalf("inserting event: %v", err)
		}
		ids = append(ids, id)
	}
	return ids
}

type eventState struct {
	Dispatched bool
	Attempts   int
	LastError  string
}

func states(t *testing.T, pool *pgxpool.Pool) map[int64]eventState {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id, dispatched_at IS NOT NULL, dispatch_attempts, coalesce(last_error, '') FROM event_dispatch`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]eventState{}
	for rows.Next() {
		var id int64
		var s eventState
		if err := rows.Scan(&id, &s.Dispatched, &s.Attempts, &s.LastError); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

// collect is the test's workflow: it keeps every event id it is signalled.
func collect(ctx workflow.Context) error {
	var ids []int64
	if err := workflow.SetQueryHandler(ctx, "ids", func() ([]int64, error) { return ids, nil }); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, "event")
	for {
		var id int64
		ch.Receive(ctx, &id)
		ids = append(ids, id)
	}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

var _ log.Logger = nopLogger{}

// Three dispatchers drain the same outbox into real Temporal workflows: every
// event reaches its workflow at least once and is marked exactly once.
func TestIntegrationDispatchConcurrent(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: "default", Logger: nopLogger{}})
	if err != nil {
		t.Fatalf("dialing temporal: %v", err)
	}
	defer c.Close()
	queue := fmt.Sprintf("dispatch-test-%d", time.Now().UnixNano())
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(collect, workflow.RegisterOptions{Name: "collect"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	const workflows = 4
	wfID := func(k string) string { return queue + "-" + k }
	router := RouterFunc(func(_ context.Context, ev Event) ([]Delivery, error) {
		k := ev.Correlation["k"]
		if k == "" {
			return nil, nil
		}
		return []Delivery{{WorkflowID: wfID(k), WorkflowType: "collect", TaskQueue: queue, SignalName: "event", SignalArg: ev.ID}}, nil
	})
	ids := insertEvents(t, pool, 60, func(i int) string {
		if i%10 == 9 {
			return `{}` // no route
		}
		return fmt.Sprintf(`{"k":"%d"}`, i%workflows)
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		d, err := New(Config{Pool: pool, Router: router, Temporal: c, BatchSize: 7, PollInterval: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}
	waitFor(t, 30*time.Second, "every event dispatched", func() bool {
		for _, s := range states(t, pool) {
			if !s.Dispatched {
				return false
			}
		}
		return true
	})
	// Events arriving while the dispatchers idle are picked up by NOTIFY (or
	// the poll).
	late := insertEvents(t, pool, 5, func(i int) string { return fmt.Sprintf(`{"k":"%d"}`, i%workflows) })
	if _, err := pool.Exec(context.Background(), `NOTIFY `+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "late events dispatched", func() bool {
		st := states(t, pool)
		for _, id := range late {
			if !st[id].Dispatched {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	ids = append(ids, late...)

	var marks, remarks int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE NOT remark), count(*) FILTER (WHERE remark) FROM marks`).Scan(&marks, &remarks); err != nil {
		t.Fatal(err)
	}
	if marks != len(ids) || remarks != 0 {
		t.Errorf("marked %d times and re-marked %d times for %d events", marks, remarks, len(ids))
	}
	var distinct int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT event_id) FROM marks`).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != len(ids) {
		t.Errorf("%d distinct events marked, want %d", distinct, len(ids))
	}

	got := map[int64]bool{}
	for k := range workflows {
		resp, err := c.QueryWorkflow(context.Background(), wfID(fmt.Sprint(k)), "", "ids")
		if err != nil {
			t.Fatalf("querying workflow %d: %v", k, err)
		}
		var wids []int64
		if err := resp.Get(&wids); err != nil {
			t.Fatal(err)
		}
		for _, id := range wids {
			got[id] = true
		}
		_ = c.TerminateWorkflow(context.Background(), wfID(fmt.Sprint(k)), "", "test done")
	}
	var want []int64
	for i, id := range ids[:60] {
		if i%10 != 9 {
			want = append(want, id)
		}
	}
	want = append(want, late...)
	var gotIDs []int64
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	slices.Sort(gotIDs)
	slices.Sort(want)
	if diff := cmp.Diff(want, gotIDs); diff != "" {
		t.Errorf("event ids delivered to workflows (-want +got):\n%s", diff)
	}
}

// fakeTemporal fails the first calls with err, then succeeds; it records the
// signals it accepted.
type fakeTemporal struct {
	mu        sync.Mutex
	failFirst int
	err       error
	notFound  bool
	calls     int
	signals   []string
}

func (f *fakeTemporal) call(workflowID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.failFirst {
		return f.err
	}
	f.signals = append(f.signals, workflowID)
	return nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, workflowID string, _ string, _ any, _ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	return nil, f.call(workflowID)
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, workflowID string, _ string, _ string, _ any) error {
	if f.notFound {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	return f.call(workflowID)
}

func TestIntegrationDispatchBackoff(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ft := &fakeTemporal{failFirst: 2, err: serviceerror.NewUnavailable("temporal is down")}
	router := RouterFunc(func(_ context.Context, ev Event) ([]Delivery, error) {
		return []Delivery{{WorkflowID: "wf", WorkflowType: "x", TaskQueue: "q", SignalName: "s", SignalArg: ev.ID}}, nil
	})
	d, err := New(Config{Pool: pool, Router: router, Temporal: ft, BaseBackoff: 300 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ids := insertEvents(t, pool, 1, func(int) string { return `{}` })
	ctx := context.Background()

	if n, err := d.DispatchOnce(ctx); err != nil || n != 1 {
		t.Fatalf("DispatchOnce = %d, %v", n, err)
	}
	var delay time.Duration
	var lastErr string
	if err := pool.QueryRow(ctx, `SELECT next_attempt_at - now(), last_error FROM event_dispatch WHERE event_id = $1`, ids[0]).Scan(&delay, &lastErr); err != nil {
		t.Fatal(err)
	}
	if delay < 200*time.Millisecond || delay > 400*time.Millisecond {
		t.Errorf("first retry in %s, want about 300ms", delay)
	}
	if lastErr == "" {
		t.Error("last_error not recorded")
	}
	// Not due yet: nothing is claimed.
	if n, _ := d.DispatchOnce(ctx); n != 0 {
		t.Errorf("claimed %d events before their retry was due", n)
	}
	time.Sleep(delay + 50*time.Millisecond)
	if n, _ := d.DispatchOnce(ctx); n != 1 {
		t.Fatalf("second attempt claimed %d events", n)
	}
	if err := pool.QueryRow(ctx, `SELECT next_attempt_at - now() FROM event_dispatch WHERE event_id = $1`, ids[0]).Scan(&delay); err != nil {
		t.Fatal(err)
	}
	if delay < 450*time.Millisecond || delay > 750*time.Millisecond {
		t.Errorf("second retry in %s, want about 600ms (doubled)", delay)
	}
	time.Sleep(delay + 50*time.Millisecond)
	if n, _ := d.DispatchOnce(ctx); n != 1 {
		t.Fatalf("third attempt claimed %d events", n)
	}
	want := map[int64]eventState{ids[0]: {Dispatched: true, Attempts: 2, LastError: ""}}
	if diff := cmp.Diff(want, states(t, pool)); diff != "" {
		t.Errorf("event after success (-want +got):\n%s", diff)
	}
	if len(ft.signals) != 1 {
		t.Errorf("delivered %d times, want 1", len(ft.signals))
	}
}

func TestIntegrationDispatchOutcomes(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	applied := atomic.Int32{}
	router := RouterFunc(func(_ context.Context, ev Event) ([]Delivery, error) {
		switch ev.Correlation["case"] {
		case "closed-applied":
			return []Delivery{{WorkflowID: "done", SignalOnly: true, SignalName: "s", IfNotRunning: func(context.Context) error {
				applied.Add(1)
				return nil
			}}}, nil
		case "closed-ignored":
			return []Delivery{{WorkflowID: "done", SignalOnly: true, SignalName: "s", IfNotRunning: func(context.Context) error {
				return Permanent(errors.New("link already paid"))
			}}}, nil
		case "closed-no-fallback":
			return []Delivery{{WorkflowID: "done", SignalOnly: true, SignalName: "s"}}, nil
		case "apply-ok":
			return []Delivery{{Apply: func(context.Context) error { applied.Add(1); return nil }}}, nil
		case "apply-transient":
			return []Delivery{{Apply: func(context.Context) error { return errors.New("contacts table locked") }}}, nil
		case "apply-permanent":
			return []Delivery{{Apply: func(context.Context) error { return Permanent(errors.New("malformed message")) }}}, nil
		case "route-permanent":
			return nil, Permanent(errors.New("cannot route"))
		case "route-transient":
			return nil, errors.New("database hiccup")
		}
		return nil, nil
	})
	d, err := New(Config{Pool: pool, Router: router, Temporal: &fakeTemporal{notFound: true}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cases := []string{"closed-applied", "closed-ignored", "closed-no-fallback", "route-permanent", "route-transient", "none",
		"apply-ok", "apply-transient", "apply-permanent"}
	ids := insertEvents(t, pool, len(cases), func(i int) string { return fmt.Sprintf(`{"case":%q}`, cases[i]) })
	if _, err := d.DispatchOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[int64]eventState{
		ids[0]: {Dispatched: true},
		ids[1]: {Dispatched: true, LastError: "applying event to closed workflow done: link already paid"},
		ids[2]: {Dispatched: true, LastError: "workflow done is not running"},
		ids[3]: {Dispatched: true, LastError: "routing: cannot route"},
		ids[4]: {Dispatched: false, Attempts: 1, LastError: "routing: database hiccup"},
		ids[5]: {Dispatched: true},
		ids[6]: {Dispatched: true},
		ids[7]: {Dispatched: false, Attempts: 1, LastError: "contacts table locked"},
		ids[8]: {Dispatched: true, LastError: "malformed message"},
	}
	if diff := cmp.Diff(want, states(t, pool)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if applied.Load() != 2 {
		t.Errorf("IfNotRunning and Apply applied %d times, want 2", applied.Load())
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	d := &Dispatcher{cfg: Config{BaseBackoff: time.Second, MaxBackoff: time.Minute}}
	tests := map[string]struct {
		attempts int
		want     time.Duration
	}{
		"first":                   {0, time.Second},
		"third":                   {2, 4 * time.Second},
		"capped":                  {10, time.Minute},
		"huge":                    {1000, time.Minute},
		"past int64 when shifted": {35, time.Minute},
		"just below the cap":      {5, 32 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for range 20 {
				got := d.backoff(tc.attempts)
				if got < tc.want*8/10 || got > tc.want*12/10 {
					t.Fatalf("backoff(%d) = %s, want %s ±20%%", tc.attempts, got, tc.want)
				}
			}
		})
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A dispatcher told to give way (ingress answering slowly) waits up to
// MaxYield before each batch and then claims small batches, but still
// applies every event; told nothing, it claims full batches at once.
func TestIntegrationDispatchGivesWay(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	var applied atomic.Int32
	router := RouterFunc(func(_ context.Context, ev Event) ([]Delivery, error) {
		return []Delivery{{Apply: func(context.Context) error { applied.Add(1); return nil }}}, nil
	})
	ids := insertEvents(t, pool, 40, func(int) string { return `{}` })
	var busy atomic.Bool
	busy.Store(true)
	var asked atomic.Int32
	d, err := New(Config{Pool: pool, Router: router, Temporal: &fakeTemporal{}, BatchSize: 20, PollInterval: 50 * time.Millisecond,
		MaxYield: 100 * time.Millisecond, Yield: func() bool { asked.Add(1); return busy.Load() }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); _ = d.Run(ctx) }()
	waitFor(t, 20*time.Second, "every event applied while the dispatcher gives way", func() bool { return int(applied.Load()) == len(ids) })
	took := time.Since(start)
	// Under pressure a batch is 2 events after a 100 ms wait: 20 batches,
	// about 2 s; without it, 2 batches of 20 right away.
	if took < time.Second {
		t.Errorf("40 events applied in %v while told to give way; want the waits (at least 1 s)", took)
	}
	if asked.Load() < 20 {
		t.Errorf("Yield asked %d times", asked.Load())
	}

	// Nothing to give way to: full batches. The events of one claim share
	// its lease time (next_attempt_at), so the claims are counted, not timed:
	// a loaded machine cannot fail it. A dispatcher still giving way would
	// claim them 2 at a time.
	busy.Store(false)
	if _, err := pool.Exec(context.Background(), `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, correlation, payload)
SELECT 'ten_1', 'con_1', 'bulk_' || i, 'thing.happened', now(), '{}', '{"n":1}' FROM generate_series(1, 40) i;
NOTIFY `+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the next events applied", func() bool { return int(applied.Load()) == len(ids)+40 })
	cancel()
	<-done
	var claims int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT d.next_attempt_at) FROM event_dispatch d JOIN events e ON e.id = d.event_id WHERE e.dedupe_key LIKE 'bulk_%'`).Scan(&claims); err != nil {
		t.Fatal(err)
	}
	if claims != 2 {
		t.Errorf("40 events claimed in %d batches with nothing to give way to; want 2 of 20", claims)
	}
	for id, s := range states(t, pool) {
		if !s.Dispatched {
			t.Errorf("event %d not dispatched", id)
		}
	}
}

// TestIntegrationDispatchLease: a batch that takes longer than the lease to
// deliver keeps its events (the lease is renewed meanwhile, so a second
// dispatcher claims nothing), and events whose dispatcher died holding them
// are claimed again once the lease runs out, not before.
func TestIntegrationDispatchLease(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	ctx := context.Background()
	const lease = 600 * time.Millisecond

	release := make(chan struct{})
	var delivered atomic.Int32
	slow := RouterFunc(func(ctx context.Context, ev Event) ([]Delivery, error) {
		return []Delivery{{Apply: func(ctx context.Context) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			delivered.Add(1)
			return nil
		}}}, nil
	})
	fast := RouterFunc(func(context.Context, Event) ([]Delivery, error) {
		return []Delivery{{Apply: func(context.Context) error { return nil }}}, nil
	})
	newDispatcher := func(r Router) *Dispatcher {
		d, err := New(Config{Pool: pool, Router: r, Temporal: &fakeTemporal{}, Lease: lease, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	slowD, other := newDispatcher(slow), newDispatcher(fast)

	insertEvents(t, pool, 3, func(int) string { return `{}` })
	claimed := make(chan int, 1)
	go func() {
		n, err := slowD.DispatchOnce(ctx)
		if err != nil {
			t.Errorf("slow DispatchOnce: %v", err)
		}
		claimed <- n
	}()
	waitFor(t, 5*time.Second, "the slow dispatcher to claim", func() bool {
		var leased int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM event_dispatch WHERE next_attempt_at > now()`).Scan(&leased)
		return leased == 3
	})
	// Three leases long: without renewal the events would be claimable.
	for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 4) {
		if n, err := other.DispatchOnce(ctx); err != nil || n != 0 {
			t.Fatalf("another dispatcher claimed %d events of a batch still being delivered (%v)", n, err)
		}
	}
	close(release)
	if n := <-claimed; n != 3 || delivered.Load() != 3 {
		t.Fatalf("slow batch claimed %d, delivered %d; want 3 and 3", n, delivered.Load())
	}
	for id, s := range states(t, pool) {
		if !s.Dispatched || s.Attempts != 0 {
			t.Errorf("event %d after the slow batch: %+v", id, s)
		}
	}

	// A dispatcher that dies holding a claim: the claim is the lease alone.
	ids := insertEvents(t, pool, 2, func(int) string { return `{}` })
	rows, err := pool.Query(ctx, claimEvents, 10, lease.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	claimedAt := time.Now()
	if n, err := other.DispatchOnce(ctx); err != nil || n != 0 {
		t.Fatalf("claimed %d leased events before the lease ran out (%v)", n, err)
	}
	waitFor(t, 5*time.Second, "the abandoned claim to be taken again", func() bool {
		n, err := other.DispatchOnce(ctx)
		return err == nil && n == 2
	})
	if took := time.Since(claimedAt); took < lease {
		t.Errorf("abandoned events taken again after %v, before the %v lease", took, lease)
	}
	st := states(t, pool)
	for _, id := range ids {
		if !st[id].Dispatched {
			t.Errorf("abandoned event %d not dispatched: %+v", id, st[id])
		}
	}
}
