package consent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is a migrated database with two tenants, a WhatsApp connection of
// tenant A, and a Service wired to a fake notifier and a resolver on the
// contacts table.
type env struct {
	st       *store.Store
	svc      *Service
	notifier *fakeNotifier
	tenantA  string
	tenantB  string
	connA    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	st, err := store.Open(ctx, url+sep+"pool_max_conns=40", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	e := &env{st: st, notifier: &fakeNotifier{}}
	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	e.tenantA, e.tenantB = a.ID, b.ID
	c, err := st.CreateConnection(ctx, a.ID, store.NewConnection{
		Connector: "cloudapi", Name: "WA", Config: json.RawMessage(`{"phone_number_id":"100"}`),
		Fields: []sdk.ConfigField{{Name: "phone_number_id", Type: sdk.FieldString}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.connA = c.ID
	e.svc = New(st.Pool(), Options{Notifier: e.notifier, Contacts: ContactResolverFunc(e.resolve)})
	e.notifier.svc = e.svc
	return e
}

func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// resolve finds or creates the contact of phone, as core/contacts does.
func (e *env) resolve(ctx context.Context, tenantID, phone string) (string, error) {
	var id string
	err := e.st.Pool().QueryRow(ctx, `
		INSERT INTO contacts (id, tenant_id, phone) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, phone) DO UPDATE SET updated_at = contacts.updated_at
		RETURNING id`, randomID("ct"), tenantID, phone).Scan(&id)
	return id, err
}

var phoneSeq atomic.Int64

// contact creates a contact with a fresh phone number.
func (e *env) contact(t *testing.T, tenantID string) (id, phone string) {
	t.Helper()
	phone = fmt.Sprintf("+39333%07d", phoneSeq.Add(1))
	id, err := e.resolve(context.Background(), tenantID, phone)
	if err != nil {
		t.Fatal(err)
	}
	return id, phone
}

func (e *env) record(t *testing.T, tenantID, contactID, action string, at time.Time, purposes ...string) {
	t.Helper()
	if _, err := e.svc.Record(context.Background(), tenantID, NewRecord{
		ContactID: contactID, Purposes: purposes, Action: action, Source: "test", OccurredAt: at,
	}); err != nil {
		t.Fatal(err)
	}
}

// fakeNotifier records confirmations. When svc is set it also runs the
// consent check a sender would run, with the context it was given.
type fakeNotifier struct {
	svc   *Service
	mu    sync.Mutex
	calls []NotifyRequest
	// checks are the decisions of those checks.
	checks []Decision
	// fail, when set, is returned (and the call not counted as sent).
	fail  error
	delay time.Duration
}

func (f *fakeNotifier) Notify(ctx context.Context, req NotifyRequest) error {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	var d Decision
	if f.svc != nil {
		var err error
		if d, err = f.svc.Check(ctx, CheckRequest{TenantID: req.TenantID, ContactID: req.ContactID, Purpose: PurposeService}); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.calls = append(f.calls, req)
	f.checks = append(f.checks, d)
	return nil
}

func (f *fakeNotifier) sent() []NotifyRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]NotifyRequest(nil), f.calls...)
}

func TestIntegrationDerivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)

	type step struct {
		action   string
		at       time.Duration // after base
		purposes []string
	}
	tests := map[string]struct {
		steps []step
		want  map[string]string
	}{
		"nothing":                  {nil, map[string]string{"marketing": "none", "utility": "none"}},
		"opt in":                   {[]step{{"opt_in", 0, []string{"marketing"}}}, map[string]string{"marketing": "in", "utility": "none"}},
		"confirmed":                {[]step{{"confirmed", 0, []string{"marketing", "utility"}}}, map[string]string{"marketing": "in", "utility": "in"}},
		"opt in then out":          {[]step{{"opt_in", 0, []string{"marketing"}}, {"opt_out", time.Minute, []string{"marketing"}}}, map[string]string{"marketing": "out", "utility": "none"}},
		"out then in":              {[]step{{"opt_out", 0, []string{"marketing"}}, {"opt_in", time.Minute, []string{"marketing"}}}, map[string]string{"marketing": "in", "utility": "none"}},
		"late backfill older":      {[]step{{"opt_out", time.Minute, []string{"marketing"}}, {"opt_in", 0, []string{"marketing"}}}, map[string]string{"marketing": "out", "utility": "none"}},
		"same instant, later wins": {[]step{{"opt_in", 0, []string{"utility"}}, {"opt_out", 0, []string{"utility"}}}, map[string]string{"marketing": "none", "utility": "out"}},
		"purposes independent":     {[]step{{"opt_in", 0, []string{"marketing", "utility"}}, {"opt_out", time.Minute, []string{"utility"}}}, map[string]string{"marketing": "in", "utility": "out"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, _ := e.contact(t, e.tenantA)
			for _, s := range tc.steps {
				e.record(t, e.tenantA, id, s.action, base.Add(s.at), s.purposes...)
			}
			cc, err := e.svc.ContactConsent(ctx, e.tenantA, id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cc.States); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			n := 0
			for _, s := range tc.steps {
				n += len(s.purposes)
			}
			if len(cc.History) != n {
				t.Errorf("history has %d records, want %d", len(cc.History), n)
			}
		})
	}

	t.Run("validation and tenancy", func(t *testing.T) {
		t.Parallel()
		id, _ := e.contact(t, e.tenantA)
		_, err := e.svc.Record(ctx, e.tenantB, NewRecord{ContactID: id, Purposes: []string{"marketing"}, Action: "opt_in", Source: "api"})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("recording for another tenant's contact: %v, want ErrNotFound", err)
		}
		if _, err := e.svc.ContactConsent(ctx, e.tenantB, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("reading another tenant's contact: %v, want ErrNotFound", err)
		}
		_, err = e.svc.Record(ctx, e.tenantA, NewRecord{ContactID: id, Purposes: []string{"sales", "marketing", "marketing"}, Action: "maybe",
			Evidence: json.RawMessage(`[1]`), OccurredAt: time.Now().Add(time.Hour)})
		var ve *store.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("bad record: %v, want ValidationError", err)
		}
		var fields []string
		for _, p := range ve.Problems {
			fields = append(fields, p.Field)
		}
		sort.Strings(fields)
		if diff := cmp.Diff([]string{"action", "evidence", "occurred_at", "purposes", "purposes", "source"}, fields); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
	})

	t.Run("evidence kept", func(t *testing.T) {
		t.Parallel()
		id, phone := e.contact(t, e.tenantA)
		at := time.Date(2025, 5, 4, 10, 0, 0, 0, time.UTC)
		recs, err := e.svc.Record(ctx, e.tenantA, NewRecord{
			ContactID: id, Purposes: []string{"marketing"}, Action: "opt_in", Source: "checkout", Method: "checkbox",
			TextShown: "Sì, voglio ricevere offerte su WhatsApp", TextVersion: "v3", IP: "203.0.113.9", UserAgent: "Mozilla/5.0",
			Evidence: json.RawMessage(`{"order":"1001"}`), OccurredAt: at,
		})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := e.svc.ContactConsent(ctx, e.tenantA, id)
		if err != nil {
			t.Fatal(err)
		}
		want := Record{ID: recs[0].ID, TenantID: e.tenantA, ContactID: id, Phone: phone, Purpose: "marketing", Action: "opt_in",
			Source: "checkout", Method: "checkbox", TextShown: "Sì, voglio ricevere offerte su WhatsApp", TextVersion: "v3",
			IP: "203.0.113.9", UserAgent: "Mozilla/5.0", Evidence: json.RawMessage(`{"order": "1001"}`), OccurredAt: at}
		if diff := cmp.Diff(want, cc.Latest["marketing"], cmpopts.IgnoreFields(Record{}, "RecordedAt"), cmpTime); diff != "" {
			t.Errorf("latest (-want +got):\n%s", diff)
		}
	})
}

