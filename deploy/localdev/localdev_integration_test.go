package localdev

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tempDir makes a directory that an unprivileged Postgres user can enter:
// t.TempDir's parent is private (0700) to the test's user.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ponte-localdev-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func repoBin(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..", "bin")
}

func TestIntegrationPostgresKeepsDataAcrossRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := tempDir(t)
	opts := PostgresOptions{
		DataDir:  filepath.Join(dir, "pg"),
		LogPath:  filepath.Join(dir, "log", "postgres.log"),
		Settings: map[string]string{"shared_buffers": "32MB"},
	}
	pg, err := StartPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateDatabase(ctx, "ponte"); err != nil {
		t.Fatal(err)
	}
	// Creating it again is not an error: `ponte dev` does it at every start.
	if err := pg.CreateDatabase(ctx, "ponte"); err != nil {
		t.Fatalf("second CreateDatabase: %v", err)
	}
	conn, err := pgx.Connect(ctx, pg.URL("ponte"))
	if err != nil {
		t.Fatal(err)
	}
	var listen, fsync string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" || fsync != "on" {
		t.Errorf("listen_addresses = %q, fsync = %q; want 127.0.0.1 and on", listen, fsync)
	}
	assertLoopbackOnly(t, "postgres", pg.proc.Pid())
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	pg2, err := StartPostgres(ctx, opts)
	if err != nil {
		t.Fatalf("restarting on the same data dir: %v", err)
	}
	defer pg2.Stop()
	conn, err = pgx.Connect(ctx, pg2.URL("ponte"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "still here" {
		t.Errorf("got %q after restart", v)
	}
}

func TestIntegrationStripeMock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := StripeMockBinary(ctx, repoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	sm, err := StartStripeMock(ctx, StripeMockOptions{Binary: bin, LogPath: filepath.Join(dir, "stripe-mock.log")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sm.URL()+"/v1/payment_links", nil)
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/payment_links: %d", resp.StatusCode)
	}
	assertLoopbackOnly(t, "stripe-mock", sm.proc.Pid())
	if err := sm.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(sm.URL() + "/v1/customers"); err == nil {
		t.Error("stripe-mock still answers after Stop")
	}
}

// listenAddrs returns the local addresses of the TCP sockets in LISTEN state
// that process pid holds, read from /proc, as "ip:port" in hex as the kernel
// writes them (0100007F is 127.0.0.1).
func listenAddrs(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var addrs []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st ... inode is field 9.
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				addrs = append(addrs, f[1])
			}
		}
	}
	return addrs
}

// assertLoopbackOnly fails unless every listening socket of pid is on
// 127.0.0.1, and it has at least one.
func assertLoopbackOnly(t *testing.T, name string, pid int) {
	t.Helper()
	addrs := listenAddrs(t, pid)
	if len(addrs) == 0 {
		t.Errorf("%s (pid %d) listens nowhere that /proc shows", name, pid)
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "0100007F:") {
			t.Errorf("%s listens on %s, not on 127.0.0.1", name, a)
		}
	}
}

func TestIntegrationTemporalListensOnLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin, err := TemporalBinary(ctx, repoBin(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	tmp, err := StartTemporal(ctx, TemporalOptions{
		Binary:  bin,
		DBFile:  filepath.Join(dir, "temporal.db"),
		UI:      true,
		LogPath: filepath.Join(dir, "temporal.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Stop()
	if err := CheckTemporal(ctx, tmp.Address(), "default"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(tmp.UIURL())
	if err != nil {
		t.Fatalf("web UI: %v", err)
	}
	resp.Body.Close()
	assertLoopbackOnly(t, "temporal", tmp.proc.Pid())
	t.Logf("temporal listens on %v", listenAddrs(t, tmp.proc.Pid()))
	if n := len(listenAddrs(t, tmp.proc.Pid())); n < 4 {
		t.Errorf("temporal has %d listening sockets; expected frontend, HTTP, UI, metrics and services", n)
	}
	if err := tmp.Stop(); err != nil {
		t.Fatal(err)
	}
	if listening(tmp.port) {
		t.Error("frontend still listening after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "temporal.db")); err != nil {
		t.Errorf("no SQLite file: %v", err)
	}
}
