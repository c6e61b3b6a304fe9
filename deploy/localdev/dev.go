package localdev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of `ponte dev`, used when free (and remembered in var/dev.json
// when another port had to be chosen).
const (
	DefaultDevPostgresPort   = 54329
	DefaultDevTemporalPort   = 7233
	DefaultDevTemporalUIPort = 8233
	DefaultDevHTTPAddr       = "127.0.0.1:8080"
	// DevDatabase is the database `ponte dev` keeps Ponte's data in.
	DevDatabase = "ponte"
)

// FirstTenant is what DevOptions.EnsureTenant reports.
type FirstTenant struct {
	// TenantID and TenantName name the first tenant.
	TenantID, TenantName string
	// APIKey is the plaintext of the admin API key created with the tenant,
	// or "" when the tenant already existed (its keys are not recoverable).
	APIKey string
}

// DevOptions configures Dev.
type DevOptions struct {
	// Root is the repository root: the data lives in Root/var, the tools and
	// plugins in Root/bin. Default: the working directory.
	Root string
	// Executable is the ponte binary to run as `ponte serve`. Default: this
	// process's executable.
	Executable string
	// Migrate applies Ponte's database migrations (store.Migrate).
	Migrate func(ctx context.Context, databaseURL string) error
	// EnsureTenant creates the first tenant and an admin API key when the
	// database has no tenant yet.
	EnsureTenant func(ctx context.Context, databaseURL string) (FirstTenant, error)
	// Out receives the status lines, the URLs and the new API key. Default:
	// os.Stdout.
	Out io.Writer
	// ServeOutput, when set, gets a copy of `ponte serve`'s log (which goes
	// to var/log/serve.log in any case).
	ServeOutput io.Writer
	// Getenv reads the environment (DATABASE_URL, TEMPORAL_ADDRESS, ...).
	// Default: os.Getenv.
	Getenv func(string) string
	// ReadyTimeout is how long to wait for /readyz before saying so (Dev
	// keeps waiting). Default: one minute.
	ReadyTimeout time.Duration
}

// devState is what Dev remembers between runs in var/dev.json.
type devState struct {
	PostgresPort   int    `json:"postgres_port,omitempty"`
	TemporalPort   int    `json:"temporal_port,omitempty"`
	TemporalUIPort int    `json:"temporal_ui_port,omitempty"`
	HTTPAddr       string `json:"http_addr,omitempty"`
}

// Dev runs Ponte on this machine until ctx ends: unless DATABASE_URL is set,
// a Postgres cluster in var/pg with a database "ponte"; unless
// TEMPORAL_ADDRESS is set, a Temporal dev server (built into bin/ once) with
// its state in var/temporal.db and the Web UI on; a master key from
// PONTE_MASTER_KEY or var/master.key (generated once); the migrations; a
// first tenant and API key on the first run; and `ponte serve` as a child
// process, restarted with backoff when it crashes. It prints the URLs once
// Ponte answers /readyz. When ctx ends it stops what it started in order:
// serve, Temporal, Postgres. A second run reuses var/.
func Dev(ctx context.Context, o DevOptions) (err error) {
	if o.Migrate == nil || o.EnsureTenant == nil {
		return errors.New("dev: Migrate and EnsureTenant are required")
	}
	if o.Root == "" {
		o.Root = "."
	}
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return fmt.Errorf("resolving the root directory: %w", err)
	}
	if o.Executable == "" {
		if o.Executable, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the ponte executable: %w", err)
		}
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = time.Minute
	}
	varDir := filepath.Join(o.Root, "var")
	binDir := filepath.Join(o.Root, "bin")
	logDir := filepath.Join(varDir, "log")
	// 0755: Postgres may run as another user and must reach var/pg.
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", logDir, err)
	}
	if err := os.Chmod(varDir, 0o755); err != nil {
		return fmt.Errorf("making %s traversable: %w", varDir, err)
	}
	unlock, err := lockDevDir(varDir)
	if err != nil {
		return err
	}
	defer unlock()

	statePath := filepath.Join(varDir, "dev.json")
	state, err := loadDevState(statePath)
	if err != nil {
		return err
	}

	// Servers started so far, stopped in reverse order on the way out.
	var started []interface{ Stop() error }
	defer func() {
		for i := len(started) - 1; i >= 0; i-- {
			if stopErr := started[i].Stop(); stopErr != nil {
				fmt.Fprintf(o.Out, "ponte dev: %v\n", stopErr)
				err = errors.Join(err, stopErr)
			}
		}
	}()
	var pgDone, temporalDone <-chan struct{}

	databaseURL := o.Getenv("DATABASE_URL")
	if databaseURL == "" {
		pgBin, err := EnsurePostgres(ctx)
		if err != nil {
			return err
		}
		port, err := pickPort(orDefault(state.PostgresPort, DefaultDevPostgresPort))
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "starting Postgres (data in %s, port %d)...\n", rel(o.Root, filepath.Join(varDir, "pg")), port)
		pg, err := StartPostgres(ctx, PostgresOptions{
			DataDir: filepath.Join(varDir, "pg"),
			Port:    port,
			LogPath: filepath.Join(logDir, "postgres.log"),
			BinDir:  pgBin,
		})
		if err != nil {
			return err
		}
		started = append(started, pg)
		pgDone = pg.Done()
		state.PostgresPort = port
		if err := pg.CreateDatabase(ctx, DevDatabase); err != nil {
			return err
		}
		databaseURL = pg.URL(DevDatabase)
	}

	temporalAddress := o.Getenv("TEMPORAL_ADDRESS")
	temporalNamespace := o.Getenv("TEMPORAL_NAMESPACE")
	if temporalNamespace == "" {
		temporalNamespace = "default"
	}
	temporalUI := ""
	if temporalAddress == "" {
		bin, err := TemporalBinary(ctx, binDir)
		if err != nil {
			return err
		}
		port, err := pickPort(orDefault(state.TemporalPort, DefaultDevTemporalPort))
		if err != nil {
			return err
		}
		uiPort, err := pickPort(orDefault(state.TemporalUIPort, DefaultDevTemporalUIPort))
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "starting the Temporal dev server (state in %s, port %d)...\n", rel(o.Root, filepath.Join(varDir, "temporal.db")), port)
		var namespaces []string
		if temporalNamespace != "default" {
			namespaces = []string{temporalNamespace}
		}
		t, err := StartTemporal(ctx, TemporalOptions{
			Binary:     bin,
			DBFile:     filepath.Join(varDir, "temporal.db"),
			Port:       port,
			UI:         true,
			UIPort:     uiPort,
			LogPath:    filepath.Join(logDir, "temporal.log"),
			Namespaces: namespaces,
		})
		if err != nil {
			return err
		}
		started = append(started, t)
		temporalDone = t.Done()
		state.TemporalPort, state.TemporalUIPort = port, uiPort
		temporalAddress, temporalUI = t.Address(), t.UIURL()
	}

	masterKey := o.Getenv("PONTE_MASTER_KEY")
	if masterKey == "" {
		if masterKey, err = loadOrCreateMasterKey(filepath.Join(varDir, "master.key")); err != nil {
			return err
		}
	}

	httpAddr := o.Getenv("PONTE_HTTP_ADDR")
	if httpAddr == "" {
		if httpAddr, err = pickHTTPAddr(state.HTTPAddr); err != nil {
			return err
		}
		state.HTTPAddr = httpAddr
	}
	publicURL := strings.TrimRight(o.Getenv("PONTE_PUBLIC_URL"), "/")
	if publicURL == "" {
		publicURL = "http://" + httpAddr
	}
	if err := saveDevState(statePath, state); err != nil {
		return err
	}

	fmt.Fprintln(o.Out, "applying database migrations...")
	if err := o.Migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	first, err := o.EnsureTenant(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("creating the first tenant: %w", err)
	}
	// The key exists only as a hash from now on: make sure it reaches the
	// user even if Ponte never becomes ready.
	keyShown := first.APIKey == ""
	defer func() {
		if !keyShown {
			printKey(o.Out, first)
		}
	}()

	pluginDir := o.Getenv("PONTE_PLUGIN_DIR")
	if pluginDir == "" {
		pluginDir = filepath.Join(binDir, "plugins")
	}
	env := mergeEnv(os.Environ(), map[string]string{
		"DATABASE_URL":       databaseURL,
		"TEMPORAL_ADDRESS":   temporalAddress,
		"TEMPORAL_NAMESPACE": temporalNamespace,
		"PONTE_MASTER_KEY":   masterKey,
		"PONTE_PLUGIN_DIR":   pluginDir,
		"PONTE_HTTP_ADDR":    httpAddr,
		"PONTE_PUBLIC_URL":   publicURL,
	})
	spec := ProcessSpec{
		Name:              "ponte serve",
		Path:              o.Executable,
		Args:              []string{"serve"},
		Env:               env,
		Dir:               o.Root,
		LogPath:           filepath.Join(logDir, "serve.log"),
		Tee:               o.ServeOutput,
		StopSignal:        syscall.SIGTERM,
		ParentDeathSignal: syscall.SIGTERM,
	}
	banner := func() {
		fmt.Fprintf(o.Out, "\nPonte is running.\n")
		fmt.Fprintf(o.Out, "  API:          %s/v1\n", publicURL)
		fmt.Fprintf(o.Out, "  API docs:     %s/docs\n", publicURL)
		if temporalUI != "" {
			fmt.Fprintf(o.Out, "  Temporal UI:  %s\n", temporalUI)
		} else {
			fmt.Fprintf(o.Out, "  Temporal:     %s (namespace %s)\n", temporalAddress, temporalNamespace)
		}
		fmt.Fprintf(o.Out, "  Logs:         %s\n", rel(o.Root, logDir)+string(filepath.Separator))
		if !keyShown {
			printKey(o.Out, first)
			keyShown = true
		}
		fmt.Fprintf(o.Out, "Press Ctrl-C to stop.\n\n")
	}
	sup := serveSupervisor{
		spec:         spec,
		readyURL:     "http://" + probeAddr(httpAddr) + "/readyz",
		out:          o.Out,
		readyTimeout: o.ReadyTimeout,
		onFirstReady: banner,
		pgDone:       pgDone,
		temporalDone: temporalDone,
	}
	return sup.run(ctx)
}

