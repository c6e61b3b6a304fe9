package localdev

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The Dev test runs this test binary as its `ponte serve`: with
// LOCALDEV_FAKE_SERVE set and the argument "serve", TestMain becomes a small
// server that checks the environment Dev gives it and answers /readyz.
func TestMain(m *testing.M) {
	if os.Getenv("LOCALDEV_FAKE_SERVE") != "" && len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(fakeServe())
	}
	os.Exit(m.Run())
}

func fakeServe() int {
	dir := os.Getenv("LOCALDEV_FAKE_SERVE")
	record := func(s string) {
		f, err := os.OpenFile(filepath.Join(dir, "serve.events"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, s)
			f.Close()
		}
	}
	record("start")
	if err := os.Remove(filepath.Join(dir, "crash")); err == nil {
		fmt.Println("fake serve: crashing as asked")
		return 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println("fake serve: database:", err)
		return 1
	}
	conn.Close(ctx)
	if err := CheckTemporal(ctx, os.Getenv("TEMPORAL_ADDRESS"), os.Getenv("TEMPORAL_NAMESPACE")); err != nil {
		fmt.Println("fake serve: temporal:", err)
		return 1
	}
	if key, err := base64.StdEncoding.DecodeString(os.Getenv("PONTE_MASTER_KEY")); err != nil || len(key) != 32 {
		fmt.Println("fake serve: bad master key")
		return 1
	}
	l, err := net.Listen("tcp", os.Getenv("PONTE_HTTP_ADDR"))
	if err != nil {
		fmt.Println("fake serve: listen:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "PONTE_PLUGIN_DIR", "PONTE_HTTP_ADDR", "PONTE_PUBLIC_URL"} {
			env[k] = os.Getenv(k)
		}
		json.NewEncoder(w).Encode(env)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	<-stop
	srv.Close()
	record("stopped")
	return 0
}

// syncBuffer is an output buffer Dev writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", hostPort(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// devRun is one `ponte dev` run in the test.
type devRun struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startDev(t *testing.T, root string, ensure func(context.Context, string) (FirstTenant, error)) *devRun {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOCALDEV_FAKE_SERVE", root)
	ctx, cancel := context.WithCancel(context.Background())
	r := &devRun{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- Dev(ctx, DevOptions{
			Root:         root,
			Executable:   exe,
			Migrate:      func(context.Context, string) error { return nil },
			EnsureTenant: ensure,
			Out:          r.out,
			// Nothing from the test's own environment (a DATABASE_URL, say).
			Getenv: func(string) string { return "" },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *devRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Dev returned %v; output:\n%s", err, r.out.String())
		}
		r.done <- nil // for the cleanup
	case <-time.After(2 * time.Minute):
		t.Fatalf("Dev did not return after cancel; output:\n%s", r.out.String())
	}
}

func TestIntegrationDevRunsSupervisesAndReusesItsData(t *testing.T) {
	root := tempDir(t)
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Reuse the repository's Temporal CLI instead of building one here.
	temporalBin, err := TemporalBinary(context.Background(), repoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(temporalBin, filepath.Join(root, "bin", "temporal")); err != nil {
		t.Fatal(err)
	}
	// Remembered ports keep the test off the well-known defaults that a
	// developer's own `ponte dev` may be using.
	var ports [4]int
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	state := devState{PostgresPort: ports[0], TemporalPort: ports[1], TemporalUIPort: ports[2], HTTPAddr: hostPort(ports[3])}
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := saveDevState(filepath.Join(root, "var", "dev.json"), state); err != nil {
		t.Fatal(err)
	}
	// The first start of serve crashes: Dev must restart it.
	if err := os.WriteFile(filepath.Join(root, "crash"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// EnsureTenant keeps its "tenant" in the real database, so the second
	// run shows whether the data survived.
	ensure := func(ctx context.Context, url string) (FirstTenant, error) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return FirstTenant{}, err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS tenants (id text)"); err != nil {
			return FirstTenant{}, err
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM tenants").Scan(&n); err != nil {
			return FirstTenant{}, err
		}
		if n > 0 {
			return FirstTenant{TenantID: "ten_1", TenantName: "default"}, nil
		}
		if _, err := conn.Exec(ctx, "INSERT INTO tenants VALUES ('ten_1')"); err != nil {
			return FirstTenant{}, err
		}
		return FirstTenant{TenantID: "ten_1", TenantName: "default", APIKey: "ponte_secret_first_key"}, nil
	}

	run := startDev(t, root, ensure)
	waitFor(t, "Ponte is running", 3*time.Minute, func() bool { return strings.Contains(run.out.String(), "Ponte is running.") })
	out := run.out.String()
	t.Logf("first run:\n%s", out)
	for _, want := range []string{
		"ponte serve exited (exit status 3); restarting",
		"API:          http://" + state.HTTPAddr + "/v1",
		"API docs:     http://" + state.HTTPAddr + "/docs",
		"Temporal UI:  http://" + hostPort(ports[2]),
		"ponte_secret_first_key",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "ponte_secret_first_key"); n != 1 {
		t.Errorf("the API key was printed %d times; want once", n)
	}

	resp, err := http.Get("http://" + state.HTTPAddr + "/env")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	wantEnv := map[string]string{
		"DATABASE_URL":       postgresURL(ports[0], DevDatabase),
		"TEMPORAL_ADDRESS":   hostPort(ports[1]),
		"TEMPORAL_NAMESPACE": "default",
		"PONTE_PLUGIN_DIR":   filepath.Join(root, "bin", "plugins"),
		"PONTE_HTTP_ADDR":    state.HTTPAddr,
		"PONTE_PUBLIC_URL":   "http://" + state.HTTPAddr,
	}
	for k, want := range wantEnv {
		if env[k] != want {
			t.Errorf("serve got %s=%q; want %q", k, env[k], want)
		}
	}
	resp, err = http.Get("http://" + hostPort(ports[2]) + "/")
	if err != nil {
		t.Fatalf("Temporal UI: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Temporal UI answered %d", resp.StatusCode)
	}
	key1, err := os.ReadFile(filepath.Join(root, "var", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(root, "var", "master.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("master.key has mode %v; want 0600", st.Mode().Perm())
	}
	if second := startDevErr(t, root); second == nil || !strings.Contains(second.Error(), "another `ponte dev`") {
		t.Errorf("a second Dev on the same var/ returned %v; want a lock error", second)
	}

	run.stop(t)
	events, _ := os.ReadFile(filepath.Join(root, "serve.events"))
	if got := strings.Fields(string(events)); strings.Join(got, " ") != "start start stopped" {
		t.Errorf("serve events %v; want a crash, a restart, a graceful stop", got)
	}
	for i, port := range ports {
		if listening(port) {
			t.Errorf("port %d (#%d) still listening after Dev returned", port, i)
		}
	}

	// Second run: same data, same ports, same key, no new API key shown.
	run2 := startDev(t, root, ensure)
	waitFor(t, "Ponte is running (second run)", 3*time.Minute, func() bool { return strings.Contains(run2.out.String(), "Ponte is running.") })
	if out := run2.out.String(); strings.Contains(out, "ponte_secret_first_key") || strings.Contains(out, "First run") {
		t.Errorf("second run showed a key:\n%s", out)
	}
	if !listening(ports[0]) || !listening(ports[1]) {
		t.Errorf("second run did not reuse the remembered ports")
	}
	key2, err := os.ReadFile(filepath.Join(root, "var", "master.key"))
	if err != nil || string(key1) != string(key2) {
		t.Errorf("master key changed between runs (err %v)", err)
	}
	run2.stop(t)
}

// startDevErr runs Dev where another Dev holds the lock; it must fail at
// once.
func startDevErr(t *testing.T, root string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Dev(ctx, DevOptions{
		Root:         root,
		Executable:   "/nonexistent",
		Migrate:      func(context.Context, string) error { return errors.New("must not migrate") },
		EnsureTenant: func(context.Context, string) (FirstTenant, error) { return FirstTenant{}, errors.New("unused") },
		Out:          &syncBuffer{},
		Getenv:       func(string) string { return "" },
	})
	return err
}
