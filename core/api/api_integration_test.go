package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	publicURL = "https://ponte.example.com"
	// Secrets of tenant A's Stripe connection; no response or log may carry them.
	secretAPIKey  = "sk_test_TOPSECRETapikey0001"
	secretWebhook = "whsec_TOPSECRETwebhook0002"
)

type fixture struct {
	msgs    *messagesFixture
	h       *gin.Engine
	st      *store.Store
	pl      *fakePaymentLinks
	logs    *syncBuffer
	ready   map[string]error
	tenantA string
	tenantB string
	keys    map[string]string // plaintext by name: a-admin, a-write, a-read, a-revoked, b-admin
	keyIDs  map[string]string
	connA   string // A's Stripe connection
	connA2  string // A's iCal connection (no payment links)
	connB   string
	eventA  int64
	eventB  int64
	linkA   string
	inbox   *inboxFixture   // users, contacts and conversations (inbox_fixture_test.go)
	consent *consentFixture // consent, exclusions, settings, templates (consent_fixture_test.go)
	auto    *automationsFixture
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	key, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	st, err := store.Open(ctx, url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	f := &fixture{st: st, pl: &fakePaymentLinks{}, logs: &syncBuffer{}, ready: map[string]error{"db": nil}, keys: map[string]string{}, keyIDs: map[string]string{}}
	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	f.tenantA, f.tenantB = a.ID, b.ID
	for name, spec := range map[string]struct {
		tenant string
		scope  string
	}{
		"a-admin": {a.ID, "admin"}, "a-write": {a.ID, "write"}, "a-read": {a.ID, "read"},
		"a-revoked": {a.ID, "admin"}, "b-admin": {b.ID, "admin"},
	} {
		k, plain, err := st.CreateAPIKey(ctx, spec.tenant, name, []string{spec.scope})
		if err != nil {
			t.Fatal(err)
		}
		f.keys[name], f.keyIDs[name] = plain, k.ID
	}
	if err := st.RevokeAPIKey(ctx, a.ID, f.keyIDs["a-revoked"]); err != nil {
		t.Fatal(err)
	}

	mk := func(tenantID, connector, name, cfg string, fields []sdk.ConfigField) string {
		c, err := st.CreateConnection(ctx, tenantID, store.NewConnection{Connector: connector, Name: name, Config: json.RawMessage(cfg), Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	f.connA = mk(a.ID, "stripe", "A stripe", `{"api_key":"`+secretAPIKey+`","webhook_secret":"`+secretWebhook+`"}`, stripeManifest.Config)
	f.connA2 = mk(a.ID, "ical", "A calendar", `{"url":"https://cal.example.com/a.ics"}`, icalManifest.Config)
	f.connB = mk(b.ID, "stripe", "B stripe", `{"api_key":"sk_test_b","webhook_secret":"whsec_b"}`, stripeManifest.Config)

	insert := func(tenantID, connID string) int64 {
		var id int64
		if err := st.Pool().QueryRow(ctx, `
			INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, payload)
			VALUES ($1, $2, gen_random_uuid()::text, 'checkout.session.completed', now(), '{"id":"cs_1"}') RETURNING id`,
			tenantID, connID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	f.eventA = insert(a.ID, f.connA)
	f.eventB = insert(b.ID, f.connB)
	l, err := f.pl.Create(ctx, a.ID, paymentlinkRequest(f.connA))
	if err != nil {
		t.Fatal(err)
	}
	f.linkA = l.ID
	f.pl.calls = nil
	f.setUpInbox(t)
	f.setUpConsent(t)
	f.setUpMessages(t)
	f.setUpAutomations(t)

	f.h, err = api.New(api.Deps{
		Inbox:               f.inbox.svc,
		Consent:             f.consent.svc,
		Templates:           f.consent.tpl,
		Sender:              f.inbox.sender,
		InboxStream:         f.inbox.hub,
		Messages:            f.msgs.svc,
		Automations:         f.auto.store,
		CartRecoveryReports: f.auto.reports,
		StreamHeartbeat:     50 * time.Millisecond,
		Store:               st,
		Connectors:          fakeRegistry{},
		PaymentLinks:        f.pl,
		Hooks:               fakeHooks{},
		Ready: func(ctx context.Context) map[string]error {
			out := map[string]error{}
			for k, v := range f.ready {
				out[k] = v
			}
			return out
		},
		PublicURL: publicURL + "/",
		Logger:    slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:   prometheus.NewRegistry(),
		Version:   "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type response struct {
	Code   int
	Header http.Header
	Body   string
}

// apiRequest builds a request to the API under test: body, when given, as
// JSON; key a name in keys (sent as a Bearer key), a literal Authorization
// value prefixed with "raw:", or "" for none; then header name, value pairs.
func apiRequest(t *testing.T, keys map[string]string, method, path, key, body string, headers ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case strings.HasPrefix(key, "raw:"):
		req.Header.Set("Authorization", strings.TrimPrefix(key, "raw:"))
	case key != "":
		plain, ok := keys[key]
		if !ok {
			t.Fatalf("no fixture key %q", key)
		}
		req.Header.Set("Authorization", "Bearer "+plain)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// serveFor runs req through h, giving up after d when d > 0 (for streams,
// which do not end by themselves).
func serveFor(h http.Handler, req *http.Request, d time.Duration) response {
	if d > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), d)
		defer cancel()
		req = req.WithContext(ctx)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.String()}
}

// do sends a request (see apiRequest); the event stream is cut after 200 ms.
func (f *fixture) do(t *testing.T, method, path, key, body string, headers ...string) response {
	t.Helper()
	req := apiRequest(t, f.keys, method, path, key, body, headers...)
	if _, given := req.Header["Idempotency-Key"]; !given && method == http.MethodPost && path == "/v1/messages" {
		// POST /v1/messages requires an Idempotency-Key; the route tables
		// send one like any client. Tests of its absence pass "" explicitly.
		req.Header.Set("Idempotency-Key", "route-"+newKeySuffix())
	}
	var stream time.Duration
	if strings.HasPrefix(path, "/v1/stream") {
		stream = 200 * time.Millisecond
	}
	return serveFor(f.h, req, stream)
}

// problem checks that r is an RFC 9457 problem with the status and returns it.
func problem(t *testing.T, r response, status int) huma.ErrorModel {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status = %d, want %d; body %s", r.Code, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, r.Body)
	}
	var p huma.ErrorModel
	if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
		t.Fatalf("problem body %q: %v", r.Body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) {
		t.Fatalf("problem = %+v, want status %d and title %q", p, status, http.StatusText(status))
	}
	if r.Header.Get(api.RequestIDHeader) == "" {
		t.Errorf("problem response without %s", api.RequestIDHeader)
	}
	return p
}

func decode[T any](t *testing.T, r response, status int) T {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status = %d, want %d; body %s", r.Code, status, r.Body)
	}
	var v T
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
	return v
}

type route struct {
	method, path, scope, body string
}

// routes lists every /v1 operation with a request that is valid for tenant A.
func (f *fixture) routes() []route {
	r := []route{
		{"GET", "/v1/connectors", "read", ""},
		{"GET", "/v1/connectors/stripe", "read", ""},
		{"POST", "/v1/connections", "write", `{"connector":"ical","name":"new","config":{"url":"https://x.example/c.ics"}}`},
		{"GET", "/v1/connections", "read", ""},
		{"GET", "/v1/connections/" + f.connA, "read", ""},
		{"PATCH", "/v1/connections/" + f.connA, "write", `{"name":"renamed"}`},
		{"DELETE", "/v1/connections/" + f.connA2, "write", ""},
		{"GET", "/v1/events", "read", ""},
		{"GET", fmt.Sprintf("/v1/events/%d", f.eventA), "read", ""},
		{"POST", "/v1/payment-links", "write", `{"connection_id":"` + f.connA + `","amount":500,"currency":"eur","product_name":"Tea"}`},
		{"GET", "/v1/payment-links", "read", ""},
		{"GET", "/v1/payment-links/" + f.linkA, "read", ""},
		{"POST", "/v1/api-keys", "admin", `{"name":"k","scopes":["read"]}`},
		{"GET", "/v1/api-keys", "admin", ""},
		{"DELETE", "/v1/api-keys/" + f.keyIDs["a-read"], "admin", ""},
	}
	r = append(r, f.inboxRoutes()...)
	r = append(r, f.messageRoutes()...)
	r = append(r, f.automationRoutes()...)
	return append(r, f.consentRoutes()...)
}

func TestIntegrationAuthFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	valid := f.keys["a-admin"]
	bad := map[string]string{
		"no header":       "",
		"basic scheme":    "raw:Basic " + valid,
		"no scheme":       "raw:" + valid,
		"empty bearer":    "raw:Bearer ",
		"malformed key":   "raw:Bearer not-a-key",
		"wrong secret":    "raw:Bearer " + flipLastChar(valid),
		"revoked":         "a-revoked",
		"other vendor":    "raw:Bearer sk_live_123",
		"key plus extras": "raw:Bearer " + valid + "x",
	}
	for _, rt := range f.routes() {
		for name, key := range bad {
			t.Run(rt.method+" "+rt.path+"/"+name, func(t *testing.T) {
				r := f.do(t, rt.method, rt.path, key, rt.body)
				p := problem(t, r, http.StatusUnauthorized)
				if p.Detail != "" || len(p.Errors) != 0 {
					t.Errorf("401 carries details: %+v", p)
				}
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
	}
	// Nothing was changed by the rejected requests.
	if f.pl.createCalls() != 0 {
		t.Errorf("payment links created by unauthenticated requests: %d", f.pl.createCalls())
	}
	if _, err := f.st.GetConnection(context.Background(), f.tenantA, f.connA2); err != nil {
		t.Errorf("connection deleted by an unauthenticated request: %v", err)
	}
}

func TestIntegrationScopes(t *testing.T) {
	t.Parallel()
	rank := map[string]int{"read": 1, "write": 2, "admin": 3}
	for _, keyName := range []string{"a-read", "a-write", "a-admin"} {
		t.Run(keyName, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t) // fresh data: allowed requests change things
			keyScope := strings.TrimPrefix(keyName, "a-")
			for _, rt := range f.routes() {
				r := f.do(t, rt.method, rt.path, keyName, rt.body)
				if rank[keyScope] < rank[rt.scope] {
					p := problem(t, r, http.StatusForbidden)
					if !strings.Contains(p.Detail, rt.scope) {
						t.Errorf("%s %s: 403 detail %q does not name the scope %q", rt.method, rt.path, p.Detail, rt.scope)
					}
					continue
				}
				if r.Code >= 300 {
					t.Errorf("%s %s with %s: status %d, want success; body %s", rt.method, rt.path, keyName, r.Code, r.Body)
				}
			}
		})
	}
}

// TestIntegrationTenantIsolation runs every route with tenant B's admin key
// against tenant A's ids and checks B gets 404 (or nothing of A's) and that
// A's data is unchanged.
func TestIntegrationTenantIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	aIDs := []string{f.connA, f.connA2, f.linkA, f.keyIDs["a-admin"], f.keyIDs["a-read"], f.keyIDs["a-write"], fmt.Sprintf(`"id":%d`, f.eventA)}
	noneOfA := func(t *testing.T, r response) {
		t.Helper()
		if r.Code != http.StatusOK {
			t.Fatalf("status %d; body %s", r.Code, r.Body)
		}
		for _, id := range aIDs {
			if strings.Contains(r.Body, id) {
				t.Errorf("B's response carries A's %s: %s", id, r.Body)
			}
		}
	}
	notFound := func(t *testing.T, r response) { t.Helper(); problem(t, r, http.StatusNotFound) }

	tests := map[string]struct {
		method, path, body string
		check              func(t *testing.T, r response)
	}{
		"get connection":     {"GET", "/v1/connections/" + f.connA, "", notFound},
		"patch connection":   {"PATCH", "/v1/connections/" + f.connA, `{"name":"pwned","status":"disabled"}`, notFound},
		"patch config":       {"PATCH", "/v1/connections/" + f.connA, `{"config":{"api_key":"sk_test_evil"}}`, notFound},
		"delete connection":  {"DELETE", "/v1/connections/" + f.connA2, "", notFound},
		"list connections":   {"GET", "/v1/connections", "", noneOfA},
		"get event":          {"GET", fmt.Sprintf("/v1/events/%d", f.eventA), "", notFound},
		"list events":        {"GET", "/v1/events", "", noneOfA},
		"events of A's conn": {"GET", "/v1/events?connection_id=" + f.connA, "", noneOfA},
		"get payment link":   {"GET", "/v1/payment-links/" + f.linkA, "", notFound},
		"list payment links": {"GET", "/v1/payment-links", "", noneOfA},
		"list api keys":      {"GET", "/v1/api-keys", "", noneOfA},
		"revoke A's api key": {"DELETE", "/v1/api-keys/" + f.keyIDs["a-admin"], "", notFound},
		"list connectors":    {"GET", "/v1/connectors", "", func(t *testing.T, r response) { t.Helper(); noneOfA(t, r) }},
		"get connector":      {"GET", "/v1/connectors/stripe", "", func(t *testing.T, r response) { t.Helper(); noneOfA(t, r) }},
		"create api key":     {"POST", "/v1/api-keys", `{"name":"b2","scopes":["read"]}`, func(t *testing.T, r response) { t.Helper(); decode[map[string]any](t, r, http.StatusCreated) }},
		"create connection":  {"POST", "/v1/connections", `{"connector":"ical","name":"b cal","config":{"url":"https://b.example/c.ics"}}`, func(t *testing.T, r response) { t.Helper(); decode[map[string]any](t, r, http.StatusCreated) }},
		"payment link on A's connection": {"POST", "/v1/payment-links", `{"connection_id":"` + f.connA + `","amount":100,"currency":"eur","product_name":"x"}`, func(t *testing.T, r response) {
			t.Helper()
			p := problem(t, r, http.StatusUnprocessableEntity)
			if len(p.Errors) != 1 || p.Errors[0].Location != "body.connection_id" {
				t.Errorf("errors = %+v, want one at body.connection_id", p.Errors)
			}
		}},
	}
	for name, tc := range f.inboxIsolationTests(notFound, noneOfA) {
		tests[name] = tc
	}
	for name, tc := range f.consentIsolationTests(notFound, noneOfA) {
		tests[name] = tc
	}
	for name, tc := range f.messageIsolationTests(notFound) {
		tests[name] = tc
	}
	for name, tc := range f.automationIsolationTests(notFound, noneOfA) {
		tests[name] = tc
	}
	// Every route of the API is covered here.
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.method+" "+routeTemplate(tc.path)] = true
	}
	for _, rt := range f.routes() {
		if !covered[rt.method+" "+routeTemplate(rt.path)] {
			t.Errorf("tenant isolation not tested for %s %s", rt.method, routeTemplate(rt.path))
		}
	}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, f.do(t, tc.method, tc.path, "b-admin", tc.body))
		})
	}

	// A's things are as they were.
	c, err := f.st.GetConnection(ctx, f.tenantA, f.connA)
	if err != nil || c.Name != "A stripe" || c.Status != "active" {
		t.Errorf("A's connection after B's requests: %+v, %v", c, err)
	}
	_, cfg, err := f.st.ResolvedConnection(ctx, f.connA)
	if err != nil || !strings.Contains(string(cfg), secretAPIKey) {
		t.Errorf("A's secrets changed by B: %v", err)
	}
	if _, err := f.st.GetConnection(ctx, f.tenantA, f.connA2); err != nil {
		t.Errorf("A's connection deleted by B: %v", err)
	}
	if _, err := f.st.Authenticate(ctx, f.keys["a-admin"]); err != nil {
		t.Errorf("A's key revoked by B: %v", err)
	}
	if n := f.pl.createCalls(); n != 0 {
		t.Errorf("B's payment link on A's connection reached the workflow (%d calls)", n)
	}
	f.checkConsentUntouched(t)
	// What B created belongs to B.
	conns, _, err := f.st.ListConnections(ctx, f.tenantB, store.ConnectionFilter{})
	if err != nil || len(conns) != 2 {
		t.Errorf("B's connections = %d, %v; want 2", len(conns), err)
	}
}

