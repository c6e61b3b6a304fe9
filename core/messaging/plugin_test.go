package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// cloudRig is the real thing end to end: Postgres, the Cloud API plugin
// process under the plugin host, the fake Graph API, and webhooks coming back
// through the real ingress into the events table.
type cloudRig struct {
	*pgRig
	fake    *fakegraph.Server
	host    *pluginhost.Host
	invoker *invoke.Invoker
	consent *consent.Service
	svc     *Service
	hooks   *httptest.Server
}

const (
	rigPhoneNumberID = "100200300"
	rigWABA          = "900800700"
	rigToken         = "EAAtoken-messaging-tests"
	rigAppSecret     = "app-secret-messaging"
)

func newCloudRig(t testing.TB, tier, poolSize int) *cloudRig {
	t.Helper()
	ctx := context.Background()
	bin := testenv.BuildBinary(t, "./connectors/cloudapi/cmd/ponte-connector-cloudapi")
	dir := t.TempDir()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ponte-connector-cloudapi"), b, 0o755); err != nil {
		t.Fatal(err)
	}

	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	key, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	st, err := store.Open(ctx, withPoolSize(url, poolSize), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	committer := ingress.NewCommitter(st.Pool(), ingress.CommitterConfig{})
	t.Cleanup(committer.Close)
	services := ingress.NewServices(st, nil, committer, st)
	host, err := pluginhost.New(ctx, pluginhost.Options{Dir: dir, Services: services, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	services.SetConnectors(host)
	cl, err := host.Connector("cloudapi")
	if err != nil {
		t.Fatal(err)
	}

	fake := fakegraph.New(t)
	fake.AddNumber(fakegraph.Number{PhoneNumberID: rigPhoneNumberID, WABAID: rigWABA, AccessToken: rigToken, Tier: tier})

	ten, err := st.CreateTenant(ctx, "messaging")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"phone_number_id": rigPhoneNumberID, "waba_id": rigWABA,
		"access_token": rigToken, "app_secret": rigAppSecret, "verify_token": "verify-me",
		"throughput_tier": tier, "api_base": fake.URL()})
	conn, err := st.CreateConnection(ctx, ten.ID, store.NewConnection{Connector: "cloudapi", Name: "number",
		Config: cfg, Fields: cl.Manifest().Config})
	if err != nil {
		t.Fatal(err)
	}

	handler, err := ingress.NewHandler(ingress.Config{Connections: st, Connectors: host, Sink: committer})
	if err != nil {
		t.Fatal(err)
	}
	hooks := httptest.NewServer(handler)
	t.Cleanup(hooks.Close)

	inv := invoke.New(st, host)
	cs := consent.New(st.Pool(), consent.Options{})
	svc, err := New(Config{Pool: st.Pool(), Invoker: inv, Consent: ConsentService{cs}, Guard: ConsentService{cs},
		Templates: TemplateService{templates.New(st.Pool(), inv, templates.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	r := &cloudRig{
		pgRig: &pgRig{url: url, st: st, pool: st.Pool(), tenantID: ten.ID, connID: conn.ID},
		fake:  fake, host: host, invoker: inv, consent: cs, svc: svc, hooks: hooks,
	}
	return r
}

// anotherProcess returns a second messaging service on the rig's database
// and plugin, with pacers of its own: what another `ponte serve` replica
// sending from the same number has.
func (r *cloudRig) anotherProcess(t testing.TB) *Service {
	t.Helper()
	svc, err := New(Config{Pool: r.pool, Invoker: r.invoker, Consent: ConsentService{r.consent}, Guard: ConsentService{r.consent},
		Templates: TemplateService{templates.New(r.pool, r.invoker, templates.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// optedIn adds a contact for each phone, with a conversation on the rig's
// number and a marketing opt-in from yesterday, in one statement.
func (r *cloudRig) optedIn(t testing.TB, phones []string) {
	t.Helper()
	if _, err := r.pool.Exec(context.Background(), `
WITH c AS (
    INSERT INTO contacts (id, tenant_id, phone)
    SELECT 'ct_' || md5(p), $1, p FROM unnest($2::text[]) AS u(p)
    RETURNING id
), cv AS (
    INSERT INTO conversations (id, tenant_id, contact_id, connection_id)
    SELECT 'cv_' || id, $1, id, $3 FROM c
)
INSERT INTO consent_records (tenant_id, contact_id, purpose, action, source, occurred_at)
SELECT $1, id, 'marketing', 'opt_in', 'import', now() - interval '1 day' FROM c`, r.tenantID, phones, r.connID); err != nil {
		t.Fatal(err)
	}
}

// addTemplate makes an approved template known to the fake and the ledger.
func (r *cloudRig) addTemplate(t testing.TB, name, category, body string, params int) {
	t.Helper()
	comps, _ := json.Marshal([]map[string]any{{"type": "BODY", "text": body}})
	if _, err := r.fake.AddTemplate(rigWABA, fakegraph.Template{Name: name, Language: "it", Category: strings.ToUpper(category),
		Status: "APPROVED", Components: comps}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(context.Background(), `INSERT INTO templates (id, tenant_id, connection_id, name, language, category, status, components, parameters)
        VALUES ($1, $2, $3, $4, 'it', $5, 'approved', $6, $7)`, store.NewID("tpl"), r.tenantID, r.connID, name, category, comps, params); err != nil {
		t.Fatal(err)
	}
}

// noTemporal is the dispatcher's Temporal for routes that only Apply.
type noTemporal struct{}

func (noTemporal) SignalWithStartWorkflow(context.Context, string, string, any, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, errors.New("no Temporal in this test")
}

func (noTemporal) SignalWorkflow(context.Context, string, string, string, any) error {
	return errors.New("no Temporal in this test")
}

// TestIntegrationCloudAPISendDeliverRead sends through the real plugin to
// the fake Graph API, whose status webhooks (every one twice, read before
// delivered) come back through the ingress and the dispatcher.
func TestIntegrationCloudAPISendDeliverRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newCloudRig(t, 80, 20)
	r.fake.SetWebhook(r.hooks.URL+"/hooks/"+r.connID, rigAppSecret)
	r.fake.SetStatusOptions(fakegraph.StatusOptions{ReadBeforeDelivered: true, Duplicate: true})
	d, err := dispatch.New(dispatch.Config{Pool: r.pool, Router: Route(r.pool), Temporal: noTemporal{}, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = d.Run(dctx) }()

	phone := "+393471112233"
	// Outside the window free text is refused before any call.
	_, err = r.svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phone, Kind: KindText,
		Text: "hello", IdempotencyKey: "t-outside"})
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.Reason != ReasonOutsideWindow {
		t.Fatalf("text outside the window: %v", err)
	}
	// The customer writes: the window opens (in the fake and, through the
	// inbound webhook's effect, in our conversation).
	r.fake.CustomerMessage(rigPhoneNumberID, phone, "hi, where is my order?")
	r.openWindow(t, phone)

	m, err := r.svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phone, Kind: KindText,
		Text: "on its way", IdempotencyKey: "t-inside"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if m.Status != StatusSent || !strings.HasPrefix(m.ProviderMessageID, "wamid.") {
		t.Fatalf("after Send: %s %q", m.Status, m.ProviderMessageID)
	}
	sent := r.fake.SentTo(phone)
	if len(sent) != 1 || sent[0].LedgerID != m.ID || sent[0].WAMID != m.ProviderMessageID {
		t.Fatalf("fake log %+v, want one send carrying ledger id %s", sent, m.ID)
	}

	deadline := time.Now().Add(20 * time.Second)
	var got Message
	for time.Now().Before(deadline) {
		got, _ = r.svc.Get(ctx, r.tenantID, m.ID)
		if got.Status == StatusRead && got.DeliveredAt != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.fake.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the dispatcher drains the last duplicates
	got, _ = r.svc.Get(ctx, r.tenantID, m.ID)
	if got.Status != StatusRead || got.SentAt == nil || got.DeliveredAt == nil || got.ReadAt == nil {
		t.Fatalf("final row: status %s sent %v delivered %v read %v", got.Status, got.SentAt, got.DeliveredAt, got.ReadAt)
	}
	if n := len(r.fake.SentTo(phone)); n != 1 {
		t.Errorf("%d messages reached the recipient, want 1", n)
	}
}

// TestIntegrationCloudAPIReaction sends reactions from a Cloud API number
// through the real plugin process to the fake Graph API: refused before any
// call outside the window, then a reaction and a removal that reach Meta as
// type reaction and are ledger rows like any send, and a reaction on a
// message Meta cannot react to, which Meta accepts and then fails by status
// webhook (131009) carrying the ledger id.
func TestIntegrationCloudAPIReaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newCloudRig(t, 80, 10)
	r.fake.SetWebhook(r.hooks.URL+"/hooks/"+r.connID, rigAppSecret)
	r.fake.SetStatusOptions(fakegraph.StatusOptions{Delay: 5 * time.Millisecond})
	d, err := dispatch.New(dispatch.Config{Pool: r.pool, Router: Route(r.pool), Temporal: noTemporal{}, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = d.Run(dctx) }()

	react := func(key, phone, wamid, emoji string) SendRequest {
		return SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phone, Kind: KindReaction,
			Reaction: &Reaction{MessageID: wamid, Emoji: emoji}, IdempotencyKey: key}
	}
	// Three customers, so the 6 s between messages to one recipient does
	// not slow the test down.
	const liker, remover, stranger = "+393471110001", "+393471110002", "+393471110003"

	// Outside the window: refused before any call, like free text.
	_, err = r.svc.Send(ctx, react("r-outside", liker, "wamid.HBgLMzkzNDcxMTEwMDAxFQIAEhgUM0FCQ0RFRjAxMjM0NTY3ODlBQkMA", "👍"))
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.Reason != ReasonOutsideWindow {
		t.Fatalf("reaction outside the window: %v; want refused %s", err, ReasonOutsideWindow)
	}
	if got, _ := r.svc.Get(ctx, r.tenantID, ref.MessageID); got.Status != StatusRefused || got.Kind != "reaction" {
		t.Errorf("refused reaction's row: %s %s", got.Status, got.Kind)
	}
	if n, e := len(r.fake.Sent()), r.fake.ErrorCount(131047); n != 0 || e != 0 {
		t.Fatalf("the refused reaction reached the fake: %d sends, %d answers 131047", n, e)
	}

	type want struct {
		key, phone, emoji string
	}
	var targets []string
	for _, phone := range []string{liker, remover, stranger} {
		targets = append(targets, r.fake.CustomerMessage(rigPhoneNumberID, phone, "Is the blue one back in stock?"))
		r.openWindow(t, phone)
	}
	// The stranger's reaction goes on a message id Meta does not know.
	targets[2] = "wamid.HBgLMzkzNDcxMTEwMDAzFQIAERgSNDVGMEFBQUFBQUFBQUFBQUFBAA=="
	rows := map[string]Message{}
	for i, w := range []want{{"r-like", liker, "👍"}, {"r-remove", remover, ""}, {"r-unknown", stranger, "❤️"}} {
		m, err := r.svc.Send(ctx, react(w.key, w.phone, targets[i], w.emoji))
		if err != nil {
			t.Fatalf("%s: %v", w.key, err)
		}
		if m.Status != StatusSent || m.Kind != "reaction" || !strings.HasPrefix(m.ProviderMessageID, "wamid.") {
			t.Fatalf("%s row: status %s kind %s wamid %q", w.key, m.Status, m.Kind, m.ProviderMessageID)
		}
		sent := r.fake.SentTo(w.phone)
		if len(sent) != 1 {
			t.Fatalf("%s: the fake logged %d sends to %s, want 1", w.key, len(sent), w.phone)
		}
		var req struct {
			Type     string            `json:"type"`
			Reaction map[string]string `json:"reaction"`
			Opaque   string            `json:"biz_opaque_callback_data"`
		}
		if err := json.Unmarshal(sent[0].Request, &req); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("%s %v %s %s %s", sent[0].Type, req.Reaction, req.Opaque, sent[0].LedgerID, sent[0].WAMID)
		wantReq := fmt.Sprintf("reaction %v %s %s %s", map[string]string{"message_id": targets[i], "emoji": w.emoji}, m.ID, m.ID, m.ProviderMessageID)
		if req.Type != "reaction" || got != wantReq {
			t.Errorf("%s reached the fake as %q, want %q", w.key, got, wantReq)
		}
		rows[w.key] = m
	}

	// Meta sends a reaction only "sent"; the one it cannot place fails.
	if err := r.fake.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var failed Message
	for time.Now().Before(deadline) {
		failed, _ = r.svc.Get(ctx, r.tenantID, rows["r-unknown"].ID)
		if failed.Status == StatusFailed {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if failed.Status != StatusFailed || failed.ErrorCode != "131009" || failed.ProviderMessageID != rows["r-unknown"].ProviderMessageID {
		t.Errorf("reaction on an unknown message: status %s code %q wamid %q; want failed 131009 with its wamid",
			failed.Status, failed.ErrorCode, failed.ProviderMessageID)
	}
	for _, key := range []string{"r-like", "r-remove"} {
		got, err := r.svc.Get(ctx, r.tenantID, rows[key].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusSent || got.SentAt == nil || got.ProviderMessageID != rows[key].ProviderMessageID || got.DeliveredAt != nil {
			t.Errorf("%s final row: status %s sent %v delivered %v wamid %q", key, got.Status, got.SentAt, got.DeliveredAt, got.ProviderMessageID)
		}
	}
	// A repeated request with the same key is the same row, not a second reaction.
	again, err := r.svc.Send(ctx, react("r-like", liker, targets[0], "👍"))
	if err != nil || again.ID != rows["r-like"].ID || len(r.fake.SentTo(liker)) != 1 {
		t.Errorf("repeated reaction: %s, %v, %d sends; want the first row and no second send", again.ID, err, len(r.fake.SentTo(liker)))
	}
}

// BenchmarkSendThroughput is the sending figure of `make bench`: marketing
// template sends through the real Cloud API plugin process to the fake Graph
// API at the 1,000 msg/s tier, 20,000 distinct recipients all opted in, every
// consent check (both of them, the last under the STOP lock) and every ledger
// write included. It reports messages/s sustained and the fake's 130429 and
// 131056 counts, which must be zero.
//
// Knobs: PONTE_BENCH_RECIPIENTS (default 20000), PONTE_BENCH_SENDERS
// (concurrent sends, default 64), PONTE_BENCH_PROCESSES (messaging
// services sharing the number, as replicas do, default 1; the senders
// take turns between them).
func BenchmarkSendThroughput(b *testing.B) {
	recipients := benchEnv("PONTE_BENCH_RECIPIENTS", 20000)
	senders := benchEnv("PONTE_BENCH_SENDERS", 64)
	ctx := context.Background()
	r := newCloudRig(b, 1000, benchEnv("PONTE_BENCH_POOL", senders+8))
	services := []*Service{r.svc}
	for range benchEnv("PONTE_BENCH_PROCESSES", 1) - 1 {
		services = append(services, r.anotherProcess(b))
	}
	r.fake.SetStatusOptions(fakegraph.StatusOptions{Disabled: true})
	r.addTemplate(b, "spring_sale", "marketing", "Spring sale: 20% off this week", 0)

	phones := make([]string, recipients)
	for i := range phones {
		phones[i] = fmt.Sprintf("+3935%08d", i)
	}
	r.optedIn(b, phones) // outside the clock
	// Fresh statistics, as autovacuum would have them on a live database.
	if _, err := r.pool.Exec(ctx, `ANALYZE contacts, conversations, consent_records, messages, templates`); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	for range b.N {
		jobs := make(chan int, recipients)
		for i := range recipients {
			jobs <- i
		}
		close(jobs)
		errs := make(chan error, senders)
		pluginPID := r.host.Status()[0].PID
		selfCPU0, _ := testenv.CPUTicks(os.Getpid())
		pluginCPU0, _ := testenv.CPUTicks(pluginPID)
		busy0, all0 := testenv.CPUTicks(0)
		steal0, _ := testenv.CPUSteal()
		start := time.Now()
		for k := range senders {
			svc := services[k%len(services)]
			go func() {
				var first error
				for i := range jobs {
					_, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phones[i],
						Kind: KindTemplate, Template: &Template{Name: "spring_sale", Language: "it"},
						IdempotencyKey: fmt.Sprintf("bench:%d:%d", b.N, i)})
					if err != nil && first == nil {
						first = err
					}
				}
				errs <- first
			}()
		}
		for range senders {
			if err := <-errs; err != nil {
				b.Errorf("a send failed: %v", err)
			}
		}
		elapsed := time.Since(start)
		selfCPU1, _ := testenv.CPUTicks(os.Getpid())
		pluginCPU1, _ := testenv.CPUTicks(pluginPID)
		busy1, all1 := testenv.CPUTicks(0)
		steal1, _ := testenv.CPUSteal()
		perMessage := func(ticks int64) time.Duration {
			return time.Duration(float64(ticks) / testenv.TicksPerSecond / float64(recipients) * float64(time.Second))
		}
		rate := float64(recipients) / elapsed.Seconds()
		b.ReportMetric(rate, "msg/s")
		b.ReportMetric(float64(perMessage(busy1-busy0).Microseconds()), "machine-µs/msg")
		b.Logf("CPU per message: machine %v (busy %.0f%% of the run, not counting steal; hypervisor steal %.0f%%), this process (service and fake Graph API) %v, "+
			"cloudapi plugin %v, the rest (Postgres) %v",
			perMessage(busy1-busy0), 100*float64(busy1-busy0)/float64(max(1, all1-all0)), 100*float64(steal1-steal0)/float64(max(1, all1-all0)), perMessage(selfCPU1-selfCPU0),
			perMessage(pluginCPU1-pluginCPU0), perMessage((busy1-busy0)-(selfCPU1-selfCPU0)-(pluginCPU1-pluginCPU0)))
		b.ReportMetric(float64(r.fake.ErrorCount(130429)), "130429s")
		b.ReportMetric(float64(r.fake.ErrorCount(131056)), "131056s")
		b.Logf("%d recipients in %v: %.0f msg/s sustained; fake errors 130429=%d 131056=%d; %s",
			recipients, elapsed.Round(time.Millisecond), rate, r.fake.ErrorCount(130429), r.fake.ErrorCount(131056), machine())
		if got := len(r.fake.Sent()); got < recipients {
			b.Errorf("the fake accepted %d sends, want %d", got, recipients)
		}
	}
}

func benchEnv(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil && v > 0 {
		return v
	}
	return def
}

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
	return fmt.Sprintf("%s/%s, %d CPUs (%s)", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model)
}
