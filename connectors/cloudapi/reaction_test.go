package cloudapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func TestSendReaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := map[string]struct {
		emoji string
	}{
		"react":         {emoji: "👍"},
		"react escaped": {emoji: "\U0001F600"},
		"skin tone":     {emoji: "👍🏽"},
		"remove":        {emoji: ""},
	}
	i := 0
	for name, tc := range tests {
		i++
		to := fmt.Sprintf("39333002%04d", i)
		// The customer's message both opens the window and is the message
		// reacted to.
		target := f.fake.CustomerMessage(testPhoneNumberID, to, "Do you ship to Turin?")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ledger := "msg_react_" + to
			res := f.mustSend(t, ActionSendReaction, map[string]any{"to": "+" + to, "message_id": target, "emoji": tc.emoji, "ledger_id": ledger})
			if res.WAID != to {
				t.Errorf("wa_id %q, want %q", res.WAID, to)
			}
			want := map[string]any{
				"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "reaction",
				// emoji is present even when empty: that is the removal.
				"reaction":                 map[string]any{"message_id": target, "emoji": tc.emoji},
				"biz_opaque_callback_data": ledger,
			}
			if diff := cmp.Diff(want, f.lastRequest(t, to)); diff != "" {
				t.Errorf("request to Meta (-want +got):\n%s", diff)
			}
			sent := f.fake.SentTo(to)
			got := []string{}
			for _, s := range sent {
				got = append(got, s.Type+" "+s.Body+" "+s.LedgerID+" "+s.WAMID)
			}
			if diff := cmp.Diff([]string{"reaction " + tc.emoji + " " + ledger + " " + res.MessageID}, got); diff != "" {
				t.Errorf("fake's log (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendReactionRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const inWindow = "393330003001"
	target := f.fake.CustomerMessage(testPhoneNumberID, inWindow, "hi")
	react := func(to, messageID, emoji string) map[string]any {
		return map[string]any{"to": to, "message_id": messageID, "emoji": emoji, "ledger_id": "msg_r"}
	}
	tests := map[string]struct {
		params map[string]any
		kind   sdk.ErrorKind
		code   string
	}{
		"a word":              {params: react(inWindow, target, "ok"), kind: sdk.KindInvalid},
		"two emoji":           {params: react(inWindow, target, "👍👍"), kind: sdk.KindInvalid},
		"emoji and text":      {params: react(inWindow, target, "👍 thanks"), kind: sdk.KindInvalid},
		"no message_id":       {params: react(inWindow, "", "👍"), kind: sdk.KindInvalid},
		"schema: no emoji":    {params: map[string]any{"to": inWindow, "message_id": target, "ledger_id": "msg_r"}, kind: sdk.KindInvalid},
		"schema: no ledger":   {params: map[string]any{"to": inWindow, "message_id": target, "emoji": "👍"}, kind: sdk.KindInvalid},
		"schema: reply_to":    {params: map[string]any{"to": inWindow, "message_id": target, "emoji": "👍", "ledger_id": "m", "reply_to": target}, kind: sdk.KindInvalid},
		"not a phone":         {params: react("0333 123 4567", target, "👍"), kind: sdk.KindInvalid},
		"outside the window":  {params: react("393330003002", target, "👍"), kind: sdk.KindPermanent, code: "131047"},
		"removal also window": {params: react("393330003003", target, ""), kind: sdk.KindPermanent, code: "131047"},
	}
	// The group returns when its parallel cases have, so the fake's log is
	// read after all of them.
	t.Run("cases", func(t *testing.T) {
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				_, err := f.invoke(t, ActionSendReaction, tc.params)
				e := testkit.RequireKind(t, err, tc.kind)
				if e.Code != tc.code {
					t.Errorf("code %q, want %q (%v)", e.Code, tc.code, e)
				}
			})
		}
	})
	if n := len(f.fake.Sent()); n != 0 {
		t.Errorf("the fake accepted %d refused reactions: %+v", n, f.fake.Sent())
	}
	if n := f.fake.ErrorCount(131047); n != 2 {
		t.Errorf("the fake answered 131047 %d times, want 2 (the checks before the call made no request)", n)
	}
}

