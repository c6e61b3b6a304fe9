package linkeddevice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func asSDK(err error, target **sdk.Error) bool { return errors.As(err, target) }

const pluginPkg = "./connectors/linkeddevice/cmd/ponte-connector-linkeddevice"

// buildPlugin builds the plugin's main with the given build tags into dir.
func buildPlugin(t testing.TB, dir string, tags ...string) string {
	t.Helper()
	out := filepath.Join(dir, "ponte-connector-linkeddevice")
	args := []string{"build", "-o", out}
	// PONTE_TEST_PLUGIN_RACE=1 builds the plugin with the race detector,
	// so the plugin process's own goroutines are checked too.
	if os.Getenv("PONTE_TEST_PLUGIN_RACE") == "1" {
		args = append(args, "-race")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pluginPkg)...)
	cmd.Dir = testenv.RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", tags, err, b)
	}
	return out
}

// withEnv returns the path of a launcher that starts bin with env added:
// testkit.StartBinary passes the plugin only its log level, as the host
// passes only what a plugin needs, and the host's Options.PluginEnv is what
// gives this plugin its store. exec keeps the plugin's pid the launcher's.
func withEnv(t testing.TB, bin string, env map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for k, v := range env {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	fmt.Fprintf(&b, "exec %s\n", shellQuote(bin))
	p := filepath.Join(t.TempDir(), "launch.sh")
	if err := os.WriteFile(p, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// pluginPID finds the running process of the plugin binary at bin.
func pluginPID(t testing.TB, bin string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == bin {
			return pid
		}
	}
	t.Fatalf("no running process of %s", bin)
	return 0
}

// rssKB reads a process's resident set size from /proc.
func rssKB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// plugin is a running plugin binary with its host.
type plugin struct {
	bin       *testkit.Binary
	host      *testkit.MemoryHost
	manifest  sdk.Manifest
	validator *hostrpc.ParamValidator
}

func startPlugin(t testing.TB, path string, host *testkit.MemoryHost, level string) *plugin {
	t.Helper()
	bin := testkit.StartBinary(t, path, host, level)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, _, err := bin.Client.Manifest(ctx)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	v, err := hostrpc.NewParamValidator(m)
	if err != nil {
		t.Fatalf("the host would refuse the manifest: %v", err)
	}
	return &plugin{bin: bin, host: host, manifest: m, validator: v}
}

// invoke validates params as the host does and runs an action.
func (p *plugin) invoke(t testing.TB, conn sdk.Connection, action string, params any) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator.Validate(action, raw); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.bin.Client.Invoke(ctx, sdk.ActionCall{Connection: conn, Action: action, Params: raw})
}

// mustInvoke runs an action that must succeed and decodes its result.
func (p *plugin) mustInvoke(t testing.TB, conn sdk.Connection, action string, params any, out any) {
	t.Helper()
	res, err := p.invoke(t, conn, action, params)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			t.Fatalf("%s result %s: %v", action, res, err)
		}
	}
}

func (p *plugin) open(t testing.TB, conn sdk.Connection) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.bin.Client.OpenSession(ctx, conn); err != nil {
		t.Fatalf("OpenSession %s: %v", conn.ID, err)
	}
}

// waitUpdate waits for a session update of conn after the first `after`
// ones that satisfies ok, and returns it with its index.
func waitUpdate(t testing.TB, host *testkit.MemoryHost, conn string, after int, timeout time.Duration, ok func(sdk.SessionUpdate) bool) (sdk.SessionUpdate, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var found sdk.SessionUpdate
	idx := -1
	host.WaitFor(ctx, func() bool {
		us := host.SessionUpdates(conn)
		for i := after; i < len(us); i++ {
			if ok(us[i]) {
				found, idx = us[i], i
				return true
			}
		}
		return false
	})
	if idx < 0 {
		t.Fatalf("no matching session update for %s after #%d within %v; updates: %+v", conn, after, timeout, host.SessionUpdates(conn))
	}
	return found, idx
}

func stateIs(s sdk.SessionState) func(sdk.SessionUpdate) bool {
	return func(u sdk.SessionUpdate) bool { return u.State == s }
}

// waitEvent waits for the event with the dedupe key.
func waitEvent(t testing.TB, host *testkit.MemoryHost, conn, key string) sdk.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var found *sdk.Event
	host.WaitFor(ctx, func() bool {
		for _, e := range host.Events(conn) {
			if e.DedupeKey == key {
				found = &e
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("no event %s for %s; events: %d", key, conn, len(host.Events(conn)))
	}
	return *found
}