func printKey(out io.Writer, first FirstTenant) {
	fmt.Fprintf(out, "\nFirst run: created tenant %q (%s) with an admin API key.\n", first.TenantName, first.TenantID)
	fmt.Fprintf(out, "It is shown only this once and stored hashed; keep it:\n\n  %s\n\n", first.APIKey)
}

// serveSupervisor runs `ponte serve`, restarting it with backoff when it
// exits, until its context ends or a server it depends on dies.
type serveSupervisor struct {
	spec         ProcessSpec
	readyURL     string
	out          io.Writer
	readyTimeout time.Duration
	onFirstReady func()
	pgDone       <-chan struct{} // nil when Postgres is not ours
	temporalDone <-chan struct{} // nil when Temporal is not ours

	// Backoff between restarts, doubled after each quick crash.
	minBackoff, maxBackoff time.Duration
	// A run longer than stableAfter resets the backoff.
	stableAfter time.Duration
}

func (s *serveSupervisor) run(ctx context.Context) error {
	if s.minBackoff == 0 {
		s.minBackoff, s.maxBackoff, s.stableAfter = time.Second, 30*time.Second, time.Minute
	}
	backoff := s.minBackoff
	everReady := false
	for restarts := 0; ; restarts++ {
		proc, err := StartProcess(s.spec)
		if err != nil {
			return err
		}
		startedAt := time.Now()
		readyCtx, cancelReady := context.WithCancel(ctx)
		ready := make(chan struct{})
		go func() {
			if waitHTTP(readyCtx, s.readyURL, proc.Done()) {
				close(ready)
			}
		}()
		slow := time.NewTimer(s.readyTimeout)

	running:
		for {
			select {
			case <-ctx.Done():
				cancelReady()
				slow.Stop()
				fmt.Fprintln(s.out, "stopping...")
				return proc.Stop(20 * time.Second)
			case <-s.pgDone:
				cancelReady()
				_ = proc.Stop(20 * time.Second)
				return fmt.Errorf("postgres exited unexpectedly; see %s", filepath.Join(filepath.Dir(s.spec.LogPath), "postgres.log"))
			case <-s.temporalDone:
				cancelReady()
				_ = proc.Stop(20 * time.Second)
				return fmt.Errorf("the Temporal dev server exited unexpectedly; see %s", filepath.Join(filepath.Dir(s.spec.LogPath), "temporal.log"))
			case <-ready:
				ready = nil
				slow.Stop()
				if !everReady {
					everReady = true
					s.onFirstReady()
				} else {
					fmt.Fprintln(s.out, "ponte serve is ready again.")
				}
			case <-slow.C:
				fmt.Fprintf(s.out, "still waiting for %s to answer 200 (see %s)...\n", s.readyURL, s.spec.LogPath)
			case <-proc.Done():
				cancelReady()
				slow.Stop()
				break running
			}
		}
		if time.Since(startedAt) > s.stableAfter {
			backoff = s.minBackoff
		}
		fmt.Fprintf(s.out, "ponte serve exited (%v); restarting in %s. Last lines of %s:\n%s\n",
			exitText(proc.Err()), backoff, s.spec.LogPath, indent(proc.LogTail(5)))
		select {
		case <-ctx.Done():
			fmt.Fprintln(s.out, "stopping...")
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
}

// waitHTTP polls url until it answers 200 (true), or ctx ends or the
// process exits (false).
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}) bool {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-exited:
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probeAddr turns a listen address into one we can connect to: an
// unspecified host (":8080", "0.0.0.0:8080") means this machine.
func probeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = Loopback
	}
	return net.JoinHostPort(host, port)
}