var cmpTime = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestIntegrationCheckReasons(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{Timezone: ptr("Europe/Rome"), QuietHoursStart: ptr("21:00"), QuietHoursEnd: ptr("08:00")}); err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2025, 6, 10, 10, 0, 0, 0, time.UTC)  // 12:00 CEST
	night := time.Date(2025, 6, 10, 21, 0, 0, 0, time.UTC) // 23:00 CEST
	morning := time.Date(2025, 6, 11, 6, 0, 0, 0, time.UTC)
	past := noon.Add(-24 * time.Hour)

	type setup struct {
		action   string
		purposes []string
	}
	tests := map[string]struct {
		records  []setup
		excluded bool
		purpose  string
		at       time.Time
		confirm  bool
		want     Decision
	}{
		"marketing opted in at noon":         {[]setup{{"opt_in", []string{"marketing"}}}, false, "marketing", noon, false, Decision{Allowed: true}},
		"marketing confirmed at noon":        {[]setup{{"confirmed", []string{"marketing"}}}, false, "marketing", noon, false, Decision{Allowed: true}},
		"marketing without consent":          {nil, false, "marketing", noon, false, Decision{Reason: "no_marketing_consent"}},
		"marketing with utility consent":     {[]setup{{"opt_in", []string{"utility"}}}, false, "marketing", noon, false, Decision{Reason: "no_marketing_consent"}},
		"marketing opted out":                {[]setup{{"opt_out", []string{"marketing"}}}, false, "marketing", noon, false, Decision{Reason: "opted_out"}},
		"marketing at night":                 {[]setup{{"opt_in", []string{"marketing"}}}, false, "marketing", night, false, Decision{Reason: "quiet_hours", DeferUntil: morning}},
		"marketing excluded":                 {[]setup{{"opt_in", []string{"marketing"}}}, true, "marketing", noon, false, Decision{Reason: "excluded"}},
		"excluded before opted out":          {[]setup{{"opt_out", []string{"marketing"}}}, true, "marketing", night, false, Decision{Reason: "excluded"}},
		"opted out before quiet hours":       {[]setup{{"opt_out", []string{"marketing"}}}, false, "marketing", night, false, Decision{Reason: "opted_out"}},
		"no consent before quiet hours":      {nil, false, "marketing", night, false, Decision{Reason: "no_marketing_consent"}},
		"utility without consent":            {nil, false, "utility", noon, false, Decision{Allowed: true}},
		"utility at night":                   {nil, false, "utility", night, false, Decision{Allowed: true}},
		"utility opted out of utility":       {[]setup{{"opt_out", []string{"utility"}}}, false, "utility", noon, false, Decision{Reason: "opted_out"}},
		"utility after marketing opt-out":    {[]setup{{"opt_out", []string{"marketing"}}}, false, "utility", noon, false, Decision{Allowed: true}},
		"utility excluded":                   {nil, true, "utility", noon, false, Decision{Reason: "excluded"}},
		"service after STOP":                 {[]setup{{"opt_out", []string{"marketing", "utility"}}}, false, "service", noon, false, Decision{Reason: "opted_out"}},
		"authentication after STOP":          {[]setup{{"opt_out", []string{"marketing", "utility"}}}, false, "authentication", night, false, Decision{Reason: "opted_out"}},
		"service after marketing opt-out":    {[]setup{{"opt_out", []string{"marketing"}}}, false, "service", noon, false, Decision{Allowed: true}},
		"authentication at night":            {nil, false, "authentication", night, false, Decision{Allowed: true}},
		"service excluded":                   {nil, true, "service", noon, false, Decision{Reason: "excluded"}},
		"confirmation after STOP":            {[]setup{{"opt_out", []string{"marketing", "utility"}}}, false, "service", noon, true, Decision{Allowed: true}},
		"confirmation to an excluded number": {[]setup{{"opt_out", []string{"marketing", "utility"}}}, true, "service", noon, true, Decision{Reason: "excluded"}},
		"opted back in after STOP":           {[]setup{{"opt_out", []string{"marketing", "utility"}}, {"opt_in", []string{"marketing", "utility"}}}, false, "marketing", noon, false, Decision{Allowed: true}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id, phone := e.contact(t, e.tenantA)
			for i, r := range tc.records {
				e.record(t, e.tenantA, id, r.action, past.Add(time.Duration(i)*time.Minute), r.purposes...)
			}
			if tc.excluded {
				if _, err := e.svc.AddExclusion(ctx, e.tenantA, phone, "asked by phone"); err != nil {
					t.Fatal(err)
				}
			}
			// With and without the phone: Check reads it from the contact.
			for _, p := range []string{phone, ""} {
				got, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Phone: p, Purpose: tc.purpose, At: tc.at, ConsentConfirmation: tc.confirm})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got, cmpTime); diff != "" {
					t.Errorf("decision with phone %q (-want +got):\n%s", p, diff)
				}
			}
		})
	}

	t.Run("other tenant's exclusions and records do not count", func(t *testing.T) {
		t.Parallel()
		idA, phone := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, idA, "opt_in", past, "marketing")
		idB, err := e.resolve(ctx, e.tenantB, phone)
		if err != nil {
			t.Fatal(err)
		}
		e.record(t, e.tenantB, idB, "opt_out", noon, "marketing", "utility")
		if _, err := e.svc.AddExclusion(ctx, e.tenantB, phone, ""); err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: idA, Phone: phone, Purpose: "marketing", At: noon})
		if err != nil || !got.Allowed {
			t.Errorf("A's check = %+v, %v; want allowed", got, err)
		}
		// A contact id of another tenant has no records for this tenant.
		got, err = e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: idB, Phone: phone, Purpose: "marketing", At: noon})
		if err != nil || got.Reason != ReasonNoMarketingConsent {
			t.Errorf("check with B's contact under A = %+v, %v", got, err)
		}
	})

	t.Run("settings change is seen at once", func(t *testing.T) {
		id, _ := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", past, "marketing")
		req := CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: "marketing", At: noon}
		if d, _ := e.svc.Check(ctx, req); !d.Allowed {
			t.Fatalf("before: %+v", d)
		}
		if _, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{QuietHoursStart: ptr("11:00"), QuietHoursEnd: ptr("13:00")}); err != nil {
			t.Fatal(err)
		}
		d, err := e.svc.Check(ctx, req)
		if err != nil || d.Reason != ReasonQuietHours || !d.DeferUntil.Equal(time.Date(2025, 6, 10, 11, 0, 0, 0, time.UTC)) {
			t.Errorf("after: %+v, %v", d, err)
		}
		if _, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{QuietHoursStart: ptr("21:00"), QuietHoursEnd: ptr("08:00")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		t.Parallel()
		for _, req := range []CheckRequest{
			{ContactID: "ct_x", Purpose: "marketing"},
			{TenantID: e.tenantA, Purpose: "marketing"},
			{TenantID: e.tenantA, ContactID: "ct_x", Purpose: "promo"},
		} {
			if _, err := e.svc.Check(ctx, req); err == nil {
				t.Errorf("Check(%+v) accepted", req)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// keywordEvent is a message.received event as the Cloud API connector emits it.
func (e *env) keywordEvent(phone, wamid, text string) dispatch.Event {
	payload, _ := json.Marshal(map[string]any{
		"phone_number_id": "100", "from": phone, "wa_id": strings.TrimPrefix(phone, "+"), "message_id": wamid,
		"timestamp": time.Now().UTC().Format(time.RFC3339), "type": "text", "text": text,
	})
	return dispatch.Event{ID: 1, TenantID: e.tenantA, ConnectionID: e.connA, Connector: "cloudapi", DedupeKey: "msg:" + wamid,
		Type: EventMessageReceived, OccurredAt: time.Now().Truncate(time.Second), Payload: payload}
}

// apply routes ev and applies its deliveries, like the dispatcher.
func (e *env) apply(t *testing.T, ev dispatch.Event) (deliveries int, err error) {
	t.Helper()
	ds, err := Route(e.svc).Route(context.Background(), ev)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		if d.Apply == nil {
			t.Fatal("consent delivery without Apply")
		}
		if err := d.Apply(context.Background()); err != nil {
			return len(ds), err
		}
	}
	return len(ds), nil
}

func (e *env) keywordRecords(t *testing.T, contactID string) []Record {
	t.Helper()
	cc, err := e.svc.ContactConsent(context.Background(), e.tenantA, contactID)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, r := range cc.History {
		if r.Source == SourceKeyword {
			out = append(out, r)
		}
	}
	return out
}

func TestIntegrationKeywords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	t.Run("stop opts out of everything, once, and is confirmed once", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", time.Now().Add(-time.Hour), "marketing", "utility")
		ev := e.keywordEvent(phone, "wamid.STOP1", "  Stop! ")
		for range 3 { // delivered three times
			n, err := e.apply(t, ev)
			if err != nil || n != 1 {
				t.Fatalf("apply = %d deliveries, %v", n, err)
			}
		}
		recs := e.keywordRecords(t, id)
		if len(recs) != 2 {
			t.Fatalf("keyword records = %d, want 2 (one per purpose): %+v", len(recs), recs)
		}
		for _, r := range recs {
			var ev map[string]string
			if err := json.Unmarshal(r.Evidence, &ev); err != nil {
				t.Fatal(err)
			}
			if r.Action != ActionOptOut || r.Method != MethodKeyword ||
				!cmp.Equal(ev, map[string]string{"message_id": "wamid.STOP1", "connection_id": e.connA, "text": "  Stop! "}) {
				t.Errorf("record %+v evidence %v", r, ev)
			}
		}
		cc, _ := e.svc.ContactConsent(ctx, e.tenantA, id)
		if diff := cmp.Diff(map[string]string{"marketing": "out", "utility": "out"}, cc.States); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
		var mine []NotifyRequest
		var decisions []Decision
		e.notifier.mu.Lock()
		for i, c := range e.notifier.calls {
			if c.ContactID == id {
				mine, decisions = append(mine, c), append(decisions, e.notifier.checks[i])
			}
		}
		e.notifier.mu.Unlock()
		want := []NotifyRequest{{TenantID: e.tenantA, ContactID: id, ConnectionID: e.connA,
			Text: "You will no longer receive messages from us. Reply START to subscribe again.", IdempotencyKey: "consent-confirm:wamid.STOP1"}}
		if diff := cmp.Diff(want, mine); diff != "" {
			t.Errorf("confirmations (-want +got):\n%s", diff)
		}
		// The confirmation's own consent check let it through; any other
		// service message is refused.
		if len(decisions) == 1 && !decisions[0].Allowed {
			t.Errorf("the confirmation's check refused it: %+v", decisions[0])
		}
		if d, _ := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeService}); d.Reason != ReasonOptedOut {
			t.Errorf("service after STOP = %+v, want opted_out", d)
		}

		// START opts back in, confirmed with the start text.
		if _, err := e.apply(t, e.keywordEvent(phone, "wamid.START1", "riprendi")); err != nil {
			t.Fatal(err)
		}
		cc, _ = e.svc.ContactConsent(ctx, e.tenantA, id)
		if diff := cmp.Diff(map[string]string{"marketing": "in", "utility": "in"}, cc.States); diff != "" {
			t.Errorf("states after START (-want +got):\n%s", diff)
		}
		last := e.notifier.sent()[len(e.notifier.sent())-1]
		if last.IdempotencyKey != "consent-confirm:wamid.START1" || last.Text != "You are subscribed again. Reply STOP to unsubscribe." {
			t.Errorf("start confirmation = %+v", last)
		}
	})

	t.Run("concurrent double application sends one confirmation", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		slow := &fakeNotifier{delay: 150 * time.Millisecond}
		svc := New(e.st.Pool(), Options{Notifier: slow, Contacts: ContactResolverFunc(e.resolve)})
		ev := e.keywordEvent(phone, "wamid.CONC", "STOP")
		const n = 6
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ds, err := Route(svc).Route(ctx, ev)
				if err == nil {
					err = ds[0].Apply(ctx)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		// Deliveries that found the confirmation in flight failed (to be
		// retried); a retry now finds it sent.
		for i, err := range errs {
			if err != nil && !errors.Is(err, errConfirmationInFlight) {
				t.Fatalf("apply %d: %v", i, err)
			}
			if err != nil {
				ds, _ := Route(svc).Route(ctx, ev)
				if err := ds[0].Apply(ctx); err != nil {
					t.Fatalf("retry of apply %d: %v", i, err)
				}
			}
		}
		if got := len(slow.sent()); got != 1 {
			t.Errorf("confirmations sent = %d, want 1", got)
		}
		if got := len(e.keywordRecords(t, id)); got != 2 {
			t.Errorf("records = %d, want 2", got)
		}
	})

	t.Run("a failed confirmation is retried, a refused one given up", func(t *testing.T) {
		_, phone := e.contact(t, e.tenantA)
		flaky := &fakeNotifier{fail: errors.New("plugin restarting")}
		svc := New(e.st.Pool(), Options{Notifier: flaky, Contacts: ContactResolverFunc(e.resolve)})
		ev := e.keywordEvent(phone, "wamid.FLAKY", "unsubscribe")
		ds, err := Route(svc).Route(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := ds[0].Apply(ctx); err == nil {
			t.Fatal("a failed confirmation did not fail the delivery")
		}
		flaky.mu.Lock()
		flaky.fail = nil
		flaky.mu.Unlock()
		if err := ds[0].Apply(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ds[0].Apply(ctx); err != nil {
			t.Fatal(err)
		}
		if got := len(flaky.sent()); got != 1 {
			t.Errorf("confirmations = %d, want 1", got)
		}

		_, phone2 := e.contact(t, e.tenantA)
		refusing := &fakeNotifier{fail: dispatch.Permanent(errors.New("refused: excluded"))}
		svc = New(e.st.Pool(), Options{Notifier: refusing, Contacts: ContactResolverFunc(e.resolve)})
		ds, _ = Route(svc).Route(ctx, e.keywordEvent(phone2, "wamid.REFUSED", "stop"))
		if err := ds[0].Apply(ctx); err != nil {
			t.Fatalf("a refused confirmation failed the delivery: %v", err)
		}
		var reason string
		if err := e.st.Pool().QueryRow(ctx, `SELECT gave_up_reason FROM consent_confirmations WHERE message_id = 'wamid.REFUSED'`).Scan(&reason); err != nil || !strings.Contains(reason, "excluded") {
			t.Errorf("gave_up_reason = %q, %v", reason, err)
		}
	})

	t.Run("what is not a keyword", func(t *testing.T) {
		_, phone := e.contact(t, e.tenantA)
		for _, text := range []string{"stop please", "please stop", "STOPPED", "When do you stop?", ""} {
			if n, err := e.apply(t, e.keywordEvent(phone, "wamid.N"+text, text)); n != 0 || err != nil {
				t.Errorf("%q routed to %d deliveries, %v", text, n, err)
			}
		}
		image := e.keywordEvent(phone, "wamid.IMG", "")
		image.Payload = json.RawMessage(`{"from":"` + phone + `","message_id":"wamid.IMG","type":"image","media":{"caption":"STOP"}}`)
		status := e.keywordEvent(phone, "wamid.ST", "STOP")
		status.Type = "message.status"
		for _, ev := range []dispatch.Event{image, status} {
			if n, err := e.apply(t, ev); n != 0 || err != nil {
				t.Errorf("%s routed to %d deliveries, %v", ev.Type, n, err)
			}
		}
		broken := e.keywordEvent(phone, "wamid.BAD", "STOP")
		broken.Payload = json.RawMessage(`{"type":`)
		if _, err := Route(e.svc).Route(ctx, broken); !dispatch.IsPermanent(err) {
			t.Errorf("broken payload: %v, want a permanent error", err)
		}
	})

	t.Run("button replies and custom keywords", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		button := e.keywordEvent(phone, "wamid.BTN", "")
		button.Payload = json.RawMessage(`{"from":"` + phone + `","message_id":"wamid.BTN","type":"button","button":{"text":"Stop promotions","payload":"STOP"}}`)
		if n, err := e.apply(t, button); n != 1 || err != nil {
			t.Fatalf("button STOP: %d, %v", n, err)
		}
		if got := len(e.keywordRecords(t, id)); got != 2 {
			t.Errorf("records after button STOP = %d", got)
		}

		tenant2, err := e.st.CreateTenant(ctx, "custom")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.UpdateSettings(ctx, tenant2.ID, SettingsUpdate{StopKeywords: &[]string{"Basta", "Cancellami"}}); err != nil {
			t.Fatal(err)
		}
		for text, want := range map[string]int{"BASTA!": 1, "cancellami": 1, "STOP": 0, "start": 1} {
			ev := e.keywordEvent(phone, "wamid.C", text)
			ev.TenantID = tenant2.ID
			ds, err := Route(e.svc).Route(ctx, ev)
			if err != nil || len(ds) != want {
				t.Errorf("%q for the custom tenant: %d deliveries, %v; want %d", text, len(ds), err, want)
			}
		}
	})
}

