package shopify

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// fakeConn is a connection to a fake shop.
func fakeConn(t testing.TB, shop *fakeshopify.Shop, extra map[string]any) sdk.Connection {
	t.Helper()
	cfg := shop.Config()
	for k, v := range extra {
		cfg[k] = v
	}
	conn := testkit.Connection(t, cfg)
	conn.WebhookURL = testWebhookURL
	return conn
}

func subscriptionsAt(shop *fakeshopify.Shop, url string) []string {
	var topics []string
	for _, s := range shop.Subscriptions() {
		if s.CallbackURL == url {
			topics = append(topics, s.Topic)
		}
	}
	slices.Sort(topics)
	return topics
}

func allTopics() []string {
	var out []string
	for _, t := range Topics {
		out = append(out, t.Enum)
	}
	slices.Sort(out)
	return out
}

// TestConnectIdempotent: Connect subscribes every topic once, a second
// Connect changes nothing, Disconnect removes exactly those, a second
// Disconnect succeeds.
func TestConnectIdempotent(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{Country: "IT"})
	foreign := shop.AddSubscription("orders/create", "https://another-app.example.com/hooks")
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)

	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if diff := cmp.Diff(allTopics(), subscriptionsAt(shop, testWebhookURL)); diff != "" {
		t.Fatalf("subscriptions after connect (-want +got):\n%s", diff)
	}
	first := shop.Subscriptions()
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	if diff := cmp.Diff(first, shop.Subscriptions()); diff != "" {
		t.Errorf("a second connect changed the subscriptions (-before +after):\n%s", diff)
	}
	for _, op := range shop.Operations()[len(Topics)+2:] {
		if strings.HasPrefix(op, "webhookSubscriptionCreate") || strings.HasPrefix(op, "webhookSubscriptionUpdate") {
			t.Errorf("second connect ran %s", op)
		}
	}
	var shopInfo ShopInfo
	b, _ := h.Host.State(conn.ID, stateShop)
	if err := json.Unmarshal(b, &shopInfo); err != nil || shopInfo.Country != "IT" || shopInfo.Timezone != "Europe/Rome" || shopInfo.Currency != "EUR" {
		t.Errorf("stored shop %s (%v)", b, err)
	}
	var ids map[string]string
	b, _ = h.Host.State(conn.ID, stateSubscriptions)
	if err := json.Unmarshal(b, &ids); err != nil || len(ids) != len(Topics) {
		t.Errorf("stored subscription ids %s (%v)", b, err)
	}

	if err := h.Disconnect(t.Context(), conn); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if diff := cmp.Diff([]fakeshopify.Subscription{foreign}, shop.Subscriptions()); diff != "" {
		t.Errorf("after disconnect only the other app's subscription stays (-want +got):\n%s", diff)
	}
	if err := h.Disconnect(t.Context(), conn); err != nil {
		t.Fatalf("second disconnect: %v", err)
	}
}

// TestConnectRepairs: a subscription of this connection at an old Ponte
// address is moved, one deleted behind Ponte's back is recreated, and one
// deleted between Disconnect's listing and its delete is tolerated.
func TestConnectRepairs(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	old := shop.AddSubscription("checkouts/update", "https://old-ponte.example.com/hooks/conn_test")
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	moved := false
	for _, s := range shop.Subscriptions() {
		if s.ID == old.ID {
			moved = s.CallbackURL == testWebhookURL
		}
	}
	if !moved || len(shop.Subscriptions()) != len(Topics) {
		t.Errorf("old subscription moved: %v; %d subscriptions, want %d", moved, len(shop.Subscriptions()), len(Topics))
	}

	// Someone deleted one behind Ponte's back: Connect recreates it.
	gone := shop.Subscriptions()[0]
	if !shop.DeleteSubscription(gone.ID) {
		t.Fatal("the fake did not delete")
	}
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allTopics(), subscriptionsAt(shop, testWebhookURL)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestConnectRefusals(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	h := testkit.Start(t, New)
	tests := map[string]struct {
		conn    func() sdk.Connection
		kind    sdk.ErrorKind
		message string
	}{
		"bad token": {conn: func() sdk.Connection { return fakeConn(t, shop, map[string]any{"access_token": "shpat_wrong"}) },
			kind: sdk.KindAuth, message: "refused the access token"},
		"no public URL": {conn: func() sdk.Connection { c := fakeConn(t, shop, nil); c.WebhookURL = ""; return c },
			kind: sdk.KindInvalid, message: "PONTE_PUBLIC_URL"},
		"no client secret": {conn: func() sdk.Connection { return fakeConn(t, shop, map[string]any{"client_secret": ""}) },
			kind: sdk.KindInvalid, message: "client_secret"},
		"unsupported version": {conn: func() sdk.Connection { return fakeConn(t, shop, map[string]any{"api_version": "2019-04"}) },
			kind: sdk.KindNotFound},
		"shop frozen": {conn: func() sdk.Connection { shop.FailNext(402); return fakeConn(t, shop, nil) }, kind: sdk.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Not parallel: FailNext is shop-wide.
			err := h.Connect(t.Context(), tc.conn())
			e := testkit.RequireKind(t, err, tc.kind)
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q does not say %q", e.Message, tc.message)
			}
			if strings.Contains(e.Message, shop.AccessToken) {
				t.Errorf("the message carries the token")
			}
		})
	}
	if n := len(shop.Subscriptions()); n != 0 {
		t.Errorf("%d subscriptions made by refused connects", n)
	}
}

// TestConnectHalfWay: a Connect that fails part of the way keeps what it
// made, and the retry completes it without duplicates.
func TestConnectHalfWay(t *testing.T) {
	t.Parallel()
	shop := fakeshopify.New(t, fakeshopify.Options{})
	h := testkit.Start(t, New)
	conn := fakeConn(t, shop, nil)
	// shop, listing, three creates, then a 503.
	shop.FailNext(0, 0, 0, 0, 0, 503)
	err := h.Connect(t.Context(), conn)
	testkit.RequireKind(t, err, sdk.KindRetryable)
	if n := len(shop.Subscriptions()); n != 3 {
		t.Fatalf("%d subscriptions before the failure, want 3", n)
	}
	if err := h.Connect(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allTopics(), subscriptionsAt(shop, testWebhookURL)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
