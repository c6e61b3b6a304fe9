package pluginhost_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/example"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Plugin binaries built once for the whole test binary.
var (
	exampleDir string // holds ponte-connector-example
	futureDir  string // holds ponte-connector-future (wrong protocol version)
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	exampleDir = filepath.Join(tmp, "example")
	futureDir = filepath.Join(tmp, "future")
	for _, b := range []struct{ dir, pkg string }{
		{exampleDir, "./connectors/example/cmd/ponte-connector-example"},
		{futureDir, "./core/pluginhost/testdata/ponte-connector-future"},
	} {
		out := filepath.Join(b.dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", out, b.pkg)
		cmd.Dir = repoRoot()
		if msg, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", b.pkg, err, msg)
		}
	}
	return m.Run(), nil
}

func repoRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// memServices records what plugins do through the host services.
type memServices struct {
	mu     sync.Mutex
	events map[string][]sdk.Event // by connector + "/" + connection
	state  map[string][]byte      // by connector + "/" + connection + "/" + key
	fail   error
}

func newMemServices() *memServices {
	return &memServices{events: map[string][]sdk.Event{}, state: map[string][]byte{}}
}

func (s *memServices) Emit(_ context.Context, connector, connectionID string, events []sdk.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	k := connector + "/" + connectionID
	for _, e := range events {
		dup := false
		for _, old := range s.events[k] {
			dup = dup || old.DedupeKey == e.DedupeKey
		}
		if !dup {
			s.events[k] = append(s.events[k], e)
		}
	}
	return nil
}

func (s *memServices) GetState(_ context.Context, connector, connectionID, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[connector+"/"+connectionID+"/"+key], nil
}

func (s *memServices) SetState(_ context.Context, connector, connectionID, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state[connector+"/"+connectionID+"/"+key] = value
	return nil
}

func (s *memServices) UpdateSession(context.Context, string, string, sdk.SessionUpdate) error {
	return sdk.Permanent("memServices holds no sessions")
}

