package woocommerce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// hookSummary is what a test asserts of the store's webhooks.
type hookSummary struct {
	Topic, Status, URL, Secret string
}

func summarize(hooks []fakewoo.Webhook) []hookSummary {
	var out []hookSummary
	for _, w := range hooks {
		out = append(out, hookSummary{w.Topic, w.Status, w.DeliveryURL, w.Secret})
	}
	slices.SortFunc(out, func(a, b hookSummary) int { return strings.Compare(a.Topic+a.URL, b.Topic+b.URL) })
	return out
}

func wantHooks(url, secret string, extra ...hookSummary) []hookSummary {
	var out []hookSummary
	for _, topic := range webhookTopics {
		out = append(out, hookSummary{topic, "active", url, secret})
	}
	out = append(out, extra...)
	slices.SortFunc(out, func(a, b hookSummary) int { return strings.Compare(a.Topic+a.URL, b.Topic+b.URL) })
	return out
}

func stateIDs(t testing.TB, h *testkit.Harness) webhookIDs {
	t.Helper()
	b, ok := h.Host.State(testConnID, StateWebhooks)
	if !ok {
		return nil
	}
	ids := webhookIDs{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &ids); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// createForeignWebhook registers a webhook at the store the way another
// integration (or an earlier Ponte install) would, over REST.
func createForeignWebhook(t testing.TB, fake *fakewoo.Server, topic, url string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"topic": topic, "delivery_url": url, "secret": "theirs-0123456789abc", "status": "active"})
	req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/wp-json/wc/v3/webhooks", bytes.NewReader(body))
	req.SetBasicAuth(fakewoo.DefaultConsumerKey, fakewoo.DefaultConsumerSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a webhook: %d", resp.StatusCode)
	}
}

