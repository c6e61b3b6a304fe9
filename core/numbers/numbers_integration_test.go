package numbers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/sessions"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// linkedFields stand in for the linkeddevice manifest's configuration.
var linkedFields = []sdk.ConfigField{
	{Name: "device_name", Type: sdk.FieldString, Default: "Ponte", Pattern: `^[^\n]{1,50}$`},
}

// releaser records ReleaseConnection calls and fails for connections in fail.
type releaser struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
}

func (r *releaser) ReleaseConnection(_ context.Context, tenantID, connectionID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, tenantID+"/"+connectionID)
	if r.fail[connectionID] {
		return errors.New("automations unavailable")
	}
	return nil
}

type env struct {
	st       *store.Store
	nums     *numbers.Store
	rel      *releaser
	tenant   string
	other    string
	cloudA   string // the tenant's cloudapi connection
	stripeA  string
	cloudB   string // the other tenant's cloudapi connection
	failConn *recordingConns
}

// recordingConns is the real store recording the connections it created, so
// a test can check that a failed Create removed its connection.
type recordingConns struct {
	*store.Store
	mu      sync.Mutex
	created []string
}

func (f *recordingConns) CreateConnection(ctx context.Context, tenantID string, in store.NewConnection) (store.Connection, error) {
	c, err := f.Store.CreateConnection(ctx, tenantID, in)
	if err == nil {
		f.mu.Lock()
		f.created = append(f.created, c.ID)
		f.mu.Unlock()
	}
	return c, err
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
	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(tenantID, connector string) string {
		c, err := st.CreateConnection(ctx, tenantID, store.NewConnection{Connector: connector, Name: connector, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	e := &env{st: st, rel: &releaser{fail: map[string]bool{}}, tenant: a.ID, other: b.ID,
		cloudA: mk(a.ID, "cloudapi"), stripeA: mk(a.ID, "stripe"), cloudB: mk(b.ID, "cloudapi")}
	e.failConn = &recordingConns{Store: st}
	e.nums = numbers.NewStore(st.Pool(), e.failConn, e.rel)
	return e
}

func intp(v int) *int    { return &v }
func boolp(v bool) *bool { return &v }

func validationFields(t *testing.T, err error) []string {
	t.Helper()
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *store.ValidationError", err)
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.Field
	}
	return out
}

func TestIntegrationCreateLinkedDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	n, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: " Support ",
		DeviceName: "Ponte Support", Fields: linkedFields, Pacing: numbers.PacingSettings{MessagesPerMinute: intp(3)}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Label != "Support" || n.Kind != numbers.KindLinkedDevice || n.Session != nil {
		t.Errorf("created %+v", n)
	}
	if !n.Modules.Automations || !n.Modules.Campaigns {
		t.Errorf("modules %+v, want both on by default", n.Modules)
	}
	want := numbers.DefaultPacing()
	want.MessagesPerMinute = 3
	if diff := cmp.Diff(want, n.Pacing); diff != "" {
		t.Errorf("effective pacing (-want +got):\n%s", diff)
	}
	c, err := e.st.GetConnection(ctx, e.tenant, n.ConnectionID)
	if err != nil {
		t.Fatalf("the number's connection: %v", err)
	}
	if c.Connector != "linkeddevice" || c.Name != "Support" || string(c.Config) != `{"device_name": "Ponte Support"}` {
		t.Errorf("connection %+v config %s", c, c.Config)
	}

	// The default device name comes from the manifest.
	n2, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "Sales", Fields: linkedFields})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := e.st.GetConnection(ctx, e.tenant, n2.ConnectionID)
	if string(c2.Config) != `{"device_name": "Ponte"}` {
		t.Errorf("default config %s", c2.Config)
	}

	got, err := e.nums.ByConnection(ctx, e.tenant, n.ConnectionID)
	if err != nil || got.ID != n.ID {
		t.Errorf("ByConnection = %+v, %v", got, err)
	}
	if _, err := e.nums.ByConnection(ctx, e.other, n.ConnectionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ByConnection of another tenant: %v", err)
	}
	if _, err := e.nums.Get(ctx, e.other, n.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of another tenant: %v", err)
	}
}

func TestIntegrationCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "Main", ConnectionID: e.cloudA}); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		in     numbers.NewNumber
		fields []string
		err    error
	}{
		"no label":             {numbers.NewNumber{Kind: numbers.KindLinkedDevice, Fields: linkedFields}, []string{"label"}, nil},
		"unknown kind":         {numbers.NewNumber{Kind: "sms", Label: "x"}, []string{"kind"}, nil},
		"bad device name":      {numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", DeviceName: "a\nb", Fields: linkedFields}, []string{"device_name"}, nil},
		"pacing out of range":  {numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields, Pacing: numbers.PacingSettings{MessagesPerMinute: intp(61), NewContactsPerDay: intp(-1)}}, []string{"pacing.messages_per_minute", "pacing.new_contacts_per_day"}, nil},
		"min gap above max":    {numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields, Pacing: numbers.PacingSettings{MinGapSeconds: intp(20)}}, []string{"pacing.min_gap_seconds"}, nil},
		"cloud without conn":   {numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "x"}, []string{"connection_id"}, nil},
		"cloud over stripe":    {numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "x", ConnectionID: e.stripeA}, []string{"connection_id"}, nil},
		"cloud of other":       {numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "x", ConnectionID: e.cloudB}, []string{"connection_id"}, nil},
		"cloud with pacing":    {numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "x", ConnectionID: e.cloudA, Pacing: numbers.PacingSettings{Typing: boolp(false)}}, []string{"pacing"}, nil},
		"cloud already number": {numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "again", ConnectionID: e.cloudA}, nil, numbers.ErrExists},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.nums.Create(ctx, e.tenant, tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if diff := cmp.Diff(tc.fields, validationFields(t, err)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
		})
	}
	// No refused linked device left a connection behind.
	conns, _, err := e.st.ListConnections(ctx, e.tenant, store.ConnectionFilter{Connector: "linkeddevice"})
	if err != nil || len(conns) != 0 {
		t.Errorf("linkeddevice connections after refusals: %d, %v", len(conns), err)
	}
	// An unknown tenant.
	if _, err := e.nums.Create(ctx, "ten_nope", numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
}

