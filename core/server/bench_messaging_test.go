package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/connectors/cloudapi"
	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/deploy/localdev"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// The WhatsApp number of the inbound benchmark.
const (
	benchPhoneNumberID = "550011223"
	benchWABA          = "550099887"
	benchAccessToken   = "EAAbench-inbound"
	benchAppSecret     = "app-secret-bench-inbound"
)

// benchInboundConnection creates the Cloud API connection of the inbound
// benchmark through the API and returns its id and webhook URL. The fake
// Graph API only gives the connection an api_base: inbound messages need no
// call to Meta.
func benchInboundConnection(b *testing.B, in *installation, fake *fakegraph.Server) (id, webhookURL string) {
	b.Helper()
	fake.AddNumber(fakegraph.Number{PhoneNumberID: benchPhoneNumberID, WABAID: benchWABA, AccessToken: benchAccessToken, Tier: 1000})
	var conn struct {
		ID         string `json:"id"`
		WebhookURL string `json:"webhook_url"`
	}
	status := in.call("POST", "/v1/connections", map[string]any{
		"connector": "cloudapi",
		"name":      "bench number",
		"config": map[string]any{
			"phone_number_id": benchPhoneNumberID, "waba_id": benchWABA, "access_token": benchAccessToken,
			"app_secret": benchAppSecret, "verify_token": "verify-bench", "throughput_tier": 1000,
			"api_base": fake.URL(),
		},
	}, &conn)
	if status != http.StatusCreated && status != http.StatusOK {
		b.Fatalf("creating the cloudapi connection: status %d\n%s", status, in.logs())
	}
	return conn.ID, conn.WebhookURL
}

// metaTextWebhook is the body Meta posts for one inbound text message, and
// its X-Hub-Signature-256 under the benchmark's app secret.
func metaTextWebhook(b *testing.B, fromDigits, wamid, text string, at time.Time) ([]byte, string) {
	b.Helper()
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id": benchWABA,
			"changes": []any{map[string]any{"field": "messages", "value": map[string]any{
				"messaging_product": "whatsapp",
				"metadata":          map[string]string{"display_phone_number": "15550001111", "phone_number_id": benchPhoneNumberID},
				"contacts":          []any{map[string]any{"profile": map[string]string{"name": "Customer " + fromDigits[len(fromDigits)-4:]}, "wa_id": fromDigits}},
				"messages": []any{map[string]any{
					"from": fromDigits, "id": wamid, "timestamp": strconv.FormatInt(at.Unix(), 10),
					"type": "text", "text": map[string]string{"body": text},
				}},
			}}},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body, cloudapi.Sign([]byte(benchAppSecret), body)
}

