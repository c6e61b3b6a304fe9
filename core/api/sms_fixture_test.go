package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/sms"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// smsRig is the SMS endpoint over real HTTP on the real thing: Postgres, the
// messaging core with consent, the Cloud API connector's plugin process
// under the plugin host, and the fake Graph API behind it.
type smsRig struct {
	st       *store.Store
	srv      *httptest.Server
	fake     *fakegraph.Server
	consent  *consent.Service
	logs     *syncBuffer
	tenantA  string
	tenantB  string
	keys     map[string]string // a-write, a-read, a-revoked, b-write
	connA    string            // A's Cloud API connection
	numberA  string            // its number id
	numberB  string            // B's number (a Cloud API number of its own)
	dirA     *messaging.SQLDirectory
	messages *messaging.Service
}

const (
	smsPhoneNumberID = "555000111"
	smsWABA          = "555000999"
	smsToken         = "EAAtoken-sms-tests"
)

func newSMSRig(t *testing.T) *smsRig {
	t.Helper()
	ctx := context.Background()
	stack := newCloudAPIStack(t)
	st, host, cl := stack.st, stack.host, stack.plugin

	fake := fakegraph.New(t)
	fake.AddNumber(fakegraph.Number{PhoneNumberID: smsPhoneNumberID, WABAID: smsWABA, AccessToken: smsToken})
	// Statuses are applied by the test itself (messaging.ApplyStatus, what
	// the dispatcher runs for each status webhook), at the moments it wants.
	fake.SetStatusOptions(fakegraph.StatusOptions{Disabled: true})

	r := &smsRig{st: st, fake: fake, logs: &syncBuffer{}, keys: map[string]string{}}
	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	r.tenantA, r.tenantB = a.ID, b.ID
	for name, spec := range map[string]struct{ tenant, scope string }{
		"a-write": {a.ID, store.ScopeWrite}, "a-read": {a.ID, store.ScopeRead}, "a-revoked": {a.ID, store.ScopeWrite},
		"b-write": {b.ID, store.ScopeWrite},
	} {
		k, plain, err := st.CreateAPIKey(ctx, spec.tenant, name, []string{spec.scope})
		if err != nil {
			t.Fatal(err)
		}
		r.keys[name] = plain
		if name == "a-revoked" {
			if err := st.RevokeAPIKey(ctx, a.ID, k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, _ := json.Marshal(map[string]any{"phone_number_id": smsPhoneNumberID, "waba_id": smsWABA,
		"access_token": smsToken, "app_secret": "app-secret-sms", "verify_token": "verify-me", "api_base": fake.URL()})
	number := func(tenantID, id string) string {
		c, err := st.CreateConnection(ctx, tenantID, store.NewConnection{Connector: "cloudapi", Name: "number", Config: cfg, Fields: cl.Manifest().Config})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `INSERT INTO numbers (id, tenant_id, kind, label, connection_id) VALUES ($1, $2, 'cloud_api', 'Support', $3)`,
			id, tenantID, c.ID); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	r.numberA, r.numberB = "num_smstesta", "num_smstestb"
	r.connA = number(a.ID, r.numberA)
	number(b.ID, r.numberB)

	inv := invoke.New(st, host)
	r.consent = consent.New(st.Pool(), consent.Options{})
	r.messages, err = messaging.New(messaging.Config{Pool: st.Pool(), Invoker: inv,
		Consent: messaging.ConsentService{Service: r.consent}, Guard: messaging.ConsentService{Service: r.consent},
		Templates: messaging.TemplateService{Service: templates.New(st.Pool(), inv, templates.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.messages.Close)
	r.dirA = messaging.NewSQLDirectory(st.Pool())

	logger := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	svc, err := sms.New(st.Pool(), r.messages, sms.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Deps{Store: st, Connectors: host, PaymentLinks: &fakePaymentLinks{}, PublicURL: publicURL,
		SMS: svc, Logger: logger, Metrics: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

// openWindow makes phone a customer who wrote to A's number just now, on
// both sides: the fake Graph API and the inbox's conversation (what the
// inbound webhook would record).
func (r *smsRig) openWindow(t *testing.T, phone string) {
	t.Helper()
	ctx := context.Background()
	r.fake.CustomerMessage(smsPhoneNumberID, phone, "hello")
	rc, err := r.dirA.Recipient(ctx, r.tenantA, r.connA, phone, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Pool().Exec(ctx, `UPDATE conversations SET last_inbound_at = now() WHERE id = $1`, rc.ConversationID); err != nil {
		t.Fatal(err)
	}
}

// applyStatus applies a status webhook of a ledger row the way the
// dispatcher does for the Cloud API's message.status events.
func (r *smsRig) applyStatus(t *testing.T, ledgerID, status string) {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"phone_number_id": smsPhoneNumberID, "status": status,
		"timestamp": time.Now().UTC().Format(time.RFC3339), "ledger_id": ledgerID})
	ev := dispatch.Event{TenantID: r.tenantA, ConnectionID: r.connA, Connector: "cloudapi", Type: messaging.EventMessageStatus,
		OccurredAt: time.Now(), ReceivedAt: time.Now(), Payload: payload}
	if err := messaging.ApplyStatus(context.Background(), r.st.Pool(), ev); err != nil {
		t.Fatalf("applying status %s: %v", status, err)
	}
}

// ledgerID returns the ledger row of a sid.
func (r *smsRig) ledgerID(t *testing.T, sid string) string {
	t.Helper()
	var id string
	if err := r.st.Pool().QueryRow(context.Background(), `SELECT message_id FROM sms_messages WHERE sid = $1`, sid).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// compactKey is an API key without its underscores, the form twilio-go
// accepts as a password.
func compactKey(k string) string { return strings.ReplaceAll(k, "_", "") }

// twilioClient is Twilio's own Go client, unchanged, with its requests to
// api.twilio.com sent to the rig's server instead; header adds headers to
// every request (the client has no option for them).
func (r *smsRig) twilioClient(t *testing.T, username, password, accountSid string, header http.Header) *twilio.RestClient {
	t.Helper()
	target, _ := url.Parse(r.srv.URL)
	tr := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host != "api.twilio.com" {
			t.Errorf("the client called %s, not api.twilio.com", req.URL.Host)
		}
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = target.Scheme, target.Host, target.Host
		for k, v := range header {
			req.Header[k] = v
		}
		return http.DefaultTransport.RoundTrip(req)
	})
	c := &twclient.Client{Credentials: twclient.NewCredentials(username, password),
		HTTPClient: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	c.SetAccountSid(accountSid)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Username: username, Password: password, AccountSid: accountSid, Client: c})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// smsPost posts a raw form to the create route, for what the client
// library cannot send (wrong credentials shapes, another path account).
func (r *smsRig) smsPost(t *testing.T, account, user, pass string, form url.Values, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/2010-04-01/Accounts/"+account+"/Messages.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, body
}

// callbackServer records the status callbacks it receives; fail makes it
// answer 500 to the first n.
type callbackServer struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	heads []http.Header
	fail  int
}

func newCallbackServer(t *testing.T, failFirst int) *callbackServer {
	cs := &callbackServer{fail: failFirst}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil || req.Method != http.MethodPost {
			http.Error(w, "bad callback", http.StatusBadRequest)
			return
		}
		cs.mu.Lock()
		defer cs.mu.Unlock()
		cs.forms = append(cs.forms, req.PostForm)
		cs.heads = append(cs.heads, req.Header.Clone())
		if len(cs.forms) <= cs.fail {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *callbackServer) received() []url.Values {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]url.Values(nil), cs.forms...)
}

// cloudAPIStack is a store on a fresh, migrated database and the real Cloud
// API plugin process, its reports stored through an ingress committer: what
// the fixtures that send or download through the Cloud API connector share.
type cloudAPIStack struct {
	st     *store.Store
	host   *pluginhost.Host
	plugin pluginhost.Client
}

func newCloudAPIStack(t *testing.T) cloudAPIStack {
	t.Helper()
	ctx := context.Background()
	bin := testenv.BuildBinary(t, "./connectors/cloudapi/cmd/ponte-connector-cloudapi")
	dbURL := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	mk, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	st, err := store.Open(ctx, dbURL, mk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	committer := ingress.NewCommitter(st.Pool(), ingress.CommitterConfig{})
	t.Cleanup(committer.Close)
	services := ingress.NewServices(st, nil, committer, st)
	host, err := pluginhost.New(ctx, pluginhost.Options{Dir: filepath.Dir(bin), Services: services, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	services.SetConnectors(host)
	cl, err := host.Connector("cloudapi")
	if err != nil {
		t.Fatal(err)
	}
	return cloudAPIStack{st: st, host: host, plugin: cl}
}
