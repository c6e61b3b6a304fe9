package example_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/example"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func conn(t *testing.T) sdk.Connection {
	return testkit.Connection(t, map[string]any{"signing_secret": "s3cret"})
}

func TestManifest(t *testing.T) {
	t.Parallel()
	testkit.Start(t, example.New).CheckManifest(t)
}

// TestFixtures replays the recorded deliveries in testdata; each fixture says
// what the connector must answer.
func TestFixtures(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	for _, name := range []string{"order_created", "unknown_type", "bad_signature", "not_json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h.ReplayWebhook(t, conn(t), "testdata/"+name+".json")
		})
	}
}

func TestWebhookRecordsLastDelivery(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	c := conn(t)
	f := testkit.LoadFixture(t, "testdata/order_created.json")
	f.ReceivedAt = time.Date(2026, 3, 1, 10, 0, 1, 0, time.UTC)
	req, err := f.Request()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.HandleWebhook(t.Context(), c, req); err != nil {
		t.Fatal(err)
	}
	out, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "last_delivery"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"found":true,"id":"evt_100","received_at":"2026-03-01T10:00:01Z"}`, string(out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A rejected delivery records nothing.
	other := testkit.Connection(t, map[string]any{"signing_secret": "s3cret"})
	other.ID = "conn_other"
	h.ReplayWebhook(t, other, "testdata/bad_signature.json")
	if _, ok := h.Host.State("conn_other", "last_delivery"); ok {
		t.Error("a delivery with a bad signature was recorded")
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	c := conn(t)

	out, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "echo", Params: json.RawMessage(`{"a":[1,2]}`)})
	if err != nil || string(out) != `{"a":[1,2]}` {
		t.Errorf("echo: got %s, %v", out, err)
	}

	_, err = h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "fail", Params: json.RawMessage(`{"kind":"rate_limited","retry_after_ms":2000,"code":"429"}`)})
	e := testkit.RequireKind(t, err, sdk.KindRateLimited)
	if e.RetryAfter != 2*time.Second || e.Code != "429" {
		t.Errorf("fail: got %+v", e)
	}
	// Parameters outside the schema never reach the connector.
	_, err = h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "fail", Params: json.RawMessage(`{"kind":"bogus"}`)})
	testkit.RequireKind(t, err, sdk.KindInvalid)

	for range 2 {
		if _, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "test_event", IdempotencyKey: "idem-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if evs := h.Host.Events(c.ID); len(evs) != 1 || evs[0].Type != "connection.test" || evs[0].DedupeKey != "test:idem-1" {
		t.Errorf("test_event emitted %+v", evs)
	}
	_, err = h.Invoke(t.Context(), sdk.ActionCall{Connection: c, Action: "test_event"})
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	res, err := h.Handshake(t.Context(), conn(t), sdk.WebhookRequest{Query: "challenge=xyz"})
	if err != nil || string(res.Body) != "xyz" || res.Status != 200 {
		t.Errorf("handshake: got %+v, %v", res, err)
	}
	_, err = h.Handshake(t.Context(), conn(t), sdk.WebhookRequest{})
	testkit.RequireKind(t, err, sdk.KindInvalid)
}
