package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestCountVariables(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		text string
		want int
	}{
		"none":     {"Hello there", 0},
		"one":      {"Hi {{1}}", 1},
		"repeated": {"Hi {{1}}, {{1}} again and {{2}}", 2},
		"spaces":   {"Hi {{ 1 }} and {{2}}", 2},
		"named":    {"Hi {{first_name}}, order {{order_id}}", 2},
		"broken":   {"Hi {1} and {{ }}", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := countVariables(tc.text); got != tc.want {
				t.Errorf("countVariables(%q) = %d, want %d", tc.text, got, tc.want)
			}
		})
	}
}

func TestMapStatus(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status string
		ok     bool
	}{
		"APPROVED": {"approved", true}, "REINSTATED": {"approved", true}, "PENDING": {"pending", true}, "IN_APPEAL": {"pending", true},
		"REJECTED": {"rejected", true}, "PAUSED": {"paused", true}, "DISABLED": {"disabled", true}, "PENDING_DELETION": {"disabled", true},
		"ARCHIVED": {"disabled", true}, "approved": {"approved", true}, "DELETED": {"", false}, "LOCKED": {"", false}, "FLAGGED": {"", false},
	}
	for meta, tc := range tests {
		t.Run(meta, func(t *testing.T) {
			t.Parallel()
			got, ok := mapStatus(meta)
			if got != tc.status || ok != tc.ok {
				t.Errorf("mapStatus(%q) = %q, %v; want %q, %v", meta, got, ok, tc.status, tc.ok)
			}
		})
	}
}

func TestCheckFillable(t *testing.T) {
	t.Parallel()
	tpl := func(params int, components string) Template {
		return Template{Parameters: params, Components: json.RawMessage(components)}
	}
	tests := map[string]struct {
		t          Template
		provided   int
		media      bool
		wantReason string
	}{
		"fits":               {tpl(2, `[{"type":"BODY","text":"Hi {{1}}, {{2}}"}]`), 2, false, ""},
		"too few":            {tpl(2, `[{"type":"BODY","text":"Hi {{1}}, {{2}}"}]`), 1, false, IncompatibleParameterCount},
		"too many":           {tpl(0, `[{"type":"BODY","text":"Hi"}]`), 1, false, IncompatibleParameterCount},
		"image header":       {tpl(1, `[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"{{1}}"}]`), 1, false, IncompatibleHeaderMedia},
		"image header given": {tpl(1, `[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"{{1}}"}]`), 1, true, ""},
		"document header":    {tpl(0, `[{"type":"HEADER","format":"DOCUMENT"},{"type":"BODY","text":"x"}]`), 0, false, IncompatibleHeaderMedia},
		"location header":    {tpl(0, `[{"type":"HEADER","format":"LOCATION"},{"type":"BODY","text":"x"}]`), 0, true, IncompatibleLocationHeader},
		"text header static": {tpl(0, `[{"type":"HEADER","format":"TEXT","text":"Sale"},{"type":"BODY","text":"x"}]`), 0, false, ""},
		"text header var":    {tpl(0, `[{"type":"HEADER","format":"TEXT","text":"Hi {{1}}"},{"type":"BODY","text":"x"}]`), 0, false, IncompatibleHeaderParameter},
		"static url button":  {tpl(0, `[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Shop","url":"https://shop.example"}]}]`), 0, false, ""},
		"dynamic url button": {tpl(0, `[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Cart","url":"https://shop.example/c/{{1}}"}]}]`), 0, false, IncompatibleDynamicURL},
		"quick replies":      {tpl(0, `[{"type":"BODY","text":"x"},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop"}]}]`), 0, false, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := CheckFillable(tc.t, tc.provided, tc.media)
			var ie *IncompatibleError
			reason := ""
			if errors.As(err, &ie) {
				reason = ie.Reason
			} else if err != nil {
				t.Fatalf("error %v is not an IncompatibleError", err)
			}
			if reason != tc.wantReason {
				t.Errorf("reason = %q (%v), want %q", reason, err, tc.wantReason)
			}
		})
	}
}

