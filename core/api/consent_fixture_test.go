package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// consentFixture is the consent, settings and templates part of the API
// fixture: a consent record and an exclusion of tenant A, and templates of A
// and B synced from a fake connector.
type consentFixture struct {
	svc       *consent.Service
	tpl       *templates.Service
	graph     *fakeTemplateGraph
	excludedA string // a number on A's exclusion list
	tplA      string // A's approved template
	tplDel    string // A's template the route table deletes
	tplB      string // B's template
}

// phoneSegment turns an E.164 path segment into its route parameter.
var phoneSegment = regexp.MustCompile(`/\+\d+$`)

func init() {
	// Operators read templates and the consent of their own contacts.
	for _, r := range []string{"GET /v1/contacts/{id}/consent", "GET /v1/templates", "GET /v1/templates/{id}"} {
		operatorRoutes[r] = true
	}
}

// fakeTemplateGraph answers the Cloud API connector's template actions from
// memory, per connection, and refuses connections of another tenant the way
// the real invoker does.
type fakeTemplateGraph struct {
	st    *store.Store
	mu    sync.Mutex
	byCon map[string][]map[string]any
	seq   int
	calls []invoke.Call
	err   error
}

func (g *fakeTemplateGraph) Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error) {
	if _, err := g.st.GetConnection(ctx, call.TenantID, call.ConnectionID); err != nil {
		return nil, &sdk.Error{Kind: sdk.KindNotFound, Message: "connection not found", Err: store.ErrNotFound}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, call)
	if g.err != nil {
		return nil, g.err
	}
	var p map[string]any
	_ = json.Unmarshal(call.Params, &p)
	list := g.byCon[call.ConnectionID]
	switch call.Action {
	case "list_templates":
		return json.Marshal(map[string]any{"templates": list, "next": ""})
	case "create_template":
		g.seq++
		id := fmt.Sprintf("77%d", g.seq)
		g.byCon[call.ConnectionID] = append(list, map[string]any{"id": id, "name": p["name"], "language": p["language"],
			"category": p["category"], "status": "PENDING", "components": p["components"]})
		return json.Marshal(map[string]any{"id": id, "status": "PENDING", "category": p["category"]})
	case "delete_template":
		for i, t := range list {
			if t["name"] == p["name"] && (p["id"] == nil || t["id"] == p["id"]) {
				g.byCon[call.ConnectionID] = append(list[:i:i], list[i+1:]...)
				return json.RawMessage(`{}`), nil
			}
		}
		return nil, &sdk.Error{Kind: sdk.KindNotFound, Message: "no such template"}
	}
	return nil, sdk.Invalid("unknown action %s", call.Action)
}

func (g *fakeTemplateGraph) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func metaTpl(id, name, lang, category, status, body string) map[string]any {
	return map[string]any{"id": id, "name": name, "language": lang, "category": category, "status": status,
		"components": []map[string]string{{"type": "BODY", "text": body}}}
}