func (s *memServices) Signal(context.Context, string, string, sdk.Signal) error {
	return sdk.Permanent("memServices holds no sessions")
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startHost(t testing.TB, dir string, services pluginhost.Services) *pluginhost.Host {
	t.Helper()
	h, err := pluginhost.New(t.Context(), pluginhost.Options{
		Dir:            dir,
		Services:       services,
		Logger:         quietLogger(),
		HealthInterval: 500 * time.Millisecond,
		Strict:         true,
	})
	if err != nil {
		t.Fatalf("starting the plugin host: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func exampleClient(t testing.TB, h *pluginhost.Host) pluginhost.Client {
	t.Helper()
	c, err := h.Connector("example")
	if err != nil {
		t.Fatalf("getting the example connector: %v", err)
	}
	return c
}

var testConn = sdk.Connection{ID: "conn_1", TenantID: "tenant_1", Config: sdk.Config(`{"signing_secret":"s3cret"}`)}

func TestIntegrationManifestAndStatus(t *testing.T) {
	t.Parallel()
	h := startHost(t, exampleDir, newMemServices())

	c, _ := example.New(nil)
	want := c.Manifest()
	// Compare schemas as JSON values: whitespace is not part of the manifest.
	normalize := cmp.Transformer("json", func(r json.RawMessage) any {
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return string(r)
		}
		return v
	})
	if diff := cmp.Diff([]sdk.Manifest{want}, h.Manifests(), normalize); diff != "" {
		t.Errorf("manifests differ (-want +got):\n%s", diff)
	}

	st := h.Status()
	if len(st) != 1 {
		t.Fatalf("status: want 1 plugin, got %+v", st)
	}
	if !st[0].Running || st[0].PID <= 0 || st[0].Name != "example" || st[0].Version != "1.0.0" || st[0].Restarts != 0 {
		t.Errorf("status: got %+v", st[0])
	}
	if _, err := h.Connector("nope"); !errors.Is(err, pluginhost.ErrUnknownConnector) {
		t.Errorf("unknown connector: got %v, want ErrUnknownConnector", err)
	}
}

func signedRequest(secret, body string) sdk.WebhookRequest {
	sig := hex.EncodeToString(sdk.SignHMACSHA256([]byte(secret), []byte(body)))
	return sdk.WebhookRequest{
		Method:     "POST",
		Headers:    map[string][]string{"Content-Type": {"application/json"}, example.SignatureHeader: {sig}},
		Body:       []byte(body),
		ReceivedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func TestIntegrationWebhookAndState(t *testing.T) {
	t.Parallel()
	services := newMemServices()
	h := startHost(t, exampleDir, services)
	c := exampleClient(t, h)
	ctx := t.Context()

	body := `{"id":"evt_1","type":"order.created","occurred_at":"2026-03-01T11:59:00Z","data":{"order_id":"ord_9","total":1200}}`
	res, err := c.HandleWebhook(ctx, testConn, signedRequest("s3cret", body))
	if err != nil {
		t.Fatalf("handling a signed webhook: %v", err)
	}
	want := []sdk.Event{{
		DedupeKey:   "evt_1",
		Type:        "order.created",
		OccurredAt:  time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
		Correlation: map[string]string{"order_id": "ord_9"},
		Payload:     json.RawMessage(`{"order_id":"ord_9","total":1200}`),
	}}
	if diff := cmp.Diff(want, res.Events); diff != "" {
		t.Errorf("events differ (-want +got):\n%s", diff)
	}

	// The connector recorded the delivery through the host's state service,
	// under its own connector name, and reads it back in an action.
	if _, ok := services.state["example/conn_1/last_delivery"]; !ok {
		t.Errorf("no state stored under example/conn_1/last_delivery: %v", services.state)
	}
	out, err := c.Invoke(ctx, sdk.ActionCall{Connection: testConn, Action: "last_delivery", Params: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("last_delivery: %v", err)
	}
	if diff := cmp.Diff(`{"found":true,"id":"evt_1","received_at":"2026-03-01T12:00:00Z"}`, string(out)); diff != "" {
		t.Errorf("last_delivery (-want +got):\n%s", diff)
	}

	// A tampered body and a wrong secret are both rejected as Auth.
	for name, req := range map[string]sdk.WebhookRequest{
		"wrong secret": signedRequest("other", body),
		"tampered": func() sdk.WebhookRequest {
			r := signedRequest("s3cret", body)
			r.Body = []byte(strings.Replace(body, "1200", "1", 1))
			return r
		}(),
		"no signature": {Method: "POST", Body: []byte(body)},
	} {
		_, err := c.HandleWebhook(ctx, testConn, req)
		if sdk.KindOf(err) != sdk.KindAuth {
			t.Errorf("%s: got %v, want an Auth error", name, err)
		}
	}

	// Handshake.
	hs, err := c.Handshake(ctx, testConn, sdk.WebhookRequest{Method: "GET", Query: "challenge=abc123"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if diff := cmp.Diff(sdk.HTTPResponse{Status: 200, Headers: map[string]string{"Content-Type": "text/plain"}, Body: []byte("abc123")}, hs); diff != "" {
		t.Errorf("handshake (-want +got):\n%s", diff)
	}
}

func TestIntegrationEmit(t *testing.T) {
	t.Parallel()
	services := newMemServices()
	h := startHost(t, exampleDir, services)
	c := exampleClient(t, h)

	for range 2 { // a retried call emits once
		if _, err := c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "test_event", Params: json.RawMessage(`{"note":"hi"}`), IdempotencyKey: "k1"}); err != nil {
			t.Fatalf("test_event: %v", err)
		}
	}
	services.mu.Lock()
	got := services.events["example/conn_1"]
	services.mu.Unlock()
	if len(got) != 1 || got[0].DedupeKey != "test:k1" || got[0].Type != "connection.test" || string(got[0].Payload) != `{"note":"hi"}` || got[0].OccurredAt.IsZero() {
		t.Errorf("emitted events: got %+v", got)
	}

	// A host service failure reaches the connector as a typed error and comes
	// back from the action with its kind.
	services.mu.Lock()
	services.fail = sdk.RateLimited(3*time.Second, "slow down")
	services.mu.Unlock()
	_, err := c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "test_event", IdempotencyKey: "k2"})
	var se *sdk.Error
	if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.RetryAfter != 3*time.Second {
		t.Errorf("emit failure: got %#v, want RateLimited with retry after 3s", err)
	}
	// An untyped host failure is reported to the plugin as retryable without
	// its details.
	services.mu.Lock()
	services.fail = errors.New("pq: connection refused to 10.0.0.3")
	services.mu.Unlock()
	_, err = c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "test_event", IdempotencyKey: "k3"})
	if !errors.As(err, &se) || se.Kind != sdk.KindRetryable || strings.Contains(se.Message, "10.0.0.3") {
		t.Errorf("untyped emit failure: got %#v, want Retryable without details", err)
	}
}

func TestIntegrationErrorKinds(t *testing.T) {
	t.Parallel()
	h := startHost(t, exampleDir, newMemServices())
	c := exampleClient(t, h)

	tests := map[string]struct {
		params string
		want   *sdk.Error
	}{
		"invalid":      {`{"kind":"invalid","message":"bad amount","code":"E1"}`, &sdk.Error{Kind: sdk.KindInvalid, Message: "bad amount", Code: "E1"}},
		"auth":         {`{"kind":"auth","message":"token revoked"}`, &sdk.Error{Kind: sdk.KindAuth, Message: "token revoked"}},
		"not found":    {`{"kind":"not_found","message":"no such order"}`, &sdk.Error{Kind: sdk.KindNotFound, Message: "no such order"}},
		"rate limited": {`{"kind":"rate_limited","message":"slow down","code":"130429","retry_after_ms":1500}`, &sdk.Error{Kind: sdk.KindRateLimited, Message: "slow down", Code: "130429", RetryAfter: 1500 * time.Millisecond}},
		"retryable":    {`{"kind":"retryable","message":"502 from provider","retry_after_ms":200}`, &sdk.Error{Kind: sdk.KindRetryable, Message: "502 from provider", RetryAfter: 200 * time.Millisecond}},
		"permanent":    {`{"kind":"permanent","message":"account closed"}`, &sdk.Error{Kind: sdk.KindPermanent, Message: "account closed"}},
		"unknown":      {`{"kind":"unknown"}`, &sdk.Error{Kind: sdk.KindUnknown, Message: "failing as asked"}},
		// Refused by the host's schema check before reaching the plugin.
		"bad params": {`{"kind":"exploded"}`, &sdk.Error{Kind: sdk.KindInvalid}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "fail", Params: json.RawMessage(tc.params)})
			var got *sdk.Error
			if !errors.As(err, &got) {
				t.Fatalf("got %T %v, want *sdk.Error", err, err)
			}
			if errors.Is(err, pluginhost.ErrUnavailable) {
				t.Fatalf("a connector error must not be ErrUnavailable: %v", err)
			}
			if name == "bad params" {
				if got.Kind != sdk.KindInvalid || !strings.Contains(got.Message, "/kind") {
					t.Errorf("got %v, want an Invalid error naming /kind", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error differs (-want +got):\n%s", diff)
			}
		})
	}

	_, err := c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "no_such_action"})
	if sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("unknown action: got %v, want Invalid", err)
	}
	// The example polls only connections with a feed_url; without one a
	// poll crosses the boundary and hands the cursor back unchanged.
	pr, err := c.Poll(t.Context(), testConn, "c0")
	if err != nil || pr.Cursor != "c0" || pr.More || len(pr.Events) != 0 {
		t.Errorf("poll of a connection without a feed: got %+v, %v", pr, err)
	}
}

