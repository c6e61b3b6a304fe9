package localdev

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresPackage is the Debian package that provides the server binaries.
const PostgresPackage = "postgresql"

// PostgresSuperuser is the superuser role initdb creates in our clusters.
const PostgresSuperuser = "postgres"

// ErrPostgresNotInstalled is returned when no Postgres server binaries are
// found and they cannot be installed.
var ErrPostgresNotInstalled = errors.New("the Postgres server binaries (initdb, postgres) were not found; install Debian's `" + PostgresPackage + "` package (apt-get install " + PostgresPackage + ") or set PONTE_PG_BINDIR")

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// DataDir is the cluster's directory. An empty or missing directory is
	// initialized with initdb; an initialized one is reused with its data.
	DataDir string
	// Port to listen on (127.0.0.1 only). 0 picks a free port; a busy
	// port is an error.
	Port int
	// LogPath receives the server's log; default DataDir/../log/postgres.log.
	LogPath string
	// BinDir holds initdb and postgres; empty finds them (FindPostgres).
	BinDir string
	// Settings override or extend the postgresql.conf settings Ponte writes
	// (DefaultPostgresSettings), e.g. {"shared_buffers": "128MB"}.
	Settings map[string]string
}

// DefaultPostgresSettings are the server settings Ponte runs its local
// clusters with, sized for a 2-core machine with a few GB of memory. They are
// durable (fsync and synchronous commit on): the data in a dev cluster is
// real, and benchmarks against it must measure real commits.
func DefaultPostgresSettings() map[string]string {
	return map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "''", // TCP only; no socket in /var/run that we would need rights to
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"full_page_writes":        "on",
		"max_connections":         "200",
		"shared_buffers":          "256MB",
		"effective_cache_size":    "1GB",
		"work_mem":                "8MB",
		"maintenance_work_mem":    "128MB",
		"wal_buffers":             "16MB",
		"min_wal_size":            "256MB",
		"max_wal_size":            "2GB",
		"checkpoint_timeout":      "15min",
		// Two cores: no more background and parallel workers than that.
		"max_worker_processes":             "4",
		"max_parallel_workers":             "2",
		"max_parallel_workers_per_gather":  "1",
		"max_parallel_maintenance_workers": "1",
		"random_page_cost":                 "1.1",
		"effective_io_concurrency":         "200",
		"timezone":                         "'UTC'",
		"log_timezone":                     "'UTC'",
		"logging_collector":                "off", // stderr goes to our log file
		"log_line_prefix":                  "'%m [%p] %q%u@%d '",
		"log_min_duration_statement":       "1000",
	}
}

// Postgres is a running local Postgres server.
type Postgres struct {
	opts PostgresOptions
	port int
	proc *Process

	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
}

// StartPostgres initializes DataDir if needed, starts the server and waits
// until it accepts connections. When running as root, initdb and postgres
// (which refuse root) run as the data directory's owner, or as the
// `postgres` system user, or as a `ponte` system user created for it.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.DataDir == "" {
		return nil, errors.New("starting postgres: no data directory given")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", opts.DataDir, err)
	}
	opts.DataDir = dataDir
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(filepath.Dir(dataDir), "log", "postgres.log")
	}
	initialized := fileExists(filepath.Join(dataDir, "PG_VERSION"))
	wantMajor := ""
	if initialized {
		b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
		if err != nil {
			return nil, fmt.Errorf("reading the cluster's version: %w", err)
		}
		wantMajor = strings.TrimSpace(string(b))
	}
	if opts.BinDir == "" {
		opts.BinDir, err = FindPostgres(wantMajor)
		if err != nil {
			return nil, err
		}
	}
	if wantMajor != "" {
		have, err := postgresMajor(ctx, opts.BinDir)
		if err != nil {
			return nil, err
		}
		if have != wantMajor {
			return nil, fmt.Errorf("the cluster in %s was made by PostgreSQL %s, but the server in %s is %s; install PostgreSQL %s or move the directory away", dataDir, wantMajor, opts.BinDir, have, wantMajor)
		}
	}

	cred, err := postgresCredential(dataDir)
	if err != nil {
		return nil, err
	}
	if !initialized {
		if err := initPostgres(ctx, opts, cred); err != nil {
			return nil, err
		}
	}
	if err := writePostgresSettings(dataDir, opts.Settings, cred); err != nil {
		return nil, err
	}

	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if !PortFree(port) {
		return nil, fmt.Errorf("starting postgres: port %d on %s is in use", port, Loopback)
	}
	proc, err := StartProcess(ProcessSpec{
		Name:    "postgres",
		Path:    filepath.Join(opts.BinDir, "postgres"),
		Args:    []string{"-D", dataDir, "-p", strconv.Itoa(port)},
		Env:     postgresEnv(),
		Dir:     filepath.Dir(dataDir),
		LogPath: opts.LogPath,
		// SIGINT is Postgres's "fast" shutdown: it disconnects clients and
		// checkpoints. SIGTERM ("smart") would wait for every client to leave.
		StopSignal:        syscall.SIGINT,
		ParentDeathSignal: syscall.SIGINT,
		Credential:        cred,
	})
	if err != nil {
		return nil, err
	}
	pg := &Postgres{opts: opts, port: port, proc: proc}
	if err := pg.waitReady(ctx, 3*time.Minute); err != nil {
		_ = proc.Stop(30 * time.Second)
		return nil, err
	}
	return pg, nil
}