// TestConnectDisconnect registers the webhooks against the fake store and
// checks that Connect and Disconnect are idempotent, that Connect repairs
// what WooCommerce or a person changed, and that it finds its webhooks again
// when its state is lost, without duplicates.
func TestConnectDisconnect(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	fake := fakewoo.New(t, fakewoo.Options{})
	in := startIngress(t, h)
	conn := connWith(t, testConfig(fake.URL()), in.url)
	in.setConn(conn)
	ctx := t.Context()

	if err := h.Connect(ctx, conn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if diff := cmp.Diff(wantHooks(in.url, testWebhookSecret), summarize(fake.Webhooks())); diff != "" {
		t.Fatalf("webhooks after connect (-want +got):\n%s", diff)
	}
	pings := 0
	for _, d := range fake.Deliveries() {
		if d.Ping && d.Status == http.StatusOK {
			pings++
		}
	}
	if pings != len(webhookTopics) {
		t.Errorf("%d pings answered 200, want %d: %+v", pings, len(webhookTopics), fake.Deliveries())
	}
	if len(h.Host.Events(testConnID)) != 0 {
		t.Errorf("pings produced events: %v", eventKeys(h.Host.Events(testConnID)))
	}
	first := stateIDs(t, h)
	if len(first) != len(webhookTopics) {
		t.Fatalf("state ids %v", first)
	}

	// Again: nothing new.
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	if diff := cmp.Diff(first, stateIDs(t, h)); diff != "" {
		t.Errorf("ids changed on a second connect (-first +second):\n%s", diff)
	}
	if n := len(fake.Webhooks()); n != len(webhookTopics) {
		t.Errorf("%d webhooks after a second connect", n)
	}

	// WooCommerce disabled one after failures, a person paused another,
	// and the webhook secret was changed in Ponte: Connect repairs all.
	if err := fake.SetWebhookStatus(first["order.updated"], "disabled"); err != nil {
		t.Fatal(err)
	}
	if err := fake.SetWebhookStatus(first["customer.created"], "paused"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(fake.URL())
	cfg["webhook_secret"] = "rotated-secret-0123456789"
	conn = connWith(t, cfg, in.url)
	in.setConn(conn)
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatalf("connect after changes: %v", err)
	}
	if diff := cmp.Diff(wantHooks(in.url, "rotated-secret-0123456789"), summarize(fake.Webhooks())); diff != "" {
		t.Errorf("webhooks after repair (-want +got):\n%s", diff)
	}

	// State lost, a duplicate of ours and another integration's webhook at
	// the store: ours are adopted, the duplicate goes, theirs stays.
	if err := h.Host.SetState(ctx, testConnID, StateWebhooks, nil); err != nil {
		t.Fatal(err)
	}
	createForeignWebhook(t, fake, "order.created", in.url)
	createForeignWebhook(t, fake, "order.created", "https://crm.example/woo")
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatalf("connect with lost state: %v", err)
	}
	foreign := hookSummary{"order.created", "active", "https://crm.example/woo", "theirs-0123456789abc"}
	if diff := cmp.Diff(wantHooks(in.url, "rotated-secret-0123456789", foreign), summarize(fake.Webhooks())); diff != "" {
		t.Errorf("webhooks after adopting (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first, stateIDs(t, h)); diff != "" {
		t.Errorf("adopted ids (-before +after):\n%s", diff)
	}

	// Ponte's public URL changed: the same webhooks follow it.
	moved := startIngress(t, h)
	conn = connWith(t, cfg, moved.url)
	moved.setConn(conn)
	if err := h.Connect(ctx, conn); err != nil {
		t.Fatalf("connect with a new url: %v", err)
	}
	if diff := cmp.Diff(wantHooks(moved.url, "rotated-secret-0123456789", foreign), summarize(fake.Webhooks())); diff != "" {
		t.Errorf("webhooks after the url changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first, stateIDs(t, h)); diff != "" {
		t.Errorf("ids after the url changed (-before +after):\n%s", diff)
	}

	// A signed delivery with the rotated secret goes through.
	fake.PutOrder(fakewoo.Order{Status: "pending", Billing: fakewoo.Address{Phone: "+393331234567", Country: "IT"},
		LineItems: []fakewoo.LineItem{{Name: "Mug", Price: 9.5, Quantity: 2}}})
	if got := eventKeys(h.Host.Events(testConnID)); len(got) != 1 || !strings.HasPrefix(got[0], "checkout.created") {
		t.Errorf("events after an order: %v; deliveries %+v", got, fake.Deliveries())
	}

	if err := h.Disconnect(ctx, conn); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if diff := cmp.Diff([]hookSummary{foreign}, summarize(fake.Webhooks())); diff != "" {
		t.Errorf("webhooks after disconnect (-want +got):\n%s", diff)
	}
	if ids := stateIDs(t, h); len(ids) != 0 {
		t.Errorf("state after disconnect: %v", ids)
	}
	if err := h.Disconnect(ctx, conn); err != nil {
		t.Errorf("second disconnect: %v", err)
	}
	// Ids in state for webhooks someone already deleted: fine too.
	if err := h.Host.SetState(ctx, testConnID, StateWebhooks, []byte(`{"order.created": 9999}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.Disconnect(ctx, conn); err != nil {
		t.Errorf("disconnect of a webhook already gone: %v", err)
	}
}

// TestConnectErrors checks the errors a user sees when connecting.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	fake := fakewoo.New(t, fakewoo.Options{})
	readOnly := fakewoo.New(t, fakewoo.Options{ReadOnly: true})
	gone := fakewoo.New(t, fakewoo.Options{})
	goneURL := gone.URL()
	in := startIngress(t, h)

	wrongKey := testConfig(fake.URL())
	wrongKey["consumer_secret"] = "cs_0000000000000000000000000000000000000000"
	plainHTTP := testConfig("http://shop.example")
	badSecret := testConfig(fake.URL())
	badSecret["webhook_secret"] = "has spaces & <tags>"

	tests := map[string]struct {
		cfg     map[string]any
		url     string
		kind    sdk.ErrorKind
		mention string
	}{
		"wrong consumer secret":          {wrongKey, in.url, sdk.KindAuth, "consumer key or secret is wrong"},
		"read-only key":                  {testConfig(readOnly.URL()), in.url, sdk.KindAuth, "Read/Write"},
		"no public url":                  {testConfig(fake.URL()), "", sdk.KindInvalid, "PONTE_PUBLIC_URL"},
		"plain http store":               {plainHTTP, in.url, sdk.KindInvalid, "HTTPS"},
		"secret WooCommerce would alter": {badSecret, in.url, sdk.KindInvalid, "webhook_secret"},
		"store unreachable":              {testConfig(goneURL), in.url, sdk.KindRetryable, "calling the store"},
	}
	gone.Close()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := h.Connect(t.Context(), connWith(t, tc.cfg, tc.url))
			e := testkit.RequireKind(t, err, tc.kind)
			if !strings.Contains(e.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", e.Message, tc.mention)
			}
		})
	}
}
