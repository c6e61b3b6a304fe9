package poller_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/poller"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// --- the provider: a feed of orders per connection, served on 127.0.0.1 ---

type order struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type feedRequest struct {
	At    time.Time
	Since string
}

// feed is one connection's order feed, speaking the protocol of the example
// connector's poll.go. It counts the requests in flight, so a test can see
// two pollers fetching for one connection at once.
type feed struct {
	mu          sync.Mutex
	orders      []order
	token       string                         // required bearer token, if set
	delay       time.Duration                  // time each request takes
	respond     func(n int) (int, http.Header) // non-200 answer for the n-th request (1-based), or 0
	requests    []feedRequest
	inFlight    int
	maxInFlight int
}

func (f *feed) add(o ...order) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = append(f.orders, o...)
}

func (f *feed) stats() (requests []feedRequest, maxInFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests), f.maxInFlight
}

func (f *feed) count() int {
	r, _ := f.stats()
	return len(r)
}

func (f *feed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.requests = append(f.requests, feedRequest{At: time.Now(), Since: r.URL.Query().Get("updated_since")})
	n := len(f.requests)
	delay, token, respond := f.delay, f.token, f.respond
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	time.Sleep(delay)

	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if respond != nil {
		if status, h := respond(n); status != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return
		}
	}
	var since time.Time
	if s := r.URL.Query().Get("updated_since"); s != "" {
		since, _ = time.Parse(time.RFC3339Nano, s)
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	f.mu.Lock()
	sorted := slices.Clone(f.orders)
	f.mu.Unlock()
	slices.SortStableFunc(sorted, func(a, b order) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	page := []order{}
	more := false
	for _, o := range sorted {
		if o.UpdatedAt.Before(since) {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, o)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": page, "has_more": more})
}

// feeds serves many feeds, one per path /feeds/{name}.
type feeds struct {
	mu  sync.Mutex
	m   map[string]*feed
	srv *httptest.Server
}

func newFeeds(t *testing.T) *feeds {
	fs := &feeds{m: map[string]*feed{}}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/feeds/")
		fs.mu.Lock()
		f := fs.m[name]
		fs.mu.Unlock()
		if f == nil {
			http.NotFound(w, r)
			return
		}
		f.serve(w, r)
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *feeds) add(name string, f *feed) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.m[name] = f
	return fs.srv.URL + "/feeds/" + name
}

// --- the host: store, committer and the real example plugin ---

// process is what one `ponte serve` holds for polling.
type process struct {
	st        *store.Store
	committer *ingress.Committer
	plugins   *pluginhost.Host
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// newDatabase returns a migrated database's URL and a master key for it.
func newDatabase(t *testing.T) (string, []byte) {
	t.Helper()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(context.Background(), url); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return url, key
}

// startProcess opens the store and starts the example plugin, as serve does.
func startProcess(t *testing.T, url string, key []byte) *process {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, key)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(st.Close)
	committer := ingress.NewCommitter(st.Pool(), ingress.CommitterConfig{Logger: quietLogger()})
	t.Cleanup(committer.Close)
	services := ingress.NewServices(st, nil, committer, st)
	bin := testenv.BuildBinary(t, "./connectors/example/cmd/ponte-connector-example")
	plugins, err := pluginhost.New(ctx, pluginhost.Options{
		Dir:      filepath.Dir(bin),
		Services: services,
		Logger:   quietLogger(),
		Strict:   true,
	})
	if err != nil {
		t.Fatalf("starting plugins: %v", err)
	}
	t.Cleanup(plugins.Close)
	services.SetConnectors(plugins)
	return &process{st: st, committer: committer, plugins: plugins}
}

func (p *process) manifest(t *testing.T) sdk.Manifest {
	t.Helper()
	for _, m := range p.plugins.Manifests() {
		if m.Name == "example" {
			return m
		}
	}
	t.Fatal("the example plugin is not running")
	return sdk.Manifest{}
}

func (p *process) tenant(t *testing.T) string {
	t.Helper()
	tn, err := p.st.CreateTenant(context.Background(), "acme-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		t.Fatalf("creating tenant: %v", err)
	}
	return tn.ID
}

func (p *process) connection(t *testing.T, tenant, feedURL string, extra map[string]any) store.Connection {
	t.Helper()
	cfg := map[string]any{"signing_secret": "s3cret", "feed_url": feedURL, "feed_page_size": 2}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, _ := json.Marshal(cfg)
	c, err := p.st.CreateConnection(context.Background(), tenant, store.NewConnection{
		Connector: "example", Name: "feed", Config: raw, Fields: p.manifest(t).Config,
	})
	if err != nil {
		t.Fatalf("creating connection: %v", err)
	}
	return c
}

func (p *process) dedupeKeys(t *testing.T, connID string) []string {
	t.Helper()
	rows, err := p.st.Pool().Query(context.Background(), `SELECT dedupe_key FROM events WHERE connection_id = $1 ORDER BY dedupe_key`, connID)
	if err != nil {
		t.Fatalf("reading events: %v", err)
	}
	defer rows.Close()
	keys := []string{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func (p *process) cursor(t *testing.T, connID string) string {
	t.Helper()
	v, err := p.st.GetState(context.Background(), connID, poller.CursorKey)
	if err != nil {
		t.Fatalf("reading cursor: %v", err)
	}
	return string(v)
}

type storedSchedule struct {
	NextDue     time.Time `json:"next_due"`
	Failures    int       `json:"failures"`
	LastOutcome string    `json:"last_outcome"`
	LastError   string    `json:"last_error"`
}

func (p *process) schedule(t *testing.T, connID string) storedSchedule {
	t.Helper()
	v, err := p.st.GetState(context.Background(), connID, poller.ScheduleKey)
	if err != nil {
		t.Fatalf("reading schedule: %v", err)
	}
	var s storedSchedule
	if v != nil {
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatalf("decoding schedule %s: %v", v, err)
		}
	}
	return s
}

// pollerConfig is a fast poller: the example's one-minute interval is
// overridden the way an operator would.
func (p *process) pollerConfig() poller.Config {
	return poller.Config{
		Store:        p.st,
		Connectors:   p.plugins,
		Sink:         p.committer,
		Pool:         p.st.Pool(),
		Logger:       quietLogger(),
		Tick:         10 * time.Millisecond,
		Intervals:    map[string]time.Duration{"example": 100 * time.Millisecond},
		RetryBackoff: 50 * time.Millisecond,
	}
}

// run runs a poller until the returned stop is called (or the test ends).
func run(t *testing.T, cfg poller.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- poller.New(cfg).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("the poller did not stop within 10s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metrics records what a poller reports.
type metrics struct {
	mu       sync.Mutex
	outcomes map[poller.Outcome]int
	found    int
	inserted int
}

func newMetrics() *metrics { return &metrics{outcomes: map[poller.Outcome]int{}} }

func (m *metrics) Polled(_ string, o poller.Outcome, found, inserted int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes[o]++
	m.found += found
	m.inserted += inserted
}

func (m *metrics) get() (map[poller.Outcome]int, int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[poller.Outcome]int{}
	for k, v := range m.outcomes {
		out[k] = v
	}
	return out, m.found, m.inserted
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func created(id string, s int) order {
	return order{ID: id, Status: "new", CreatedAt: at(s), UpdatedAt: at(s)}
}

func key(id string, s int) string { return "feed:" + id + "@" + at(s).Format(time.RFC3339Nano) }

// --- the tests ---

func TestIntegrationPollerStoresEventsOnceAndAdvancesCursor(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	f := &feed{token: "tok"}
	f.add(created("ord_1", 1), created("ord_2", 2), created("ord_3", 3), created("ord_4", 4), created("ord_5", 5))
	conn := p.connection(t, p.tenant(t), fs.add("a", f), map[string]any{"feed_token": "tok"})

	m := newMetrics()
	cfg := p.pollerConfig()
	cfg.Metrics = m
	run(t, cfg)

	// Five orders, two per page: the first poll follows More through three
	// pages and ends with the cursor at the newest order.
	eventually(t, 10*time.Second, "the first five orders", func() bool {
		return p.cursor(t, conn.ID) == at(5).Format(time.RFC3339Nano)
	})
	want := []string{key("ord_1", 1), key("ord_2", 2), key("ord_3", 3), key("ord_4", 4), key("ord_5", 5)}
	if diff := cmp.Diff(want, p.dedupeKeys(t, conn.ID)); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}

	// An update of an old order and a new order arrive later.
	f.add(order{ID: "ord_1", Status: "paid", CreatedAt: at(1), UpdatedAt: at(6)}, created("ord_7", 7))
	eventually(t, 10*time.Second, "the cursor to reach the new orders", func() bool {
		return p.cursor(t, conn.ID) == at(7).Format(time.RFC3339Nano)
	})
	// Let a few more polls fetch the boundary item again.
	n := f.count()
	eventually(t, 10*time.Second, "three more polls", func() bool { return f.count() >= n+3 })

	want = []string{key("ord_1", 1), key("ord_1", 6), key("ord_2", 2), key("ord_3", 3), key("ord_4", 4), key("ord_5", 5), key("ord_7", 7)}
	if diff := cmp.Diff(want, p.dedupeKeys(t, conn.ID)); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
	var types []string
	rows, err := p.st.Pool().Query(context.Background(), `SELECT type FROM events WHERE connection_id = $1 AND dedupe_key = $2`, conn.ID, key("ord_1", 6))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		types = append(types, s)
	}
	rows.Close()
	if diff := cmp.Diff([]string{"order.updated"}, types); diff != "" {
		t.Errorf("type of the update (-want +got):\n%s", diff)
	}

	outcomes, found, inserted := m.get()
	if inserted != 7 {
		t.Errorf("metrics: %d events inserted, want 7", inserted)
	}
	if found <= inserted {
		t.Errorf("metrics: %d events found, want more than the %d inserted (the boundary item is fetched again on every poll)", found, inserted)
	}
	if outcomes[poller.OutcomeOK] < 3 {
		t.Errorf("metrics: outcomes %v, want at least 3 ok", outcomes)
	}
	if s := p.schedule(t, conn.ID); s.LastOutcome != "ok" || s.Failures != 0 {
		t.Errorf("schedule: %+v", s)
	}
}

// crashingSink commits events, then "crashes" the poller (cancels its
// context) before it can store the cursor, and reports success as the real
// committer did.
type crashingSink struct {
	next  ingress.EventSink
	crash context.CancelFunc
}

func (s crashingSink) Commit(ctx context.Context, tenantID, connectionID string, events []sdk.Event) (int, error) {
	n, err := s.next.Commit(ctx, tenantID, connectionID, events)
	s.crash()
	return n, err
}

func TestIntegrationPollerCrashBetweenCommitAndCursorRepollsWithoutDuplicates(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	f := &feed{}
	f.add(created("ord_1", 1), created("ord_2", 2), created("ord_3", 3))
	conn := p.connection(t, p.tenant(t), fs.add("a", f), map[string]any{"feed_page_size": 10})

	// The first poller dies right after its commit.
	ctx, crash := context.WithCancel(context.Background())
	cfg := p.pollerConfig()
	cfg.Sink = crashingSink{next: p.committer, crash: crash}
	done := make(chan error, 1)
	go func() { done <- poller.New(cfg).Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		crash()
		t.Fatal("the first poller never committed")
	}
	want := []string{key("ord_1", 1), key("ord_2", 2), key("ord_3", 3)}
	if diff := cmp.Diff(want, p.dedupeKeys(t, conn.ID)); diff != "" {
		t.Fatalf("events after the crash (-want +got):\n%s", diff)
	}
	if c := p.cursor(t, conn.ID); c != "" {
		t.Fatalf("cursor after the crash: %q, want none (the crash came before it was stored)", c)
	}

	// The next poller starts from the old cursor, fetches the same page and
	// stores nothing twice.
	m := newMetrics()
	cfg = p.pollerConfig()
	cfg.Metrics = m
	run(t, cfg)
	eventually(t, 10*time.Second, "the cursor to be stored", func() bool {
		return p.cursor(t, conn.ID) == at(3).Format(time.RFC3339Nano)
	})
	if diff := cmp.Diff(want, p.dedupeKeys(t, conn.ID)); diff != "" {
		t.Errorf("events after the re-poll (-want +got):\n%s", diff)
	}
	reqs, _ := f.stats()
	if len(reqs) < 2 || reqs[0].Since != "" || reqs[1].Since != "" {
		t.Errorf("feed requests %+v, want the first two from the beginning (the re-poll used the old cursor)", reqs)
	}
	// The figures are reported once the poll has finished, just after the
	// cursor was stored.
	eventually(t, 5*time.Second, "the re-poll's figures", func() bool {
		_, found, _ := m.get()
		return found >= 3
	})
	_, found, inserted := m.get()
	if inserted != 0 {
		t.Errorf("the re-poll found %d and inserted %d events, want >= 3 found and 0 inserted", found, inserted)
	}
}

func TestIntegrationTwoPollersNeverPollOneConnectionAtOnce(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	a := startProcess(t, url, mk)
	b := startProcess(t, url, mk)
	fs := newFeeds(t)
	tenant := a.tenant(t)
	var fds []*feed
	var conns []store.Connection
	for i := range 3 {
		// Each poll takes 40ms of a 60ms interval, so the two pollers find
		// the same connections due at the same moments, over and over.
		f := &feed{delay: 40 * time.Millisecond}
		f.add(created(fmt.Sprintf("ord_%d", i), i))
		fds = append(fds, f)
		conns = append(conns, a.connection(t, tenant, fs.add(fmt.Sprintf("c%d", i), f), nil))
	}
	ma, mb := newMetrics(), newMetrics()
	for _, pr := range []struct {
		p *process
		m *metrics
	}{{a, ma}, {b, mb}} {
		cfg := pr.p.pollerConfig()
		cfg.Metrics = pr.m
		cfg.Intervals = map[string]time.Duration{"example": 60 * time.Millisecond}
		run(t, cfg)
	}

	eventually(t, 20*time.Second, "many polls of every connection", func() bool {
		for _, f := range fds {
			if f.count() < 15 {
				return false
			}
		}
		return true
	})
	for i, f := range fds {
		reqs, maxInFlight := f.stats()
		if maxInFlight != 1 {
			t.Errorf("connection %d: %d polls at once (of %d), want 1", i, maxInFlight, len(reqs))
		}
	}
	oa, _, _ := ma.get()
	ob, _, _ := mb.get()
	t.Logf("poller a: %v; poller b: %v", oa, ob)
	// Which poller wins each claim is up to timing (one may win them all);
	// what matters is that they met and never polled a connection at once.
	if oa[poller.OutcomeBusy]+oa[poller.OutcomeSkipped]+ob[poller.OutcomeBusy]+ob[poller.OutcomeSkipped] == 0 {
		t.Errorf("the pollers never met on a connection, so the test proved nothing: a %v, b %v", oa, ob)
	}
	for i, c := range conns {
		if diff := cmp.Diff([]string{key(fmt.Sprintf("ord_%d", i), i)}, a.dedupeKeys(t, c.ID)); diff != "" {
			t.Errorf("connection %d events (-want +got):\n%s", i, diff)
		}
	}
}

func TestIntegrationPollerHonoursRateLimit(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	f := &feed{respond: func(n int) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return 0, nil
	}}
	f.add(created("ord_1", 1))
	conn := p.connection(t, p.tenant(t), fs.add("a", f), nil)
	run(t, p.pollerConfig())

	eventually(t, 5*time.Second, "the rate-limited poll", func() bool { return f.count() >= 1 })
	eventually(t, 5*time.Second, "the schedule to record it", func() bool {
		return p.schedule(t, conn.ID).LastOutcome == "rate_limited"
	})
	if s := p.schedule(t, conn.ID); s.NextDue.Before(time.Now().Add(500 * time.Millisecond)) {
		t.Errorf("after a 429 with Retry-After 1 the next poll is due at %v, less than a second later", s.NextDue)
	}
	eventually(t, 10*time.Second, "the poll after the retry-after", func() bool {
		return p.cursor(t, conn.ID) == at(1).Format(time.RFC3339Nano)
	})
	reqs, _ := f.stats()
	// The interval is 100ms: without the retry-after the second poll would
	// have come within a tenth of a second.
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("the poll after a 429 with Retry-After: 1 came after %v, want at least 1s", gap)
	}
	if diff := cmp.Diff([]string{key("ord_1", 1)}, p.dedupeKeys(t, conn.ID)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestIntegrationPollerSkipsDisabledAndDeletedConnections(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	tenant := p.tenant(t)
	ctx := context.Background()
	fa, fb, fc, fd := &feed{}, &feed{}, &feed{}, &feed{}
	a := p.connection(t, tenant, fs.add("a", fa), nil)
	b := p.connection(t, tenant, fs.add("b", fb), nil)
	c := p.connection(t, tenant, fs.add("c", fc), nil)
	d := p.connection(t, tenant, fs.add("d", fd), nil)
	disabled := store.StatusDisabled
	if _, err := p.st.UpdateConnection(ctx, tenant, b.ID, store.ConnectionUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	run(t, p.pollerConfig())

	eventually(t, 10*time.Second, "a, c and d to be polled", func() bool {
		return fa.count() > 0 && fc.count() > 0 && fd.count() > 0
	})
	if _, err := p.st.UpdateConnection(ctx, tenant, c.ID, store.ConnectionUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if err := p.st.DeleteConnection(ctx, tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	// A poll that had already read the connection may still be on its way
	// to the feed; let it land before counting.
	n := fa.count()
	eventually(t, 10*time.Second, "two more polls of a", func() bool { return fa.count() >= n+2 })
	nc, nd := fc.count(), fd.count()
	n = fa.count()
	eventually(t, 10*time.Second, "five more polls of a", func() bool { return fa.count() >= n+5 })

	if got := fb.count(); got != 0 {
		t.Errorf("the connection disabled from the start was polled %d times", got)
	}
	if got := fc.count(); got != nc {
		t.Errorf("the disabled connection was polled %d more times", got-nc)
	}
	if got := fd.count(); got != nd {
		t.Errorf("the deleted connection was polled %d more times", got-nd)
	}
	if diff := cmp.Diff([]string{}, p.dedupeKeys(t, a.ID)); diff != "" {
		t.Errorf("events of the empty feed (-want +got):\n%s", diff)
	}
}

// records keeps the log records at warn and above, and info records.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
		}
	}
	return n
}

func TestIntegrationPollerAuthFailureBacksOffUntilFixed(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	tenant := p.tenant(t)
	f := &feed{token: "good"}
	f.add(created("ord_1", 1))
	conn := p.connection(t, tenant, fs.add("a", f), map[string]any{"feed_token": "expired"})
	// A second connection keeps polling, to show time passing for the poller.
	g := &feed{}
	p.connection(t, tenant, fs.add("g", g), nil)

	logs := &records{}
	cfg := p.pollerConfig()
	cfg.Logger = slog.New(logs)
	run(t, cfg)

	eventually(t, 10*time.Second, "the refused poll to be recorded", func() bool {
		return p.schedule(t, conn.ID).LastOutcome == "auth"
	})
	n := g.count()
	eventually(t, 10*time.Second, "ten polls of the other connection", func() bool { return g.count() >= n+10 })
	if got := f.count(); got != 1 {
		t.Errorf("the feed refusing the token was asked %d times, want once (then a long back-off)", got)
	}
	s := p.schedule(t, conn.ID)
	if wait := time.Until(s.NextDue); wait < 14*time.Minute {
		t.Errorf("after an auth failure the next poll is due in %v, want about 15 minutes", wait)
	}
	if got := logs.count(slog.LevelWarn, "polling a connection failed"); got != 1 {
		t.Errorf("%d warnings about the failure, want 1", got)
	}

	// The user pastes the right token: the change makes the connection due
	// at once, without waiting out the back-off.
	m := p.manifest(t)
	if _, err := p.st.UpdateConnection(context.Background(), tenant, conn.ID, store.ConnectionUpdate{
		Config: json.RawMessage(`{"feed_token":"good"}`), Fields: m.Config,
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the poll with the new token", func() bool {
		return p.cursor(t, conn.ID) == at(1).Format(time.RFC3339Nano)
	})
	// Logged as the poll finishes, just after the cursor was stored.
	eventually(t, 5*time.Second, "the note of recovery", func() bool {
		return logs.count(slog.LevelInfo, "polling a connection works again") == 1
	})
	if got := logs.count(slog.LevelWarn, "polling a connection failed"); got != 1 {
		t.Errorf("%d warnings about the failure, want still 1", got)
	}
}

func TestIntegrationPollerBoundsPagesPerAttempt(t *testing.T) {
	t.Parallel()
	url, mk := newDatabase(t)
	p := startProcess(t, url, mk)
	fs := newFeeds(t)
	f := &feed{}
	f.add(created("ord_1", 1), created("ord_2", 2), created("ord_3", 3), created("ord_4", 4), created("ord_5", 5), created("ord_6", 6), created("ord_7", 7))
	conn := p.connection(t, p.tenant(t), fs.add("a", f), nil) // two orders a page
	m := newMetrics()
	cfg := p.pollerConfig()
	cfg.Metrics = m
	cfg.MaxPages = 2
	// A long interval: only "more left" can make the connection due again
	// within the test.
	cfg.Intervals = map[string]time.Duration{"example": time.Hour}
	run(t, cfg)

	eventually(t, 10*time.Second, "the whole feed", func() bool {
		return p.cursor(t, conn.ID) == at(7).Format(time.RFC3339Nano)
	})
	eventually(t, 5*time.Second, "the last attempt's figures", func() bool {
		_, _, inserted := m.get()
		return inserted == 7
	})
	// Pages: [1 2] [2 3] | [3 4] [4 5] | [5 6] [6 7]: three attempts of two
	// pages each, the last one ending because the feed has no more.
	outcomes, _, _ := m.get()
	if outcomes[poller.OutcomeOK] != 3 {
		t.Errorf("outcomes %v, want 3 ok attempts", outcomes)
	}
	if got := f.count(); got != 6 {
		t.Errorf("%d feed requests, want 6", got)
	}
	if s := p.schedule(t, conn.ID); time.Until(s.NextDue) < 59*time.Minute {
		t.Errorf("after draining the feed the next poll is due in %v, want an interval", time.Until(s.NextDue))
	}
}