func TestIntegrationRestartAfterKill(t *testing.T) {
	t.Parallel()
	started := make(chan string, 4)
	h, err := pluginhost.New(t.Context(), pluginhost.Options{
		Dir: exampleDir, Services: newMemServices(), Logger: quietLogger(), HealthInterval: 500 * time.Millisecond, Strict: true,
		OnStart: func(connector string) { started <- connector },
	})
	if err != nil {
		t.Fatalf("starting the plugin host: %v", err)
	}
	t.Cleanup(h.Close)
	if got := <-started; got != "example" {
		t.Fatalf("OnStart(%q) at the first start; want example", got)
	}
	c := exampleClient(t, h)
	echo := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		out, err := c.Invoke(ctx, sdk.ActionCall{Connection: testConn, Action: "echo", Params: json.RawMessage(`{"n":1}`)})
		if err == nil && string(out) != `{"n":1}` {
			return fmt.Errorf("echo returned %s", out)
		}
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("echo before the kill: %v", err)
	}
	pid := h.Status()[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the plugin: %v", err)
	}
	killed := time.Now()

	// During the outage every call fails fast with ErrUnavailable, and the
	// plugin comes back on its own within a few seconds.
	sawUnavailable := false
	for {
		start := time.Now()
		err := echo()
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("a call during the outage took %v", took)
		}
		if err == nil && sawUnavailable {
			break
		}
		if err != nil {
			if !errors.Is(err, pluginhost.ErrUnavailable) {
				t.Fatalf("call during the outage: got %v, want ErrUnavailable", err)
			}
			sawUnavailable = true
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("the plugin was not back 5s after kill -9 (last error %v, status %+v)", err, h.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("plugin back %v after kill -9", time.Since(killed).Round(time.Millisecond))
	select {
	case got := <-started:
		if got != "example" {
			t.Errorf("OnStart(%q) after the restart; want example", got)
		}
	case <-time.After(5 * time.Second):
		t.Error("OnStart was not called after the restart: held sessions would never be opened again")
	}

	st := h.Status()[0]
	if !st.Running || st.Restarts != 1 || st.PID == pid || st.PID <= 0 {
		t.Errorf("status after restart: %+v (old pid %d)", st, pid)
	}
	// The client obtained before the crash keeps working, and so does a fresh one.
	if _, err := exampleClient(t, h).Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "echo"}); err != nil {
		t.Errorf("echo on a fresh client: %v", err)
	}
}