// Port is the TCP port the server listens on at 127.0.0.1.
func (p *Postgres) Port() int { return p.port }

// DataDir is the cluster's directory.
func (p *Postgres) DataDir() string { return p.opts.DataDir }

// LogPath is the server's log file.
func (p *Postgres) LogPath() string { return p.proc.LogPath() }

// Done is closed when the server process exits.
func (p *Postgres) Done() <-chan struct{} { return p.proc.Done() }

// URL is the connection URL of database db as the superuser.
func (p *Postgres) URL(db string) string { return postgresURL(p.port, db) }

func postgresURL(port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(PostgresSuperuser),
		Host:     hostPort(port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name; an existing database of that name is
// left as it is.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	pool, err := p.adminPool(ctx)
	if err != nil {
		return err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("checking for database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}

func (p *Postgres) adminPool(ctx context.Context) (*pgxpool.Pool, error) {
	p.poolOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(p.URL("postgres"))
		if err != nil {
			p.poolErr = fmt.Errorf("parsing admin URL: %w", err)
			return
		}
		cfg.MaxConns = 2
		p.pool, p.poolErr = pgxpool.NewWithConfig(ctx, cfg)
		if p.poolErr != nil {
			p.poolErr = fmt.Errorf("connecting to postgres: %w", p.poolErr)
		}
	})
	return p.pool, p.poolErr
}

// Stop shuts the server down (fast shutdown: clients are disconnected, a
// checkpoint is written) and kills it if that takes longer than a minute.
func (p *Postgres) Stop() error {
	if p.pool != nil {
		p.pool.Close()
	}
	if err := p.proc.Stop(time.Minute); err != nil {
		return fmt.Errorf("stopping postgres: %w", err)
	}
	return nil
}

func (p *Postgres) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attempt, p.URL("postgres"))
		if err == nil {
			err = conn.Ping(attempt)
			conn.Close(attempt)
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-p.proc.Done():
			return p.proc.exitedError("starting postgres")
		case <-ctx.Done():
			return fmt.Errorf("waiting for postgres on port %d: %w (last error: %v); see %s", p.port, ctx.Err(), lastErr, p.proc.LogPath())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FindPostgres returns the directory holding the Postgres server binaries:
// $PONTE_PG_BINDIR, the one `pg_config --bindir` names, or the newest
// /usr/lib/postgresql/*/bin. With wantMajor set ("15"), a directory of that
// major version is preferred.
func FindPostgres(wantMajor string) (string, error) {
	var candidates []string
	if dir := os.Getenv("PONTE_PG_BINDIR"); dir != "" {
		if !isPostgresBinDir(dir) {
			return "", fmt.Errorf("PONTE_PG_BINDIR=%s holds no initdb and postgres", dir)
		}
		return dir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionFromPath(b) - versionFromPath(a) })
	candidates = append(candidates, dirs...)
	candidates = append(candidates, "/usr/local/pgsql/bin")
	var found []string
	for _, dir := range candidates {
		if isPostgresBinDir(dir) {
			found = append(found, dir)
		}
	}
	if len(found) == 0 {
		return "", ErrPostgresNotInstalled
	}
	if wantMajor != "" {
		for _, dir := range found {
			if strings.Contains(dir, "/"+wantMajor+"/") {
				return dir, nil
			}
		}
	}
	return found[0], nil
}

// EnsurePostgres returns the Postgres server binaries' directory like
// FindPostgres, installing Debian's postgresql package with apt-get first
// when they are missing and we are root.
func EnsurePostgres(ctx context.Context) (string, error) {
	dir, err := FindPostgres("")
	if !errors.Is(err, ErrPostgresNotInstalled) {
		return dir, err
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w (not installing it: not running as root)", err)
	}
	if _, lookErr := exec.LookPath("apt-get"); lookErr != nil {
		return "", fmt.Errorf("%w (not installing it: apt-get not found)", err)
	}
	fmt.Fprintf(Progress, "installing Debian's %s package with apt-get...\n", PostgresPackage)
	for _, args := range [][]string{
		{"update"},
		{"install", "-y", "--no-install-recommends", PostgresPackage},
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return FindPostgres("")
}

var majorRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func postgresMajor(ctx context.Context, binDir string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("asking %s/postgres for its version: %w", binDir, err)
	}
	m := majorRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected `postgres --version` output %q", out)
	}
	return string(m[1]), nil
}

