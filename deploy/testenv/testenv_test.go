package testenv

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		test string
		seq  int64
		want string
	}{
		"plain":       {"TestX", 1, "t_testx_1"},
		"subtest":     {"TestIngress/Duplicate delivery", 12, "t_testingress_duplicate_delivery_12"},
		"punctuation": {"TestA/#01-b", 3, "t_testa_01_b_3"},
		"long":        {"Test" + strings.Repeat("x", 100), 7, "t_test" + strings.Repeat("x", 63-len("t_test")-len("_7")) + "_7"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := databaseName(tc.test, tc.seq)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("databaseName(%q, %d) (-want +got):\n%s", tc.test, tc.seq, diff)
			}
			if len(got) > 63 {
				t.Errorf("%q is longer than Postgres's 63-byte limit", got)
			}
		})
	}
}

func TestIntegrationPostgresURLGivesEachCallItsOwnDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := PostgresURL(t), PostgresURL(t)
	if a == b {
		t.Fatalf("two calls returned the same URL %s", a)
	}
	connA, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer connA.Close(ctx)
	connB, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer connB.Close(ctx)
	if _, err := connA.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connB.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second database has %d tables; want a fresh, empty one", n)
	}
	var host string
	if err := connA.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&host); err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" {
		t.Errorf("server address %s; want 127.0.0.1", host)
	}
}

func TestIntegrationPostgresURLInParallel(t *testing.T) {
	t.Parallel()
	for i := range 4 {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, PostgresURL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func echo(_ workflow.Context, s string) (string, error) { return "echo: " + s, nil }

func TestIntegrationTemporalAddressRunsWorkflows(t *testing.T) {
	t.Parallel()
	c, err := client.Dial(client.Options{HostPort: TemporalAddress(t), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "testenv", worker.Options{})
	w.RegisterWorkflow(echo)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "testenv"}, echo, "hi")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != "echo: hi" {
		t.Errorf("workflow returned %q", got)
	}
	if again := TemporalAddress(t); again != TemporalAddress(t) {
		t.Errorf("TemporalAddress changed between calls")
	}
}

func TestIntegrationStripeMockURL(t *testing.T) {
	t.Parallel()
	base := StripeMockURL(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("URL %s is not on 127.0.0.1", base)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/payment_links", strings.NewReader("line_items[0][price]=price_123&line_items[0][quantity]=1"))
	req.Header.Set("Authorization", "Bearer sk_test_123")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /v1/payment_links: %d", resp.StatusCode)
	}
}

func TestIntegrationBuildBinary(t *testing.T) {
	t.Parallel()
	path := BuildBinary(t, "./deploy/testenv/testdata/hello")
	if again := BuildBinary(t, "./deploy/testenv/testdata/hello"); again != path {
		t.Errorf("second build returned %s, first %s", again, path)
	}
	if filepath.Base(path) != "hello" {
		t.Errorf("binary is named %s; want hello", filepath.Base(path))
	}
	out, err := exec.Command(path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "hello from") {
		t.Errorf("binary printed %q", out)
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root := RepoRoot(t)
	// The tests run in deploy/testenv, two levels below the root.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Dir(filepath.Dir(wd)); root != want {
		t.Errorf("RepoRoot = %s; want %s", root, want)
	}
}
