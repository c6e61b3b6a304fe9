package stripeconnector

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// TestIntegrationPluginBinary builds the real plugin binary and drives it the
// way the host does (go-plugin over gRPC, the host's protocol client), with
// debug logging on: the manifest, a webhook and actions against stripe-mock
// come through, and no secret reaches the logs.
func TestIntegrationPluginBinary(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t, "./connectors/stripe/cmd/ponte-connector-stripe")
	mock := testenv.StripeMockURL(t)

	plug := testkit.StartBinary(t, bin, testkit.NewMemoryHost(), "debug")
	if v := plug.NegotiatedVersion; v != sdk.ProtocolVersion {
		t.Fatalf("negotiated protocol v%d, want v%d", v, sdk.ProtocolVersion)
	}
	rpc := plug.Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	m, version, err := rpc.Manifest(ctx)
	if err != nil {
		t.Fatalf("reading the manifest: %v", err)
	}
	if version != sdk.ProtocolVersion {
		t.Errorf("manifest protocol version %d", version)
	}
	rawJSONEqual := cmp.Comparer(func(a, b json.RawMessage) bool {
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
	})
	if diff := cmp.Diff(testConnector(t).Manifest(), m, cmpopts.EquateEmpty(), rawJSONEqual); diff != "" {
		t.Errorf("manifest through the plugin (-direct +plugin):\n%s", diff)
	}

	rec := newRecorder(t, mock)
	conn := stripeMockConn(t, rec, testSecretKey)

	res, err := rpc.HandleWebhook(ctx, conn, signed(readFixture(t, "payment_intent_succeeded.json"), testWebhookSecret, time.Now()))
	if err != nil {
		t.Fatalf("HandleWebhook: %v", err)
	}
	if len(res.Events) != 1 || res.Events[0].Type != EventPaymentIntentSucceeded ||
		res.Events[0].Correlation[CorrelationPaymentLink] != "pl_01J3M9T6QK8W2H5Y7Z0C4D6E8F" {
		t.Errorf("events = %+v", res.Events)
	}
	_, err = rpc.HandleWebhook(ctx, conn, signed(readFixture(t, "payment_intent_succeeded.json"), "whsec_forged", time.Now()))
	testkit.RequireKind(t, err, sdk.KindAuth)

	out, err := rpc.Invoke(ctx, sdk.ActionCall{
		Connection: conn, Action: ActionCreatePaymentLink, IdempotencyKey: "binary-test",
		Params: json.RawMessage(`{"amount": 990, "currency": "eur", "product_name": "Pizza", "metadata": {"ponte_payment_link": "pl_bin"}}`),
	})
	if err != nil {
		t.Fatalf("create_payment_link: %v", err)
	}
	var link PaymentLink
	if err := json.Unmarshal(out, &link); err != nil || !strings.HasPrefix(link.ID, "plink_") {
		t.Errorf("create_payment_link result %s (%v)", out, err)
	}
	if got := rec.take(); len(got) != 2 || got[0].IdempotencyKey != "binary-test:price" || got[1].IdempotencyKey != "binary-test" {
		t.Errorf("requests to Stripe = %+v", got)
	}

	// stripe-mock echoes a refused key in its error; neither the error nor
	// the plugin's debug log may carry it.
	const liveKey = "sk_live_SECRETdoNotLog0123456789"
	_, err = rpc.Invoke(ctx, sdk.ActionCall{
		Connection: stripeMockConn(t, rec, liveKey), Action: ActionGetPaymentLink, Params: json.RawMessage(`{"id": "plink_1"}`),
	})
	e := testkit.RequireKind(t, err, sdk.KindAuth)
	if strings.Contains(e.Error(), "SECRETdoNotLog") {
		t.Errorf("error carries the key: %v", e)
	}

	plug.Kill()
	log := plug.Logs()
	if !strings.Contains(log, "stripe-go") {
		t.Errorf("the plugin's debug log has no stripe-go lines; is debug logging reaching the host?\n%s", log)
	}
	for _, secret := range []string{"SECRETdoNotLog", testSecretKey, testWebhookSecret} {
		if strings.Contains(log, secret) {
			t.Errorf("the plugin's log carries a secret (%s...):\n%s", secret[:8], log)
		}
	}
}
