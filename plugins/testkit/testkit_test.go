package testkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// mirror is a connector that reflects what crosses the boundary, to check
// that the plugin-side and host-side conversions agree on every field.
type mirror struct{ host sdk.Host }

type seen struct {
	Conn sdk.Connection
	Req  sdk.WebhookRequest
}

func fullManifest() sdk.Manifest {
	return sdk.Manifest{
		Name:         "mirror",
		Version:      "0.1.0",
		DisplayName:  "Mirror",
		Description:  "Reflects calls.",
		Webhooks:     true,
		PollInterval: 90 * time.Second,
		Config: []sdk.ConfigField{
			{Name: "api_token", Type: sdk.FieldString, Description: "Token.", Required: true, Secret: true, Pattern: "^tok_"},
			{Name: "region", Type: sdk.FieldString, Description: "Region.", Default: "eu", Enum: []string{"eu", "us"}},
			{Name: "page_size", Type: sdk.FieldInteger, Description: "Page size.", Default: float64(50)},
			{Name: "sandbox", Type: sdk.FieldBoolean, Description: "Sandbox.", Default: true},
		},
		Events: []sdk.EventType{{Type: "thing.happened", Description: "A thing happened."}},
		Actions: []sdk.Action{
			{Name: "fail", Description: "Fails.", Params: json.RawMessage(`{"type":"object"}`), Result: json.RawMessage(`{"type":"object"}`)},
			{Name: "panic", Params: json.RawMessage(`{"type":"object"}`)},
			{Name: "untyped", Params: json.RawMessage(`{"type":"object"}`)},
		},
	}
}

func (m *mirror) Manifest() sdk.Manifest { return fullManifest() }

func (m *mirror) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	b, err := json.Marshal(seen{conn, req})
	if err != nil {
		return sdk.WebhookResult{}, err
	}
	return sdk.WebhookResult{
		Events: []sdk.Event{{
			DedupeKey:   "k1",
			Type:        "thing.happened",
			OccurredAt:  time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
			Correlation: map[string]string{"order_id": "o1", "phone": "+391234"},
			Payload:     b,
		}},
		Response: &sdk.HTTPResponse{Status: 202, Headers: map[string]string{"X-A": "b"}, Body: []byte("ok")},
	}, nil
}

func (m *mirror) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	return sdk.PollResult{Cursor: cursor + "+1", More: true}, nil
}

func (m *mirror) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	switch call.Action {
	case "fail":
		var e struct {
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(call.Params, &e)
		return nil, &sdk.Error{Kind: sdk.ParseErrorKind(e.Kind), Message: "m", Code: "c", RetryAfter: 2500 * time.Millisecond, Err: errors.New("local only")}
	case "panic":
		panic("boom")
	}
	return nil, errors.New("plain error")
}

func newMirror(h sdk.Host) (sdk.Connector, error) { return &mirror{host: h}, nil }

func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, newMirror)
	if diff := cmp.Diff(fullManifest(), h.Manifest()); diff != "" {
		t.Errorf("manifest changed crossing the boundary (-want +got):\n%s", diff)
	}
	h.CheckManifest(t)
}

func TestWebhookRoundTrip(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, newMirror)
	conn := sdk.Connection{ID: "c1", TenantID: "t1", Config: sdk.Config(`{"api_token":"tok_x"}`)}
	req := sdk.WebhookRequest{
		Method:     "POST",
		Path:       "/sub",
		Query:      "a=1&b=2",
		Headers:    map[string][]string{"X-Multi": {"1", "2"}, "Content-Type": {"application/json"}},
		Body:       []byte{0, 1, 2, 0xff},
		ReceivedAt: time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
	res, err := h.HandleWebhook(t.Context(), conn, req)
	if err != nil {
		t.Fatal(err)
	}
	var got seen
	if err := json.Unmarshal(res.Events[0].Payload, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seen{conn, req}, got); diff != "" {
		t.Errorf("request changed crossing the boundary (-want +got):\n%s", diff)
	}
	res.Events[0].Payload = nil
	want := sdk.WebhookResult{
		Events: []sdk.Event{{
			DedupeKey:   "k1",
			Type:        "thing.happened",
			OccurredAt:  time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
			Correlation: map[string]string{"order_id": "o1", "phone": "+391234"},
		}},
		Response: &sdk.HTTPResponse{Status: 202, Headers: map[string]string{"X-A": "b"}, Body: []byte("ok")},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result changed crossing the boundary (-want +got):\n%s", diff)
	}

	pr, err := h.Poll(t.Context(), conn, "c0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sdk.PollResult{Cursor: "c0+1", More: true}, pr); diff != "" {
		t.Errorf("poll (-want +got):\n%s", diff)
	}
}