// pickHTTPAddr returns the remembered address or the default when its port
// is free, else 127.0.0.1 with a free port.
func pickHTTPAddr(remembered string) (string, error) {
	addr := remembered
	if addr == "" {
		addr = DefaultDevHTTPAddr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("remembered HTTP address %q: %w", addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	if host == Loopback && port > 0 && PortFree(port) {
		return addr, nil
	}
	free, err := FreePort()
	if err != nil {
		return "", err
	}
	return hostPort(free), nil
}

// DevDatabaseURL returns the URL of the database `ponte dev` keeps in
// root/var/pg, if a dev run has recorded its port; the admin commands use it
// when DATABASE_URL is not set.
func DevDatabaseURL(root string) (string, bool) {
	s, err := loadDevState(filepath.Join(root, "var", "dev.json"))
	if err != nil || s.PostgresPort == 0 || !fileExists(filepath.Join(root, "var", "pg", "PG_VERSION")) {
		return "", false
	}
	return postgresURL(s.PostgresPort, DevDatabase), true
}

func orDefault(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}

func loadDevState(path string) (devState, error) {
	var s devState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("reading %s: %w (delete it to start over with the default ports)", path, err)
	}
	return s, nil
}

func saveDevState(path string, s devState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding dev state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// loadOrCreateMasterKey reads the dev master key, generating 32 random bytes
// (base64) into path on the first run. The file is private to its owner.
func loadOrCreateMasterKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("%s is empty; delete it to generate a new key (connections sealed under the old key will not open)", path)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("restricting %s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating a master key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(raw)
	// O_EXCL: never overwrite a key someone else just wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return key, nil
}

// lockDevDir makes sure only one `ponte dev` uses a var/ directory at once.
func lockDevDir(varDir string) (func(), error) {
	path := filepath.Join(varDir, "dev.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another `ponte dev` is using %s", varDir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// mergeEnv returns env with the keys of set replaced or added.
func mergeEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