func TestCheckNewTemplate(t *testing.T) {
	t.Parallel()
	valid := func() NewTemplate {
		return NewTemplate{ConnectionID: "con_1", Name: "order_shipped", Language: "en_US", Category: "UTILITY",
			Components: json.RawMessage(`[{"type":"HEADER","format":"TEXT","text":"Shipped"},{"type":"BODY","text":"Hi {{1}}, order {{2}} is on its way"},
			{"type":"FOOTER","text":"Reply STOP to opt out"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://t.example/{{1}}"}]}]`)}
	}
	tests := map[string]struct {
		change func(*NewTemplate)
		fields []string
	}{
		"valid":            {func(*NewTemplate) {}, nil},
		"upper name":       {func(n *NewTemplate) { n.Name = "Order" }, []string{"name"}},
		"name with dash":   {func(n *NewTemplate) { n.Name = "order-shipped" }, []string{"name"}},
		"bad language":     {func(n *NewTemplate) { n.Language = "english" }, []string{"language"}},
		"bad category":     {func(n *NewTemplate) { n.Category = "promo" }, []string{"category"}},
		"no components":    {func(n *NewTemplate) { n.Components = json.RawMessage(`[]`) }, []string{"components"}},
		"not an array":     {func(n *NewTemplate) { n.Components = json.RawMessage(`{"type":"BODY"}`) }, []string{"components"}},
		"no body":          {func(n *NewTemplate) { n.Components = json.RawMessage(`[{"type":"FOOTER","text":"x"}]`) }, []string{"components"}},
		"gap in variables": {func(n *NewTemplate) { n.Components = json.RawMessage(`[{"type":"BODY","text":"{{1}} {{3}}"}]`) }, []string{"components[0].text"}},
		"two bodies": {func(n *NewTemplate) {
			n.Components = json.RawMessage(`[{"type":"BODY","text":"a"},{"type":"BODY","text":"b"}]`)
		}, []string{"components[1].type"}},
		"unknown component": {func(n *NewTemplate) { n.Components = json.RawMessage(`[{"type":"BODY","text":"a"},{"type":"GIF"}]`) }, []string{"components[1].type"}},
		"bad header format": {func(n *NewTemplate) {
			n.Components = json.RawMessage(`[{"type":"HEADER","format":"GIF"},{"type":"BODY","text":"a"}]`)
		}, []string{"components[0].format"}},
		"footer variable": {func(n *NewTemplate) {
			n.Components = json.RawMessage(`[{"type":"BODY","text":"a"},{"type":"FOOTER","text":"{{1}}"}]`)
		}, []string{"components[1].text"}},
		"too many buttons": {func(n *NewTemplate) {
			n.Components = json.RawMessage(`[{"type":"BODY","text":"a"},{"type":"BUTTONS","buttons":[]}]`)
		}, []string{"components[1].buttons"}},
		"auth without text": {func(n *NewTemplate) {
			n.Category = "authentication"
			n.Components = json.RawMessage(`[{"type":"BODY","add_security_recommendation":true}]`)
		}, nil},
		"marketing no text": {func(n *NewTemplate) { n.Category = "marketing"; n.Components = json.RawMessage(`[{"type":"BODY"}]`) }, []string{"components[0].text"}},
		"button without url": {func(n *NewTemplate) {
			n.Components = json.RawMessage(`[{"type":"BODY","text":"a"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"x"}]}]`)
		}, []string{"components[1].buttons[0].url"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := valid()
			tc.change(&in)
			err := checkNewTemplate(&in)
			var fields []string
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					fields = append(fields, p.Field)
				}
			} else if err != nil {
				t.Fatalf("%v is not a ValidationError", err)
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeGraph is a WABA's templates behind the connector actions
// list_templates, create_template and delete_template.
type fakeGraph struct {
	mu        sync.Mutex
	templates []metaTemplate
	calls     []invoke.Call
	nextID    int
	// fail, when set, is returned by every call.
	fail error
}

func (f *fakeGraph) Invoke(_ context.Context, call invoke.Call) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.fail != nil {
		return nil, f.fail
	}
	var p struct {
		After      string          `json:"after"`
		Limit      int             `json:"limit"`
		Name       string          `json:"name"`
		ID         string          `json:"id"`
		Language   string          `json:"language"`
		Category   string          `json:"category"`
		Components json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(call.Params, &p); err != nil {
		return nil, sdk.Invalid("bad params: %v", err)
	}
	switch call.Action {
	case "list_templates":
		// Small pages so a sync has to follow cursors.
		limit := min(p.Limit, 2)
		start := 0
		if p.After != "" {
			start, _ = strconv.Atoi(p.After)
		}
		end := min(start+limit, len(f.templates))
		next := ""
		if end < len(f.templates) {
			next = strconv.Itoa(end)
		}
		return json.Marshal(map[string]any{"templates": f.templates[start:end], "next": next})
	case "create_template":
		for _, t := range f.templates {
			if t.Name == p.Name && t.Language == p.Language {
				return nil, &sdk.Error{Kind: sdk.KindInvalid, Code: "100", Message: "template exists"}
			}
		}
		f.nextID++
		id := fmt.Sprintf("%d", 9000+f.nextID)
		f.templates = append(f.templates, metaTemplate{ID: id, Name: p.Name, Language: p.Language, Category: p.Category, Status: "PENDING", Components: p.Components})
		return json.Marshal(map[string]string{"id": id, "status": "PENDING", "category": p.Category})
	case "delete_template":
		for i, t := range f.templates {
			if t.Name == p.Name && (p.ID == "" || t.ID == p.ID) {
				f.templates = append(f.templates[:i], f.templates[i+1:]...)
				return json.RawMessage(`{}`), nil
			}
		}
		return nil, &sdk.Error{Kind: sdk.KindNotFound, Message: "no such template"}
	}
	return nil, sdk.Invalid("unknown action %s", call.Action)
}

func (f *fakeGraph) set(ts ...metaTemplate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.templates = ts
}

func (f *fakeGraph) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Action)
	}
	return out
}

