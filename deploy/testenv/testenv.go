// Package testenv gives integration tests real servers: a Postgres cluster, a
// Temporal dev server and stripe-mock, each started on first use and shared
// by the tests of one test binary, all on free ports of 127.0.0.1.
//
// A package that uses it has
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// which stops the servers when the tests are done (and on SIGINT/SIGTERM);
// a test binary that dies without cleaning up still takes them along, as
// they are started with a parent-death signal. Server logs are kept in a
// temporary directory that is removed after a passing run and kept, with its
// path printed, after a failing one.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/deploy/localdev"
)

// ModulePath is the module whose root RepoRoot finds.
const ModulePath = "github.com/ponte-hub/ponte"

// startTimeout bounds starting one server, including building its binary
// when it is missing (the Temporal CLI takes about 4 minutes on 2 cores).
const startTimeout = 8 * time.Minute

var (
	mainCalled atomic.Bool

	dirMu sync.Mutex
	dir   string

	pgOnce sync.Once
	pg     *localdev.Postgres
	pgErr  error
	dbSeq  atomic.Int64

	temporalOnce sync.Once
	temporal     *localdev.Temporal
	temporalErr  error

	stripeOnce sync.Once
	stripe     *localdev.StripeMock
	stripeErr  error

	buildsMu sync.Mutex
	builds   = map[string]*build{}

	rootOnce sync.Once
	root     string
	rootErr  error

	// running lists the started servers in start order, for stopAll.
	runningMu sync.Mutex
	running   []interface{ Stop() error }
	stopped   bool

	stopOnce sync.Once
)

// register records a started server so stopAll stops it; a server that
// finished starting after stopAll ran (a signal arrived meanwhile) is
// stopped at once.
func register(s interface{ Stop() error }) {
	runningMu.Lock()
	defer runningMu.Unlock()
	if stopped {
		_ = s.Stop()
		return
	}
	running = append(running, s)
}

// Main runs the tests of a package and stops the servers they started. Call
// it from TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		stopAll(false)
		// Die of the signal, as we would have without the handler.
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	}()
	code := m.Run()
	stopAll(code == 0)
	os.Exit(code)
}

func stopAll(passed bool) {
	stopOnce.Do(func() {
		runningMu.Lock()
		stopped = true
		servers := running
		running = nil
		runningMu.Unlock()
		var errs []error
		for i := len(servers) - 1; i >= 0; i-- {
			errs = append(errs, servers[i].Stop())
		}
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping servers: %v\n", err)
		}
		dirMu.Lock()
		d := dir
		dirMu.Unlock()
		if d == "" {
			return
		}
		if passed {
			os.RemoveAll(d)
		} else {
			fmt.Fprintf(os.Stderr, "testenv: server logs kept in %s\n", filepath.Join(d, "log"))
		}
	})
}

func requireMain(t testing.TB) {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv: add `func TestMain(m *testing.M) { testenv.Main(m) }` to this package so the servers are stopped after the tests")
	}
}