// setUpConsent creates the consent fixture data; it runs after setUpInbox.
func (f *fixture) setUpConsent(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cf := &consentFixture{excludedA: "+393339990001"}
	cf.svc = consent.New(f.st.Pool(), consent.Options{})
	cf.graph = &fakeTemplateGraph{st: f.st, byCon: map[string][]map[string]any{
		f.connA: {
			metaTpl("1", "cart_reminder", "it", "MARKETING", "APPROVED", "Ciao {{1}}, il tuo carrello ti aspetta"),
			metaTpl("2", "old_promo", "it", "MARKETING", "PAUSED", "Offerta"),
		},
		f.connB: {metaTpl("3", "cart_reminder", "it", "MARKETING", "APPROVED", "Hi {{1}}")},
	}}
	cf.tpl = templates.New(f.st.Pool(), cf.graph, templates.Options{})
	f.consent = cf
	if _, err := cf.tpl.Sync(ctx, f.tenantA, f.connA); err != nil {
		t.Fatal(err)
	}
	if _, err := cf.tpl.Sync(ctx, f.tenantB, f.connB); err != nil {
		t.Fatal(err)
	}
	get := func(tenantID, conn, name string) string {
		tp, err := cf.tpl.Get(ctx, tenantID, conn, name, "it")
		if err != nil {
			t.Fatal(err)
		}
		return tp.ID
	}
	cf.tplA, cf.tplDel, cf.tplB = get(f.tenantA, f.connA, "cart_reminder"), get(f.tenantA, f.connA, "old_promo"), get(f.tenantB, f.connB, "cart_reminder")
	if _, err := cf.svc.Record(ctx, f.tenantA, consent.NewRecord{ContactID: f.inbox.contactMine, Purposes: []string{"marketing"},
		Action: "opt_in", Source: "checkout", Method: "checkbox", TextShown: "Offerte su WhatsApp", TextVersion: "v2",
		IP: "203.0.113.5", UserAgent: "Mozilla/5.0 (A)"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cf.svc.Record(ctx, f.tenantB, consent.NewRecord{ContactID: f.inbox.contactB, Purposes: []string{"utility"},
		Action: "opt_out", Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cf.svc.AddExclusion(ctx, f.tenantA, cf.excludedA, "asked by email"); err != nil {
		t.Fatal(err)
	}
	if _, err := cf.svc.UpdateSettings(ctx, f.tenantA, consent.SettingsUpdate{Timezone: ptr("Europe/Rome")}); err != nil {
		t.Fatal(err)
	}
}

// consentRoutes are the consent, exclusion, settings and template operations
// with a request valid for tenant A.
func (f *fixture) consentRoutes() []route {
	cf, ib := f.consent, f.inbox
	return []route{
		{"POST", "/v1/contacts/" + ib.contactMine + "/consent", "write", `{"purposes":["marketing","utility"],"action":"opt_in","source":"api","text_shown":"Yes, WhatsApp offers"}`},
		{"GET", "/v1/contacts/" + ib.contactMine + "/consent", "read", ""},
		{"GET", "/v1/consent/export", "read", ""},
		{"POST", "/v1/exclusions", "write", `{"phone":"+393339990002","reason":"complaint"}`},
		{"GET", "/v1/exclusions", "read", ""},
		{"DELETE", "/v1/exclusions/" + cf.excludedA, "write", ""},
		{"GET", "/v1/settings/messaging", "read", ""},
		{"PATCH", "/v1/settings/messaging", "write", `{"quiet_hours_start":"21:00","quiet_hours_end":"08:00"}`},
		{"GET", "/v1/templates", "read", ""},
		{"GET", "/v1/templates/" + cf.tplA, "read", ""},
		{"POST", "/v1/templates", "write", `{"connection_id":"` + f.connA + `","name":"order_shipped","language":"it","category":"utility","components":[{"type":"BODY","text":"Ordine {{1}} spedito"}]}`},
		{"DELETE", "/v1/templates/" + cf.tplDel, "write", ""},
		{"POST", "/v1/connections/" + f.connA + "/templates/sync", "write", ""},
	}
}

// consentIsolationTests are tenant B's requests against A's consent,
// exclusions, settings and templates.
func (f *fixture) consentIsolationTests(notFound, noneOfA func(*testing.T, response)) map[string]isolationTest {
	cf, ib := f.consent, f.inbox
	noneOfConsent := func(t *testing.T, r response) {
		t.Helper()
		noneOfA(t, r)
		for _, s := range []string{ib.contactMine, ib.contactOther, cf.excludedA, cf.tplA, cf.tplDel, "Offerte su WhatsApp", "203.0.113.5", "Europe/Rome"} {
			if strings.Contains(r.Body, s) {
				t.Errorf("B's response carries A's %s: %s", s, r.Body)
			}
		}
	}
	created := func(t *testing.T, r response) { t.Helper(); decode[map[string]any](t, r, http.StatusCreated) }
	return map[string]isolationTest{
		"record consent for A's contact": {"POST", "/v1/contacts/" + ib.contactMine + "/consent", `{"purposes":["marketing"],"action":"opt_out","source":"api"}`, notFound},
		"read A's contact consent":       {"GET", "/v1/contacts/" + ib.contactMine + "/consent", "", notFound},
		"export":                         {"GET", "/v1/consent/export", "", noneOfConsent},
		"export A's contact":             {"GET", "/v1/consent/export?contact_id=" + ib.contactMine, "", notFound},
		"add exclusion":                  {"POST", "/v1/exclusions", `{"phone":"+393339990003"}`, created},
		"list exclusions":                {"GET", "/v1/exclusions", "", noneOfConsent},
		"remove A's exclusion":           {"DELETE", "/v1/exclusions/" + cf.excludedA, "", notFound},
		"read settings":                  {"GET", "/v1/settings/messaging", "", noneOfConsent},
		"change settings":                {"PATCH", "/v1/settings/messaging", `{"timezone":"Asia/Tokyo","stop_keywords":["BASTA"]}`, noneOfConsent},
		"list templates":                 {"GET", "/v1/templates", "", noneOfConsent},
		"templates of A's connection":    {"GET", "/v1/templates?connection_id=" + f.connA, "", noneOfConsent},
		"get A's template":               {"GET", "/v1/templates/" + cf.tplA, "", notFound},
		"delete A's template":            {"DELETE", "/v1/templates/" + cf.tplDel, "", notFound},
		"sync A's connection":            {"POST", "/v1/connections/" + f.connA + "/templates/sync", "", notFound},
		"create template on A's connection": {"POST", "/v1/templates", `{"connection_id":"` + f.connA + `","name":"pwned","language":"it","category":"marketing","components":[{"type":"BODY","text":"x"}]}`, func(t *testing.T, r response) {
			t.Helper()
			p := problem(t, r, http.StatusUnprocessableEntity)
			if len(p.Errors) != 1 || p.Errors[0].Location != "body.connection_id" {
				t.Errorf("errors = %+v, want one at body.connection_id", p.Errors)
			}
		}},
	}
}

// checkConsentUntouched verifies that tenant B's requests changed nothing of A's.
func (f *fixture) checkConsentUntouched(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cf := f.consent
	cc, err := cf.svc.ContactConsent(ctx, f.tenantA, f.inbox.contactMine)
	if err != nil || cc.States["marketing"] != "in" || len(cc.History) != 1 {
		t.Errorf("A's consent after B's requests: %+v, %v", cc, err)
	}
	if list, _, err := cf.svc.ListExclusions(ctx, f.tenantA, "", 10); err != nil || len(list) != 1 || list[0].Phone != cf.excludedA {
		t.Errorf("A's exclusions after B's requests: %+v, %v", list, err)
	}
	if st, err := cf.svc.Settings(ctx, f.tenantA); err != nil || st.Timezone != "Europe/Rome" || st.StopKeywords[0] != "STOP" {
		t.Errorf("A's settings after B's requests: %+v, %v", st, err)
	}
	for _, id := range []string{cf.tplA, cf.tplDel} {
		if _, err := cf.tpl.GetByID(ctx, f.tenantA, id); err != nil {
			t.Errorf("A's template %s after B's requests: %v", id, err)
		}
	}
	if l, _, _ := cf.tpl.List(ctx, f.tenantA, templates.Filter{}); len(l) != 2 {
		t.Errorf("A has %d templates after B's requests, want 2", len(l))
	}
}
