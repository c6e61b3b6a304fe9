package testkit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Fixture is a recorded webhook delivery, stored as a JSON file:
//
//	{
//	  "description": "order created, signed with secret \"s3cret\"",
//	  "method": "POST",
//	  "query": "",
//	  "headers": {"Content-Type": ["application/json"], "X-Example-Signature": ["4f0c..."]},
//	  "body": "{\"id\":\"evt_1\",\"type\":\"order.created\"}",
//	  "expect": {
//	    "events": [{"type": "order.created", "dedupe_key": "evt_1"}]
//	  }
//	}
//
// The body is kept as a string, byte for byte, because signatures are computed
// over the exact bytes; use body_base64 instead for bodies that are not UTF-8.
// "expect" is optional: when present, [Harness.ReplayWebhook] checks the
// connector's answer against it.
type Fixture struct {
	// Description says what the delivery is and, for signed ones, which secret
	// signed it.
	Description string `json:"description,omitempty"`
	// Method defaults to POST.
	Method string `json:"method,omitempty"`
	// Path is the request path after /hooks/{connection}, usually empty.
	Path string `json:"path,omitempty"`
	// Query is the raw query string.
	Query string `json:"query,omitempty"`
	// Headers are the request headers; names are canonicalised on load.
	Headers map[string][]string `json:"headers,omitempty"`
	// Body is the raw body.
	Body string `json:"body,omitempty"`
	// BodyBase64 is the raw body, base64-encoded; it wins over Body.
	BodyBase64 string `json:"body_base64,omitempty"`
	// ReceivedAt is when the delivery was received; it defaults to the time of
	// the replay. Set it for connectors that check a signature's timestamp.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Expect is what the connector must answer.
	Expect *Expectation `json:"expect,omitempty"`
}

// Expectation is the expected outcome of replaying a [Fixture].
type Expectation struct {
	// ErrorKind, when set, is the kind of *sdk.Error the connector must return
	// ("auth", "invalid", ...).
	ErrorKind string `json:"error_kind,omitempty"`
	// Events are the events the connector must return, in order. Only the
	// fields set here are compared (type and dedupe key always are).
	Events []ExpectedEvent `json:"events,omitempty"`
	// Status, when non-zero, is the status of the response the connector
	// asks the host to send.
	Status int `json:"status,omitempty"`
}

// ExpectedEvent describes one event a fixture must produce.
type ExpectedEvent struct {
	Type       string    `json:"type"`
	DedupeKey  string    `json:"dedupe_key"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	// Correlation entries listed here must be present with these values.
	Correlation map[string]string `json:"correlation,omitempty"`
}

// LoadFixture reads a fixture file, failing the test when it cannot.
func LoadFixture(t testing.TB, path string) Fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testkit: reading fixture: %v", err)
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("testkit: decoding fixture %s: %v", path, err)
	}
	return f
}

// Request returns the delivery as the host would pass it to the connector.
func (f Fixture) Request() (sdk.WebhookRequest, error) {
	body := []byte(f.Body)
	if f.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(f.BodyBase64)
		if err != nil {
			return sdk.WebhookRequest{}, fmt.Errorf("decoding body_base64: %w", err)
		}
		body = b
	}
	method := f.Method
	if method == "" {
		method = http.MethodPost
	}
	var headers map[string][]string
	if len(f.Headers) > 0 {
		headers = make(map[string][]string, len(f.Headers))
		for k, v := range f.Headers {
			ck := http.CanonicalHeaderKey(k)
			headers[ck] = append(headers[ck], v...)
		}
	}
	received := f.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	return sdk.WebhookRequest{Method: method, Path: f.Path, Query: f.Query, Headers: headers, Body: body, ReceivedAt: received}, nil
}

// ReplayWebhook sends the delivery recorded in the fixture file at path to the
// connector for conn, checks the answer against the fixture's expectation (if
// it has one, reporting mismatches with t.Errorf) and returns the answer.
func (h *Harness) ReplayWebhook(t testing.TB, conn sdk.Connection, path string) (sdk.WebhookResult, error) {
	t.Helper()
	f := LoadFixture(t, path)
	req, err := f.Request()
	if err != nil {
		t.Fatalf("testkit: fixture %s: %v", path, err)
	}
	res, err := h.HandleWebhook(t.Context(), conn, req)
	if f.Expect != nil {
		checkExpectation(t, path, *f.Expect, res, err)
	}
	return res, err
}

func checkExpectation(t testing.TB, path string, want Expectation, res sdk.WebhookResult, err error) {
	t.Helper()
	if want.ErrorKind != "" {
		kind, ok := ErrorKind(err)
		if !ok || kind.String() != want.ErrorKind {
			t.Errorf("fixture %s: want an error of kind %s, got %s", path, want.ErrorKind, describe(err))
		}
		return
	}
	if err != nil {
		t.Errorf("fixture %s: want events, got error %s", path, describe(err))
		return
	}
	got := make([]ExpectedEvent, len(res.Events))
	for i, e := range res.Events {
		got[i] = ExpectedEvent{Type: e.Type, DedupeKey: e.DedupeKey}
		if i < len(want.Events) {
			// Compare only what the fixture pins down.
			if !want.Events[i].OccurredAt.IsZero() {
				got[i].OccurredAt = e.OccurredAt
			}
			if len(want.Events[i].Correlation) > 0 {
				got[i].Correlation = map[string]string{}
				for k := range want.Events[i].Correlation {
					if v, ok := e.Correlation[k]; ok {
						got[i].Correlation[k] = v
					}
				}
			}
		}
	}
	if diff := cmp.Diff(want.Events, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("fixture %s: events differ (-want +got):\n%s", path, diff)
	}
	if want.Status != 0 {
		status := 200
		if res.Response != nil && res.Response.Status != 0 {
			status = res.Response.Status
		}
		if status != want.Status {
			t.Errorf("fixture %s: response status %d, want %d", path, status, want.Status)
		}
	}
}
