package localdev

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFreePortNeverRepeatsAndIsBindable(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", hostPort(p))
	if err != nil {
		t.Fatalf("binding the port FreePort returned: %v", err)
	}
	defer l.Close()
	if PortFree(p) {
		t.Errorf("PortFree(%d) = true while we listen on it", p)
	}
	if got, err := pickPort(p); err != nil || got == p {
		t.Errorf("pickPort(busy %d) = %d, %v; want another port", p, got, err)
	}
}

func TestTailFileSkipsOurMarkers(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.log")
	earlier := "an earlier run\n"
	content := earlier + logMarker + " start\none\ntwo\nthree\n" + logMarker + " exited\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		n    int
		want string
	}{
		"fewer than there are": {2, "two\nthree"},
		"all of this run":      {10, "one\ntwo\nthree"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, tailFile(path, int64(len(earlier)), tc.n)); diff != "" {
				t.Errorf("tailFile (-want +got):\n%s", diff)
			}
		})
	}
	if got := tailFile(path, 0, 10); !strings.HasPrefix(got, "an earlier run\n") {
		t.Errorf("tail from 0 = %q; want the whole file", got)
	}
	if got := tailFile(filepath.Join(t.TempDir(), "missing"), 0, 3); got != "" {
		t.Errorf("tail of a missing file = %q", got)
	}
}

func TestProbeAddr(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"loopback":    {"127.0.0.1:8080", "127.0.0.1:8080"},
		"empty host":  {":8080", "127.0.0.1:8080"},
		"unspecified": {"0.0.0.0:9000", "127.0.0.1:9000"},
		"ipv6 any":    {"[::]:9000", "127.0.0.1:9000"},
		"named host":  {"localhost:8080", "localhost:8080"},
		"no port":     {"garbage", "garbage"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, probeAddr(tc.in)); diff != "" {
				t.Errorf("probeAddr(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	t.Parallel()
	got := mergeEnv([]string{"A=1", "DATABASE_URL=outer", "B=x=y"}, map[string]string{"DATABASE_URL": "inner", "C": "3"})
	slices.Sort(got)
	want := []string{"A=1", "B=x=y", "C=3", "DATABASE_URL=inner"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mergeEnv (-want +got):\n%s", diff)
	}
}

func TestPickHTTPAddr(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Not defer: the parallel subtests run after this function returns.
	t.Cleanup(func() { busy.Close() })
	free, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		remembered string
		same       bool // want the remembered address back
	}{
		"free remembered port is kept": {hostPort(free), true},
		"busy remembered port moves":   {busy.Addr().String(), false},
		"other host falls back":        {"0.0.0.0:1", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := pickHTTPAddr(tc.remembered)
			if err != nil {
				t.Fatal(err)
			}
			if (got == tc.remembered) != tc.same {
				t.Errorf("pickHTTPAddr(%q) = %q", tc.remembered, got)
			}
			if !strings.HasPrefix(got, Loopback+":") {
				t.Errorf("address %q is not on %s", got, Loopback)
			}
		})
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	key, err := loadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("key %q is not base64 of 32 bytes (err %v)", key, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v; want 0600", st.Mode().Perm())
	}
	again, err := loadOrCreateMasterKey(path)
	if err != nil || again != key {
		t.Errorf("second load = %q, %v; want the same key", again, err)
	}
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateMasterKey(empty); err == nil {
		t.Error("an empty key file was accepted")
	}
}

func TestDevStateRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dev.json")
	if s, err := loadDevState(path); err != nil || s != (devState{}) {
		t.Fatalf("missing file: %+v, %v", s, err)
	}
	want := devState{PostgresPort: 1, TemporalPort: 2, TemporalUIPort: 3, HTTPAddr: "127.0.0.1:4"}
	if err := saveDevState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadDevState(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDevState(path); err == nil {
		t.Error("a corrupt state file was accepted")
	}
}

func TestCheckTraversable(t *testing.T) {
	t.Parallel()
	base := tempDir(t) // world-searchable, unlike t.TempDir's parent
	open := filepath.Join(base, "open")
	closed := filepath.Join(base, "closed")
	groupOnly := filepath.Join(base, "group")
	for dir, mode := range map[string]os.FileMode{open: 0o755, closed: 0o700, groupOnly: 0o710} {
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(base)
	owner := st.Sys().(*syscall.Stat_t)
	stranger := uint32(owner.Uid + 12345)
	tests := map[string]struct {
		dir      string
		uid, gid uint32
		wantErr  bool
	}{
		"world-searchable parent":   {filepath.Join(open, "pg"), stranger, stranger, false},
		"private parent":            {filepath.Join(closed, "pg"), stranger, stranger, true},
		"private parent, its owner": {filepath.Join(closed, "pg"), owner.Uid, owner.Gid, false},
		"group-searchable, member":  {filepath.Join(groupOnly, "pg"), stranger, owner.Gid, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := checkTraversable(tc.dir, tc.uid, tc.gid, "tester")
			if (err != nil) != tc.wantErr {
				t.Errorf("checkTraversable(%s, uid %d) = %v; want error %v", tc.dir, tc.uid, err, tc.wantErr)
			}
		})
	}
}

func TestDefaultPostgresSettingsAreDurableAndLocal(t *testing.T) {
	t.Parallel()
	s := DefaultPostgresSettings()
	want := map[string]string{
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"full_page_writes":        "on",
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "''",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %q; want %q", k, s[k], v)
		}
	}
}

