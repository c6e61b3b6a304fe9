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

func newInstallation(t testing.TB) *installation {
	t.Helper()
	ponte := testenv.BuildBinary(t, "./cmd/ponte")
	stripePlugin := testenv.BuildBinary(t, "./connectors/stripe/cmd/ponte-connector-stripe")
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
			"PONTE_PLUGIN_DIR="+filepath.Dir(stripePlugin),
			"PONTE_HTTP_ADDR="+addr,
			"PONTE_TASK_QUEUE=e2e-"+strconv.FormatInt(time.Now().UnixNano(), 36),
			"PONTE_LOG_LEVEL=info",
		),
	}
	return inst
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
	logFile, err := os.OpenFile(filepath.Join(in.logDir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	cmd := exec.Command(in.ponte, "serve")
	cmd.Env = in.env
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
		resp, err := http.Get(in.url("/readyz"))
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

// pluginPIDs returns the pids of the serve process's plugin children.
func (p *serveProcess) pluginPIDs(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : end]
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if ppid == p.cmd.Process.Pid && strings.HasPrefix(comm, "ponte-connector") {
			pids = append(pids, pid)
		}
	}
	return pids
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
