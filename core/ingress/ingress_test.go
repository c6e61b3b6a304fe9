package ingress

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeClient is a connector whose behaviour the request chooses: the header
// X-Fake-Error names an sdk error kind (or "transport" / "unavailable") to
// fail with; otherwise the body is a JSON array of events to return.
type fakeClient struct {
	pluginhost.Client
	manifest sdk.Manifest
	seen     sync.Map // connection id -> last sdk.WebhookRequest
}

func (c *fakeClient) Manifest() sdk.Manifest { return c.manifest }

func (c *fakeClient) fail(req sdk.WebhookRequest) error {
	switch req.Header("X-Fake-Error") {
	case "":
		return nil
	case "transport":
		return context.DeadlineExceeded
	case "unavailable":
		return fmt.Errorf("calling plugin: %w", pluginhost.ErrUnavailable)
	case "auth":
		return sdk.Auth("signature mismatch for secret whsec_abc")
	case "invalid":
		return sdk.Invalid("body is not an event")
	case "rate":
		return sdk.RateLimited(3*time.Second, "slow down")
	default:
		return sdk.Permanent("broken")
	}
}

func (c *fakeClient) HandleWebhook(_ context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	c.seen.Store(conn.ID, req)
	if err := c.fail(req); err != nil {
		return sdk.WebhookResult{}, err
	}
	var res sdk.WebhookResult
	if err := json.Unmarshal(req.Body, &res.Events); err != nil {
		return sdk.WebhookResult{}, sdk.Invalid("decoding: %v", err)
	}
	if req.Header("X-Fake-Response") != "" {
		res.Response = &sdk.HTTPResponse{Status: 202, Headers: map[string]string{"X-Custom": "yes"}, Body: []byte("ok")}
	}
	return res, nil
}

func (c *fakeClient) Handshake(_ context.Context, _ sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	if err := c.fail(req); err != nil {
		return sdk.HTTPResponse{}, err
	}
	q := strings.TrimPrefix(req.Query, "challenge=")
	return sdk.HTTPResponse{Body: []byte(q)}, nil
}

type fakeRegistry struct {
	clients map[string]*fakeClient
	err     error
}

func (r *fakeRegistry) Connector(name string) (pluginhost.Client, error) {
	if r.err != nil {
		return nil, r.err
	}
	c, ok := r.clients[name]
	if !ok {
		return nil, pluginhost.ErrUnknownConnector
	}
	return c, nil
}

var fakeManifest = sdk.Manifest{
	Name:    "fake",
	Version: "1.0.0",
	Config:  []sdk.ConfigField{{Name: "secret", Type: sdk.FieldString, Secret: true}},
	Events:  []sdk.EventType{{Type: "thing.happened"}, {Type: "thing.changed"}},
}

// env is a migrated database with a tenant and connections, and a running
// ingress handler.
type env struct {
	pool      *pgxpool.Pool
	st        *store.Store
	tenant    string
	conn      string // active "fake" connection
	other     string // active connection of connector "other"
	client    *fakeClient
	registry  *fakeRegistry
	committer *Committer
	handler   *Handler
	server    *httptest.Server
}

func newEnv(t testing.TB, cfg CommitterConfig, mutate func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := store.Open(ctx, url, key)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(st.Close)
	tenant, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatalf("creating tenant: %v", err)
	}
	conn, err := st.CreateConnection(ctx, tenant.ID, store.NewConnection{Connector: "fake", Name: "f", Config: json.RawMessage(`{"secret":"s3cret"}`), Fields: fakeManifest.Config})
	if err != nil {
		t.Fatalf("creating connection: %v", err)
	}
	other, err := st.CreateConnection(ctx, tenant.ID, store.NewConnection{Connector: "other", Name: "o", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("creating connection: %v", err)
	}
	e := &env{pool: st.Pool(), st: st, tenant: tenant.ID, conn: conn.ID, other: other.ID}
	e.client = &fakeClient{manifest: fakeManifest}
	om := fakeManifest
	om.Name = "other"
	e.registry = &fakeRegistry{clients: map[string]*fakeClient{"fake": e.client, "other": {manifest: om}}}
	e.committer = NewCommitter(st.Pool(), cfg)
	t.Cleanup(e.committer.Close)
	hc := Config{Connections: st, Connectors: e.registry, Sink: e.committer, ConnectionCacheTTL: -1}
	if mutate != nil {
		mutate(&hc)
	}
	e.handler, err = NewHandler(hc)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	e.server = httptest.NewServer(e.handler)
	t.Cleanup(e.server.Close)
	return e
}

