package woocommerce

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

	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// TestIntegrationPluginBinary drives the built plugin process as the host
// does: manifest, Connect (webhooks registered, state kept through the
// host service), a signed delivery from the fake store, a reconciliation
// poll, an action, a typed error across the process boundary, Disconnect;
// and no secret reaches the plugin's logs.
func TestIntegrationPluginBinary(t *testing.T) {
	t.Parallel()
	host := testkit.NewMemoryHost()
	bin := testkit.StartBinary(t, testenv.BuildBinary(t, "./connectors/woocommerce/cmd/ponte-connector-woocommerce"), host, "debug")
	rpc := bin.Client
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	m, version, err := rpc.Manifest(ctx)
	if err != nil || version != sdk.ProtocolVersion {
		t.Fatalf("manifest: v%d, %v", version, err)
	}
	direct, err := NewConnector(host, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rawJSONEqual := cmp.Comparer(func(a, b json.RawMessage) bool {
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
	})
	want := direct.Manifest()
	want.Lifecycle = true // set by the SDK for connectors that implement sdk.Lifecycle
	if diff := cmp.Diff(want, m, cmpopts.EquateEmpty(), rawJSONEqual); diff != "" {
		t.Errorf("manifest through the plugin (-direct +plugin):\n%s", diff)
	}
	if err := testkit.CheckManifest(m); err != nil {
		t.Errorf("manifest: %v", err)
	}

	fake := fakewoo.New(t, fakewoo.Options{})
	var (
		mu     sync.Mutex
		conn   sdk.Connection
		events []sdk.Event
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		c := conn
		mu.Unlock()
		res, err := rpc.HandleWebhook(r.Context(), c, sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body, ReceivedAt: time.Now()})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		events = append(events, res.Events...)
		mu.Unlock()
	}))
	defer hook.Close()
	mu.Lock()
	conn = connWith(t, testConfig(fake.URL()), hook.URL)
	mu.Unlock()

	if err := rpc.Connect(ctx, conn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if n := len(fake.Webhooks()); n != len(webhookTopics) {
		t.Errorf("%d webhooks after connect", n)
	}
	if b, ok := host.State(testConnID, StateWebhooks); !ok || len(b) < 10 {
		t.Errorf("webhook ids in host state: %s", b)
	}

	o := fake.PutOrder(fakewoo.Order{Status: "pending", PaymentMethod: "stripe",
		Billing:   fakewoo.Address{FirstName: "Anna", Email: "anna@example.it", Phone: "333 123 4567", Country: "IT"},
		LineItems: []fakewoo.LineItem{{Name: "Tazza", Price: 12.5, Quantity: 2}}})
	mu.Lock()
	got := eventKeys(events)
	mu.Unlock()
	if len(got) != 1 || got[0] != "checkout.created checkout:"+jsonID(o.ID)+":created" {
		t.Errorf("events from the delivery: %v", got)
	}

	res, err := rpc.Poll(ctx, conn, "")
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if len(res.Events) != 1 || res.Events[0].DedupeKey != "checkout:"+jsonID(o.ID)+":created" || res.Cursor == "" {
		t.Errorf("poll: %+v", res)
	}

	params := json.RawMessage(`{"percent": 20, "valid_for_seconds": 86400, "email": "anna@example.it", "prefix": "CIAO-"}`)
	out, err := rpc.Invoke(ctx, sdk.ActionCall{Connection: conn, Action: commerce.ActionCreateDiscount, Params: params, IdempotencyKey: "run-1/step-2"})
	if err != nil {
		t.Fatalf("create_discount: %v", err)
	}
	var d commerce.Discount
	if err := json.Unmarshal(out, &d); err != nil || !strings.HasPrefix(d.Code, "ciao-") || d.Percent != 20 {
		t.Errorf("discount %s: %v", out, err)
	}

	fake.FailNext(http.StatusTooManyRequests)
	_, err = rpc.Invoke(ctx, sdk.ActionCall{Connection: conn, Action: commerce.ActionGetOrder, Params: json.RawMessage(`{"order_id": "` + jsonID(o.ID) + `"}`)})
	if e := testkit.RequireKind(t, err, sdk.KindRateLimited); e.Code != "too_many_requests" || e.RetryAfter != 7*time.Second {
		t.Errorf("rate limit error %+v", e)
	}

	if err := rpc.Disconnect(ctx, conn); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if n := len(fake.Webhooks()); n != 0 {
		t.Errorf("%d webhooks after disconnect", n)
	}

	bin.Kill()
	log := bin.Logs()
	for _, secret := range []string{fakewoo.DefaultConsumerKey, fakewoo.DefaultConsumerSecret, testWebhookSecret} {
		if strings.Contains(log, secret) {
			t.Errorf("the plugin's log carries a secret (%s...)", secret[:6])
		}
	}
	for _, personal := range []string{"anna@example.it", "333 123 4567"} {
		if strings.Contains(log, personal) {
			t.Errorf("the plugin's log carries personal data (%s)", personal)
		}
	}
}

func jsonID(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