// TestIntegrationStopVersusSend shows the guarantee of the package
// documentation: a marketing send either reached the provider before the
// STOP was stored or is refused.
func TestIntegrationStopVersusSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	past := time.Now().Add(-time.Hour)

	t.Run("a STOP waits for a send already past its check", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", past, "marketing")
		var seq atomic.Int64
		var providerAt, stopAt int64
		checked := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- e.svc.Hold(ctx, e.tenantA, id, func(ctx context.Context) error {
				d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeMarketing})
				if err != nil || !d.Allowed {
					return fmt.Errorf("check before STOP: %+v, %v", d, err)
				}
				close(checked)
				time.Sleep(300 * time.Millisecond) // the provider call
				providerAt = seq.Add(1)
				return nil
			})
		}()
		<-checked
		if _, err := e.apply(t, e.keywordEvent(phone, "wamid.WAIT", "STOP")); err != nil {
			t.Fatal(err)
		}
		stopAt = seq.Add(1)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if providerAt == 0 || providerAt > stopAt {
			t.Errorf("the STOP was stored (seq %d) before the in-flight send reached the provider (seq %d)", stopAt, providerAt)
		}
		d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeMarketing})
		if err != nil || d.Reason != ReasonOptedOut {
			t.Errorf("check after STOP = %+v, %v", d, err)
		}
	})

	t.Run("a send that arrives during a STOP waits for it and is refused", func(t *testing.T) {
		id, _ := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", past, "marketing")
		tx, err := e.st.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := lockContactExclusive(ctx, tx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := insertRecords(ctx, tx, e.tenantA, id, NewRecord{Purposes: LedgerPurposes, Action: ActionOptOut, Source: "test", Evidence: json.RawMessage(`{}`), OccurredAt: time.Now()}, false); err != nil {
			t.Fatal(err)
		}
		result := make(chan Decision, 1)
		go func() {
			_ = e.svc.Hold(ctx, e.tenantA, id, func(ctx context.Context) error {
				d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeMarketing})
				if err != nil {
					d.Reason = err.Error()
				}
				result <- d
				return nil
			})
		}()
		select {
		case d := <-result:
			t.Fatalf("the send did not wait for the STOP in progress: %+v", d)
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if d := <-result; d.Allowed || d.Reason != ReasonOptedOut {
			t.Errorf("send after the STOP committed: %+v, want opted_out", d)
		}
	})

	t.Run("a HoldCheck that arrives during a STOP waits for it, is refused and does not send", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", past, "marketing")
		tx, err := e.st.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := lockContactExclusive(ctx, tx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := insertRecords(ctx, tx, e.tenantA, id, NewRecord{Purposes: LedgerPurposes, Action: ActionOptOut, Source: "test", Evidence: json.RawMessage(`{}`), OccurredAt: time.Now()}, false); err != nil {
			t.Fatal(err)
		}
		type outcome struct {
			d    Decision
			err  error
			sent bool
		}
		result := make(chan outcome, 1)
		go func() {
			var o outcome
			o.d, o.err = e.svc.HoldCheck(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Phone: phone, Purpose: PurposeMarketing},
				func(context.Context) error { o.sent = true; return nil })
			result <- o
		}()
		select {
		case o := <-result:
			t.Fatalf("the send did not wait for the STOP in progress: %+v", o)
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if o := <-result; o.err != nil || o.d.Allowed || o.d.Reason != ReasonOptedOut || o.sent {
			t.Errorf("HoldCheck after the STOP committed: %+v, want opted_out and no send", o)
		}
	})

	t.Run("a STOP waits for a HoldCheck send in flight", func(t *testing.T) {
		id, phone := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, id, "opt_in", past, "marketing")
		var seq atomic.Int64
		var providerAt, stopAt int64
		checked := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			d, err := e.svc.HoldCheck(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeMarketing}, func(ctx context.Context) error {
				// A second check with the held context needs no other connection.
				if d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeMarketing}); err != nil || !d.Allowed {
					return fmt.Errorf("check inside the hold: %+v, %v", d, err)
				}
				close(checked)
				time.Sleep(300 * time.Millisecond) // the provider call
				providerAt = seq.Add(1)
				return nil
			})
			if err == nil && !d.Allowed {
				err = fmt.Errorf("HoldCheck refused before the STOP: %+v", d)
			}
			done <- err
		}()
		<-checked
		if _, err := e.apply(t, e.keywordEvent(phone, "wamid.WAITHC", "STOP")); err != nil {
			t.Fatal(err)
		}
		stopAt = seq.Add(1)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if providerAt == 0 || providerAt > stopAt {
			t.Errorf("the STOP was stored (seq %d) before the in-flight send reached the provider (seq %d)", stopAt, providerAt)
		}
	})

	t.Run("HoldCheckGroup commits its prelude before the hold, keeps the STOP protocol for every member, and writes nothing on an error", func(t *testing.T) {
		if _, err := e.st.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS prelude_probe (k text PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		// insert writes keys in one statement and scans those it wrote.
		insert := func(got *[]string, keys ...string) *Prelude {
			return &Prelude{SQL: `INSERT INTO prelude_probe (k) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING k`, Args: []any{keys},
				Scan: func(rows pgx.Rows) error {
					ks, err := pgx.CollectRows(rows, pgx.RowTo[string])
					*got = ks
					return err
				}}
		}
		visible := func(key string) bool {
			var n int
			if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM prelude_probe WHERE k = $1`, key).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		member := func(id, purpose string) GroupMember {
			return GroupMember{Ctx: ctx, Req: CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: purpose}}
		}

		// Three contacts in one group: opted in, never asked, excluded.
		in, phoneIn := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, in, "opt_in", past, "marketing")
		none, _ := e.contact(t, e.tenantA)
		excluded, phoneExcluded := e.contact(t, e.tenantA)
		e.record(t, e.tenantA, excluded, "opt_in", past, "marketing")
		if _, err := e.svc.AddExclusion(ctx, e.tenantA, phoneExcluded, "asked by phone"); err != nil {
			t.Fatal(err)
		}

		var seq atomic.Int64
		var providerAt, stopAt int64
		var got []string
		first := insert(&got, "g1", "g2")
		members := []GroupMember{member(in, PurposeMarketing), member(none, PurposeMarketing), member(excluded, PurposeUtility)}
		checked := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- e.svc.HoldCheckGroup(ctx, members, first, func(ctx context.Context) error {
				// The prelude is durable and visible to others before the calls.
				if !visible("g1") || !visible("g2") {
					return errors.New("the prelude's rows are not committed when send runs")
				}
				close(checked)
				time.Sleep(300 * time.Millisecond) // the provider calls
				providerAt = seq.Add(1)
				return nil
			})
		}()
		select {
		case <-checked:
		case err := <-done:
			t.Fatalf("HoldCheckGroup ended before its send: %v", err)
		}
		// A STOP of the allowed member waits for the group's calls.
		if _, err := e.apply(t, e.keywordEvent(phoneIn, "wamid.WAITHCG", "STOP")); err != nil {
			t.Fatal(err)
		}
		stopAt = seq.Add(1)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if providerAt == 0 || providerAt > stopAt {
			t.Errorf("the STOP was stored (seq %d) before the group's calls ended (seq %d)", stopAt, providerAt)
		}
		if !first.Committed || strings.Join(got, ",") != "g1,g2" {
			t.Errorf("prelude committed %v, scanned %q", first.Committed, got)
		}
		want := []Decision{{Allowed: true}, {Reason: ReasonNoMarketingConsent}, {Reason: ReasonExcluded}}
		for i, m := range members {
			if m.Decision != want[i] {
				t.Errorf("member %d: decision %+v, want %+v", i, m.Decision, want[i])
			}
		}

		// After the STOP: refused; a conflicting prelude returns no row and
		// the check still runs.
		got = nil
		first = insert(&got, "g1")
		members = []GroupMember{member(in, PurposeUtility)}
		if err := e.svc.HoldCheckGroup(ctx, members, first, func(context.Context) error { return nil }); err != nil ||
			members[0].Decision.Reason != ReasonOptedOut || !first.Committed || len(got) != 0 {
			t.Errorf("after the STOP, a conflicting prelude: %+v, %v, committed %v, scanned %q", members[0].Decision, err, first.Committed, got)
		}

		// The same contact twice in a group is locked once and checked twice.
		members = []GroupMember{member(none, PurposeUtility), member(none, PurposeMarketing)}
		if err := e.svc.HoldCheckGroup(ctx, members, nil, func(context.Context) error { return nil }); err != nil ||
			!members[0].Decision.Allowed || members[1].Decision.Reason != ReasonNoMarketingConsent {
			t.Errorf("one contact twice: %+v, %+v, %v", members[0].Decision, members[1].Decision, err)
		}

		// A failing prelude: nothing committed, send not run, the
		// connection back in the pool outside any transaction.
		first = &Prelude{SQL: `INSERT INTO prelude_probe (k) VALUES ($1::int::text) RETURNING k`, Args: []any{"not a number"},
			Scan: func(rows pgx.Rows) error { rows.Close(); return rows.Err() }}
		sent := false
		err := e.svc.HoldCheckGroup(ctx, []GroupMember{member(none, PurposeUtility)}, first,
			func(context.Context) error { sent = true; return nil })
		if err == nil || first.Committed || sent {
			t.Errorf("a failing prelude: err %v, committed %v, sent %v", err, first.Committed, sent)
		}
		if visible("not a number") {
			t.Error("the failing prelude wrote its row")
		}

		// Bad groups are refused before any statement.
		for name, ms := range map[string][]GroupMember{
			"empty":           nil,
			"no contact":      {member("", PurposeUtility)},
			"no context":      {{Req: CheckRequest{TenantID: e.tenantA, ContactID: none, Purpose: PurposeUtility}}},
			"unknown purpose": {member(none, "newsletter")},
		} {
			if err := e.svc.HoldCheckGroup(ctx, ms, nil, func(context.Context) error { return nil }); err == nil {
				t.Errorf("%s group accepted", name)
			}
		}
	})

	t.Run("CheckTx refuses repeatable read", func(t *testing.T) {
		id, _ := e.contact(t, e.tenantA)
		err := pgx.BeginTxFunc(ctx, e.st.Pool(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
			_, err := e.svc.CheckTx(ctx, tx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeUtility})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "read committed") {
			t.Errorf("CheckTx in repeatable read: %v", err)
		}
		err = pgx.BeginFunc(ctx, e.st.Pool(), func(tx pgx.Tx) error {
			d, err := e.svc.CheckTx(ctx, tx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeUtility})
			if err == nil && !d.Allowed {
				err = fmt.Errorf("decision %+v", d)
			}
			return err
		})
		if err != nil {
			t.Errorf("CheckTx in read committed: %v", err)
		}
	})

	// Many contacts, senders hammering each, STOPs arriving at random: no
	// provider call of a contact is ordered after its STOP was stored.
	t.Run("under load", func(t *testing.T) {
		const contacts, sendersPer = 16, 2
		type target struct{ id, phone string }
		targets := make([]target, contacts)
		for i := range targets {
			targets[i].id, targets[i].phone = e.contact(t, e.tenantA)
			e.record(t, e.tenantA, targets[i].id, "opt_in", past, "marketing")
		}
		var seq atomic.Int64
		var mu sync.Mutex
		lastCall := map[string]int64{}
		stoppedAt := map[string]int64{}
		var sends atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, tg := range targets {
			for range sendersPer {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						err := e.svc.Hold(ctx, e.tenantA, tg.id, func(ctx context.Context) error {
							d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: tg.id, Phone: tg.phone, Purpose: PurposeMarketing})
							if err != nil || !d.Allowed {
								return err
							}
							time.Sleep(5 * time.Millisecond) // the provider call
							n := seq.Add(1)
							sends.Add(1)
							mu.Lock()
							lastCall[tg.id] = max(lastCall[tg.id], n)
							mu.Unlock()
							return nil
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
		}
		var stops sync.WaitGroup
		for i, tg := range targets {
			stops.Go(func() {
				time.Sleep(time.Duration(i*7%100) * time.Millisecond)
				if _, err := e.apply(t, e.keywordEvent(tg.phone, "wamid.LOAD"+tg.id, "STOP")); err != nil {
					t.Error(err)
				}
				n := seq.Add(1)
				mu.Lock()
				stoppedAt[tg.id] = n
				mu.Unlock()
			})
		}
		stops.Wait()
		time.Sleep(100 * time.Millisecond) // senders keep trying after the STOPs
		close(stop)
		wg.Wait()
		if sends.Load() < contacts {
			t.Fatalf("only %d sends happened; the test did not exercise concurrency", sends.Load())
		}
		for _, tg := range targets {
			if lastCall[tg.id] > stoppedAt[tg.id] {
				t.Errorf("contact %s: a marketing send reached the provider (seq %d) after its STOP was stored (seq %d)", tg.id, lastCall[tg.id], stoppedAt[tg.id])
			}
		}
		t.Logf("%d sends to %d contacts before their STOPs", sends.Load(), contacts)
	})
}

func TestIntegrationExportAndExclusions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2025, 5, 4, 10, 0, 0, 0, time.UTC)
	id1, phone1 := e.contact(t, e.tenantA)
	id2, _ := e.contact(t, e.tenantA)
	idB, _ := e.contact(t, e.tenantB)
	if _, err := e.svc.Record(ctx, e.tenantA, NewRecord{ContactID: id1, Purposes: []string{"marketing"}, Action: "opt_in", Source: "checkout",
		Method: "checkbox", TextShown: "Offers on WhatsApp", TextVersion: "v1", IP: "198.51.100.7", UserAgent: "UA/1", OccurredAt: at}); err != nil {
		t.Fatal(err)
	}
	e.record(t, e.tenantA, id2, "opt_out", at.Add(time.Minute), "marketing", "utility")
	e.record(t, e.tenantB, idB, "opt_in", at, "marketing")

	var all []Record
	if err := e.svc.Export(ctx, e.tenantA, ExportFilter{}, func(r Record) error { all = append(all, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("export has %d records, want 3: %+v", len(all), all)
	}
	for _, r := range all {
		if r.TenantID != e.tenantA {
			t.Errorf("export carries another tenant's record %+v", r)
		}
	}
	want := Record{ID: all[0].ID, TenantID: e.tenantA, ContactID: id1, Phone: phone1, Purpose: "marketing", Action: "opt_in", Source: "checkout",
		Method: "checkbox", TextShown: "Offers on WhatsApp", TextVersion: "v1", IP: "198.51.100.7", UserAgent: "UA/1", Evidence: json.RawMessage(`{}`), OccurredAt: at}
	if diff := cmp.Diff(want, all[0], cmpopts.IgnoreFields(Record{}, "RecordedAt"), cmpTime); diff != "" {
		t.Errorf("first exported record (-want +got):\n%s", diff)
	}
	var one []Record
	if err := e.svc.Export(ctx, e.tenantA, ExportFilter{ContactID: id2}, func(r Record) error { one = append(one, r); return nil }); err != nil || len(one) != 2 {
		t.Errorf("contact export = %d records, %v", len(one), err)
	}
	if err := e.svc.Export(ctx, e.tenantA, ExportFilter{ContactID: idB}, func(Record) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("export of another tenant's contact: %v", err)
	}
	stopErr := errors.New("client gone")
	if err := e.svc.Export(ctx, e.tenantA, ExportFilter{}, func(Record) error { return stopErr }); !errors.Is(err, stopErr) {
		t.Errorf("export did not stop at the callback's error: %v", err)
	}

	// Exclusions.
	for _, p := range []string{"+393330000003", "+393330000001", "+393330000002"} {
		if _, err := e.svc.AddExclusion(ctx, e.tenantA, p, "req "+p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.AddExclusion(ctx, e.tenantA, "+393330000001", "updated"); err != nil {
		t.Fatal(err)
	}
	var _ = errors.New
	if _, err := e.svc.AddExclusion(ctx, e.tenantA, "3330000001", ""); err == nil {
		t.Error("a number without + was accepted")
	}
	page1, next, err := e.svc.ListExclusions(ctx, e.tenantA, "", 2)
	if err != nil || len(page1) != 2 || next == "" {
		t.Fatalf("page 1 = %+v, %q, %v", page1, next, err)
	}
	page2, next2, err := e.svc.ListExclusions(ctx, e.tenantA, next, 2)
	if err != nil || len(page2) != 1 || next2 != "" {
		t.Fatalf("page 2 = %+v, %q, %v", page2, next2, err)
	}
	var phones, reasons []string
	for _, x := range append(page1, page2...) {
		phones, reasons = append(phones, x.Phone), append(reasons, x.Reason)
	}
	if diff := cmp.Diff([]string{"+393330000001", "+393330000002", "+393330000003"}, phones); diff != "" {
		t.Errorf("phones (-want +got):\n%s", diff)
	}
	if reasons[0] != "updated" {
		t.Errorf("reason not updated: %q", reasons[0])
	}
	if _, _, err := e.svc.ListExclusions(ctx, e.tenantA, "garbage!", 2); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}
	if list, _, _ := e.svc.ListExclusions(ctx, e.tenantB, "", 10); len(list) != 0 {
		t.Errorf("B sees A's exclusions: %+v", list)
	}
	if err := e.svc.RemoveExclusion(ctx, e.tenantB, "+393330000001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B removed A's exclusion: %v", err)
	}
	if err := e.svc.RemoveExclusion(ctx, e.tenantA, "+393330000001"); err != nil {
		t.Error(err)
	}
	if _, err := e.svc.GetExclusion(ctx, e.tenantA, "+393330000001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removed exclusion still there: %v", err)
	}
}

func TestIntegrationSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, err := e.svc.Settings(ctx, e.tenantA)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{TenantID: e.tenantA, Timezone: "UTC", StopKeywords: []string{"STOP", "STOP ALL", "UNSUBSCRIBE", "ANNULLA", "DISISCRIVIMI"},
		StartKeywords: []string{"START", "RIPRENDI"}, StopConfirmation: "You will no longer receive messages from us. Reply START to subscribe again.",
		StartConfirmation: "You are subscribed again. Reply STOP to unsubscribe."}
	if diff := cmp.Diff(want, st, cmpopts.IgnoreFields(Settings{}, "UpdatedAt")); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	got, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{Timezone: ptr("America/New_York"), QuietHoursStart: ptr("22:30"), QuietHoursEnd: ptr("07:15"),
		StopConfirmation: ptr("Ciao")})
	if err != nil {
		t.Fatal(err)
	}
	want.Timezone, want.QuietHoursStart, want.QuietHoursEnd, want.StopConfirmation = "America/New_York", "22:30", "07:15", "Ciao"
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Settings{}, "UpdatedAt")); diff != "" {
		t.Errorf("updated (-want +got):\n%s", diff)
	}
	if _, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{Timezone: ptr("Nowhere/Land")}); err == nil {
		t.Error("bad time zone accepted")
	}
	if _, err := e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{QuietHoursStart: ptr("21:00")}); err == nil {
		t.Error("a start without an end accepted")
	}
	got, err = e.svc.UpdateSettings(ctx, e.tenantA, SettingsUpdate{QuietHoursStart: ptr(""), QuietHoursEnd: ptr("")})
	if err != nil || got.QuietHoursStart != "" || got.QuietHoursEnd != "" || got.Timezone != "America/New_York" {
		t.Errorf("removing quiet hours: %+v, %v", got, err)
	}
	if _, err := e.svc.Settings(ctx, "ten_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("settings of a missing tenant: %v", err)
	}
}