func TestErrorsCrossTheBoundary(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, newMirror)
	conn := testkit.Connection(t, map[string]any{})
	for _, kind := range []sdk.ErrorKind{sdk.KindUnknown, sdk.KindInvalid, sdk.KindAuth, sdk.KindNotFound, sdk.KindRateLimited, sdk.KindRetryable, sdk.KindPermanent} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			params, _ := json.Marshal(map[string]string{"kind": kind.String()})
			_, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: conn, Action: "fail", Params: params})
			got := testkit.RequireKind(t, err, kind)
			// Err stays in the plugin process; everything else crosses.
			want := &sdk.Error{Kind: kind, Message: "m", Code: "c", RetryAfter: 2500 * time.Millisecond}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	tests := map[string]struct {
		action string
		want   *sdk.Error
	}{
		"untyped error keeps its message": {"untyped", &sdk.Error{Kind: sdk.KindUnknown, Message: "plain error"}},
		"panic becomes permanent":         {"panic", &sdk.Error{Kind: sdk.KindPermanent, Message: "connector panicked while invoking action panic"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: conn, Action: tc.action})
			var got *sdk.Error
			if !errors.As(err, &got) {
				t.Fatalf("got %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMissingCapabilities(t *testing.T) {
	t.Parallel()
	// The mirror has no Handshaker.
	h := testkit.Start(t, newMirror)
	_, err := h.Handshake(t.Context(), testkit.Connection(t, map[string]any{}), sdk.WebhookRequest{})
	testkit.RequireKind(t, err, sdk.KindNotFound)
	_, err = h.Invoke(t.Context(), sdk.ActionCall{Action: "undeclared"})
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

type badManifest struct{}

func (badManifest) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name: "Bad-Name",
		Config: []sdk.ConfigField{
			{Name: "api_key", Type: sdk.FieldString},
			{Name: "n", Type: sdk.FieldInteger, Default: "ten", Enum: []string{"x"}},
			{Name: "p", Type: "float", Pattern: "("},
		},
		Events:  []sdk.EventType{{Type: "A"}, {Type: "a.b"}, {Type: "a.b"}},
		Actions: []sdk.Action{{Name: "x"}, {Name: "y", Params: json.RawMessage(`{"type":"string"}`)}, {Name: "z", Params: json.RawMessage(`{"type":12}`)}},
	}
}

func TestCheckManifest(t *testing.T) {
	t.Parallel()
	if err := testkit.CheckManifest(fullManifest()); err != nil {
		t.Errorf("sound manifest: %v", err)
	}
	err := testkit.CheckManifest(badManifest{}.Manifest())
	if err == nil {
		t.Fatal("CheckManifest accepted a bad manifest")
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		got = append(got, e.Error()[:min(len(e.Error()), 40)])
	}
	want := []string{
		`name "Bad-Name": want lower-case letters`,
		"version is empty",
		"display_name is empty",
		`config field "api_key": looks like a cre`,
		`config field "api_key": no description (`,
		`config field "n": enum is only allowed o`,
		`config field "n": default ten is not of `,
		`config field "n": no description (users `,
		`config field "p": unknown type "float"`,
		`config field "p": pattern is only allowe`,
		`config field "p": no description (users `,
		`event type "A": want dotted lower-case n`,
		`event type "a.b": declared twice`,
		`action "x": no params schema (use {"type`,
		`action "y": params schema must have "typ`,
		`action "z": params schema: compiling sch`,
		`action "z": params schema must have "typ`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems found (-want +got):\n%s", diff)
	}
}

func TestMemoryHostDedupes(t *testing.T) {
	t.Parallel()
	h := testkit.NewMemoryHost()
	ctx := t.Context()
	e := sdk.Event{DedupeKey: "k", Type: "t", Payload: json.RawMessage(`{}`)}
	for range 2 {
		if err := h.Emit(ctx, "c", e); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.Events("c")); n != 1 {
		t.Errorf("want 1 event after a duplicate emit, got %d", n)
	}
	if err := h.Emit(ctx, "c", sdk.Event{Type: "t"}); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("event without dedupe key: got %v", err)
	}
	if err := h.SetState(ctx, "c", "k", make([]byte, sdk.MaxStateSize+1)); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("oversized state: got %v", err)
	}
}
