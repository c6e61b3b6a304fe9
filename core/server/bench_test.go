package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/deploy/localdev"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// benchEnv reads a benchmark knob from the environment (make bench sets none,
// so the defaults are the figures the issue asks for).
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// machine describes where a benchmark ran, printed with its figures.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, runtime.Version())
}

// BenchmarkIngressStripe is the ingress figure of `make bench`: signed Stripe
// webhooks through the real `ponte serve`, the real Stripe plugin process and
// the real Postgres (fsync on), from a load generator on the same machine.
//
// The load is open-loop: requests are scheduled at a fixed rate whatever the
// server's answers, and each latency is measured from the request's scheduled
// time, so a stalled server cannot hide its stall by slowing the generator
// down (coordinated omission). Every event is sent twice, the second time
// shortly after the first; afterwards every event must be stored exactly once.
//
// Knobs: PONTE_BENCH_RATE (requests/s, default 3000), PONTE_BENCH_SECONDS
// (default 30), PONTE_BENCH_CONNS (client connections, default 256).
func BenchmarkIngressStripe(b *testing.B) {
	rate := benchEnv("PONTE_BENCH_RATE", 3000)
	seconds := benchEnv("PONTE_BENCH_SECONDS", 30)
	conns := benchEnv("PONTE_BENCH_CONNS", 256)

	in := newInstallation(b, "stripe")
	profileDir := os.Getenv("PONTE_BENCH_PROFILE") // a folder: a 10 s CPU profile of `ponte serve` under load goes there
	var pprofAddr string
	if profileDir != "" {
		port, err := localdev.FreePort()
		if err != nil {
			b.Fatal(err)
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		in.env = append(in.env, "PONTE_PPROF_ADDR="+pprofAddr)
	}
	serve := in.start()
	const secret = "whsec_bench_ingress"
	connID, webhookURL := in.connectStripe(secret)

	// Prepare every signed delivery before the clock starts: the generator
	// must not compete with the server for CPU more than sending costs.
	total := rate * seconds
	type delivery struct {
		id   string
		body []byte
		sig  string
	}
	unique := make([]delivery, (total+1)/2)
	for i := range unique {
		id := fmt.Sprintf("evt_bench_%08d", i)
		body, sig := stripeEvent(b, secret, id, "payment_intent.succeeded", map[string]any{
			"id": "pi_" + id, "object": "payment_intent", "amount": 1999, "currency": "eur",
			"status": "succeeded", "metadata": map[string]string{"order": strconv.Itoa(i)},
		})
		unique[i] = delivery{id: id, body: body, sig: sig}
	}
	// Request k sends event k/2: each event twice, back to back in schedule
	// order, so the duplicate often races the original into the same batch.
	schedule := func(k int) delivery { return unique[k/2] }

	gen, err := newLoadGen(webhookURL, rate, conns, func(k int, headers []byte) ([]byte, []byte) {
		d := schedule(k)
		headers = append(headers, "Stripe-Signature: "...)
		headers = append(headers, d.sig...)
		return append(headers, "\r\nContent-Type: application/json\r\n"...), d.body
	})
	if err != nil {
		b.Fatal(err)
	}
	if profileDir != "" {
		go func() {
			time.Sleep(3 * time.Second)
			resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=10")
			if err != nil {
				b.Logf("profiling: %v", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(profileDir, "serve.cpu.pprof"))
			if err != nil {
				b.Logf("profiling: %v", err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}()
	}
	stripePID := serve.pluginPID(b, "stripe")
	serveCPU0, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	pluginCPU0, _ := testenv.CPUTicks(stripePID)
	generatorCPU0, _ := testenv.CPUTicks(os.Getpid())
	machineBusy0, machineTotal0 := testenv.CPUTicks(0)
	steal0, _ := testenv.CPUSteal()
	programs0 := testenv.CPUByProgram()
	b.ResetTimer()
	start := time.Now()
	results, late := gen.run(total)
	elapsed := time.Since(start)
	b.StopTimer()
	serveCPU1, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	pluginCPU1, _ := testenv.CPUTicks(stripePID)
	generatorCPU1, _ := testenv.CPUTicks(os.Getpid())
	machineBusy1, machineTotal1 := testenv.CPUTicks(0)
	steal1, _ := testenv.CPUSteal()
	perProgram := cpuByProgram(programs0, total)
	cpuPerRequest := func(ticks int64) time.Duration {
		return time.Duration(float64(ticks) / testenv.TicksPerSecond / float64(total) * float64(time.Second))
	}

	var ok int
	lat := make([]time.Duration, 0, total)
	statuses := map[int]int{}
	for _, r := range results {
		statuses[r.status]++
		if r.status == http.StatusOK {
			ok++
		}
		lat = append(lat, r.latency)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }

	// Every event answered 200 must be stored exactly once; none twice.
	db, err := pgx.Connect(context.Background(), in.dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(context.Background())
	var rows, distinct int
	if err := db.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT dedupe_key) FROM events WHERE connection_id = $1`, connID).Scan(&rows, &distinct); err != nil {
		b.Fatal(err)
	}
	lost := len(unique) - distinct
	duplicated := rows - distinct

	b.ReportMetric(float64(ok)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(duplicated), "duplicated")
	fmt.Printf("ingress: %d requests (%d events, each sent twice) at %d req/s for %ds, %d connections; "+
		"statuses %v; accepted %.0f/s; latency from scheduled send p50 %s p90 %s p99 %s max %s; "+
		"%d stored rows, %d lost, %d duplicated; generator late (>10ms) %d\n"+
		"CPU per request: ponte serve %s, stripe plugin %s, load generator %s; machine busy %.0f%%, hypervisor steal %.0f%% during the run\n"+
		"CPU per request by program (server.test is the load generator): %s\nmachine: %s\n",
		total, len(unique), rate, seconds, conns, statuses, float64(ok)/elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1], rows, lost, duplicated, late,
		cpuPerRequest(serveCPU1-serveCPU0), cpuPerRequest(pluginCPU1-pluginCPU0), cpuPerRequest(generatorCPU1-generatorCPU0),
		100*float64(machineBusy1-machineBusy0)/float64(max(1, machineTotal1-machineTotal0)), 100*float64(steal1-steal0)/float64(max(1, machineTotal1-machineTotal0)), perProgram, machine())
	if os.Getenv("PONTE_BENCH_METRICS") != "" {
		// The server's own view: time inside the handler and per group
		// commit, to tell queueing in front of the server from time in it.
		if resp, err := http.Get(in.url("/metrics")); err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.HasPrefix(line, "ponte_ingress_") && !strings.Contains(line, "# ") {
					fmt.Println(line)
				}
			}
		}
	}
	if lost != 0 || duplicated != 0 || ok != total {
		b.Errorf("lost %d, duplicated %d, non-200 %d", lost, duplicated, total-ok)
	}
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("reading the status of process %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// BenchmarkIdleMemory is the memory figure of `make bench`: the resident
// memory of an idle `ponte serve` (all roles: API, ingress, worker and
// dispatcher connected to Postgres and Temporal) plus its Stripe plugin, after
// a connection was made and one webhook handled, then PONTE_BENCH_IDLE_SECONDS
// (default 20) of idleness.
func BenchmarkIdleMemory(b *testing.B) {
	in := newInstallation(b, "stripe")
	serve := in.start()
	const secret = "whsec_bench_idle"
	_, webhookURL := in.connectStripe(secret)
	body, sig := stripeEvent(b, secret, "evt_idle_1", "payment_intent.succeeded", map[string]any{
		"id": "pi_idle", "object": "payment_intent", "amount": 100, "currency": "eur", "status": "succeeded",
	})
	if status, err := postWebhook(http.DefaultClient, webhookURL, map[string]string{"Stripe-Signature": sig}, body); err != nil || status != http.StatusOK {
		b.Fatalf("warm-up webhook: status %d, err %v", status, err)
	}
	time.Sleep(time.Duration(benchEnv("PONTE_BENCH_IDLE_SECONDS", 20)) * time.Second)

	stripePID := serve.pluginPID(b, "stripe")
	if stripePID == 0 {
		b.Fatal("no stripe plugin process")
	}
	serveRSS := rssBytes(b, serve.cmd.Process.Pid)
	pluginRSS := rssBytes(b, stripePID)
	const mb = 1 << 20
	b.ReportMetric(float64(serveRSS+pluginRSS)/mb, "total-MB")
	b.ReportMetric(float64(serveRSS)/mb, "serve-MB")
	b.ReportMetric(float64(pluginRSS)/mb, "stripe-plugin-MB")
	fmt.Printf("idle memory: ponte serve %.1f MB + stripe plugin %.1f MB = %.1f MB RSS (target < 120 MB)\nmachine: %s\n",
		float64(serveRSS)/mb, float64(pluginRSS)/mb, float64(serveRSS+pluginRSS)/mb, machine())
}
