package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/workflows/cartrecovery"
	"github.com/ponte-hub/ponte/workflows/ordernotify"
)

// automationsFixture is tenant A's shop and WhatsApp channel connections,
// for the automation settings and report operations.
type automationsFixture struct {
	shopA    string // A's shopsim connection
	channelA string // A's cloudapi connection
	store    *automations.Store
	reports  *cartrecovery.DB
}

func (f *fixture) setUpAutomations(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	mk := func(connector, name string) string {
		c, err := f.st.CreateConnection(ctx, f.tenantA, store.NewConnection{Connector: connector, Name: name, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	f.auto = &automationsFixture{
		shopA: mk("shopsim", "A shop"), channelA: mk("cloudapi", "A number"),
		store: automations.NewStore(f.st.Pool()), reports: cartrecovery.NewDB(f.st.Pool()),
	}
}

// cartRecoveryBody is a valid cart recovery settings document on A's channel.
func (f *fixture) cartRecoveryBody(enabled bool) string {
	st := cartrecovery.DefaultSettings()
	st.Enabled = enabled
	st.ChannelConnectionID = f.auto.channelA
	b, _ := json.Marshal(st)
	return string(b)
}

func (f *fixture) orderNotifyBody() string {
	st := ordernotify.DefaultSettings()
	st.ChannelConnectionID = f.auto.channelA
	b, _ := json.Marshal(st)
	return string(b)
}

const reportQuery = "?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"

func (f *fixture) automationRoutes() []route {
	cr := "/v1/connections/" + f.auto.shopA + "/automations/cart-recovery"
	on := "/v1/connections/" + f.auto.shopA + "/automations/order-notifications"
	return []route{
		{"GET", cr, "read", ""},
		{"PUT", cr, "write", f.cartRecoveryBody(true)},
		{"GET", on, "read", ""},
		{"PUT", on, "write", f.orderNotifyBody()},
		{"GET", "/v1/reports/cart-recovery" + reportQuery, "read", ""},
	}
}

func (f *fixture) automationIsolationTests(notFound, noneOfA func(*testing.T, response)) map[string]isolationTest {
	cr := "/v1/connections/" + f.auto.shopA + "/automations/cart-recovery"
	on := "/v1/connections/" + f.auto.shopA + "/automations/order-notifications"
	return map[string]isolationTest{
		"get A's cart recovery":       {"GET", cr, "", notFound},
		"put A's cart recovery":       {"PUT", cr, f.cartRecoveryBody(false), notFound},
		"get A's order notifications": {"GET", on, "", notFound},
		"put A's order notifications": {"PUT", on, f.orderNotifyBody(), notFound},
		"cart recovery report":        {"GET", "/v1/reports/cart-recovery" + reportQuery, "", noneOfA},
	}
}

// Settings round-trip, are validated field by field, and must name one of
// the tenant's own WhatsApp connections.
func TestIntegrationAutomationSettings(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cr := "/v1/connections/" + f.auto.shopA + "/automations/cart-recovery"

	got := decode[cartrecovery.Settings](t, f.do(t, "GET", cr, "a-read", ""), http.StatusOK)
	if got.Enabled || len(got.Steps) != 3 {
		t.Errorf("defaults: enabled %t, %d steps; want disabled with 3 steps", got.Enabled, len(got.Steps))
	}
	decode[cartrecovery.Settings](t, f.do(t, "PUT", cr, "a-write", f.cartRecoveryBody(true)), http.StatusOK)
	got = decode[cartrecovery.Settings](t, f.do(t, "GET", cr, "a-read", ""), http.StatusOK)
	if !got.Enabled || got.ChannelConnectionID != f.auto.channelA {
		t.Errorf("after PUT: %+v", got)
	}

	bad := map[string]struct {
		path, body string
		status     int
		loc        string
	}{
		"channel of another connector": {cr, `{"enabled":true,"channel_connection_id":"` + f.connA + `","steps":[{"delay":"1h","template":"a","language":"en"}]}`, 422, "body.channel_connection_id"},
		"unknown channel":              {cr, `{"enabled":true,"channel_connection_id":"con_nope","steps":[{"delay":"1h","template":"a","language":"en"}]}`, 422, "body.channel_connection_id"},
		"B's channel":                  {cr, `{"enabled":true,"channel_connection_id":"` + f.connB + `","steps":[{"delay":"1h","template":"a","language":"en"}]}`, 422, "body.channel_connection_id"},
		"not a shop":                   {"/v1/connections/" + f.connA + "/automations/cart-recovery", f.cartRecoveryBody(true), 422, ""},
		"unknown connection":           {"/v1/connections/con_nope/automations/cart-recovery", f.cartRecoveryBody(true), 404, ""},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			p := problem(t, f.do(t, "PUT", tc.path, "a-write", tc.body), tc.status)
			if tc.loc != "" && (len(p.Errors) == 0 || p.Errors[0].Location != tc.loc) {
				t.Errorf("errors %+v, want one at %s", p.Errors, tc.loc)
			}
		})
	}
	// The stored settings are unchanged by the refused PUTs.
	got = decode[cartrecovery.Settings](t, f.do(t, "GET", cr, "a-read", ""), http.StatusOK)
	if got.ChannelConnectionID != f.auto.channelA {
		t.Errorf("a refused PUT changed the settings: %+v", got)
	}

	// Order notifications need no channel: without one, any of the
	// tenant's numbers sends them (a deleted number leaves them so).
	on := "/v1/connections/" + f.auto.shopA + "/automations/order-notifications"
	decode[map[string]any](t, f.do(t, "PUT", on, "a-write", `{"enabled":false,"confirm_on":"paid"}`), http.StatusOK)
	decode[map[string]any](t, f.do(t, "PUT", on, "a-write", `{"enabled":true,"confirm_on":"paid"}`), http.StatusOK)
	problem(t, f.do(t, "PUT", on, "a-write", `{"enabled":true,"confirm_on":"sometimes"}`), http.StatusUnprocessableEntity)

	// Deleting the number the automations send from leaves them bound to
	// any number rather than to a connection that is gone.
	if got := decode[cartrecovery.Settings](t, f.do(t, "GET", cr, "a-read", ""), http.StatusOK); got.ChannelConnectionID != f.auto.channelA {
		t.Fatalf("before the deletion the channel is %q", got.ChannelConnectionID)
	}
	if r := f.do(t, "DELETE", "/v1/connections/"+f.auto.channelA, "a-write", ""); r.Code != http.StatusNoContent {
		t.Fatalf("deleting the number's connection: %d %s", r.Code, r.Body)
	}
	if got := decode[cartrecovery.Settings](t, f.do(t, "GET", cr, "a-read", ""), http.StatusOK); got.ChannelConnectionID != "" || len(got.Steps) != 3 {
		t.Fatalf("after the deletion: channel %q, %d steps; want no channel and the steps kept", got.ChannelConnectionID, len(got.Steps))
	}

	// An empty report period is refused; a real one answers with zeros.
	problem(t, f.do(t, "GET", "/v1/reports/cart-recovery?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "a-read", ""), 422)
	rep := decode[cartrecovery.Report](t, f.do(t, "GET", "/v1/reports/cart-recovery"+reportQuery, "a-read", ""), http.StatusOK)
	if rep.CartsSeen != 0 || rep.Recovered != 0 {
		t.Errorf("report of an empty period: %+v", rep)
	}
}
