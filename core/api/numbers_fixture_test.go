package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/sessions"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// linkedDeviceManifest stands in for connectors/linkeddevice's manifest.
var linkedDeviceManifest = sdk.Manifest{
	Name: "linkeddevice", Version: "0.1.0", DisplayName: "WhatsApp (linked device)",
	Config: []sdk.ConfigField{{Name: "device_name", Type: sdk.FieldString, Default: "Ponte", Pattern: `^[^\n]{1,50}$`}},
	Actions: []sdk.Action{
		{Name: "logout"},
		{Name: "start_pairing", Params: []byte(`{"type":"object","properties":{"phone":{"type":"string"}},"additionalProperties":false}`)},
	},
}

// numRegistry is the fixture registry with the linked-device connector
// installed too.
type numRegistry struct{ fakeRegistry }

func (r numRegistry) Manifests() []sdk.Manifest {
	return append(r.fakeRegistry.Manifests(), linkedDeviceManifest)
}

// fakeSessionInvoker plays the linked-device connector's actions as the
// session holder would: start_pairing with a phone returns a code. err, when
// set, is returned for every call.
type fakeSessionInvoker struct {
	mu    sync.Mutex
	calls []invoke.Call
	err   error
}

func (f *fakeSessionInvoker) Invoke(_ context.Context, call invoke.Call) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.err != nil {
		return nil, f.err
	}
	if call.Action == "start_pairing" && strings.Contains(string(call.Params), "phone") {
		return json.RawMessage(`{"pairing_code":"ABCD-EFGH"}`), nil
	}
	return json.RawMessage(`{}`), nil
}

// take returns "action connection params" of the calls so far and forgets them.
func (f *fakeSessionInvoker) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.Action + " " + c.ConnectionID + " " + string(c.Params)
	}
	f.calls = nil
	return out
}

func (f *fakeSessionInvoker) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

type fakeRefresher struct{ n atomic.Int32 }

func (f *fakeRefresher) Refresh() { f.n.Add(1) }

// numFixture is an API with the numbers operations on a real Postgres:
// tenants A and B, service keys of each scope, users of each role in A,
// and A's cloudapi and stripe connections.
type numFixture struct {
	h       *gin.Engine
	st      *store.Store
	nums    *numbers.Store
	inv     *fakeSessionInvoker
	refresh *fakeRefresher
	logs    *syncBuffer
	tenantA string
	tenantB string
	keys    map[string]string
	cloudA  string
	stripeA string
	cloudB  string
}

func newNumFixture(t *testing.T) *numFixture {
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
	f := &numFixture{st: st, inv: &fakeSessionInvoker{}, refresh: &fakeRefresher{}, logs: &syncBuffer{}, keys: map[string]string{}}
	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	f.tenantA, f.tenantB = a.ID, b.ID
	for name, spec := range map[string]struct{ tenant, scope string }{
		"a-admin": {a.ID, "admin"}, "a-write": {a.ID, "write"}, "a-read": {a.ID, "read"}, "b-admin": {b.ID, "admin"},
	} {
		_, plain, err := st.CreateAPIKey(ctx, spec.tenant, name, []string{spec.scope})
		if err != nil {
			t.Fatal(err)
		}
		f.keys[name] = plain
	}
	for _, role := range store.Roles {
		u, err := st.CreateUser(ctx, a.ID, store.NewUser{Email: role + "@a.example", Name: "A " + role, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		_, plain, err := st.CreateUserAPIKey(ctx, a.ID, u.ID, "key of "+role)
		if err != nil {
			t.Fatal(err)
		}
		f.keys["a-user-"+role] = plain
	}
	mk := func(tenantID, connector string) string {
		c, err := st.CreateConnection(ctx, tenantID, store.NewConnection{Connector: connector, Name: connector, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	f.cloudA, f.stripeA, f.cloudB = mk(a.ID, "cloudapi"), mk(a.ID, "stripe"), mk(b.ID, "cloudapi")

	f.nums = numbers.NewStore(st.Pool(), st, nil)
	watcher := numbers.NewWatcher(st.Pool(), nil)
	t.Cleanup(watcher.Close)
	f.h, err = api.New(api.Deps{
		Store:           st,
		Connectors:      numRegistry{},
		PaymentLinks:    &fakePaymentLinks{},
		StreamHeartbeat: 50 * time.Millisecond,
		PublicURL:       publicURL,
		Logger:          slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:         prometheus.NewRegistry(),
		Numbers:         api.NumbersDeps{Store: f.nums, Invoker: f.inv, Watcher: watcher, Sessions: f.refresh},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do sends a request (see apiRequest); a pairing stream, which does not end
// by itself while nothing happens, is cut after 300 ms.
func (f *numFixture) do(t *testing.T, method, path, key, body string) response {
	t.Helper()
	var stream time.Duration
	if strings.HasSuffix(path, "/qr") {
		stream = 300 * time.Millisecond
	}
	return serveFor(f.h, apiRequest(t, f.keys, method, path, key, body), stream)
}

// createLinked adds a linked device to tenant A and returns it.
func (f *numFixture) createLinked(t *testing.T, label string) api.NumberBody {
	t.Helper()
	return decode[api.NumberBody](t, f.do(t, "POST", "/v1/numbers", "a-write", `{"kind":"linked_device","label":"`+label+`"}`), http.StatusCreated)
}

// report plays the lease holder: it writes the connection's session state
// and notifies every node, as core/sessions does.
func (f *numFixture) report(t *testing.T, connectionID string, st sessionReport) {
	t.Helper()
	ctx := context.Background()
	_, err := f.st.Pool().Exec(ctx, `
		INSERT INTO session_states (connection_id, tenant_id, state, reason, since, qr_code, qr_expires_at, pairing_code, phone, push_name)
		VALUES ($1, $2, $3, $4, now(), NULLIF($5, ''), $6, NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''))
		ON CONFLICT (connection_id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
			since = CASE WHEN session_states.state = EXCLUDED.state THEN session_states.since ELSE now() END,
			qr_code = EXCLUDED.qr_code, qr_expires_at = EXCLUDED.qr_expires_at, pairing_code = EXCLUDED.pairing_code,
			phone = EXCLUDED.phone, push_name = EXCLUDED.push_name, updated_at = now()`,
		connectionID, f.tenantA, st.state, st.reason, st.qr, st.qrExpires, st.pairingCode, st.phone, st.pushName)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sessions.Notice{TenantID: f.tenantA, ConnectionID: connectionID, Kind: sessions.NoticeState})
	if _, err := f.st.Pool().Exec(ctx, `SELECT pg_notify($1, $2)`, sessions.NotifyChannel, string(b)); err != nil {
		t.Fatal(err)
	}
}

type sessionReport struct {
	state, reason, qr, pairingCode, phone, pushName string
	qrExpires                                       *time.Time
}