// workDir is this test binary's directory for server data, logs and built
// binaries. It is 0755 (unlike t.TempDir's parent) so that Postgres, which
// runs as an unprivileged user when the tests run as root, can enter it.
func workDir() (string, error) {
	dirMu.Lock()
	defer dirMu.Unlock()
	if dir != "" {
		return dir, nil
	}
	d, err := os.MkdirTemp("", "ponte-testenv-")
	if err == nil {
		err = os.Chmod(d, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("testenv: creating the work directory: %w", err)
	}
	dir = d
	return dir, nil
}

// PostgresURL returns the URL of a new, empty database (no migrations
// applied) on the Postgres server shared by this test binary. Every call
// creates another database, so tests are isolated and can run in parallel.
func PostgresURL(t testing.TB) string {
	t.Helper()
	requireMain(t)
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		var d string
		if d, pgErr = workDir(); pgErr != nil {
			return
		}
		binDir, err := localdev.EnsurePostgres(ctx)
		if err != nil {
			pgErr = err
			return
		}
		pg, pgErr = localdev.StartPostgres(ctx, localdev.PostgresOptions{
			DataDir: filepath.Join(d, "pg"),
			LogPath: filepath.Join(d, "log", "postgres.log"),
			BinDir:  binDir,
			Settings: map[string]string{
				// Many test databases with a pool each, but little data.
				"shared_buffers":  "128MB",
				"max_connections": "400",
				"max_wal_size":    "1GB",
			},
		})
		if pgErr == nil {
			register(pg)
		}
	})
	if pgErr != nil {
		t.Fatalf("testenv: starting postgres: %v", pgErr)
	}
	name := databaseName(t.Name(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return pg.URL(name)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName derives a database name from a test name, unique within the
// test binary by seq and within Postgres's 63-byte limit.
func databaseName(testName string, seq int64) string {
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	suffix := fmt.Sprintf("_%d", seq)
	if max := 63 - len("t_") - len(suffix); len(base) > max {
		base = base[:max]
	}
	return "t_" + base + suffix
}

// TemporalAddress returns the host:port of the Temporal dev server shared by
// this test binary (namespace "default", state in memory, no Web UI). The
// Temporal CLI is built into RepoRoot/bin when it is missing.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	requireMain(t)
	root := RepoRoot(t)
	temporalOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		var d string
		if d, temporalErr = workDir(); temporalErr != nil {
			return
		}
		bin, err := localdev.TemporalBinary(ctx, filepath.Join(root, "bin"))
		if err != nil {
			temporalErr = err
			return
		}
		temporal, temporalErr = localdev.StartTemporal(ctx, localdev.TemporalOptions{
			Binary:  bin,
			LogPath: filepath.Join(d, "log", "temporal.log"),
		})
		if temporalErr == nil {
			register(temporal)
		}
	})
	if temporalErr != nil {
		t.Fatalf("testenv: starting temporal: %v", temporalErr)
	}
	return temporal.Address()
}

// StripeMockURL returns the base URL (http://127.0.0.1:PORT) of the
// stripe-mock shared by this test binary. stripe-mock is stateless: every
// test may use it at once. It is built into RepoRoot/bin when it is missing.
func StripeMockURL(t testing.TB) string {
	t.Helper()
	requireMain(t)
	root := RepoRoot(t)
	stripeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		var d string
		if d, stripeErr = workDir(); stripeErr != nil {
			return
		}
		bin, err := localdev.StripeMockBinary(ctx, filepath.Join(root, "bin"))
		if err != nil {
			stripeErr = err
			return
		}
		stripe, stripeErr = localdev.StartStripeMock(ctx, localdev.StripeMockOptions{
			Binary:  bin,
			LogPath: filepath.Join(d, "log", "stripe-mock.log"),
		})
		if stripeErr == nil {
			register(stripe)
		}
	})
	if stripeErr != nil {
		t.Fatalf("testenv: starting stripe-mock: %v", stripeErr)
	}
	return stripe.URL()
}

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds a main package of this module (a path relative to the
// repository root, e.g. "./connectors/stripe/cmd/ponte-connector-stripe")
// once per test binary and returns the executable's path. Each package gets
// a directory of its own holding only its binary, so filepath.Dir of the
// result can serve as a plugin directory.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	root := RepoRoot(t)
	buildsMu.Lock()
	b, ok := builds[pkg]
	if !ok {
		b = &build{}
		builds[pkg] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		d, err := workDir()
		if err != nil {
			b.err = err
			return
		}
		sub := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(pkg), "_"), "_")
		out := filepath.Join(d, "bin", sub, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stdout = &stderr
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatalf("testenv: %v", b.err)
	}
	return b.path
}

// RepoRoot returns the root of this module's source tree: the nearest
// directory, from the working directory up, whose go.mod declares
// ModulePath. (`go test` runs a package's tests in the package's directory.)
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() { root, rootErr = findRoot() })
	if rootErr != nil {
		t.Fatalf("testenv: %v", rootErr)
	}
	return root
}

var moduleLine = regexp.MustCompile(`(?m)^module\s+(\S+)`)

func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			if m := moduleLine.FindSubmatch(b); m != nil && string(m[1]) == ModulePath {
				return d, nil
			}
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod of %s in %s or above", ModulePath, wd)
		}
	}
}