type env struct {
	st      *store.Store
	svc     *Service
	graph   *fakeGraph
	tenantA string
	tenantB string
	connA   string
	connB   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	e := &env{st: st, graph: &fakeGraph{}}
	mk := func(name string) (string, string) {
		tn, err := st.CreateTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.CreateConnection(ctx, tn.ID, store.NewConnection{Connector: "cloudapi", Name: "WA " + name,
			Config: json.RawMessage(`{"waba_id":"1"}`), Fields: []sdk.ConfigField{{Name: "waba_id", Type: sdk.FieldString}}})
		if err != nil {
			t.Fatal(err)
		}
		return tn.ID, c.ID
	}
	e.tenantA, e.connA = mk("A")
	e.tenantB, e.connB = mk("B")
	e.svc = New(st.Pool(), e.graph, Options{})
	return e
}

func body(text string) json.RawMessage {
	b, _ := json.Marshal([]map[string]string{{"type": "BODY", "text": text}})
	return b
}

func TestIntegrationSync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.graph.set(
		metaTemplate{ID: "1", Name: "cart_reminder", Language: "it", Category: "MARKETING", Status: "APPROVED", Components: body("Ciao {{1}}, il carrello {{2}} ti aspetta. {{1}}")},
		metaTemplate{ID: "2", Name: "cart_reminder", Language: "en_US", Category: "MARKETING", Status: "PENDING", Components: body("Hi {{1}}")},
		metaTemplate{ID: "3", Name: "order_shipped", Language: "it", Category: "UTILITY", Status: "REJECTED", RejectedReason: "INVALID_FORMAT", Components: body("x")},
		metaTemplate{ID: "4", Name: "otp", Language: "it", Category: "AUTHENTICATION", Status: "PAUSED", Components: body("{{1}}")},
		metaTemplate{ID: "5", Name: "old", Language: "it", Category: "UTILITY", Status: "DISABLED"},
		metaTemplate{ID: "6", Name: "legacy", Language: "it", Category: "TRANSACTIONAL", Status: "APPROVED"},
		metaTemplate{ID: "7", Name: "gone", Language: "it", Category: "UTILITY", Status: "DELETED"},
	)
	res, err := e.svc.Sync(ctx, e.tenantA, e.connA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SyncResult{Upserted: 5, Skipped: 2}, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if n := len(e.graph.actions()); n != 4 {
		t.Errorf("list_templates called %d times, want 4 (pages of 2)", n)
	}
	list, _, err := e.svc.List(ctx, e.tenantA, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Language, Category, Status, Reason, Provider string
		Params                                             int
	}
	var got []row
	for _, t := range list {
		got = append(got, row{t.Name, t.Language, t.Category, t.Status, t.StatusReason, t.ProviderID, t.Parameters})
	}
	want := []row{
		{"cart_reminder", "en_US", "marketing", "pending", "", "2", 1},
		{"cart_reminder", "it", "marketing", "approved", "", "1", 2},
		{"old", "it", "utility", "disabled", "", "5", 0},
		{"order_shipped", "it", "utility", "rejected", "INVALID_FORMAT", "3", 0},
		{"otp", "it", "authentication", "paused", "", "4", 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored templates (-want +got):\n%s", diff)
	}

	// Get and RequireSendable.
	tpl, err := e.svc.Get(ctx, e.tenantA, e.connA, "cart_reminder", "it")
	if err != nil || tpl.Status != "approved" || tpl.Parameters != 2 {
		t.Fatalf("Get = %+v, %v", tpl, err)
	}
	if _, err := e.svc.RequireSendable(ctx, e.tenantA, e.connA, "cart_reminder", "it"); err != nil {
		t.Errorf("approved template not sendable: %v", err)
	}
	for _, tc := range []struct{ name, lang, status string }{{"cart_reminder", "en_US", "pending"}, {"otp", "it", "paused"}, {"order_shipped", "it", "rejected"}, {"nope", "it", ""}} {
		_, err := e.svc.RequireSendable(ctx, e.tenantA, e.connA, tc.name, tc.lang)
		var ns *NotSendableError
		if !errors.As(err, &ns) || ns.Status != tc.status {
			t.Errorf("RequireSendable(%s, %s) = %v, want NotSendableError with status %q", tc.name, tc.lang, err, tc.status)
		}
		if tc.status == "" && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a missing template is not ErrNotFound: %v", err)
		}
	}
	// Another tenant sees none of it.
	if _, err := e.svc.Get(ctx, e.tenantB, e.connA, "cart_reminder", "it"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B reads A's template: %v", err)
	}
	if l, _, _ := e.svc.List(ctx, e.tenantB, Filter{}); len(l) != 0 {
		t.Errorf("B lists A's templates: %d", len(l))
	}

	// Filters and pages.
	page, next, err := e.svc.List(ctx, e.tenantA, Filter{Category: "marketing", Limit: 1})
	if err != nil || len(page) != 1 || next == "" {
		t.Fatalf("page 1 = %d, %q, %v", len(page), next, err)
	}
	page2, next2, err := e.svc.List(ctx, e.tenantA, Filter{Category: "marketing", Limit: 1, Cursor: next})
	if err != nil || len(page2) != 1 || next2 != "" || page2[0].ID == page[0].ID {
		t.Fatalf("page 2 = %+v, %q, %v", page2, next2, err)
	}
	if l, _, _ := e.svc.List(ctx, e.tenantA, Filter{Status: "approved", Name: "CART"}); len(l) != 1 {
		t.Errorf("status+name filter = %d templates, want 1", len(l))
	}
	if _, _, err := e.svc.List(ctx, e.tenantA, Filter{Cursor: "bm9wZQ"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}

	// Marked incompatible: stays so while Meta approves the same
	// components; a new version replaces it.
	if _, err := e.svc.MarkIncompatible(ctx, e.tenantA, tpl.ID, "cart recovery: the body has 2 variables, the reminder fills 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.MarkIncompatible(ctx, e.tenantB, tpl.ID, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B marked A's template: %v", err)
	}
	if _, err := e.svc.Sync(ctx, e.tenantA, e.connA); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Get(ctx, e.tenantA, e.connA, "cart_reminder", "it"); got.Status != StatusIncompatible || got.StatusReason == "" {
		t.Errorf("after a sync with the same components: %s %q", got.Status, got.StatusReason)
	}
	_, err = e.svc.RequireSendable(ctx, e.tenantA, e.connA, "cart_reminder", "it")
	var ns *NotSendableError
	if !errors.As(err, &ns) || ns.Status != StatusIncompatible {
		t.Errorf("incompatible template sendable: %v", err)
	}

	// Deleted at Meta, edited at Meta: the next sync follows.
	e.graph.set(
		metaTemplate{ID: "1", Name: "cart_reminder", Language: "it", Category: "MARKETING", Status: "APPROVED", Components: body("Ciao {{1}}")},
		metaTemplate{ID: "4", Name: "otp", Language: "it", Category: "AUTHENTICATION", Status: "APPROVED", Components: body("{{1}}")},
	)
	res, err = e.svc.Sync(ctx, e.tenantA, e.connA)
	if err != nil || res.Removed != 3 || res.Upserted != 2 {
		t.Errorf("second sync = %+v, %v; want 2 upserted, 3 removed", res, err)
	}
	if got, _ := e.svc.Get(ctx, e.tenantA, e.connA, "cart_reminder", "it"); got.Status != StatusApproved || got.Parameters != 1 || got.StatusReason != "" {
		t.Errorf("edited template = %s %q %d", got.Status, got.StatusReason, got.Parameters)
	}

	// A connection of another tenant cannot be synced into this one.
	e.graph.mu.Lock()
	e.graph.fail = nil
	e.graph.mu.Unlock()
	if _, err := e.svc.Sync(ctx, e.tenantA, e.connB); !IsNotFound(err) {
		t.Errorf("syncing B's connection as A: %v", err)
	}
	if l, _, _ := e.svc.List(ctx, e.tenantA, Filter{ConnectionID: e.connB}); len(l) != 0 {
		t.Errorf("A has templates on B's connection: %d", len(l))
	}
	e.graph.mu.Lock()
	e.graph.fail = sdk.RateLimited(time.Second, "slow down")
	e.graph.mu.Unlock()
	var se *sdk.Error
	if _, err := e.svc.Sync(ctx, e.tenantA, e.connA); !errors.As(err, &se) || se.Kind != sdk.KindRateLimited {
		t.Errorf("connector error lost its kind: %v", err)
	}
}