// TestReactionStatusWebhooks: a reaction gets only Meta's "sent" status, and
// one on a message that cannot be reacted to is accepted and then failed by
// webhook with 131009; both carry the ledger id, normalized by the connector.
func TestReactionStatusWebhooks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var (
		mu       sync.Mutex
		statuses = map[string][]MessageStatus{} // by ledger id
		failures []error
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		res, err := f.h.HandleWebhook(r.Context(), f.conn, sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		for _, e := range res.Events {
			if e.Type != EventMessageStatus {
				continue
			}
			var st MessageStatus
			if err := json.Unmarshal(e.Payload, &st); err != nil {
				failures = append(failures, err)
				continue
			}
			statuses[st.LedgerID] = append(statuses[st.LedgerID], st)
		}
	}))
	defer hook.Close()
	f.fake.SetStatusOptions(fakegraph.StatusOptions{Delay: time.Millisecond})
	f.fake.SetWebhook(hook.URL, testAppSecret)

	const to = "393330004001"
	target := f.fake.CustomerMessage(testPhoneNumberID, to, "Thanks!")
	if err := f.fake.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A text for comparison gets sent, delivered and read.
	text := f.mustSend(t, ActionSendText, map[string]any{"to": to, "body": "You're welcome", "ledger_id": "msg_text"})
	f.fake.Advance(7 * time.Second) // past the pair rate
	ok := f.mustSend(t, ActionSendReaction, map[string]any{"to": to, "message_id": target, "emoji": "❤️", "ledger_id": "msg_heart"})
	f.fake.Advance(7 * time.Second)
	// Our own message cannot be reacted to: Meta takes the call, then fails it.
	bad := f.mustSend(t, ActionSendReaction, map[string]any{"to": to, "message_id": text.MessageID, "emoji": "👍", "ledger_id": "msg_bad"})
	if err := f.fake.WaitWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 0 {
		t.Fatalf("webhook failures: %v", failures)
	}
	type brief struct {
		WAMID, Status string
		Codes         []int
	}
	summarize := func(list []MessageStatus) []brief {
		var out []brief
		for _, s := range list {
			b := brief{WAMID: s.MessageID, Status: s.Status}
			for _, e := range s.Errors {
				b.Codes = append(b.Codes, e.Code)
			}
			out = append(out, b)
		}
		return out
	}
	want := map[string][]brief{
		"msg_text":  {{text.MessageID, "sent", nil}, {text.MessageID, "delivered", nil}, {text.MessageID, "read", nil}},
		"msg_heart": {{ok.MessageID, "sent", nil}},
		"msg_bad":   {{bad.MessageID, "failed", []int{131009}}},
	}
	got := map[string][]brief{}
	for ledger, list := range statuses {
		got[ledger] = summarize(list)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status webhooks by ledger id (-want +got):\n%s", diff)
	}
}

// TestFakeValidatesReactions checks the fake's side of Meta's contract with
// requests the connector would never make.
func TestFakeValidatesReactions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const to = "393330005001"
	target := f.fake.CustomerMessage(testPhoneNumberID, to, "hi")
	tests := map[string]struct {
		reaction map[string]any
		extra    map[string]any
		code     int
	}{
		"no message_id":      {reaction: map[string]any{"emoji": "👍"}, code: 131008},
		"no emoji field":     {reaction: map[string]any{"message_id": target}, code: 131008},
		"a word":             {reaction: map[string]any{"message_id": target, "emoji": "yes"}, code: 131009},
		"two emoji":          {reaction: map[string]any{"message_id": target, "emoji": "👍👎"}, code: 131009},
		"with a context":     {reaction: map[string]any{"message_id": target, "emoji": "👍"}, extra: map[string]any{"context": map[string]any{"message_id": target}}, code: 100},
		"with a text too":    {reaction: map[string]any{"message_id": target, "emoji": "👍"}, extra: map[string]any{"text": map[string]any{"body": "x"}}, code: 100},
		"no reaction at all": {code: 131008},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "reaction"}
			if tc.reaction != nil {
				body["reaction"] = tc.reaction
			}
			for k, v := range tc.extra {
				body[k] = v
			}
			b, _ := json.Marshal(body)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.fake.URL()+"/v21.0/"+testPhoneNumberID+"/messages", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testAccessToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Error struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || out.Error.Code != tc.code {
				t.Errorf("HTTP %d code %d, want 400 code %d", resp.StatusCode, out.Error.Code, tc.code)
			}
		})
	}
}