func TestIntegrationCloseMakesCallsUnavailable(t *testing.T) {
	t.Parallel()
	h := startHost(t, exampleDir, newMemServices())
	c := exampleClient(t, h)
	pid := h.Status()[0].PID
	h.Close()
	_, err := c.Invoke(t.Context(), sdk.ActionCall{Connection: testConn, Action: "echo"})
	if !errors.Is(err, pluginhost.ErrUnavailable) {
		t.Errorf("call after Close: got %v, want ErrUnavailable", err)
	}
	// The process is gone (signal 0 checks for existence).
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still alive after Close", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationVersionMismatchRefused(t *testing.T) {
	t.Parallel()
	_, err := pluginhost.New(t.Context(), pluginhost.Options{Dir: futureDir, Logger: quietLogger(), Strict: true})
	if !errors.Is(err, pluginhost.ErrIncompatibleProtocol) {
		t.Fatalf("strict: got %v, want ErrIncompatibleProtocol", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("plugin speaks v%d", sdk.ProtocolVersion+1)) || !strings.Contains(err.Error(), fmt.Sprintf("host speaks v%d", sdk.ProtocolVersion)) {
		t.Errorf("the error should name both versions: %v", err)
	}

	// Not strict: the host starts, reports the plugin as refused and does not
	// offer it.
	h, err := pluginhost.New(t.Context(), pluginhost.Options{Dir: futureDir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("non-strict: %v", err)
	}
	defer h.Close()
	st := h.Status()
	if len(st) != 1 || st[0].Running || !strings.Contains(st[0].Error, "incompatible connector protocol") {
		t.Errorf("status: %+v", st)
	}
	if _, err := h.Connector("future"); !errors.Is(err, pluginhost.ErrUnknownConnector) {
		t.Errorf("Connector(future): got %v, want ErrUnknownConnector", err)
	}
	if len(h.Manifests()) != 0 {
		t.Errorf("manifests: %+v", h.Manifests())
	}
}

// BenchmarkActionRoundTrip measures host -> plugin "echo" -> host through a
// real plugin process, and reports the median and 99th percentile.
func BenchmarkActionRoundTrip(b *testing.B) {
	h := startHost(b, exampleDir, newMemServices())
	c := exampleClient(b, h)
	call := sdk.ActionCall{Connection: testConn, Action: "echo", Params: json.RawMessage(`{"message":"hello","n":42}`)}
	ctx := context.Background()
	for range 200 { // warm up connections and code paths
		if _, err := c.Invoke(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Invoke(ctx, call); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50_µs")
	b.ReportMetric(pct(0.99), "p99_µs")
}
