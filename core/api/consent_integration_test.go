package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestIntegrationConsentEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ib := f.inbox

	// Record and read back.
	r := f.do(t, "POST", "/v1/contacts/"+ib.contactMine+"/consent", "a-write",
		`{"purposes":["marketing","utility"],"action":"opt_out","source":"support_call","method":"verbal","occurred_at":"`+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)+`"}`)
	recs := decode[struct{ Data []api.ConsentRecordBody }](t, r, http.StatusCreated)
	if len(recs.Data) != 2 || recs.Data[0].Action != "opt_out" || recs.Data[0].Phone == "" {
		t.Fatalf("recorded = %+v", recs)
	}
	got := decode[api.ContactConsentBody](t, f.do(t, "GET", "/v1/contacts/"+ib.contactMine+"/consent", "a-read", ""), http.StatusOK)
	if got.States["marketing"] != "out" || got.States["utility"] != "out" || len(got.History) != 3 {
		t.Errorf("consent = %+v", got)
	}
	p := problem(t, f.do(t, "POST", "/v1/contacts/"+ib.contactMine+"/consent", "a-write", `{"purposes":["sales"],"action":"opt_in","source":"x","evidence":[1]}`), http.StatusUnprocessableEntity)
	if len(p.Errors) == 0 {
		t.Errorf("422 without errors: %+v", p)
	}
	problem(t, f.do(t, "GET", "/v1/contacts/ct_nope/consent", "a-read", ""), http.StatusNotFound)
	// An operator reads the consent of its own contacts only.
	decode[api.ContactConsentBody](t, f.do(t, "GET", "/v1/contacts/"+ib.contactMine+"/consent", "a-user-operator", ""), http.StatusOK)
	problem(t, f.do(t, "GET", "/v1/contacts/"+ib.contactOther+"/consent", "a-user-operator", ""), http.StatusForbidden)
	problem(t, f.do(t, "POST", "/v1/contacts/"+ib.contactMine+"/consent", "a-user-operator", `{"purposes":["marketing"],"action":"opt_in","source":"x"}`), http.StatusForbidden)

	// The export: every record with its evidence, as NDJSON and CSV.
	r = f.do(t, "GET", "/v1/consent/export", "a-read", "")
	if r.Code != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("export = %d %s", r.Code, r.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(r.Body), "\n")
	if len(lines) != 3 {
		t.Fatalf("export has %d lines, want 3: %s", len(lines), r.Body)
	}
	var first api.ConsentRecordBody
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ContactID != ib.contactMine || first.Source != "checkout" || first.Method != "checkbox" || first.TextShown != "Offerte su WhatsApp" ||
		first.TextVersion != "v2" || first.IP != "203.0.113.5" || first.UserAgent != "Mozilla/5.0 (A)" || first.OccurredAt.IsZero() || first.Phone != "+393330000001" {
		t.Errorf("first exported record = %+v", first)
	}
	r = f.do(t, "GET", "/v1/consent/export?format=csv&contact_id="+ib.contactMine, "a-read", "")
	rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil || r.Code != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export = %d %v: %s", r.Code, err, r.Body)
	}
	if len(rows) != 4 || rows[0][7] != "text_shown" || rows[1][7] != "Offerte su WhatsApp" || rows[1][9] != "203.0.113.5" || rows[3][5] != "support_call" {
		t.Errorf("csv rows = %q", rows)
	}
	problem(t, f.do(t, "GET", "/v1/consent/export?contact_id=ct_nope", "a-read", ""), http.StatusNotFound)

	// Exclusions: E.164 only; + may come percent-encoded in the path.
	problem(t, f.do(t, "POST", "/v1/exclusions", "a-write", `{"phone":"3331234567"}`), http.StatusUnprocessableEntity)
	decode[api.ExclusionBody](t, f.do(t, "POST", "/v1/exclusions", "a-write", `{"phone":"+393331234567"}`), http.StatusCreated)
	if r := f.do(t, "DELETE", "/v1/exclusions/%2B393331234567", "a-write", ""); r.Code != http.StatusNoContent {
		t.Errorf("delete with %%2B = %d %s", r.Code, r.Body)
	}
	problem(t, f.do(t, "DELETE", "/v1/exclusions/+393331234567", "a-write", ""), http.StatusNotFound)
	problem(t, f.do(t, "GET", "/v1/exclusions?cursor=nope", "a-read", ""), http.StatusBadRequest)

	// Settings.
	st := decode[api.MessagingSettingsBody](t, f.do(t, "GET", "/v1/settings/messaging", "a-read", ""), http.StatusOK)
	if st.Timezone != "Europe/Rome" || st.QuietHoursStart != "" || len(st.StopKeywords) != 5 {
		t.Errorf("settings = %+v", st)
	}
	for body, field := range map[string]string{
		`{"timezone":"Mars/Base"}`:                                "body.timezone",
		`{"quiet_hours_start":"21:00"}`:                           "body.quiet_hours_start",
		`{"quiet_hours_start":"25:00","quiet_hours_end":"08:00"}`: "body.quiet_hours_start",
		`{"stop_keywords":["STOP"],"start_keywords":["stop!"]}`:   "body.start_keywords",
		`{"stop_confirmation":""}`:                                "body.stop_confirmation",
	} {
		p := problem(t, f.do(t, "PATCH", "/v1/settings/messaging", "a-write", body), http.StatusUnprocessableEntity)
		if len(p.Errors) == 0 || p.Errors[0].Location != field {
			t.Errorf("PATCH %s: errors %+v, want one at %s", body, p.Errors, field)
		}
	}
	st = decode[api.MessagingSettingsBody](t, f.do(t, "PATCH", "/v1/settings/messaging", "a-write", `{"quiet_hours_start":"21:30","quiet_hours_end":"07:00","start_keywords":["START","RIPRENDI","SI"]}`), http.StatusOK)
	if st.QuietHoursStart != "21:30" || st.QuietHoursEnd != "07:00" || len(st.StartKeywords) != 3 || st.Timezone != "Europe/Rome" {
		t.Errorf("patched settings = %+v", st)
	}
}

func TestIntegrationTemplateEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cf := f.consent

	type list struct {
		Data       []api.TemplateBody `json:"data"`
		NextCursor string             `json:"next_cursor"`
	}
	all := decode[list](t, f.do(t, "GET", "/v1/templates", "a-read", ""), http.StatusOK)
	if len(all.Data) != 2 {
		t.Fatalf("templates = %+v", all)
	}
	approved := decode[list](t, f.do(t, "GET", "/v1/templates?status=approved&category=marketing&name=cart&connection_id="+f.connA, "a-read", ""), http.StatusOK)
	if len(approved.Data) != 1 || approved.Data[0].ID != cf.tplA || approved.Data[0].Parameters != 1 {
		t.Errorf("filtered = %+v", approved)
	}
	problem(t, f.do(t, "GET", "/v1/templates?status=bogus", "a-read", ""), http.StatusUnprocessableEntity)
	problem(t, f.do(t, "GET", "/v1/templates/tpl_nope", "a-read", ""), http.StatusNotFound)

	// Create: validated before anything reaches the connector.
	calls := cf.graph.count()
	p := problem(t, f.do(t, "POST", "/v1/templates", "a-write", `{"connection_id":"`+f.connA+`","name":"x","language":"it","category":"utility","components":[{"type":"BODY","text":"{{1}} and {{3}}"}]}`), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.components[0].text" {
		t.Errorf("errors = %+v", p.Errors)
	}
	if cf.graph.count() != calls {
		t.Error("an invalid template reached the connector")
	}
	body := `{"connection_id":"` + f.connA + `","name":"order_shipped","language":"it","category":"UTILITY","components":[{"type":"BODY","text":"Ordine {{1}} spedito"}]}`
	created := decode[api.TemplateBody](t, f.do(t, "POST", "/v1/templates", "a-write", body), http.StatusCreated)
	if created.Status != "pending" || created.Category != "utility" || created.Parameters != 1 || created.ProviderID == "" {
		t.Errorf("created = %+v", created)
	}
	problem(t, f.do(t, "POST", "/v1/templates", "a-write", body), http.StatusConflict)

	// Sync reports what it did.
	type syncOut struct{ Upserted, Removed, Skipped int }
	if s := decode[syncOut](t, f.do(t, "POST", "/v1/connections/"+f.connA+"/templates/sync", "a-write", ""), http.StatusOK); s.Upserted != 3 || s.Removed != 0 {
		t.Errorf("sync = %+v", s)
	}
	// Connector errors keep their meaning.
	cf.graph.mu.Lock()
	cf.graph.err = sdk.RateLimited(30*time.Second, "slow down")
	cf.graph.mu.Unlock()
	r := f.do(t, "POST", "/v1/connections/"+f.connA+"/templates/sync", "a-write", "")
	problem(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") != "30" {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	cf.graph.mu.Lock()
	cf.graph.err = sdk.Auth("token expired")
	cf.graph.mu.Unlock()
	problem(t, f.do(t, "DELETE", "/v1/templates/"+created.ID, "a-write", ""), http.StatusBadGateway)
	cf.graph.mu.Lock()
	cf.graph.err = nil
	cf.graph.mu.Unlock()
	if r := f.do(t, "DELETE", "/v1/templates/"+created.ID, "a-write", ""); r.Code != http.StatusNoContent {
		t.Errorf("delete = %d %s", r.Code, r.Body)
	}
	problem(t, f.do(t, "GET", "/v1/templates/"+created.ID, "a-read", ""), http.StatusNotFound)
	// Operators read templates, never change them.
	decode[list](t, f.do(t, "GET", "/v1/templates", "a-user-operator", ""), http.StatusOK)
	problem(t, f.do(t, "POST", "/v1/connections/"+f.connA+"/templates/sync", "a-user-operator", ""), http.StatusForbidden)
}
