package cloudapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// fixture is a connector behind the real plugin boundary talking to a fake
// Graph API with the documentation's number at the 1,000 tier.
type fixture struct {
	h    *testkit.Harness
	fake *fakegraph.Server
	conn sdk.Connection
}

func newFixture(t *testing.T, opts ...fakegraph.Options) fixture {
	t.Helper()
	fake := fakegraph.New(t, opts...)
	fake.AddNumber(fakegraph.Number{PhoneNumberID: testPhoneNumberID, WABAID: testWABAID, AccessToken: testAccessToken, Tier: 1000})
	return fixture{h: testkit.Start(t, New), fake: fake, conn: connWith(t, testConfig(fake.URL()))}
}

func (f fixture) invoke(t *testing.T, action string, params any) (json.RawMessage, error) {
	t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return f.h.Invoke(t.Context(), sdk.ActionCall{Connection: f.conn, Action: action, Params: b, IdempotencyKey: "k"})
}

func (f fixture) mustSend(t *testing.T, action string, params any) SendResult {
	t.Helper()
	out, err := f.invoke(t, action, params)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	var res SendResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.MessageID, "wamid.") || res.WAID == "" {
		t.Fatalf("%s result %s", action, out)
	}
	return res
}

// lastRequest returns the body of the fake's last accepted send to phone.
func (f fixture) lastRequest(t *testing.T, phone string) map[string]any {
	t.Helper()
	sent := f.fake.SentTo(phone)
	if len(sent) == 0 {
		t.Fatalf("nothing sent to %s", phone)
	}
	var m map[string]any
	if err := json.Unmarshal(sent[len(sent)-1].Request, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifest(t *testing.T) {
	t.Parallel()
	c, err := NewConnector(discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := testkit.CheckManifest(c.Manifest()); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range c.Manifest().Actions {
		actions = append(actions, a.Name)
	}
	want := []string{"send_text", "send_media", "send_template", "send_interactive", "send_reaction", "mark_read", "list_templates", "create_template", "delete_template", "download_media"}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestSendText(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.fake.CustomerMessage(testPhoneNumberID, "+393331234567", "hi")

	res := f.mustSend(t, ActionSendText, map[string]any{"to": "+39 333 123-4567", "body": "Your order shipped: https://example.com/t/42",
		"preview_url": true, "reply_to": "wamid.ABC", "ledger_id": "msg_01ABC"})
	if res.WAID != "393331234567" {
		t.Errorf("wa_id %q", res.WAID)
	}
	want := map[string]any{
		"messaging_product": "whatsapp", "recipient_type": "individual", "to": "393331234567", "type": "text",
		"text":                     map[string]any{"body": "Your order shipped: https://example.com/t/42", "preview_url": true},
		"context":                  map[string]any{"message_id": "wamid.ABC"},
		"biz_opaque_callback_data": "msg_01ABC",
	}
	if diff := cmp.Diff(want, f.lastRequest(t, "393331234567")); diff != "" {
		t.Errorf("request to Meta (-want +got):\n%s", diff)
	}
	sent := f.fake.SentTo("+393331234567")
	if len(sent) != 1 || sent[0].LedgerID != "msg_01ABC" || sent[0].WAMID != res.MessageID {
		t.Errorf("fake's log %+v, result %+v", sent, res)
	}
}

func TestSendErrorsFromGraph(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.fake.CustomerMessage(testPhoneNumberID, "393330000100", "hi")
	if _, err := f.fake.AddTemplate(testWABAID, fakegraph.Template{Name: "pending_promo", Language: "it", Category: "MARKETING",
		Status: "PENDING", Components: json.RawMessage(`[{"type":"BODY","text":"Saldi!"}]`)}); err != nil {
		t.Fatal(err)
	}
	text := func(to string) map[string]any {
		return map[string]any{"to": to, "body": "hello", "ledger_id": "msg_x"}
	}

	// The first send opens the pair-rate clock for the recipient.
	f.mustSend(t, ActionSendText, text("393330000100"))

	tests := map[string]struct {
		action     string
		params     map[string]any
		conn       *sdk.Connection
		kind       sdk.ErrorKind
		code       string
		retryAfter time.Duration
	}{
		"outside the 24-hour window": {action: ActionSendText, params: text("393330000101"), kind: sdk.KindPermanent, code: "131047"},
		"pair rate":                  {action: ActionSendText, params: text("393330000100"), kind: sdk.KindRateLimited, code: "131056", retryAfter: PairRateRetryAfter},
		"template not approved": {action: ActionSendTemplate, params: map[string]any{"to": "393330000102", "name": "pending_promo", "language": "it", "ledger_id": "msg_y"},
			kind: sdk.KindNotFound, code: "132001"},
		"bad token": {action: ActionSendText, params: text("393330000100"), kind: sdk.KindAuth, code: "190",
			conn: func() *sdk.Connection {
				cfg := testConfig(f.fake.URL())
				cfg["access_token"] = "EAAG-revoked"
				c := connWith(t, cfg)
				return &c
			}()},
		"unknown phone number id": {action: ActionSendText, params: text("393330000100"), kind: sdk.KindInvalid, code: "100",
			conn: func() *sdk.Connection {
				cfg := testConfig(f.fake.URL())
				cfg["phone_number_id"] = "111"
				c := connWith(t, cfg)
				return &c
			}()},
		"not a phone number": {action: ActionSendText, params: text("0333 123 4567"), kind: sdk.KindInvalid},
		"schema: 4 buttons": {action: ActionSendInteractive, params: map[string]any{"to": "393330000100", "ledger_id": "m", "interactive": map[string]any{
			"type": "button", "body": "Pick", "buttons": []any{
				map[string]any{"id": "a", "title": "A"}, map[string]any{"id": "b", "title": "B"},
				map[string]any{"id": "c", "title": "C"}, map[string]any{"id": "d", "title": "D"}}}}, kind: sdk.KindInvalid},
		"schema: no ledger_id": {action: ActionSendText, params: map[string]any{"to": "393330000100", "body": "x"}, kind: sdk.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn := f.conn
			if tc.conn != nil {
				conn = *tc.conn
			}
			b, _ := json.Marshal(tc.params)
			_, err := f.h.Invoke(t.Context(), sdk.ActionCall{Connection: conn, Action: tc.action, Params: b})
			e := testkit.RequireKind(t, err, tc.kind)
			if e.Code != tc.code {
				t.Errorf("code %q, want %q (%v)", e.Code, tc.code, e)
			}
			if e.RetryAfter < tc.retryAfter {
				t.Errorf("retry after %v, want at least %v", e.RetryAfter, tc.retryAfter)
			}
			if strings.Contains(e.Error(), "EAAG") {
				t.Errorf("error carries the access token: %v", e)
			}
		})
	}
}

func TestSendMedia(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := map[string]struct {
		params  map[string]any
		want    map[string]any // the media object sent to Meta
		errKind sdk.ErrorKind
	}{
		"image with caption": {params: map[string]any{"type": "image", "link": "https://cdn.example.com/p.jpg", "caption": "Red or blue?"},
			want: map[string]any{"link": "https://cdn.example.com/p.jpg", "caption": "Red or blue?"}},
		"document with filename": {params: map[string]any{"type": "document", "link": "https://cdn.example.com/i.pdf", "filename": "invoice-42.pdf", "caption": "Invoice"},
			want: map[string]any{"link": "https://cdn.example.com/i.pdf", "filename": "invoice-42.pdf", "caption": "Invoice"}},
		"audio":                 {params: map[string]any{"type": "audio", "link": "https://cdn.example.com/v.ogg"}, want: map[string]any{"link": "https://cdn.example.com/v.ogg"}},
		"video":                 {params: map[string]any{"type": "video", "link": "https://cdn.example.com/v.mp4"}, want: map[string]any{"link": "https://cdn.example.com/v.mp4"}},
		"sticker":               {params: map[string]any{"type": "sticker", "link": "https://cdn.example.com/s.webp"}, want: map[string]any{"link": "https://cdn.example.com/s.webp"}},
		"audio with caption":    {params: map[string]any{"type": "audio", "link": "https://cdn.example.com/v.ogg", "caption": "no"}, errKind: sdk.KindInvalid},
		"image with a filename": {params: map[string]any{"type": "image", "link": "https://cdn.example.com/p.jpg", "filename": "p.jpg"}, errKind: sdk.KindInvalid},
		"not a URL":             {params: map[string]any{"type": "image", "link": "cdn.example.com/p.jpg"}, errKind: sdk.KindInvalid},
	}
	i := 0
	for name, tc := range tests {
		i++
		to := fmt.Sprintf("39333001%04d", i)
		f.fake.CustomerMessage(testPhoneNumberID, to, "hi")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := map[string]any{"to": to, "ledger_id": "msg_" + to}
			for k, v := range tc.params {
				p[k] = v
			}
			if tc.errKind != sdk.KindUnknown {
				_, err := f.invoke(t, ActionSendMedia, p)
				testkit.RequireKind(t, err, tc.errKind)
				if n := len(f.fake.SentTo(to)); n != 0 {
					t.Errorf("an invalid send reached Meta")
				}
				return
			}
			f.mustSend(t, ActionSendMedia, p)
			req := f.lastRequest(t, to)
			typ := tc.params["type"].(string)
			if diff := cmp.Diff(tc.want, req[typ]); diff != "" || req["type"] != typ || req["biz_opaque_callback_data"] != "msg_"+to {
				t.Errorf("request %v; media (-want +got):\n%s", req, diff)
			}
		})
	}
}

func TestSendTemplate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.fake.AddTemplate(testWABAID, fakegraph.Template{Name: "payment_link", Language: "it", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"HEADER","format":"TEXT","text":"Ordine {{1}}"},{"type":"BODY","text":"Ciao {{1}}, paga qui: {{2}}"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Paga","url":"https://pay.example.com/{{1}}"}]}]`)}); err != nil {
		t.Fatal(err)
	}
	components := []any{
		map[string]any{"type": "header", "parameters": []any{map[string]any{"type": "text", "text": "#42"}}},
		map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Anna"}, map[string]any{"type": "text", "text": "https://pay.example.com/pl_1"}}},
		map[string]any{"type": "button", "sub_type": "url", "index": "0", "parameters": []any{map[string]any{"type": "text", "text": "pl_1"}}},
	}
	// No customer message: templates go outside the window.
	res := f.mustSend(t, ActionSendTemplate, map[string]any{"to": "+393339990001", "name": "payment_link", "language": "it",
		"components": components, "ledger_id": "msg_tpl"})
	req := f.lastRequest(t, "393339990001")
	want := map[string]any{"name": "payment_link", "language": map[string]any{"code": "it"}, "components": components}
	if diff := cmp.Diff(want, req["template"]); diff != "" {
		t.Errorf("template object (-want +got):\n%s", diff)
	}
	sent := f.fake.SentTo("393339990001")
	if sent[0].Body != "Ciao Anna, paga qui: https://pay.example.com/pl_1" || sent[0].WAMID != res.MessageID || sent[0].LedgerID != "msg_tpl" {
		t.Errorf("fake's log %+v", sent[0])
	}

	_, err := f.invoke(t, ActionSendTemplate, map[string]any{"to": "+393339990002", "name": "payment_link", "language": "it",
		"components": components[1:2], "ledger_id": "msg_tpl2"})
	if e := testkit.RequireKind(t, err, sdk.KindInvalid); e.Code != "132000" {
		t.Errorf("missing header parameter: code %q", e.Code)
	}
}

func TestSendInteractive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rows := func(n int, prefix string) []any {
		var out []any
		for i := range n {
			out = append(out, map[string]any{"id": fmt.Sprintf("%s%d", prefix, i), "title": fmt.Sprintf("Slot %d", i), "description": "With Dr. Rossi"})
		}
		return out
	}
	tests := map[string]struct {
		interactive map[string]any
		want        map[string]any // the interactive object sent to Meta
		errKind     sdk.ErrorKind
	}{
		"three buttons with header and footer": {
			interactive: map[string]any{"type": "button", "header": "Your appointment", "body": "Tomorrow at 9:30. Coming?", "footer": "Studio Rossi",
				"buttons": []any{map[string]any{"id": "yes", "title": "Yes"}, map[string]any{"id": "no", "title": "No"}, map[string]any{"id": "move", "title": "Reschedule"}}},
			want: map[string]any{"type": "button", "header": map[string]any{"type": "text", "text": "Your appointment"},
				"body": map[string]any{"text": "Tomorrow at 9:30. Coming?"}, "footer": map[string]any{"text": "Studio Rossi"},
				"action": map[string]any{"buttons": []any{
					map[string]any{"type": "reply", "reply": map[string]any{"id": "yes", "title": "Yes"}},
					map[string]any{"type": "reply", "reply": map[string]any{"id": "no", "title": "No"}},
					map[string]any{"type": "reply", "reply": map[string]any{"id": "move", "title": "Reschedule"}}}}},
		},
		"image header": {
			interactive: map[string]any{"type": "button", "header": map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/p.jpg"}},
				"body": "Like it?", "buttons": []any{map[string]any{"id": "y", "title": "Yes"}}},
			want: map[string]any{"type": "button", "header": map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/p.jpg"}},
				"body": map[string]any{"text": "Like it?"}, "action": map[string]any{"buttons": []any{map[string]any{"type": "reply", "reply": map[string]any{"id": "y", "title": "Yes"}}}}},
		},
		"list of ten rows in two sections": {
			interactive: map[string]any{"type": "list", "body": "Pick a slot", "button_text": "Slots", "sections": []any{
				map[string]any{"title": "Morning", "rows": rows(6, "m")}, map[string]any{"title": "Afternoon", "rows": rows(4, "a")}}},
			want: map[string]any{"type": "list", "body": map[string]any{"text": "Pick a slot"}, "action": map[string]any{"button": "Slots", "sections": []any{
				map[string]any{"title": "Morning", "rows": rows(6, "m")}, map[string]any{"title": "Afternoon", "rows": rows(4, "a")}}}},
		},
		"eleven rows in all": {interactive: map[string]any{"type": "list", "body": "Pick", "button_text": "Slots", "sections": []any{
			map[string]any{"title": "Morning", "rows": rows(6, "m")}, map[string]any{"title": "Afternoon", "rows": rows(5, "a")}}}, errKind: sdk.KindInvalid},
		"two sections without titles": {interactive: map[string]any{"type": "list", "body": "Pick", "button_text": "Slots", "sections": []any{
			map[string]any{"rows": rows(1, "m")}, map[string]any{"rows": rows(1, "a")}}}, errKind: sdk.KindInvalid},
		"duplicate button ids": {interactive: map[string]any{"type": "button", "body": "Pick",
			"buttons": []any{map[string]any{"id": "x", "title": "A"}, map[string]any{"id": "x", "title": "B"}}}, errKind: sdk.KindInvalid},
		"button title of 21 characters": {interactive: map[string]any{"type": "button", "body": "Pick",
			"buttons": []any{map[string]any{"id": "x", "title": strings.Repeat("é", 21)}}}, errKind: sdk.KindInvalid},
		"row title of 25 characters": {interactive: map[string]any{"type": "list", "body": "Pick", "button_text": "Slots", "sections": []any{
			map[string]any{"rows": []any{map[string]any{"id": "r", "title": strings.Repeat("x", 25)}}}}}, errKind: sdk.KindInvalid},
		"list with an image header": {interactive: map[string]any{"type": "list", "header": map[string]any{"type": "image", "image": map[string]any{"link": "https://x.test/a.jpg"}},
			"body": "Pick", "button_text": "Slots", "sections": []any{map[string]any{"rows": rows(1, "r")}}}, errKind: sdk.KindInvalid},
		"buttons and sections": {interactive: map[string]any{"type": "button", "body": "Pick", "buttons": []any{map[string]any{"id": "x", "title": "A"}},
			"sections": []any{map[string]any{"rows": rows(1, "r")}}}, errKind: sdk.KindInvalid},
	}
	i := 0
	for name, tc := range tests {
		i++
		to := fmt.Sprintf("39333002%04d", i)
		f.fake.CustomerMessage(testPhoneNumberID, to, "hi")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := map[string]any{"to": to, "ledger_id": "msg_" + to, "interactive": tc.interactive}
			if tc.errKind != sdk.KindUnknown {
				_, err := f.invoke(t, ActionSendInteractive, p)
				testkit.RequireKind(t, err, tc.errKind)
				return
			}
			f.mustSend(t, ActionSendInteractive, p)
			req := f.lastRequest(t, to)
			if diff := cmp.Diff(tc.want, req["interactive"]); diff != "" {
				t.Errorf("interactive object (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarkRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	wamid := f.fake.CustomerMessage(testPhoneNumberID, "+393330000200", "ciao")
	out, err := f.invoke(t, ActionMarkRead, map[string]any{"message_id": wamid})
	if err != nil || string(out) != `{"success":true}` {
		t.Fatalf("mark_read: %s, %v", out, err)
	}
	if diff := cmp.Diff([]string{wamid}, f.fake.Reads()); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
	_, err = f.invoke(t, ActionMarkRead, map[string]any{"message_id": "wamid.nope"})
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

func TestTemplateActions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	comps := []any{map[string]any{"type": "BODY", "text": "Hi {{1}}, your order {{2}} is confirmed.", "example": map[string]any{"body_text": []any{[]any{"Anna", "#42"}}}}}
	var ids []string
	for _, lang := range []string{"en_US", "it", "de", "fr", "es"} {
		out, err := f.invoke(t, ActionCreateTemplate, map[string]any{"name": "order_confirmed", "language": lang, "category": "UTILITY", "components": comps})
		if err != nil {
			t.Fatalf("create_template %s: %v", lang, err)
		}
		var res CreateTemplateResult
		if err := json.Unmarshal(out, &res); err != nil || res.Status != "PENDING" || res.Category != "UTILITY" || res.ID == "" {
			t.Fatalf("create_template result %s", out)
		}
		ids = append(ids, res.ID)
	}
	_, err := f.invoke(t, ActionCreateTemplate, map[string]any{"name": "order_confirmed", "language": "it", "category": "UTILITY", "components": comps})
	if e := testkit.RequireKind(t, err, sdk.KindInvalid); e.Code != "100" {
		t.Errorf("duplicate: code %q", e.Code)
	}
	if err := f.fake.RejectTemplate(testWABAID, "order_confirmed", "de", "INVALID_FORMAT"); err != nil {
		t.Fatal(err)
	}

	// Pages of two: 2 + 2 + 1, next empty on the last.
	var got []Template
	after, pages := "", 0
	for {
		params := map[string]any{"limit": 2}
		if after != "" {
			params["after"] = after
		}
		out, err := f.invoke(t, ActionListTemplates, params)
		if err != nil {
			t.Fatalf("list_templates: %v", err)
		}
		var page TemplatePage
		if err := json.Unmarshal(out, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, page.Templates...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if pages != 3 || len(got) != 5 {
		t.Fatalf("%d pages, %d templates", pages, len(got))
	}
	if got[2].Language != "de" || got[2].Status != "REJECTED" || got[2].RejectedReason != "INVALID_FORMAT" || got[2].ID != ids[2] {
		t.Errorf("rejected template listed as %+v", got[2])
	}
	if got[0].Category != "UTILITY" || got[0].RejectedReason != "" || !strings.Contains(string(got[0].Components), "order {{2}}") {
		t.Errorf("template listed as %+v", got[0])
	}

	if out, err := f.invoke(t, ActionDeleteTemplate, map[string]any{"name": "order_confirmed", "id": ids[1]}); err != nil || string(out) != `{"success":true}` {
		t.Fatalf("delete one language: %s, %v", out, err)
	}
	if n := len(f.fake.Templates(testWABAID)); n != 4 {
		t.Errorf("%d templates after deleting one language, want 4", n)
	}
	if _, err := f.invoke(t, ActionDeleteTemplate, map[string]any{"name": "order_confirmed"}); err != nil {
		t.Fatalf("delete every language: %v", err)
	}
	if n := len(f.fake.Templates(testWABAID)); n != 0 {
		t.Errorf("%d templates after deleting the name, want 0", n)
	}
	_, err = f.invoke(t, ActionDeleteTemplate, map[string]any{"name": "order_confirmed"})
	testkit.RequireKind(t, err, sdk.KindInvalid)
}

// TestStatusWebhooksRoundTrip: a send through the connector comes back from
// the fake as signed status webhooks that the connector verifies and
// normalizes with the ledger id it sent.
func TestStatusWebhooksRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var (
		mu       sync.Mutex
		events   []sdk.Event
		failures []error
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		req := sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body}
		res, err := f.h.HandleWebhook(r.Context(), f.conn, req)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		events = append(events, res.Events...)
	}))
	defer hook.Close()
	f.fake.SetStatusOptions(fakegraph.StatusOptions{Delay: time.Millisecond})
	f.fake.SetWebhook(hook.URL, testAppSecret)
	f.fake.CustomerMessage(testPhoneNumberID, "+393330000300", "hi")
	// The inbound webhook first, so the order of events is known.
	if err := f.fake.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	res := f.mustSend(t, ActionSendText, map[string]any{"to": "+393330000300", "body": "hello", "ledger_id": "msg_roundtrip"})
	if err := f.fake.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.Correlation[CorrelationLedgerID]+" "+e.DedupeKey)
	}
	if len(events) == 0 {
		t.Fatalf("no events; failures: %v", failures)
	}
	want := []string{
		"message.received  " + events[0].DedupeKey,
		"message.status msg_roundtrip status:" + res.MessageID + ":sent",
		"message.status msg_roundtrip status:" + res.MessageID + ":delivered",
		"message.status msg_roundtrip status:" + res.MessageID + ":read",
	}
	if diff := cmp.Diff(want, got); diff != "" || len(failures) != 0 {
		t.Errorf("events (-want +got):\n%s\nfailures: %v", diff, failures)
	}
}
