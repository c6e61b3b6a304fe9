package cloudapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// goldenEvent is an event as the golden files store it.
type goldenEvent struct {
	DedupeKey   string            `json:"dedupe_key"`
	Type        string            `json:"type"`
	OccurredAt  time.Time         `json:"occurred_at"`
	Correlation map[string]string `json:"correlation,omitempty"`
	Payload     any               `json:"payload"`
}

func toGolden(t *testing.T, events []sdk.Event) []goldenEvent {
	t.Helper()
	out := make([]goldenEvent, 0, len(events))
	for _, e := range events {
		var p any
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatalf("event %s: payload is not JSON: %v", e.DedupeKey, err)
		}
		out = append(out, goldenEvent{DedupeKey: e.DedupeKey, Type: e.Type, OccurredAt: e.OccurredAt.UTC(), Correlation: e.Correlation, Payload: p})
	}
	return out
}

// TestWebhookNormalization replays every recorded delivery in
// testdata/webhooks through the real plugin boundary and compares the events
// with the reviewed golden file next to it (go test -update rewrites them).
func TestWebhookNormalization(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := connWith(t, testConfig(""))

	tests := map[string]struct {
		wantTypes []string
	}{
		"text":                     {[]string{EventMessageReceived}},
		"image":                    {[]string{EventMessageReceived}},
		"audio_voice":              {[]string{EventMessageReceived}},
		"video":                    {[]string{EventMessageReceived}},
		"document":                 {[]string{EventMessageReceived}},
		"sticker":                  {[]string{EventMessageReceived}},
		"location":                 {[]string{EventMessageReceived}},
		"contacts":                 {[]string{EventMessageReceived}},
		"interactive_button_reply": {[]string{EventMessageReceived}},
		"interactive_list_reply":   {[]string{EventMessageReceived}},
		"button":                   {[]string{EventMessageReceived}},
		"reaction":                 {[]string{EventMessageReceived}},
		"unsupported":              {[]string{EventMessageReceived}},
		"unknown_fields":           {[]string{EventMessageReceived}},
		"status_sent":              {[]string{EventMessageStatus}},
		"status_delivered":         {[]string{EventMessageStatus}},
		"status_read":              {[]string{EventMessageStatus}},
		"status_failed":            {[]string{EventMessageStatus}},
		"status_no_ledger":         {[]string{EventMessageStatus}},
		"template_approved":        {[]string{EventTemplateStatus}},
		"template_rejected":        {[]string{EventTemplateStatus}},
		"batched":                  {[]string{EventMessageReceived, EventMessageReceived, EventMessageStatus, EventMessageStatus, EventTemplateStatus}},
		"account_update":           {nil},
		"other_number":             {nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := h.HandleWebhook(t.Context(), conn, signed(readFixture(t, name+".json"), testAppSecret))
			if err != nil {
				t.Fatalf("HandleWebhook: %v", err)
			}
			var types []string
			for _, e := range res.Events {
				types = append(types, e.Type)
			}
			if diff := cmp.Diff(tc.wantTypes, types); diff != "" {
				t.Errorf("event types (-want +got):\n%s", diff)
			}
			got, err := json.MarshalIndent(toGolden(t, res.Events), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "webhooks", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run go test -update once and review it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("events differ from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestWebhookPayloads pins the fields other packages read, independent of the
// golden files.
func TestWebhookPayloads(t *testing.T) {
	t.Parallel()
	c, err := NewConnector(discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := connWith(t, testConfig(""))
	decode := func(t *testing.T, fixture string, i int, into any) sdk.Event {
		t.Helper()
		res, err := c.HandleWebhook(t.Context(), conn, signed(readFixture(t, fixture), testAppSecret))
		if err != nil {
			t.Fatalf("HandleWebhook: %v", err)
		}
		if len(res.Events) <= i {
			t.Fatalf("%d events, want more than %d", len(res.Events), i)
		}
		if err := json.Unmarshal(res.Events[i].Payload, into); err != nil {
			t.Fatal(err)
		}
		return res.Events[i]
	}

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		var m InboundMessage
		ev := decode(t, "text.json", 0, &m)
		want := InboundMessage{
			PhoneNumberID: testPhoneNumberID, From: "+16505551234", WAID: "16505551234", ProfileName: "Sheena Nelson",
			MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RAAA==", Timestamp: time.Unix(1749416383, 0).UTC(),
			Type: "text", Text: "Does it come in another color?",
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("payload (-want +got):\n%s", diff)
		}
		wantCorr := map[string]string{"phone_number_id": testPhoneNumberID, "wa_id": "16505551234", "contact_phone": "+16505551234"}
		if diff := cmp.Diff(wantCorr, ev.Correlation); diff != "" {
			t.Errorf("correlation (-want +got):\n%s", diff)
		}
		if ev.DedupeKey != "msg:"+want.MessageID || !ev.OccurredAt.Equal(want.Timestamp) {
			t.Errorf("dedupe key %q, occurred at %v", ev.DedupeKey, ev.OccurredAt)
		}
	})
	t.Run("failed status", func(t *testing.T) {
		t.Parallel()
		var s MessageStatus
		ev := decode(t, "status_failed.json", 0, &s)
		want := MessageStatus{
			PhoneNumberID: testPhoneNumberID, MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBIyRkY3QjNBMkE1QjFCRTc0NUEA",
			RecipientID: "16505551234", RecipientPhone: "+16505551234", Status: "failed",
			Timestamp: time.Unix(1750030073, 0).UTC(), LedgerID: "msg_01J9ZQ4W7M3K5T8N2P6R0B1C4D",
			Errors: []GraphErrorDetail{{Code: 131026, Title: "Message undeliverable", Message: "Message undeliverable", Details: "Message Undeliverable."}},
		}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("payload (-want +got):\n%s", diff)
		}
		wantCorr := map[string]string{"ledger_id": "msg_01J9ZQ4W7M3K5T8N2P6R0B1C4D", "wamid": want.MessageID, "phone_number_id": testPhoneNumberID}
		if diff := cmp.Diff(wantCorr, ev.Correlation); diff != "" {
			t.Errorf("correlation (-want +got):\n%s", diff)
		}
		if ev.DedupeKey != "status:"+want.MessageID+":failed" {
			t.Errorf("dedupe key %q", ev.DedupeKey)
		}
	})
	t.Run("sent status with conversation and pricing", func(t *testing.T) {
		t.Parallel()
		var s MessageStatus
		decode(t, "status_sent.json", 0, &s)
		exp := time.Unix(1750116473, 0).UTC()
		want := &Conversation{ID: "4f3b0b1cfa32d9d2e6b3a9f0d4e8c7b1", OriginType: "utility", ExpirationTimestamp: &exp}
		if diff := cmp.Diff(want, s.Conversation); diff != "" {
			t.Errorf("conversation (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&Pricing{Billable: true, Category: "utility", PricingModel: "PMP"}, s.Pricing); diff != "" {
			t.Errorf("pricing (-want +got):\n%s", diff)
		}
	})
	t.Run("template rejected", func(t *testing.T) {
		t.Parallel()
		var ts TemplateStatus
		ev := decode(t, "template_rejected.json", 0, &ts)
		want := TemplateStatus{WABAID: testWABAID, TemplateID: "1689556908129833", Name: "summer_sale", Language: "it", Event: "REJECTED", Reason: "INCORRECT_CATEGORY"}
		if diff := cmp.Diff(want, ts); diff != "" {
			t.Errorf("payload (-want +got):\n%s", diff)
		}
		if ev.DedupeKey != "template:1689556908129833:REJECTED:1750030080" {
			t.Errorf("dedupe key %q", ev.DedupeKey)
		}
	})
	t.Run("interactive list reply quoting our message", func(t *testing.T) {
		t.Parallel()
		var m InboundMessage
		decode(t, "interactive_list_reply.json", 0, &m)
		if diff := cmp.Diff(&InteractiveReply{Type: "list_reply", ID: "slot_0930", Title: "Tue 09:30", Description: "With Dr. Rossi"}, m.Interactive); diff != "" {
			t.Errorf("interactive (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&MessageContext{MessageID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI2QjQyNUE3NEYxMzAzMzQ5MkEA", From: "+15550783881"}, m.Context); diff != "" {
			t.Errorf("context (-want +got):\n%s", diff)
		}
	})
}

// TestWebhookDedupeKeysAreStable: Meta redelivers the same body; the keys
// must not change, so the host stores each message and status once.
func TestWebhookDedupeKeysAreStable(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := connWith(t, testConfig(""))
	body := readFixture(t, "batched.json")
	for range 2 {
		res, err := h.HandleWebhook(t.Context(), conn, signed(body, testAppSecret))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Host.Emit(t.Context(), conn.ID, res.Events...); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.Host.Events(conn.ID)); got != 5 {
		t.Errorf("%d distinct events stored after a duplicate delivery, want 5", got)
	}
}

func TestWebhookSignatureFailures(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	body := readFixture(t, "text.json")
	good := Sign([]byte(testAppSecret), body)

	tests := map[string]struct {
		header string // "" = absent
		body   []byte
		config map[string]any
	}{
		"missing header":             {header: ""},
		"empty signature":            {header: "sha256="},
		"no sha256= prefix":          {header: strings.TrimPrefix(good, "sha256=")},
		"sha1 scheme":                {header: "sha1=" + strings.TrimPrefix(good, "sha256=")[:40]},
		"not hex":                    {header: "sha256=" + strings.Repeat("zz", 32)},
		"truncated":                  {header: good[:len(good)-2]},
		"signed with another secret": {header: Sign([]byte("someone-elses-secret"), body)},
		"tampered body":              {header: good, body: bytes.Replace(body, []byte("another color"), []byte("another price"), 1)},
		"connection without app_secret": {header: Sign(nil, body), config: func() map[string]any {
			c := testConfig("")
			delete(c, "app_secret")
			return c
		}()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.config
			if cfg == nil {
				cfg = testConfig("")
			}
			req := signed(body, testAppSecret)
			if tc.body != nil {
				req.Body = tc.body
			}
			if tc.header == "" {
				delete(req.Headers, "X-Hub-Signature-256")
			} else {
				req.Headers["X-Hub-Signature-256"] = []string{tc.header}
			}
			_, err := h.HandleWebhook(t.Context(), connWith(t, cfg), req)
			testkit.RequireKind(t, err, sdk.KindAuth)
		})
	}

	t.Run("valid signature is accepted, upper-case hex too", func(t *testing.T) {
		t.Parallel()
		req := signed(body, testAppSecret)
		req.Headers["X-Hub-Signature-256"] = []string{"sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256="))}
		res, err := h.HandleWebhook(t.Context(), connWith(t, testConfig("")), req)
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("events %v, err %v", res.Events, err)
		}
	})
	t.Run("signed garbage is invalid, not auth", func(t *testing.T) {
		t.Parallel()
		_, err := h.HandleWebhook(t.Context(), connWith(t, testConfig("")), signed([]byte("not json"), testAppSecret))
		testkit.RequireKind(t, err, sdk.KindInvalid)
	})
	t.Run("GET is not a delivery", func(t *testing.T) {
		t.Parallel()
		req := signed(body, testAppSecret)
		req.Method = http.MethodGet
		_, err := h.HandleWebhook(t.Context(), connWith(t, testConfig("")), req)
		testkit.RequireKind(t, err, sdk.KindInvalid)
	})
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	noToken := testConfig("")
	delete(noToken, "verify_token")

	tests := map[string]struct {
		query    string
		config   map[string]any
		wantKind sdk.ErrorKind // KindUnknown: success
	}{
		"meta's verification request":     {query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + testVerifyToken},
		"wrong token":                     {query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess", wantKind: sdk.KindAuth},
		"token with a suffix":             {query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + testVerifyToken + "x", wantKind: sdk.KindAuth},
		"no token":                        {query: "hub.mode=subscribe&hub.challenge=1158201444", wantKind: sdk.KindAuth},
		"connection without verify_token": {query: "hub.mode=subscribe&hub.challenge=1&hub.verify_token=", config: noToken, wantKind: sdk.KindAuth},
		"not subscribe":                   {query: "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=" + testVerifyToken, wantKind: sdk.KindInvalid},
		"no challenge":                    {query: "hub.mode=subscribe&hub.verify_token=" + testVerifyToken, wantKind: sdk.KindInvalid},
		"bad query":                       {query: "hub.mode=%zz", wantKind: sdk.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.config
			if cfg == nil {
				cfg = testConfig("")
			}
			resp, err := h.Handshake(t.Context(), connWith(t, cfg), sdk.WebhookRequest{Method: http.MethodGet, Query: tc.query})
			if tc.wantKind != sdk.KindUnknown {
				testkit.RequireKind(t, err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("Handshake: %v", err)
			}
			want := sdk.HTTPResponse{Status: 200, Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, Body: []byte("1158201444")}
			if diff := cmp.Diff(want, resp); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"object":"whatsapp_business_account"}`)
	tests := map[string]struct {
		secret []byte
		header string
		want   bool
	}{
		"valid":        {[]byte("s"), Sign([]byte("s"), body), true},
		"padded":       {[]byte("s"), "  " + Sign([]byte("s"), body) + " ", true},
		"empty secret": {nil, Sign(nil, body), false},
		"other secret": {[]byte("s"), Sign([]byte("t"), body), false},
		"empty header": {[]byte("s"), "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := VerifySignature(tc.secret, body, tc.header); got != tc.want {
				t.Errorf("VerifySignature = %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkHandleWebhook is the connector's share of an inbound message:
// verifying and normalizing one signed text message webhook, in process.
func BenchmarkHandleWebhook(b *testing.B) {
	c, err := New(nil)
	if err != nil {
		b.Fatal(err)
	}
	conn := connWith(b, testConfig(""))
	req := signed(readFixture(b, "text.json"), testAppSecret)
	b.SetBytes(int64(len(req.Body)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.(sdk.WebhookHandler).HandleWebhook(b.Context(), conn, req)
		if err != nil || len(res.Events) != 1 {
			b.Fatalf("HandleWebhook: %v, %d events", err, len(res.Events))
		}
	}
}