func (e *env) post(t *testing.T, conn string, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.server.URL+"/hooks/"+conn, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *env) count(t *testing.T, conn string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE connection_id = $1`, conn).Scan(&n); err != nil {
		t.Fatalf("counting events: %v", err)
	}
	return n
}

func events(evs ...sdk.Event) string {
	b, _ := json.Marshal(evs)
	return string(b)
}

func ev(key string) sdk.Event {
	return sdk.Event{
		DedupeKey:   key,
		Type:        "thing.happened",
		OccurredAt:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Correlation: map[string]string{"payment_link": "pl_1"},
		Payload:     json.RawMessage(`{"n":1}`),
	}
}

func TestIntegrationIngressStoresOnceAndNotifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, CommitterConfig{}, nil)
	ctx := context.Background()

	listener, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		t.Fatal(err)
	}

	body := events(ev("evt_1"), ev("evt_2"))
	resp, _ := e.post(t, e.conn+"/extra/path?x=1", body, "X-Test", "yes")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first delivery: status %d", resp.StatusCode)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := listener.WaitForNotification(wctx); err != nil {
		t.Fatalf("no notification after commit: %v", err)
	}
	seen, _ := e.client.seen.Load(e.conn)
	req := seen.(sdk.WebhookRequest)
	if req.Path != "/extra/path" || req.Query != "x=1" || req.Header("x-test") != "yes" || string(req.Body) != body || req.Method != "POST" {
		t.Errorf("plugin saw path %q query %q header %q method %q", req.Path, req.Query, req.Header("x-test"), req.Method)
	}

	// Redelivery, and a delivery overlapping it: nothing new but evt_3.
	for _, b := range []string{body, events(ev("evt_2"), ev("evt_3"))} {
		if resp, _ := e.post(t, e.conn, b); resp.StatusCode != http.StatusOK {
			t.Fatalf("redelivery: status %d", resp.StatusCode)
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT tenant_id, dedupe_key, type, occurred_at, correlation, payload FROM events WHERE connection_id = $1 ORDER BY dedupe_key`, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Tenant, Key, Type string
		At                time.Time
		Corr              map[string]string
		Payload           map[string]any
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.Tenant, &x.Key, &x.Type, &x.At, &x.Corr, &x.Payload)
		x.At = x.At.UTC()
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []row
	for _, k := range []string{"evt_1", "evt_2", "evt_3"} {
		want = append(want, row{e.tenant, k, "thing.happened", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), map[string]string{"payment_link": "pl_1"}, map[string]any{"n": float64(1)}})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}

	// A connector's own response is sent after the commit.
	resp, b := e.post(t, e.conn, events(ev("evt_4")), "X-Fake-Response", "1")
	if resp.StatusCode != 202 || resp.Header.Get("X-Custom") != "yes" || b != "ok" {
		t.Errorf("custom response: %d %q %q", resp.StatusCode, resp.Header.Get("X-Custom"), b)
	}
	if n := e.count(t, e.conn); n != 4 {
		t.Errorf("stored %d events, want 4", n)
	}
}

func TestIntegrationIngressRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, CommitterConfig{}, func(c *Config) { c.MaxBodyBytes = 1024 })
	ctx := context.Background()
	disabled, err := e.st.CreateConnection(ctx, e.tenant, store.NewConnection{Connector: "fake", Name: "d", Config: json.RawMessage(`{"secret":"x"}`), Fields: fakeManifest.Config})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE connections SET status = 'disabled' WHERE id = $1`, disabled.ID); err != nil {
		t.Fatal(err)
	}
	good := events(ev("evt_ok"))
	tests := map[string]struct {
		method     string
		conn       string
		body       string
		headers    []string
		wantStatus int
		wantRetry  string
		notInBody  string
	}{
		"unknown connection":      {conn: "con_nope", body: good, wantStatus: 404},
		"no connection id":        {conn: "", body: good, wantStatus: 404},
		"disabled connection":     {conn: disabled.ID, body: good, wantStatus: 404},
		"body too large":          {body: `[` + strings.Repeat(" ", 2000) + `]`, wantStatus: 413},
		"bad signature":           {body: good, headers: []string{"X-Fake-Error", "auth"}, wantStatus: 401, notInBody: "whsec"},
		"unparseable":             {body: good, headers: []string{"X-Fake-Error", "invalid"}, wantStatus: 400},
		"plugin unavailable":      {body: good, headers: []string{"X-Fake-Error", "unavailable"}, wantStatus: 503, wantRetry: "5"},
		"plugin call failed":      {body: good, headers: []string{"X-Fake-Error", "transport"}, wantStatus: 503, wantRetry: "5"},
		"plugin rate limited":     {body: good, headers: []string{"X-Fake-Error", "rate"}, wantStatus: 429, wantRetry: "3"},
		"plugin error":            {body: good, headers: []string{"X-Fake-Error", "permanent"}, wantStatus: 500},
		"connector not installed": {conn: e.other, body: good, wantStatus: 503, wantRetry: "5"},
		"undeclared type":         {body: events(sdk.Event{DedupeKey: "k", Type: "thing.unknown", Payload: json.RawMessage(`{}`)}), wantStatus: 500},
		"empty dedupe key":        {body: events(sdk.Event{Type: "thing.happened", Payload: json.RawMessage(`{}`)}), wantStatus: 500},
		"payload not an object":   {body: events(ev("ok"), sdk.Event{DedupeKey: "k", Type: "thing.happened", Payload: json.RawMessage(`[1]`)}), wantStatus: 500},
		"method not allowed":      {method: http.MethodPut, body: good, wantStatus: 405},
	}
	// "connector not installed": the other connector's client is removed.
	delete(e.registry.clients, "other")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conn := tc.conn
			if conn == "" && name != "no connection id" {
				conn = e.conn
			}
			req, _ := http.NewRequest(cmpOr(tc.method, http.MethodPost), e.server.URL+"/hooks/"+conn, strings.NewReader(tc.body))
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want problem+json", ct)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
			if tc.notInBody != "" && bytes.Contains(b, []byte(tc.notInBody)) {
				t.Errorf("body %s reveals %q", b, tc.notInBody)
			}
		})
	}
	for _, c := range []string{e.conn, disabled.ID, e.other} {
		if n := e.count(t, c); n != 0 {
			t.Errorf("%d events stored for %s after rejected deliveries", n, c)
		}
	}
	if n := e.count(t, "con_nope"); n != 0 {
		t.Errorf("events stored for an unknown connection")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestIntegrationIngressHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, CommitterConfig{}, nil)
	resp, err := http.Get(e.server.URL + "/hooks/" + e.conn + "?challenge=abc123")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "abc123" {
		t.Fatalf("handshake: %d %q", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodGet, e.server.URL+"/hooks/"+e.conn, nil)
	req.Header.Set("X-Fake-Error", "auth")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("refused handshake: %d, want 401", resp.StatusCode)
	}
}

// Many concurrent senders, every event delivered twice: every 200 is in the
// database exactly once, and nothing else is.
func TestIntegrationIngressConcurrentBatches(t *testing.T) {
	t.Parallel()
	rec := &recordingMetrics{}
	e := newEnv(t, CommitterConfig{Writers: 2, Metrics: rec}, func(c *Config) { c.ConnectionCacheTTL = time.Second })
	const senders, perSender = 32, 25
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				key := fmt.Sprintf("evt_%d_%d", s, i)
				// The second copy goes out after the first was answered, or
				// concurrently with another sender's first copy.
				for range 2 {
					resp, err := client.Post(e.server.URL+"/hooks/"+e.conn, "application/json", strings.NewReader(events(ev(key))))
					if err != nil {
						t.Errorf("POST: %v", err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						accepted[key]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(accepted) != senders*perSender {
		t.Fatalf("%d keys accepted, want %d", len(accepted), senders*perSender)
	}
	rows, err := e.pool.Query(context.Background(), `SELECT dedupe_key, count(*) FROM events WHERE connection_id = $1 GROUP BY dedupe_key`, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	var k string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error { stored[k] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	for key := range accepted {
		if stored[key] != 1 {
			t.Errorf("%s stored %d times", key, stored[key])
		}
	}
	if len(stored) != len(accepted) {
		t.Errorf("%d keys stored, %d accepted", len(stored), len(accepted))
	}
	if rec.maxRequests() < 2 {
		t.Errorf("largest batch held %d requests; group commit never grouped", rec.maxRequests())
	}
	t.Logf("batches: %d, largest %d requests", rec.batches(), rec.maxRequests())
}

type recordingMetrics struct {
	mu      sync.Mutex
	handled map[Outcome]int
	sizes   []int
	errs    []error
}

func (r *recordingMetrics) WebhookHandled(_ string, o Outcome, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handled == nil {
		r.handled = map[Outcome]int{}
	}
	r.handled[o]++
}

func (r *recordingMetrics) BatchCommitted(requests, _ int, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes = append(r.sizes, requests)
	r.errs = append(r.errs, err)
}

func (r *recordingMetrics) maxRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := 0
	for _, s := range r.sizes {
		m = max(m, s)
	}
	return m
}

func (r *recordingMetrics) batches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sizes)
}

// A request Postgres refuses (a NUL escape jsonb cannot store) shares a batch
// with good ones: it fails alone, the others are committed and answered.
func TestIntegrationIngressBadRequestFailsAlone(t *testing.T) {
	t.Parallel()
	rec := &recordingMetrics{}
	e := newEnv(t, CommitterConfig{Writers: 1, Metrics: rec}, func(c *Config) { c.Metrics = rec })
	ctx := context.Background()

	// Hold the writer on a first request by locking the table, so every
	// other request queues up and is written as one batch.
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE events IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		key    string
		status int
	}
	results := make(chan result, 20)
	send := func(key, payload string) {
		ev := ev(key)
		ev.Payload = json.RawMessage(payload)
		resp, _ := e.post(t, e.conn, events(ev))
		results <- result{key, resp.StatusCode}
	}
	go send("first", `{}`)
	waitFor(t, func() bool { return len(e.committer.reqs) == 0 && rec.batches() == 0 }, "first request taken by the writer")
	time.Sleep(50 * time.Millisecond)
	for i := range 9 {
		go send(fmt.Sprintf("good_%d", i), `{"i":1}`)
	}
	go send("bad", `{"s":"\u0000"}`)
	waitFor(t, func() bool { return len(e.committer.reqs) == 10 }, "ten requests queued")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range 11 {
		r := <-results
		got[r.key] = r.status
	}
	want := map[string]int{"first": 200, "bad": 500}
	for i := range 9 {
		want[fmt.Sprintf("good_%d", i)] = 200
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	if n := e.count(t, e.conn); n != 10 {
		t.Errorf("stored %d events, want 10", n)
	}
	failedBatch := false
	rec.mu.Lock()
	for i, err := range rec.errs {
		if err != nil && rec.sizes[i] == 10 {
			failedBatch = true
		}
	}
	rec.mu.Unlock()
	if !failedBatch {
		t.Errorf("no failed batch of 10 requests recorded; the test did not exercise the fallback (sizes %v)", rec.sizes)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIntegrationServices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, CommitterConfig{}, nil)
	ctx := context.Background()
	s := NewServices(e.st, e.registry, e.committer, e.st)

	if err := s.Emit(ctx, "fake", e.conn, []sdk.Event{ev("e1"), ev("e2")}); err != nil {
		t.Fatalf("Emit: %v", err)
	}
	if err := s.Emit(ctx, "fake", e.conn, []sdk.Event{ev("e1")}); err != nil {
		t.Fatalf("Emit of a duplicate: %v", err)
	}
	if n := e.count(t, e.conn); n != 2 {
		t.Errorf("stored %d events, want 2", n)
	}
	tests := map[string]struct {
		connector, conn string
		events          []sdk.Event
		want            sdk.ErrorKind
	}{
		"another connector's connection": {"other", e.conn, []sdk.Event{ev("x")}, sdk.KindNotFound},
		"unknown connection":             {"fake", "con_nope", []sdk.Event{ev("x")}, sdk.KindNotFound},
		"undeclared type":                {"fake", e.conn, []sdk.Event{{DedupeKey: "x", Type: "nope", Payload: json.RawMessage(`{}`)}}, sdk.KindInvalid},
	}
	for name, tc := range tests {
		if err := s.Emit(ctx, tc.connector, tc.conn, tc.events); sdk.KindOf(err) != tc.want {
			t.Errorf("%s: Emit = %v, want kind %v", name, err, tc.want)
		}
	}
	if n := e.count(t, e.conn); n != 2 {
		t.Errorf("refused emits stored events: %d rows", n)
	}

	if v, err := s.GetState(ctx, "fake", e.conn, "cursor"); err != nil || v != nil {
		t.Fatalf("GetState of a missing key = %q, %v", v, err)
	}
	for _, val := range []string{"one", "two"} {
		if err := s.SetState(ctx, "fake", e.conn, "cursor", []byte(val)); err != nil {
			t.Fatalf("SetState: %v", err)
		}
		if v, err := s.GetState(ctx, "fake", e.conn, "cursor"); err != nil || string(v) != val {
			t.Fatalf("GetState = %q, %v; want %q", v, err, val)
		}
	}
	if _, err := s.GetState(ctx, "other", e.conn, "cursor"); sdk.KindOf(err) != sdk.KindNotFound {
		t.Errorf("GetState by another connector = %v, want not found", err)
	}
	if err := s.SetState(ctx, "other", e.conn, "cursor", []byte("x")); sdk.KindOf(err) != sdk.KindNotFound {
		t.Errorf("SetState by another connector = %v, want not found", err)
	}
	if err := s.SetState(ctx, "fake", e.conn, "big", make([]byte, MaxStateBytes+1)); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("SetState of an oversized value = %v, want invalid", err)
	}
	for _, key := range []string{"ponte.poll_cursor", "ponte.anything"} {
		if err := s.SetState(ctx, "fake", e.conn, key, []byte("x")); sdk.KindOf(err) != sdk.KindInvalid {
			t.Errorf("SetState of the host's key %q = %v, want invalid", key, err)
		}
		if _, err := s.GetState(ctx, "fake", e.conn, key); sdk.KindOf(err) != sdk.KindInvalid {
			t.Errorf("GetState of the host's key %q = %v, want invalid", key, err)
		}
	}
	if err := s.SetState(ctx, "fake", e.conn, "cursor", nil); err != nil {
		t.Fatalf("deleting state: %v", err)
	}
	if v, err := s.GetState(ctx, "fake", e.conn, "cursor"); err != nil || v != nil {
		t.Fatalf("GetState after delete = %q, %v", v, err)
	}
}

func TestValidateEvents(t *testing.T) {
	t.Parallel()
	good := ev("k")
	tests := map[string]struct {
		mutate  func(*sdk.Event)
		wantErr string
	}{
		"valid":              {mutate: func(*sdk.Event) {}},
		"no dedupe key":      {mutate: func(e *sdk.Event) { e.DedupeKey = "" }, wantErr: "empty dedupe key"},
		"long dedupe key":    {mutate: func(e *sdk.Event) { e.DedupeKey = strings.Repeat("k", 513) }, wantErr: "longer"},
		"NUL in dedupe key":  {mutate: func(e *sdk.Event) { e.DedupeKey = "a\x00b" }, wantErr: "UTF-8"},
		"no type":            {mutate: func(e *sdk.Event) { e.Type = "" }, wantErr: "empty type"},
		"undeclared type":    {mutate: func(e *sdk.Event) { e.Type = "x.y" }, wantErr: "not declared"},
		"payload array":      {mutate: func(e *sdk.Event) { e.Payload = json.RawMessage(`[]`) }, wantErr: "JSON object"},
		"payload broken":     {mutate: func(e *sdk.Event) { e.Payload = json.RawMessage(`{"a":`) }, wantErr: "JSON object"},
		"payload empty":      {mutate: func(e *sdk.Event) { e.Payload = nil }, wantErr: "JSON object"},
		"bad correlation":    {mutate: func(e *sdk.Event) { e.Correlation = map[string]string{"": "x"} }, wantErr: "correlation"},
		"payload whitespace": {mutate: func(e *sdk.Event) { e.Payload = json.RawMessage(" \n{}") }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := good
			tc.mutate(&e)
			err := ValidateEvents(fakeManifest, []sdk.Event{good, e})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateEvents: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ValidateEvents = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	h := &Handler{prefix: "/hooks/"}
	type out struct {
		ID, Rest string
		OK       bool
	}
	tests := map[string]struct {
		path string
		want out
	}{
		"id only":        {"/hooks/con_1", out{"con_1", "", true}},
		"trailing slash": {"/hooks/con_1/", out{"con_1", "/", true}},
		"sub path":       {"/hooks/con_1/a/b", out{"con_1", "/a/b", true}},
		"no id":          {"/hooks/", out{}},
		"other prefix":   {"/v1/con_1", out{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, rest, ok := h.parsePath(tc.path)
			if diff := cmp.Diff(tc.want, out{id, rest, ok}); diff != "" {
				t.Errorf("parsePath(%q) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

// BenchmarkIntegrationIngress measures deliveries through the handler and the
// group committer into the real Postgres, with an in-process fake plugin (so
// it measures the host's share, not the plugin's). It reports deliveries per
// second and the 99th percentile latency.
func BenchmarkIntegrationIngress(b *testing.B) {
	e := newEnv(b, CommitterConfig{}, func(c *Config) { c.ConnectionCacheTTL = 0 })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(48)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			body := events(ev(fmt.Sprintf("evt_%d", seq.Add(1))))
			t0 := time.Now()
			resp, err := client.Post(e.server.URL+"/hooks/"+e.conn, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