// supervisorSpec runs a shell snippet as the supervised server.
func supervisorSpec(t *testing.T, script string) ProcessSpec {
	return ProcessSpec{Name: "fake serve", Path: "/bin/sh", Args: []string{"-c", script}, LogPath: filepath.Join(t.TempDir(), "serve.log")}
}

func TestSupervisorRestartsWithGrowingBackoff(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := serveSupervisor{
		spec:         supervisorSpec(t, "echo dying; exit 7"),
		readyURL:     "http://127.0.0.1:1/readyz",
		out:          out,
		readyTimeout: time.Hour,
		onFirstReady: func() { t.Error("a crashing server was reported ready") },
		minBackoff:   10 * time.Millisecond,
		maxBackoff:   40 * time.Millisecond,
		stableAfter:  time.Hour,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	waitFor(t, "five restarts", 30*time.Second, func() bool { return strings.Count(out.String(), "exited (exit status 7)") >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel", err)
	}
	o := out.String()
	for _, want := range []string{"restarting in 10ms", "restarting in 20ms", "restarting in 40ms", "dying"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "restarting in 80ms") {
		t.Errorf("backoff exceeded its maximum:\n%s", o)
	}
}

func TestSupervisorStopsServeWhenADependencyDies(t *testing.T) {
	t.Parallel()
	pgDone := make(chan struct{})
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := serveSupervisor{
		spec:         supervisorSpec(t, "echo $$ > "+pidFile+"; exec sleep 60"),
		readyURL:     "http://127.0.0.1:1/readyz",
		out:          &syncBuffer{},
		readyTimeout: time.Hour,
		onFirstReady: func() {},
		pgDone:       pgDone,
	}
	done := make(chan error, 1)
	go func() { done <- s.run(context.Background()) }()
	var pid int
	waitFor(t, "the server to start", 10*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || len(b) == 0 {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	close(pgDone)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "postgres exited") {
			t.Errorf("run returned %v; want a postgres error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after postgres died")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the server (pid %d) is still alive: %v", pid, err)
	}
}

func TestProcessStopKillsWhatIgnoresTheSignal(t *testing.T) {
	t.Parallel()
	p, err := StartProcess(ProcessSpec{
		Name:    "stubborn",
		Path:    "/bin/sh",
		Args:    []string{"-c", "trap '' TERM; sleep 60 & wait"},
		LogPath: filepath.Join(t.TempDir(), "x.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	start := time.Now()
	err = p.Stop(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Errorf("Stop = %v; want a 'was killed' error", err)
	}
	if !p.Exited() {
		t.Error("process still running after Stop")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Stop took %s", time.Since(start))
	}
	// The shell's child (sleep) was in the same group and must be gone too.
	waitFor(t, "the process group to die", 5*time.Second, func() bool { return len(liveGroupMembers(p.Pid())) == 0 })
	if err2 := p.Stop(time.Second); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Stop = %v; want the first result again", err2)
	}
}

// liveGroupMembers lists the pids in process group pgid that are not
// zombies (a container's init may be slow to reap the orphans we killed).
func liveGroupMembers(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			pids = append(pids, pid)
		}
	}
	return pids
}