// BenchmarkInboundMessages is the inbound figure of `make bench`: signed
// WhatsApp message webhooks through the real `ponte serve`, the real Cloud
// API plugin process and the real Postgres (fsync on), each from a distinct
// sender with a distinct wamid, so every one creates a contact and a
// conversation besides storing the message.
//
// The load is open-loop, as in BenchmarkIngressStripe: requests are
// scheduled at a fixed rate and each latency is measured from the request's
// scheduled time. It reports accepted webhooks/s and p50/p99 (the webhook
// stored durably in the outbox and answered 200), then waits until the
// dispatcher applied every message (contacts, conversations and messages
// rows all there) and reports how long that lag took to drain after the last
// webhook and the apply rate over the whole run.
//
// Knobs: PONTE_BENCH_RATE (requests/s, default 2000), PONTE_BENCH_SECONDS
// (default 30), PONTE_BENCH_CONNS (client connections, default 256),
// PONTE_BENCH_PROFILE (a folder for a CPU profile of ponte serve),
// PONTE_BENCH_NOAPPLY (set: ponte serve runs without the worker role, so
// nothing is applied and the figures are those of accepting alone; the
// difference with a full run is what applying costs).
func BenchmarkInboundMessages(b *testing.B) {
	rate := benchEnv("PONTE_BENCH_RATE", 2000)
	seconds := benchEnv("PONTE_BENCH_SECONDS", 30)
	conns := benchEnv("PONTE_BENCH_CONNS", 256)

	in := newInstallation(b, "cloudapi")
	// PONTE_BENCH_PROFILE, a folder: a CPU profile of `ponte serve` from the
	// start of the load to the end of the drain goes there.
	profileDir := os.Getenv("PONTE_BENCH_PROFILE")
	var pprofAddr string
	if profileDir != "" {
		port, err := localdev.FreePort()
		if err != nil {
			b.Fatal(err)
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		in.env = append(in.env, "PONTE_PPROF_ADDR="+pprofAddr)
	}
	fake := fakegraph.New(b)
	noApply := os.Getenv("PONTE_BENCH_NOAPPLY") != ""
	if noApply {
		in.env = append(in.env, "PONTE_ROLES=api,ingress")
	}
	serve := in.start()
	connID, webhookURL := benchInboundConnection(b, in, fake)

	// Every signed delivery is prepared before the clock starts.
	total := rate * seconds
	type delivery struct {
		body []byte
		sig  string
	}
	deliveries := make([]delivery, total)
	now := time.Now()
	for i := range deliveries {
		body, sig := metaTextWebhook(b, fmt.Sprintf("39377%07d", i), fmt.Sprintf("wamid.BENCHIN%08d", i), "ciao, è arrivato il mio ordine?", now)
		deliveries[i] = delivery{body: body, sig: sig}
	}

	gen, err := newLoadGen(webhookURL, rate, conns, func(k int, headers []byte) ([]byte, []byte) {
		d := deliveries[k]
		headers = append(headers, "X-Hub-Signature-256: "...)
		headers = append(headers, d.sig...)
		return append(headers, "\r\nContent-Type: application/json\r\n"...), d.body
	})
	if err != nil {
		b.Fatal(err)
	}
	db, err := pgx.Connect(context.Background(), in.dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(context.Background())
	// applied counts what the dispatcher finished: messages stored, and the
	// contacts and conversations they created.
	applied := func() (messages, contacts, conversations int) {
		if err := db.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM messages WHERE connection_id = $1 AND direction = 'in'),
       (SELECT count(*) FROM contacts WHERE tenant_id = $2),
       (SELECT count(*) FROM conversations WHERE connection_id = $1)`, connID, in.tenantID).
			Scan(&messages, &contacts, &conversations); err != nil {
			b.Fatalf("counting applied messages: %v", err)
		}
		return messages, contacts, conversations
	}

	profiled := make(chan struct{})
	if profileDir != "" {
		go func() {
			defer close(profiled)
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, seconds+10))
			if err != nil {
				b.Logf("profiling: %v", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(profileDir, "serve-inbound.cpu.pprof"))
			if err != nil {
				b.Logf("profiling: %v", err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}()
	} else {
		close(profiled)
	}
	pluginPID := serve.pluginPID(b, "cloudapi")
	serveCPU0, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	pluginCPU0, _ := testenv.CPUTicks(pluginPID)
	machineBusy0, machineTotal0 := testenv.CPUTicks(0)
	steal0, _ := testenv.CPUSteal()
	programs0 := testenv.CPUByProgram()
	b.ResetTimer()
	start := time.Now()
	results, late := gen.run(total)
	sent := time.Now()
	elapsed := sent.Sub(start)
	appliedAtEnd, _, _ := applied()

	// Wait for the dispatcher to apply everything accepted.
	var ok int
	for _, r := range results {
		if r.status == http.StatusOK {
			ok++
		}
	}
	// Wait on the outbox's pending index, which shrinks as the dispatcher
	// works: counting the applied rows instead (three full counts of growing
	// tables) cost Postgres tens of milliseconds a poll and slowed the very
	// drain it measured, and so did counting the pending rows (2,000 buffers
	// and 40 ms a poll, 40% of a core at 10 polls a second). Whether one is
	// left is the first live entry of that index. The rows are counted once
	// at the end. Even so a poll walks the index entries of events
	// dispatched since the last vacuum (23 ms a poll at 1,000 webhooks/s,
	// pg_stat_statements): twice a second keeps that under a twentieth of
	// what the run costs Postgres, for a drain time to the half second.
	deadline := sent.Add(10 * time.Minute)
	for !noApply {
		var pending bool
		if err := db.QueryRow(context.Background(),
			`SELECT EXISTS (SELECT 1 FROM event_dispatch d JOIN events e ON e.id = d.event_id WHERE d.dispatched_at IS NULL AND e.connection_id = $1)`, connID).Scan(&pending); err != nil {
			b.Fatalf("looking for pending events: %v", err)
		}
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("after 10 minutes events are still pending")
		}
		time.Sleep(500 * time.Millisecond)
	}
	drained := time.Now()
	messages, contacts, conversations := applied()
	b.StopTimer()
	<-profiled
	serveCPU1, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	pluginCPU1, _ := testenv.CPUTicks(pluginPID)
	machineBusy1, machineTotal1 := testenv.CPUTicks(0)
	steal1, _ := testenv.CPUSteal()
	perProgram := cpuByProgram(programs0, total)
	cpuPerMessage := func(ticks int64) time.Duration {
		return time.Duration(float64(ticks) / testenv.TicksPerSecond / float64(total) * float64(time.Second))
	}

	lat := make([]time.Duration, 0, total)
	statuses := map[int]int{}
	for _, r := range results {
		statuses[r.status]++
		lat = append(lat, r.latency)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	var stored int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE connection_id = $1 AND type = 'message.received'`, connID).
		Scan(&stored); err != nil {
		b.Fatal(err)
	}

	drain := drained.Sub(sent)
	applyRate := float64(messages) / drained.Sub(start).Seconds()
	b.ReportMetric(float64(ok)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(drain.Seconds(), "drain-s")
	b.ReportMetric(applyRate, "applied/s")
	fmt.Printf("inbound: %d signed message webhooks (distinct senders and wamids) at %d req/s for %ds, %d connections; "+
		"statuses %v; accepted %.0f/s; latency from scheduled send p50 %s p90 %s p99 %s max %s; generator late (>10ms) %d\n"+
		"stored events %d; applied when the load ended %d; all applied (%d messages, %d contacts, %d conversations) %s after the last webhook; "+
		"apply rate over the run %.0f/s\n"+
		"CPU per message (accept and apply): ponte serve %s, cloudapi plugin %s; machine busy %.0f%%, hypervisor steal %.0f%% until drained\n"+
		"CPU per message by program (server.test is the load generator): %s\nmachine: %s\n",
		total, rate, seconds, conns, statuses, float64(ok)/elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1], late,
		stored, appliedAtEnd, messages, contacts, conversations, drain.Round(time.Millisecond), applyRate,
		cpuPerMessage(serveCPU1-serveCPU0), cpuPerMessage(pluginCPU1-pluginCPU0),
		100*float64(machineBusy1-machineBusy0)/float64(max(1, machineTotal1-machineTotal0)), 100*float64(steal1-steal0)/float64(max(1, machineTotal1-machineTotal0)), perProgram, machine())
	if ok != total || stored != total || (messages != total && !noApply) {
		b.Errorf("non-200 %d, stored %d of %d events, applied %d messages", total-ok, stored, total, messages)
	}
}
