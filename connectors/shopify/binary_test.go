package shopify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// TestIntegrationPluginBinary drives the built plugin process as the host
// does: manifest, Connect registering subscriptions at the fake shop, a
// checkout webhook signed and delivered by the fake, get_checkout for it,
// a discount, typed errors, Disconnect; and no secret reaches its logs.
func TestIntegrationPluginBinary(t *testing.T) {
	t.Parallel()
	host := testkit.NewMemoryHost()
	bin := testkit.StartBinary(t, testenv.BuildBinary(t, "./connectors/shopify/cmd/ponte-connector-shopify"), host, "debug")
	rpc := bin.Client
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	m, version, err := rpc.Manifest(ctx)
	if err != nil || version != sdk.ProtocolVersion {
		t.Fatalf("manifest: v%d, %v", version, err)
	}
	direct, err := NewConnector(discardLogger(), host, nil)
	if err != nil {
		t.Fatal(err)
	}
	rawJSONEqual := cmp.Comparer(func(a, b json.RawMessage) bool {
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
	})
	if diff := cmp.Diff(direct.Manifest(), m, cmpopts.EquateEmpty(), rawJSONEqual); diff != "" {
		t.Errorf("manifest through the plugin (-direct +plugin):\n%s", diff)
	}
	params, err := hostrpc.NewParamValidator(m)
	if err != nil {
		t.Fatal(err)
	}

	shop := fakeshopify.New(t, fakeshopify.Options{})
	cfg, _ := json.Marshal(shop.Config())
	conn := sdk.Connection{ID: "conn_shopify", TenantID: "tenant_test", Config: sdk.Config(cfg)}

	// The ingress, as far as this test needs it: every POST goes to the
	// plugin; events are collected, errors answered 401.
	var (
		mu     sync.Mutex
		events []sdk.Event
	)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := rpc.HandleWebhook(r.Context(), conn, sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body, ReceivedAt: time.Now()})
		if err != nil {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		events = append(events, res.Events...)
		mu.Unlock()
	}))
	defer ingress.Close()
	conn.WebhookURL = ingress.URL + "/hooks/conn_shopify"

	if err := rpc.Connect(ctx, conn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if n := len(shop.Subscriptions()); n != len(Topics) {
		t.Fatalf("%d subscriptions, want %d", n, len(Topics))
	}
	co := shop.PutCheckout(fakeshopify.Checkout{Email: "anna@example.com", Phone: "333 123 4567",
		LineItems: []fakeshopify.LineItem{{Title: "Maglietta", Quantity: 2, Price: "19.90"}}})
	if status, err := shop.Deliver(ctx, "checkouts/create", shop.CheckoutPayload(co)); err != nil || status != 200 {
		t.Fatalf("delivery: %d %v", status, err)
	}
	mu.Lock()
	got := events
	mu.Unlock()
	if len(got) != 1 || got[0].Type != commerce.EventCheckoutCreated || got[0].Correlation[commerce.CorrelationCheckout] != co.Token ||
		got[0].Correlation[commerce.CorrelationPhone] != "+393331234567" {
		t.Fatalf("events %+v", got)
	}

	call := func(action, p, idem string) (json.RawMessage, error) {
		if err := params.Validate(action, json.RawMessage(p)); err != nil {
			t.Fatalf("%s params: %v", action, err)
		}
		return rpc.Invoke(ctx, sdk.ActionCall{Connection: conn, Action: action, Params: json.RawMessage(p), IdempotencyKey: idem})
	}
	out, err := call(commerce.ActionGetCheckout, `{"checkout_id":"`+co.Token+`"}`, "")
	if err != nil {
		t.Fatal(err)
	}
	var checkout commerce.Checkout
	if err := json.Unmarshal(out, &checkout); err != nil || checkout.RecoveryURL != shop.RecoveryURL(co) || checkout.Total != "39.80" {
		t.Errorf("get_checkout %s (%v)", out, err)
	}
	if _, err := call(commerce.ActionCreateDiscount, `{"percent": 10, "valid_for_seconds": 3600}`, "idem-1"); err != nil {
		t.Fatal(err)
	}
	shop.SetAvailable(0)
	_, err = call(commerce.ActionGetCheckout, `{"checkout_id":"`+co.Token+`"}`, "")
	if e := testkit.RequireKind(t, err, sdk.KindRateLimited); e.Code != "THROTTLED" || e.RetryAfter <= 0 {
		t.Errorf("throttle across the boundary: %+v", e)
	}
	shop.SetAvailable(1000)
	bad := conn
	badCfg := shop.Config()
	badCfg["access_token"] = "shpat_wrong"
	b, _ := json.Marshal(badCfg)
	bad.Config = sdk.Config(b)
	testkit.RequireKind(t, rpc.Connect(ctx, bad), sdk.KindAuth)

	if err := rpc.Disconnect(ctx, conn); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if n := len(shop.Subscriptions()); n != 0 {
		t.Errorf("%d subscriptions after disconnect", n)
	}

	bin.Kill()
	log := bin.Logs()
	for _, secret := range []string{shop.AccessToken, shop.ClientSecret} {
		if strings.Contains(log, secret) {
			t.Errorf("the plugin's log carries a secret (%s...)", secret[:6])
		}
	}
}
