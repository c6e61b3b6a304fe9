package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/localdev"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// installation is one Ponte installation for an end-to-end test: its own
// database and task queue on the shared Postgres and Temporal servers, the real
// `ponte` binary and the real Stripe plugin.
type installation struct {
	t         testing.TB
	env       []string
	dbURL     string
	addr      string
	ponte     string
	stripeAPI string
	apiKey    string
	tenantID  string
	logDir    string
}

// The connectors an installation runs unless a test names others.
var defaultConnectors = []string{"stripe", "cloudapi"}

func newInstallation(t testing.TB, connectors ...string) *installation {
	t.Helper()
	ponte := testenv.BuildBinary(t, "./cmd/ponte")
	if len(connectors) == 0 {
		connectors = defaultConnectors
	}
	var binaries []string
	for _, name := range connectors {
		binaries = append(binaries, testenv.BuildBinary(t, "./connectors/"+name+"/cmd/ponte-connector-"+name))
	}
	pluginDir := pluginDir(t, binaries...)
	dbURL := testenv.PostgresURL(t)
	temporalAddr := testenv.TemporalAddress(t)
	stripeAPI := testenv.StripeMockURL(t)

	ctx := context.Background()
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	st, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	defer st.Close()
	tenant, err := st.CreateTenant(ctx, "e2e")
	if err != nil {
		t.Fatalf("creating tenant: %v", err)
	}
	_, key, err := st.CreateAPIKey(ctx, tenant.ID, "e2e", []string{"admin"})
	if err != nil {
		t.Fatalf("creating key: %v", err)
	}

	port, err := localdev.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logDir := t.TempDir()
	inst := &installation{
		t: t, dbURL: dbURL, addr: addr, ponte: ponte, stripeAPI: stripeAPI,
		apiKey: key, tenantID: tenant.ID, logDir: logDir,
		env: append(os.Environ(),
			"DATABASE_URL="+dbURL,
			"TEMPORAL_ADDRESS="+temporalAddr,
			"TEMPORAL_NAMESPACE=default",
			"PONTE_MASTER_KEY="+secrets.GenerateMasterKey(),
			"PONTE_PLUGIN_DIR="+pluginDir,
			"PONTE_HTTP_ADDR="+addr,
			"PONTE_TASK_QUEUE=e2e-"+strconv.FormatInt(time.Now().UnixNano(), 36),
			"PONTE_LOG_LEVEL=info",
		),
	}
	return inst
}

// pluginDir returns a plugin directory holding the given plugin binaries.
func pluginDir(t testing.TB, binaries ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, bin := range binaries {
		dst := filepath.Join(dir, filepath.Base(bin))
		if err := os.Link(bin, dst); err != nil {
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func (in *installation) url(path string) string { return "http://" + in.addr + path }

// serveProcess is one running `ponte serve`.
type serveProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs `ponte serve` and waits until /readyz says ready.
func (in *installation) start() *serveProcess {
	in.t.Helper()
	return in.startAt(in.addr, "serve.log")
}

// startAt runs another `ponte serve` of the installation (a node sharing its
// database and task queue) listening on addr and logging to logName in the
// log directory, and waits until it is ready.
func (in *installation) startAt(addr, logName string, extraEnv ...string) *serveProcess {
	in.t.Helper()
	logFile, err := os.OpenFile(filepath.Join(in.logDir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	cmd := exec.Command(in.ponte, "serve")
	cmd.Env = append(append(slices.Clone(in.env), "PONTE_HTTP_ADDR="+addr, "PONTE_NODE_URL=http://"+addr), extraEnv...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("starting ponte serve: %v", err)
	}
	p := &serveProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	in.t.Cleanup(func() { p.kill() })

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			in.t.Fatalf("ponte serve exited during start:\n%s", in.logs())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.t.Fatalf("ponte serve not ready after 60s:\n%s", in.logs())
	return nil
}

// kill sends SIGKILL to the serve process and to its plugins (its process
// group), as a machine crash would, and waits for it to be gone.
func (p *serveProcess) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// pluginPID returns the pid of the serve process's plugin of the named
// connector (its binary is ponte-connector-NAME), or 0.
func (p *serveProcess) pluginPID(t testing.TB, connector string) int {
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
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm is cut at 15 bytes, so the name
		// comes from the command line.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid != p.cmd.Process.Pid {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if filepath.Base(argv0) == "ponte-connector-"+connector {
			return pid
		}
	}
	return 0
}

func (in *installation) logs() string {
	b, _ := os.ReadFile(filepath.Join(in.logDir, "serve.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// call makes an authenticated API call and decodes the JSON answer into out.
func (in *installation) call(method, path string, body any, out any, headers ...string) int {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			in.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.url(path), rd)
	if err != nil {
		in.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.apiKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			in.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		in.t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// connectStripe creates a Stripe connection pointed at stripe-mock.
func (in *installation) connectStripe(webhookSecret string) (id, webhookURL string) {
	in.t.Helper()
	var conn struct {
		ID         string `json:"id"`
		WebhookURL string `json:"webhook_url"`
	}
	status := in.call("POST", "/v1/connections", map[string]any{
		"connector": "stripe",
		"name":      "payments",
		"config": map[string]any{
			"secret_key":     "sk_test_e2e",
			"webhook_secret": webhookSecret,
			"api_base":       in.stripeAPI,
		},
	}, &conn)
	if status != http.StatusCreated && status != http.StatusOK {
		in.t.Fatalf("creating the stripe connection: status %d\n%s", status, in.logs())
	}
	return conn.ID, conn.WebhookURL
}

// postWebhook sends a raw webhook delivery and returns the status.
func postWebhook(client *http.Client, url string, headers map[string]string, body []byte) (int, error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