// A number insert that fails after the connection was created removes the
// connection again.
func TestIntegrationCreateCleansUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Make every insert into numbers fail, as a broken database would.
	if _, err := e.st.Pool().Exec(ctx, `ALTER TABLE numbers ADD CONSTRAINT no_rows CHECK (false) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	_, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields})
	if err == nil {
		t.Fatal("Create succeeded against a table that refuses rows")
	}
	if len(e.failConn.created) != 1 {
		t.Fatalf("connections created: %v", e.failConn.created)
	}
	if _, err := e.st.GetConnection(ctx, e.tenant, e.failConn.created[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the connection of the failed number is still there: %v", err)
	}
}

func TestIntegrationListPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		n, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: fmt.Sprintf("n%d", i), Fields: linkedFields})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, n.ID)
	}
	cloud, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "cloud", ConnectionID: e.cloudA})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, cloud.ID)
	if _, err := e.nums.Create(ctx, e.other, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "B", ConnectionID: e.cloudB}); err != nil {
		t.Fatal(err)
	}
	var got []string
	cur := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		page, next, err := e.nums.List(ctx, e.tenant, numbers.Filter{Cursor: cur, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range page {
			got = append(got, n.ID)
		}
		if next == "" {
			break
		}
		cur = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	only, _, err := e.nums.List(ctx, e.tenant, numbers.Filter{Kind: numbers.KindCloudAPI})
	if err != nil || len(only) != 1 || only[0].ID != cloud.ID {
		t.Errorf("cloud_api filter: %+v, %v", only, err)
	}
	if _, _, err := e.nums.List(ctx, e.tenant, numbers.Filter{Cursor: "garbage"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestIntegrationUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	n, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "Support", Fields: linkedFields})
	if err != nil {
		t.Fatal(err)
	}
	label := "Help desk"
	n, err = e.nums.Update(ctx, e.tenant, n.ID, numbers.Update{Label: &label,
		Modules: &numbers.ModulesUpdate{Campaigns: boolp(false)},
		Pacing:  json.RawMessage(`{"messages_per_minute": 10, "typing": false, "max_gap_seconds": 30}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := numbers.DefaultPacing()
	want.MessagesPerMinute, want.Typing, want.MaxGapSeconds = 10, false, 30
	if diff := cmp.Diff(want, n.Pacing); diff != "" {
		t.Errorf("pacing (-want +got):\n%s", diff)
	}
	if n.Label != label || !n.Modules.Automations || n.Modules.Campaigns {
		t.Errorf("updated %+v", n)
	}
	if c, _ := e.st.GetConnection(ctx, e.tenant, n.ConnectionID); c.Name != label {
		t.Errorf("connection name %q, want the new label", c.Name)
	}
	// Only what the user set is stored; null resets a field to its default.
	var stored string
	if err := e.st.Pool().QueryRow(ctx, `SELECT pacing::text FROM numbers WHERE id = $1`, n.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != `{"typing": false, "max_gap_seconds": 30, "messages_per_minute": 10}` {
		t.Errorf("stored pacing %s", stored)
	}
	n, err = e.nums.Update(ctx, e.tenant, n.ID, numbers.Update{Pacing: json.RawMessage(`{"typing": null}`)})
	if err != nil || !n.Pacing.Typing || n.Pacing.MessagesPerMinute != 10 {
		t.Errorf("after resetting typing: %+v, %v", n.Pacing, err)
	}
	p, err := numbers.PacingFor(ctx, e.st.Pool(), e.tenant, n.ConnectionID)
	if err != nil || p != n.Pacing {
		t.Errorf("PacingFor = %+v, %v; want %+v", p, err, n.Pacing)
	}
	if p, err := numbers.PacingFor(ctx, e.st.Pool(), e.tenant, e.cloudA); err != nil || p != numbers.DefaultPacing() {
		t.Errorf("PacingFor of a connection that is no linked device = %+v, %v", p, err)
	}

	bad := map[string]struct {
		u      numbers.Update
		fields []string
	}{
		"empty label":    {numbers.Update{Label: new(string)}, []string{"label"}},
		"unknown field":  {numbers.Update{Pacing: json.RawMessage(`{"burst": 3}`)}, []string{"pacing"}},
		"wrong type":     {numbers.Update{Pacing: json.RawMessage(`{"typing": "yes"}`)}, []string{"pacing.typing"}},
		"min above max":  {numbers.Update{Pacing: json.RawMessage(`{"min_gap_seconds": 31}`)}, []string{"pacing.min_gap_seconds"}},
		"max below min":  {numbers.Update{Pacing: json.RawMessage(`{"max_gap_seconds": 3}`)}, []string{"pacing.max_gap_seconds"}},
		"gap over bound": {numbers.Update{Pacing: json.RawMessage(`{"max_gap_seconds": 301}`)}, []string{"pacing.max_gap_seconds"}},
		"not an object":  {numbers.Update{Pacing: json.RawMessage(`[1]`)}, []string{"pacing"}},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := e.nums.Update(ctx, e.tenant, n.ID, tc.u)
			if diff := cmp.Diff(tc.fields, validationFields(t, err)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
		})
	}
	after, _ := e.nums.Get(ctx, e.tenant, n.ID)
	if after.Pacing != n.Pacing {
		t.Errorf("a refused update changed the pacing: %+v", after.Pacing)
	}

	cloud, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "Main", ConnectionID: e.cloudA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.nums.Update(ctx, e.tenant, cloud.ID, numbers.Update{Pacing: json.RawMessage(`{"typing": false}`)}); err == nil {
		t.Error("pacing set on a Cloud API number")
	}
	if _, err := e.nums.Update(ctx, e.other, n.ID, numbers.Update{Label: &label}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update by another tenant: %v", err)
	}
}