// routeTemplate turns a concrete path into its route, for coverage checks.
var idSegment = regexp.MustCompile(`/(con|key|pl|usr|cv|ct|tpl|msg)_[a-z0-9]+|/\d+$`)

func routeTemplate(path string) string {
	path, _, _ = strings.Cut(path, "?")
	path = idSegment.ReplaceAllString(path, "/{id}")
	path = phoneSegment.ReplaceAllString(path, "/{phone}")
	if before, _, ok := strings.Cut(path, "/tags/"); ok {
		path = before + "/tags/{tag}"
	}
	return path
}

func TestIntegrationConnections(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	// Create through the API; the response has the webhook URL and the names
	// of the secret fields, not their values.
	r := f.do(t, "POST", "/v1/connections", "a-write", `{"connector":"stripe","name":"Shop","config":{"api_key":"sk_live_NEWSECRET77","webhook_secret":"whsec_NEWSECRET88","mode":"live"}}`)
	created := decode[api.ConnectionBody](t, r, http.StatusCreated)
	if created.WebhookURL != publicURL+"/hooks/"+created.ID {
		t.Errorf("webhook_url = %q", created.WebhookURL)
	}
	if diff := cmp.Diff([]string{"api_key", "webhook_secret"}, created.SecretFields); diff != "" {
		t.Errorf("secret_fields (-want +got):\n%s", diff)
	}
	if string(created.Config) != `{"mode":"live"}` || created.Status != "active" || created.Connector != "stripe" {
		t.Errorf("created = %+v", created)
	}
	if strings.Contains(r.Body, "NEWSECRET") {
		t.Fatalf("create response carries a secret: %s", r.Body)
	}

	// PATCH without secrets keeps them; with null removes an optional field.
	r = f.do(t, "PATCH", "/v1/connections/"+created.ID, "a-write", `{"config":{"mode":"test"},"name":"Shop (test)"}`)
	patched := decode[api.ConnectionBody](t, r, http.StatusOK)
	if patched.Name != "Shop (test)" || string(patched.Config) != `{"mode":"test"}` || len(patched.SecretFields) != 2 {
		t.Errorf("patched = %+v", patched)
	}
	_, cfg, err := f.st.ResolvedConnection(context.Background(), created.ID)
	if err != nil || !strings.Contains(string(cfg), "sk_live_NEWSECRET77") {
		t.Errorf("secret lost by a PATCH without it: %v", err)
	}
	r = f.do(t, "PATCH", "/v1/connections/"+created.ID, "a-write", `{"status":"disabled"}`)
	if got := decode[api.ConnectionBody](t, r, http.StatusOK); got.Status != "disabled" {
		t.Errorf("status = %q", got.Status)
	}

	tests := map[string]struct {
		method, path, body string
		status             int
		wantErrors         []string // locations
	}{
		"unknown connector":  {"POST", "/v1/connections", `{"connector":"nope","name":"x","config":{}}`, 422, []string{"body.connector"}},
		"config problems":    {"POST", "/v1/connections", `{"connector":"stripe","name":"x","config":{"api_key":"pk_1","mode":"prod","extra":true}}`, 422, []string{"body.config.api_key", "body.config.extra", "body.config.mode", "body.config.webhook_secret"}},
		"missing name":       {"POST", "/v1/connections", `{"connector":"stripe","config":{}}`, 422, []string{"body"}},
		"unknown body field": {"POST", "/v1/connections", `{"connector":"ical","name":"x","config":{"url":"u"},"secret":"x"}`, 422, []string{"body.secret"}},
		"not json":           {"POST", "/v1/connections", `{"connector":`, 400, []string{"body"}},
		"bad status":         {"PATCH", "/v1/connections/" + created.ID, `{"status":"paused"}`, 422, []string{"body.status"}},
		"patch clears req":   {"PATCH", "/v1/connections/" + created.ID, `{"config":{"api_key":null}}`, 422, []string{"body.config.api_key"}},
		"missing connection": {"GET", "/v1/connections/con_doesnotexist", "", 404, nil},
		"bad cursor":         {"GET", "/v1/connections?cursor=garbage!", "", 400, []string{"query.cursor"}},
		"limit too high":     {"GET", "/v1/connections?limit=1000", "", 422, []string{"query.limit"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := problem(t, f.do(t, tc.method, tc.path, "a-admin", tc.body), tc.status)
			var locs []string
			for _, e := range p.Errors {
				locs = append(locs, e.Location)
			}
			sort.Strings(locs)
			if diff := cmp.Diff(tc.wantErrors, locs); diff != "" {
				t.Errorf("error locations (-want +got):\n%s\nproblem %+v", diff, p)
			}
		})
	}

	// connA is in use by a payment link row; a real row makes the FK fire.
	if _, err := f.st.Pool().Exec(context.Background(), `INSERT INTO payment_links (id, tenant_id, connection_id, workflow_id, expires_at) VALUES ('pl_x', $1, $2, 'wf', now())`, f.tenantA, f.connA); err != nil {
		t.Fatal(err)
	}
	problem(t, f.do(t, "DELETE", "/v1/connections/"+f.connA, "a-admin", ""), http.StatusConflict)

	r = f.do(t, "DELETE", "/v1/connections/"+created.ID, "a-write", "")
	if r.Code != http.StatusNoContent || r.Body != "" {
		t.Errorf("delete = %d %q", r.Code, r.Body)
	}
	problem(t, f.do(t, "GET", "/v1/connections/"+created.ID, "a-read", ""), http.StatusNotFound)
}

func TestIntegrationPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := f.st.CreateConnection(ctx, f.tenantA, store.NewConnection{Connector: "ical", Name: fmt.Sprint("c", i), Config: json.RawMessage(`{"url":"u"}`), Fields: icalManifest.Config}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.Pool().Exec(ctx, `INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, payload) VALUES ($1, $2, $3, 't', now(), '{}')`, f.tenantA, f.connA, fmt.Sprint("d", i)); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Data       []map[string]any `json:"data"`
		NextCursor string           `json:"next_cursor"`
	}
	walk := func(path string) (ids []string, pages int) {
		cursor := ""
		for pages < 20 {
			p := path + "&cursor=" + cursor
			got := decode[page](t, f.do(t, "GET", p, "a-read", ""), http.StatusOK)
			pages++
			for _, d := range got.Data {
				ids = append(ids, fmt.Sprint(d["id"]))
			}
			if got.NextCursor == "" {
				return ids, pages
			}
			cursor = got.NextCursor
		}
		t.Fatalf("pagination of %s does not end", path)
		return nil, 0
	}
	conns, pages := walk("/v1/connections?limit=3")
	if len(conns) != 9 || pages != 3 { // 4 from the fixture + 5
		t.Errorf("connections: %d over %d pages, want 9 over 3", len(conns), pages)
	}
	events, pages := walk("/v1/events?limit=2")
	if len(events) != 6 || pages != 3 { // 1 from the fixture + 5
		t.Errorf("events: %d over %d pages, want 6 over 3", len(events), pages)
	}
	seen := map[string]bool{}
	for _, id := range append(conns, events...) {
		if seen[id] {
			t.Errorf("id %s on two pages", id)
		}
		seen[id] = true
	}
	filtered := decode[page](t, f.do(t, "GET", "/v1/events?type=t&connection_id="+f.connA+"&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "a-read", ""), http.StatusOK)
	if len(filtered.Data) != 5 {
		t.Errorf("filtered events = %d, want 5", len(filtered.Data))
	}
	future := decode[page](t, f.do(t, "GET", "/v1/events?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "a-read", ""), http.StatusOK)
	if len(future.Data) != 0 || future.Data == nil {
		t.Errorf("future events = %v, want an empty list", future.Data)
	}
	problem(t, f.do(t, "GET", "/v1/events?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "a-read", ""), http.StatusBadRequest)
	problem(t, f.do(t, "GET", "/v1/events?since=yesterday", "a-read", ""), http.StatusUnprocessableEntity)
	problem(t, f.do(t, "GET", "/v1/events?cursor=abc", "a-read", ""), http.StatusBadRequest)
}

func TestIntegrationPaymentLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	conn := f.connA
	tests := map[string]struct {
		body       string
		status     int
		wantErrors []string
	}{
		"ad hoc":               {`{"connection_id":"` + conn + `","amount":2500,"currency":"eur","product_name":"Order 1","metadata":{"order":"1"}}`, 201, nil},
		"price id":             {`{"connection_id":"` + conn + `","price_id":"price_123","quantity":2}`, 201, nil},
		"both":                 {`{"connection_id":"` + conn + `","price_id":"price_123","amount":1,"currency":"eur","product_name":"x"}`, 422, []string{"body.price_id"}},
		"neither":              {`{"connection_id":"` + conn + `"}`, 422, []string{"body.amount", "body.currency", "body.product_name"}},
		"zero amount":          {`{"connection_id":"` + conn + `","amount":0,"currency":"eur","product_name":"x"}`, 422, []string{"body.amount"}},
		"negative amount":      {`{"connection_id":"` + conn + `","amount":-5,"currency":"eur","product_name":"x"}`, 422, []string{"body.amount"}},
		"upper currency":       {`{"connection_id":"` + conn + `","amount":5,"currency":"EUR","product_name":"x"}`, 422, []string{"body.currency"}},
		"long currency":        {`{"connection_id":"` + conn + `","amount":5,"currency":"euro","product_name":"x"}`, 422, []string{"body.currency"}},
		"reserved metadata":    {`{"connection_id":"` + conn + `","amount":5,"currency":"eur","product_name":"x","metadata":{"ponte_payment_link":"pl_9"}}`, 422, []string{"body.metadata.ponte_payment_link"}},
		"short expiry":         {`{"connection_id":"` + conn + `","amount":5,"currency":"eur","product_name":"x","expires_in":5}`, 422, []string{"body.expires_in"}},
		"unknown connection":   {`{"connection_id":"con_nope","amount":5,"currency":"eur","product_name":"x"}`, 422, []string{"body.connection_id"}},
		"no payment connector": {`{"connection_id":"` + f.connA2 + `","amount":5,"currency":"eur","product_name":"x"}`, 422, []string{"body.connection_id"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(t, "POST", "/v1/payment-links", "a-write", tc.body, "Idempotency-Key", "idem-"+name)
			if tc.status == 201 {
				decode[map[string]any](t, r, 201)
				return
			}
			p := problem(t, r, tc.status)
			var locs []string
			for _, e := range p.Errors {
				locs = append(locs, e.Location)
			}
			sort.Strings(locs)
			if diff := cmp.Diff(tc.wantErrors, locs); diff != "" {
				t.Errorf("error locations (-want +got):\n%s\nproblem %+v", diff, p)
			}
		})
	}
	f.pl.mu.Lock()
	calls := f.pl.calls
	f.pl.mu.Unlock()
	if len(calls) != 2 {
		t.Fatalf("payment link service called %d times, want 2 (only the valid requests)", len(calls))
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.IdempotencyKey, "idem-") || c.ConnectionID != conn {
			t.Errorf("request passed on as %+v", c)
		}
	}
	if calls[0].ExpiresIn != 0 && calls[1].ExpiresIn != 0 {
		t.Errorf("expires_in defaulted by the API; the workflow owns the default")
	}

	// A disabled connection takes no new links.
	if _, err := f.st.UpdateConnection(context.Background(), f.tenantA, conn, store.ConnectionUpdate{Status: ptr("disabled")}); err != nil {
		t.Fatal(err)
	}
	problem(t, f.do(t, "POST", "/v1/payment-links", "a-write", `{"connection_id":"`+conn+`","amount":5,"currency":"eur","product_name":"x"}`), http.StatusUnprocessableEntity)

	got := decode[map[string]any](t, f.do(t, "GET", "/v1/payment-links/"+f.linkA, "a-read", ""), http.StatusOK)
	if got["id"] != f.linkA {
		t.Errorf("get = %v", got)
	}
	problem(t, f.do(t, "GET", "/v1/payment-links/pl_nope", "a-read", ""), http.StatusNotFound)

	// The service's typed errors map to statuses.
	for name, tc := range map[string]struct {
		err    error
		status int
	}{
		"invalid":      {sdk.Invalid("price not found"), 422},
		"bad field":    {fmt.Errorf("creating: %w", &paymentlink.InvalidError{Field: "quantity", Reason: "too many"}), 422},
		"idempotency":  {paymentlink.ErrIdempotencyConflict, 409},
		"unavailable":  {fmt.Errorf("invoking: %w", pluginhost.ErrUnavailable), 503},
		"rate limited": {sdk.RateLimited(30*time.Second, "slow down"), 503},
		"auth":         {sdk.Auth("bad key"), 502},
		"unexpected":   {errors.New("boom"), 500},
	} {
		f.pl.mu.Lock()
		f.pl.err = tc.err
		f.pl.mu.Unlock()
		if _, err := f.st.UpdateConnection(context.Background(), f.tenantA, conn, store.ConnectionUpdate{Status: ptr("active")}); err != nil {
			t.Fatal(err)
		}
		r := f.do(t, "POST", "/v1/payment-links", "a-write", `{"connection_id":"`+conn+`","amount":5,"currency":"eur","product_name":"x"}`)
		p := problem(t, r, tc.status)
		if tc.status == 500 && strings.Contains(p.Detail, "boom") {
			t.Errorf("%s: 500 leaks the internal error: %q", name, p.Detail)
		}
		if name == "bad field" && (len(p.Errors) != 1 || p.Errors[0].Location != "body.quantity") {
			t.Errorf("%s: errors = %+v, want one at body.quantity", name, p.Errors)
		}
		if name == "rate limited" && r.Header.Get("Retry-After") != "30" {
			t.Errorf("%s: Retry-After = %q, want 30", name, r.Header.Get("Retry-After"))
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestIntegrationProblemsEverywhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := `{"name":"` + strings.Repeat("x", api.MaxBodyBytes) + `","connector":"ical","config":{}}`
	tests := map[string]struct {
		method, path, key, body string
		status                  int
	}{
		"unknown route":      {"GET", "/nope", "", "", 404},
		"unknown v1 route":   {"GET", "/v1/nope", "a-admin", "", 404},
		"method not allowed": {"PUT", "/v1/connections", "a-admin", "", 405},
		"body too large":     {"POST", "/v1/connections", "a-admin", big, 413},
		"panic":              {"GET", "/v1/payment-links?cursor=boom", "a-admin", "", 500},
		"unknown connector":  {"GET", "/v1/connectors/nope", "a-admin", "", 404},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			problem(t, f.do(t, tc.method, tc.path, tc.key, tc.body), tc.status)
		})
	}
	if !strings.Contains(f.logs.String(), "panic serving request") {
		t.Error("the panic was not logged")
	}
}

func TestIntegrationSecretsNeverReturned(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var bodies []string
	for _, rt := range f.routes() {
		bodies = append(bodies, f.do(t, rt.method, rt.path, "a-admin", rt.body).Body)
	}
	for _, p := range []string{"/openapi.json", "/openapi.yaml", "/docs", "/metrics", "/readyz", "/v1/events?connection_id=" + f.connA} {
		bodies = append(bodies, f.do(t, "GET", p, "a-admin", "").Body)
	}
	bodies = append(bodies, f.do(t, "PATCH", "/v1/connections/"+f.connA, "a-admin", `{"config":{"mode":"live"}}`).Body)
	// Failed validation must not echo the submitted secrets either.
	for _, body := range []string{
		`{"connector":"stripe","config":{"api_key":"` + secretAPIKey + `"}}`,                                                             // name missing: schema error
		`{"connector":"stripe","name":"x","config":{"api_key":"` + secretAPIKey + `","mode":"bad"}}`,                                     // config error
		`{"connector":"stripe","name":"x","config":{"api_key":"` + secretAPIKey + `"},"extra":1}`,                                        // unknown property
		`{"connector":"stripe","name":"x","config":{"api_key":"` + secretAPIKey + `","webhook_secret":` + strings.Repeat("[", 10) + `}}`, // broken JSON
	} {
		r := f.do(t, "POST", "/v1/connections", "a-admin", body)
		if r.Code < 400 {
			t.Fatalf("invalid create answered %d", r.Code)
		}
		bodies = append(bodies, r.Body)
	}
	created := f.do(t, "POST", "/v1/api-keys", "a-admin", `{"name":"shown once","scopes":["read"]}`)
	newKey := decode[map[string]any](t, created, http.StatusCreated)["key"].(string)
	for _, b := range append(bodies, f.do(t, "GET", "/v1/api-keys", "a-admin", "").Body) {
		for _, secret := range []string{secretAPIKey, secretWebhook, "TOPSECRET", f.keys["a-admin"], newKey} {
			if strings.Contains(b, secret) {
				t.Fatalf("a response carries a secret: %s", b)
			}
		}
	}
	logs := f.logs.String()
	for _, secret := range []string{"TOPSECRET", f.keys["a-admin"], f.keys["a-revoked"], newKey} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the logs carry a secret: %s", logs)
		}
	}
	// The connection shows which secrets are set.
	c := decode[api.ConnectionBody](t, f.do(t, "GET", "/v1/connections/"+f.connA, "a-admin", ""), http.StatusOK)
	if diff := cmp.Diff([]string{"api_key", "webhook_secret"}, c.SecretFields); diff != "" {
		t.Errorf("secret_fields (-want +got):\n%s", diff)
	}
}

func TestIntegrationOpenAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var doc struct {
		OpenAPI string                              `json:"openapi"`
		Info    struct{ Title, Description string } `json:"info"`
		Paths   map[string]map[string]struct {
			OperationID string                `json:"operationId"`
			Security    []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	r := f.do(t, "GET", "/openapi.json", "", "")
	doc = decode[struct {
		OpenAPI string                              `json:"openapi"`
		Info    struct{ Title, Description string } `json:"info"`
		Paths   map[string]map[string]struct {
			OperationID string                `json:"operationId"`
			Security    []map[string][]string `json:"security"`
		} `json:"paths"`
	}](t, r, http.StatusOK)
	if doc.OpenAPI != "3.1.0" || doc.Info.Title != "Ponte API" || doc.Info.Description == "" {
		t.Errorf("openapi %q, info %+v", doc.OpenAPI, doc.Info)
	}

	// Every route the engine serves under /v1 and the probes is documented,
	// and every documented operation is served.
	served := map[string]bool{}
	for _, rt := range f.h.Routes() {
		if strings.HasPrefix(rt.Path, "/v1/") || rt.Path == "/healthz" || rt.Path == "/readyz" {
			p := regexp.MustCompile(`:(\w+)`).ReplaceAllString(rt.Path, "{$1}")
			served[strings.ToLower(rt.Method)+" "+p] = true
		}
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for method, op := range ops {
			documented[method+" "+p] = true
			if strings.HasPrefix(p, "/v1/") && len(op.Security) == 0 {
				t.Errorf("%s %s is documented without security", method, p)
			}
		}
	}
	if diff := cmp.Diff(served, documented); diff != "" {
		t.Errorf("served vs documented operations (-served +documented):\n%s", diff)
	}
	// The test's own route table covers every /v1 operation.
	for _, rt := range f.routes() {
		key := strings.ToLower(rt.method) + " " + routeTemplate(regexp.MustCompile(`/stripe$`).ReplaceAllString(rt.path, "/{name}"))
		if !documented[key] {
			t.Errorf("route table entry %s not in the document", key)
		}
	}
	if len(f.routes()) != len(served)-2 {
		t.Errorf("route table has %d entries, the API %d /v1 operations", len(f.routes()), len(served)-2)
	}

	r = f.do(t, "GET", "/docs", "", "")
	if r.Code != http.StatusOK || !strings.Contains(r.Body, "<title>Ponte API Reference</title>") {
		t.Errorf("/docs = %d %s", r.Code, r.Body)
	}
	if r := f.do(t, "GET", "/openapi.yaml", "", ""); r.Code != http.StatusOK {
		t.Errorf("/openapi.yaml = %d", r.Code)
	}
}

func TestIntegrationOperations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	if got := decode[map[string]string](t, f.do(t, "GET", "/healthz", "", ""), http.StatusOK); got["status"] != "ok" {
		t.Errorf("healthz = %v", got)
	}
	type ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	f.ready["temporal"] = nil
	got := decode[ready](t, f.do(t, "GET", "/readyz", "", ""), http.StatusOK)
	if diff := cmp.Diff(ready{Status: "ok", Checks: map[string]string{"db": "ok", "temporal": "ok"}}, got); diff != "" {
		t.Errorf("readyz (-want +got):\n%s", diff)
	}
	f.ready["temporal"] = errors.New("dial tcp 127.0.0.1:7233: connection refused")
	got = decode[ready](t, f.do(t, "GET", "/readyz", "", ""), http.StatusServiceUnavailable)
	if diff := cmp.Diff(ready{Status: "unavailable", Checks: map[string]string{"db": "ok", "temporal": "dial tcp 127.0.0.1:7233: connection refused"}}, got); diff != "" {
		t.Errorf("readyz (-want +got):\n%s", diff)
	}

	// Request ids: echoed when acceptable, generated otherwise.
	r := f.do(t, "GET", "/healthz", "", "", "X-Request-Id", "abc-123")
	if r.Header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("request id not echoed: %q", r.Header.Get("X-Request-Id"))
	}
	for _, bad := range []string{"", "has space", strings.Repeat("a", 200), "new\nline"} {
		r := f.do(t, "GET", "/healthz", "", "", "X-Request-Id", bad)
		if id := r.Header.Get("X-Request-Id"); len(id) != 32 {
			t.Errorf("request id for %q = %q, want a generated one", bad, id)
		}
	}
	r = f.do(t, "GET", "/v1/connections", "a-read", "", "X-Request-Id", "trace-me-42")
	if r.Code != http.StatusOK {
		t.Fatalf("list = %d", r.Code)
	}
	var line map[string]any
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, "trace-me-42") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["tenant"] != f.tenantA || line["route"] != "/v1/connections" || line["status"] != float64(200) || line["method"] != "GET" || line["duration"] == nil {
		t.Errorf("access log line = %v", line)
	}

	// The webhook ingress is mounted outside API-key auth.
	for _, m := range []string{"GET", "POST"} {
		r := f.do(t, m, "/hooks/"+f.connA, "", "")
		if r.Code != http.StatusAccepted || r.Body != "hook "+m+" /hooks/"+f.connA {
			t.Errorf("%s /hooks = %d %q", m, r.Code, r.Body)
		}
	}

	metrics := f.do(t, "GET", "/metrics", "", "").Body
	for _, want := range []string{
		`ponte_http_requests_total{method="GET",route="/v1/connections",status="200"} 1`,
		`ponte_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
		`route="/hooks/*path"`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	t.Parallel()
	tests := map[string]api.Deps{
		"no store":       {Connectors: fakeRegistry{}, PaymentLinks: &fakePaymentLinks{}, PublicURL: publicURL},
		"no public url":  {Store: &store.Store{}, Connectors: fakeRegistry{}, PaymentLinks: &fakePaymentLinks{}},
		"relative url":   {Store: &store.Store{}, Connectors: fakeRegistry{}, PaymentLinks: &fakePaymentLinks{}, PublicURL: "/ponte"},
		"url with query": {Store: &store.Store{}, Connectors: fakeRegistry{}, PaymentLinks: &fakePaymentLinks{}, PublicURL: "https://x.example/?a=b"},
	}
	for name, deps := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := api.New(deps); err == nil {
				t.Fatal("New accepted bad deps")
			}
		})
	}
}

// flipLastChar returns key with its last character replaced by a different
// one of the same alphabet, so the result is always a wrong secret (replacing
// with a fixed string would leave the key valid when it already ended so).
func flipLastChar(key string) string {
	last := key[len(key)-1]
	repl := byte('a')
	if last == 'a' {
		repl = 'b'
	}
	return key[:len(key)-1] + string(repl)
}