func statusEventOf(e *env, at time.Time, p statusEvent) dispatch.Event {
	b, _ := json.Marshal(p)
	return dispatch.Event{ID: 7, TenantID: e.tenantA, ConnectionID: e.connA, Connector: "cloudapi", Type: EventStatusUpdated,
		DedupeKey: "template:" + p.TemplateID + ":" + p.Event, OccurredAt: at, ReceivedAt: at, Payload: b}
}

func apply(t *testing.T, s *Service, ev dispatch.Event) error {
	t.Helper()
	ds, err := Route(s).Route(context.Background(), ev)
	if err != nil {
		return err
	}
	if len(ds) != 1 || ds[0].Apply == nil {
		t.Fatalf("deliveries = %+v", ds)
	}
	return ds[0].Apply(context.Background())
}

func TestIntegrationStatusUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.graph.set(metaTemplate{ID: "11", Name: "promo", Language: "it", Category: "MARKETING", Status: "PENDING", Components: body("Sconto {{1}}")})
	if _, err := e.svc.Sync(ctx, e.tenantA, e.connA); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Minute) // after the sync
	status := func() (string, string) {
		t.Helper()
		tpl, err := e.svc.Get(ctx, e.tenantA, e.connA, "promo", "it")
		if err != nil {
			t.Fatal(err)
		}
		return tpl.Status, tpl.StatusReason
	}

	steps := []struct {
		name       string
		at         time.Time
		ev         statusEvent
		wantStatus string
		wantReason string
	}{
		{"approved", now, statusEvent{TemplateID: "11", Name: "promo", Language: "it", Event: "APPROVED", Reason: "NONE"}, "approved", ""},
		{"approved again (redelivery)", now, statusEvent{TemplateID: "11", Name: "promo", Language: "it", Event: "APPROVED"}, "approved", ""},
		{"paused with reason", now.Add(time.Minute), statusEvent{TemplateID: "11", Event: "PAUSED", Reason: "low quality"}, "paused", "low quality"},
		{"older pending ignored", now.Add(-time.Hour), statusEvent{TemplateID: "11", Event: "PENDING"}, "paused", "low quality"},
		{"flagged changes nothing", now.Add(2 * time.Minute), statusEvent{TemplateID: "11", Event: "FLAGGED"}, "paused", "low quality"},
		{"reinstated, matched by name", now.Add(3 * time.Minute), statusEvent{Name: "promo", Language: "it", Event: "REINSTATED"}, "approved", ""},
		{"disabled", now.Add(4 * time.Minute), statusEvent{TemplateID: "11", Event: "DISABLED", Reason: "policy"}, "disabled", "policy"},
	}
	for _, s := range steps {
		if err := apply(t, e.svc, statusEventOf(e, s.at, s.ev)); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if st, reason := status(); st != s.wantStatus || reason != s.wantReason {
			t.Errorf("%s: status %s %q, want %s %q", s.name, st, reason, s.wantStatus, s.wantReason)
		}
	}

	// Incompatible survives an approval, not a rejection.
	tpl, _ := e.svc.Get(ctx, e.tenantA, e.connA, "promo", "it")
	if _, err := e.svc.MarkIncompatible(ctx, e.tenantA, tpl.ID, "flow x: 1 variable, fills 0"); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, e.svc, statusEventOf(e, now.Add(5*time.Minute), statusEvent{TemplateID: "11", Event: "APPROVED"})); err != nil {
		t.Fatal(err)
	}
	if st, _ := status(); st != StatusIncompatible {
		t.Errorf("approval replaced incompatible: %s", st)
	}
	if err := apply(t, e.svc, statusEventOf(e, now.Add(6*time.Minute), statusEvent{TemplateID: "11", Event: "REJECTED", Reason: "ABUSIVE_CONTENT"})); err != nil {
		t.Fatal(err)
	}
	if st, reason := status(); st != StatusRejected || reason != "ABUSIVE_CONTENT" {
		t.Errorf("after rejection: %s %q", st, reason)
	}

	// A template we do not know yet is picked up by a sync.
	e.graph.set(
		metaTemplate{ID: "11", Name: "promo", Language: "it", Category: "MARKETING", Status: "REJECTED", Components: body("Sconto {{1}}")},
		metaTemplate{ID: "12", Name: "made_at_meta", Language: "en", Category: "UTILITY", Status: "APPROVED", Components: body("x")},
	)
	if err := apply(t, e.svc, statusEventOf(e, now.Add(7*time.Minute), statusEvent{TemplateID: "12", Name: "made_at_meta", Language: "en", Event: "APPROVED"})); err != nil {
		t.Fatal(err)
	}
	if got, err := e.svc.Get(ctx, e.tenantA, e.connA, "made_at_meta", "en"); err != nil || got.Status != StatusApproved {
		t.Errorf("unknown template after its event: %+v, %v", got, err)
	}

	// Deleted.
	if err := apply(t, e.svc, statusEventOf(e, now.Add(8*time.Minute), statusEvent{TemplateID: "12", Name: "made_at_meta", Language: "en", Event: "DELETED"})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, e.tenantA, e.connA, "made_at_meta", "en"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted template still there: %v", err)
	}

	// Other event types and broken payloads.
	if ds, err := Route(e.svc).Route(ctx, dispatch.Event{Type: "message.received", Payload: json.RawMessage(`{}`)}); err != nil || len(ds) != 0 {
		t.Errorf("message.received routed: %d, %v", len(ds), err)
	}
	if _, err := Route(e.svc).Route(ctx, dispatch.Event{Type: EventStatusUpdated, Payload: json.RawMessage(`{"event":"APPROVED"}`)}); !dispatch.IsPermanent(err) {
		t.Errorf("event naming no template: %v", err)
	}
}

func TestIntegrationCreateDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	in := NewTemplate{ConnectionID: e.connA, Name: "welcome", Language: "it", Category: "MARKETING",
		Components: json.RawMessage(`[{"type":"BODY","text":"Benvenuto {{1}}!"},{"type":"FOOTER","text":"Rispondi STOP per annullare"}]`)}
	tpl, err := e.svc.Create(ctx, e.tenantA, in)
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Status != StatusPending || tpl.Category != "marketing" || tpl.Parameters != 1 || tpl.ProviderID == "" {
		t.Errorf("created = %+v", tpl)
	}
	e.graph.mu.Lock()
	last := e.graph.calls[len(e.graph.calls)-1]
	e.graph.mu.Unlock()
	var params map[string]any
	_ = json.Unmarshal(last.Params, &params)
	if last.Action != "create_template" || params["category"] != "MARKETING" || params["name"] != "welcome" || last.IdempotencyKey == "" || last.TenantID != e.tenantA {
		t.Errorf("create call = %+v %v", last, params)
	}
	if _, err := e.svc.Create(ctx, e.tenantA, in); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	bad := in
	bad.Name = "Bad Name"
	n := len(e.graph.actions())
	var ve *store.ValidationError
	if _, err := e.svc.Create(ctx, e.tenantA, bad); !errors.As(err, &ve) {
		t.Errorf("bad create: %v", err)
	}
	if len(e.graph.actions()) != n {
		t.Error("an invalid template reached the connector")
	}
	// A send of the pending template fails before any provider call.
	if _, err := e.svc.RequireSendable(ctx, e.tenantA, e.connA, "welcome", "it"); err == nil {
		t.Error("pending template sendable")
	}
	if err := e.svc.Delete(ctx, e.tenantB, tpl.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B deleted A's template: %v", err)
	}
	if err := e.svc.Delete(ctx, e.tenantA, tpl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetByID(ctx, e.tenantA, tpl.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted template: %v", err)
	}
	acts := e.graph.actions()
	if acts[len(acts)-1] != "delete_template" {
		t.Errorf("actions = %v", acts)
	}
	// Gone at Meta already: deleted here all the same.
	tpl2, err := e.svc.Create(ctx, e.tenantA, NewTemplate{ConnectionID: e.connA, Name: "bye", Language: "en", Category: "utility", Components: body("bye")})
	if err != nil {
		t.Fatal(err)
	}
	e.graph.set()
	if err := e.svc.Delete(ctx, e.tenantA, tpl2.ID); err != nil {
		t.Errorf("delete of a template gone at Meta: %v", err)
	}
	names := func() []string {
		l, _, _ := e.svc.List(ctx, e.tenantA, Filter{})
		var out []string
		for _, t := range l {
			out = append(out, t.Name)
		}
		sort.Strings(out)
		return out
	}
	if got := names(); len(got) != 0 {
		t.Errorf("templates left: %v", got)
	}
}