func isPostgresBinDir(dir string) bool {
	return fileExists(filepath.Join(dir, "initdb")) && fileExists(filepath.Join(dir, "postgres"))
}

func versionFromPath(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// postgresEnv is the environment of initdb and postgres: ours without the
// libpq variables that would redirect them, and a HOME they can read.
func postgresEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+os.TempDir(), "LC_ALL=C.UTF-8")
}

// postgresCredential says which user runs initdb and postgres: nil (this
// process's user) unless we are root, which Postgres refuses.
func postgresCredential(dataDir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var uid, gid uint32
	var name string
	if st, err := os.Stat(dataDir); err == nil && fileExists(filepath.Join(dataDir, "PG_VERSION")) {
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 0 {
			// An existing cluster keeps running as the user that owns it.
			uid, gid = sys.Uid, sys.Gid
			name = strconv.Itoa(int(uid))
			if u, err := user.LookupId(name); err == nil {
				name = u.Username
			}
		}
	}
	if name == "" {
		u, err := systemUser()
		if err != nil {
			return nil, err
		}
		name = u.Username
		id, _ := strconv.Atoi(u.Uid)
		g, _ := strconv.Atoi(u.Gid)
		uid, gid = uint32(id), uint32(g)
	}
	if err := checkTraversable(dataDir, uid, gid, name); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}, nil
}

// systemUser returns the `postgres` user (Debian's package creates it to own
// clusters) or a `ponte` system user, created when missing.
func systemUser() (*user.User, error) {
	if u, err := user.Lookup("postgres"); err == nil {
		return u, nil
	}
	if u, err := user.Lookup("ponte"); err == nil {
		return u, nil
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "ponte").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("Postgres refuses to run as root and there is no postgres user; creating a `ponte` system user: %w: %s", err, out)
	}
	u, err := user.Lookup("ponte")
	if err != nil {
		return nil, fmt.Errorf("looking up the ponte user just created: %w", err)
	}
	return u, nil
}

// checkTraversable makes sure user uid can reach dir: every existing
// ancestor must be searchable by it. Postgres then fails with a clear
// message instead of initdb's "could not change directory".
func checkTraversable(dir string, uid, gid uint32, name string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			mode := st.Mode().Perm()
			ok := mode&0o001 != 0 ||
				(sys.Gid == gid && mode&0o010 != 0) ||
				(sys.Uid == uid && mode&0o100 != 0)
			if !ok {
				return fmt.Errorf("postgres runs as user %q, which cannot enter %s (mode %v, owner uid %d); make it traversable (chmod o+x %s) or put the data directory elsewhere", name, d, mode, sys.Uid, d)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func initPostgres(ctx context.Context, opts PostgresOptions, cred *syscall.Credential) error {
	dataDir := opts.DataDir
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dataDir), err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dataDir, err)
	}
	if cred != nil {
		if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("handing %s to the postgres user: %w", dataDir, err)
		}
	}
	fmt.Fprintf(Progress, "initializing a Postgres cluster in %s...\n", dataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "initdb"),
		"-D", dataDir,
		"-U", PostgresSuperuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--locale=C",
	)
	cmd.Env = postgresEnv()
	cmd.Dir = filepath.Dir(dataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dataDir, err, out)
	}
	// Trust, but only over TCP from 127.0.0.1: the server listens nowhere
	// else and has no Unix socket.
	hba := "# Written by ponte: trust connections from this machine only.\n" +
		"# TYPE  DATABASE  USER  ADDRESS       METHOD\n" +
		"host    all       all   127.0.0.1/32  trust\n"
	if err := writeOwned(filepath.Join(dataDir, "pg_hba.conf"), hba, 0o600, cred); err != nil {
		return err
	}
	conf := filepath.Join(dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", conf, err)
	}
	_, err = f.WriteString("\n# Ponte's settings, rewritten at every start; override them with ALTER SYSTEM.\ninclude_if_exists = 'ponte.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", conf, err)
	}
	return nil
}

func writePostgresSettings(dataDir string, overrides map[string]string, cred *syscall.Credential) error {
	settings := DefaultPostgresSettings()
	maps.Copy(settings, overrides)
	var b strings.Builder
	b.WriteString("# Written by ponte at every start of this cluster; edits here are lost.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	return writeOwned(filepath.Join(dataDir, "ponte.conf"), b.String(), 0o600, cred)
}

// writeOwned writes a file in the cluster directory, owned by the cluster's
// user so the server can read it.
func writeOwned(path, content string, perm os.FileMode, cred *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if cred != nil {
		if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("handing %s to the postgres user: %w", path, err)
		}
	}
	return nil
}