// Concurrent patches of different pacing fields both land.
func TestIntegrationUpdateConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	n, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, patch := range []string{`{"messages_per_minute": 7}`, `{"new_contacts_per_day": 5}`, `{"typing_max_seconds": 9}`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.nums.Update(ctx, e.tenant, n.ID, numbers.Update{Pacing: json.RawMessage(patch)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := e.nums.Get(ctx, e.tenant, n.ID)
	if got.Pacing.MessagesPerMinute != 7 || got.Pacing.NewContactsPerDay != 5 || got.Pacing.TypingMaxSeconds != 9 {
		t.Errorf("pacing after concurrent patches: %+v", got.Pacing)
	}
}

func TestIntegrationSessionJoined(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	n, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if _, err := e.st.Pool().Exec(ctx, `INSERT INTO session_states (connection_id, tenant_id, state, reason, since, phone, push_name, qr_code)
		VALUES ($1, $2, 'connected', '', $3, '+393331234567', 'Shop', NULL)`, n.ConnectionID, e.tenant, since); err != nil {
		t.Fatal(err)
	}
	got, err := e.nums.Get(ctx, e.tenant, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sessions.LoadState(ctx, e.st.Pool(), e.tenant, n.ConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Session == nil {
		t.Fatal("no session joined")
	}
	if diff := cmp.Diff(want, *got.Session); diff != "" {
		t.Errorf("joined session vs LoadState (-want +got):\n%s", diff)
	}
	if !got.Session.Since.Equal(since) || got.Session.Phone != "+393331234567" {
		t.Errorf("session %+v", got.Session)
	}
}

func TestIntegrationDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	linked, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "x", Fields: linkedFields})
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := e.nums.Create(ctx, e.tenant, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "Main", ConnectionID: e.cloudA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Pool().Exec(ctx, `INSERT INTO session_states (connection_id, tenant_id, state) VALUES ($1, $2, 'pairing')`, linked.ConnectionID, e.tenant); err != nil {
		t.Fatal(err)
	}

	if err := e.nums.Delete(ctx, e.other, linked.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete by another tenant: %v", err)
	}
	// A releaser that fails keeps the number: its bindings must not dangle.
	e.rel.fail[cloud.ConnectionID] = true
	if err := e.nums.Delete(ctx, e.tenant, cloud.ID); err == nil {
		t.Error("deleted although the bindings could not be released")
	}
	if _, err := e.nums.Get(ctx, e.tenant, cloud.ID); err != nil {
		t.Errorf("number gone after a refused delete: %v", err)
	}
	e.rel.fail[cloud.ConnectionID] = false

	for _, n := range []numbers.Number{linked, cloud} {
		if err := e.nums.Delete(ctx, e.tenant, n.ID); err != nil {
			t.Fatalf("delete %s: %v", n.Kind, err)
		}
		if _, err := e.nums.Get(ctx, e.tenant, n.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still there: %v", n.Kind, err)
		}
		if err := e.nums.Delete(ctx, e.tenant, n.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
	}
	if diff := cmp.Diff([]string{e.tenant + "/" + cloud.ConnectionID, e.tenant + "/" + linked.ConnectionID, e.tenant + "/" + cloud.ConnectionID}, e.rel.calls); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	// The linked device's connection and session went; the Cloud API
	// connection stays.
	if _, err := e.st.GetConnection(ctx, e.tenant, linked.ConnectionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("linked device's connection: %v", err)
	}
	if _, err := sessions.LoadState(ctx, e.st.Pool(), e.tenant, linked.ConnectionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("linked device's session state: %v", err)
	}
	if _, err := e.st.GetConnection(ctx, e.tenant, e.cloudA); err != nil {
		t.Errorf("the Cloud API connection went with its number: %v", err)
	}
}

// The watcher hands each connection's notices to its subscribers only.
func TestIntegrationWatcher(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := numbers.NewWatcher(e.st.Pool(), nil)
	defer w.Close()
	mine, stopMine := w.Watch(ctx, e.tenant, "con_1")
	defer stopMine()
	theirs, stopTheirs := w.Watch(ctx, e.other, "con_1")
	defer stopTheirs()

	notify := func(n sessions.Notice) {
		b, _ := json.Marshal(n)
		if _, err := e.st.Pool().Exec(ctx, `SELECT pg_notify($1, $2)`, sessions.NotifyChannel, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	notify(sessions.Notice{TenantID: e.tenant, ConnectionID: "con_2", Kind: sessions.NoticeState})
	notify(sessions.Notice{TenantID: e.tenant, ConnectionID: "con_1", Kind: sessions.NoticeState})
	if _, err := e.st.Pool().Exec(ctx, `SELECT pg_notify($1, 'not json')`, sessions.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-mine:
		if n.ConnectionID != "con_1" || n.TenantID != e.tenant || n.Kind != sessions.NoticeState {
			t.Errorf("notice %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notice")
	}
	select {
	case n := <-mine:
		t.Errorf("another connection's notice delivered: %+v", n)
	case n := <-theirs:
		t.Errorf("another tenant got the notice: %+v", n)
	case <-time.After(200 * time.Millisecond):
	}
	stopMine()
	if _, ok := <-mine; ok {
		t.Error("channel open after the subscription ended")
	}
}
