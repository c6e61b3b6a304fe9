package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// fakeNewContacts answers IsNew and CountSince from fixed values.
type fakeNewContacts struct {
	isNew bool
	today int
}

func (f fakeNewContacts) IsNew(context.Context, string, string, string) (bool, error) {
	return f.isNew, nil
}

func (f fakeNewContacts) CountSince(context.Context, string, string, time.Time) (int, error) {
	return f.today, nil
}

type fixedPacing LinkedPacing

func (f fixedPacing) LinkedPacing(context.Context, string, string) (LinkedPacing, error) {
	return LinkedPacing(f), nil
}

// linkedRig is a testRig whose number is a linked device.
func linkedRig(t *testing.T, lastInbound time.Duration, nc fakeNewContacts, pacing LinkedPacing, results ...error) *testRig {
	t.Helper()
	r := newRig(t, lastInbound, nil, results...)
	r.svc.channels = fakeChannels{ch: Channel{Connector: ConnectorLinkedDevice, Status: "active"}}
	r.svc.newContacts = nc
	r.svc.pacing = fixedPacing(pacing)
	return r
}

func TestLinkedDeviceSends(t *testing.T) {
	t.Parallel()
	quiet := LinkedPacing{MessagesPerMinute: 6, NewContactsPerDay: 2, MinGap: 4 * time.Second, MaxGap: 12 * time.Second}

	t.Run("free text outside any window, with a message id fixed before the call", func(t *testing.T) {
		t.Parallel()
		r := linkedRig(t, 0, fakeNewContacts{isNew: true, today: 0}, quiet)
		m, err := r.svc.Send(t.Context(), textReq("k1"))
		if err != nil || m.Status != StatusSent {
			t.Fatalf("Send = %s, %v; want sent", m.Status, err)
		}
		call := r.inv.calls[0]
		var params map[string]any
		if err := json.Unmarshal(call.Params, &params); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"to": "+393331234567", "body": "hello", "ledger_id": m.ID, "message_id": LinkedMessageID(m.ID)}
		if call.Action != ActionSendText || !cmp.Equal(params, want) {
			t.Fatalf("call %s %v; want send_text %v", call.Action, params, want)
		}
	})

	t.Run("templates and interactive messages are refused as invalid", func(t *testing.T) {
		t.Parallel()
		r := linkedRig(t, time.Hour, fakeNewContacts{}, quiet)
		for _, req := range []SendRequest{templateReq("t", "promo"), {TenantID: "ten_1", ConnectionID: "con_1", To: "+393331234567",
			Kind: KindInteractive, Interactive: json.RawMessage(`{"type":"button"}`), IdempotencyKey: "i"}} {
			_, err := r.svc.Send(t.Context(), req)
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field != "kind" {
				t.Errorf("Send %s = %v; want invalid kind", req.Kind, err)
			}
		}
		if r.inv.count() != 0 {
			t.Fatalf("%d provider calls; want none", r.inv.count())
		}
	})

	t.Run("the daily cap on new contacts refuses, or defers to tomorrow", func(t *testing.T) {
		t.Parallel()
		r := linkedRig(t, 0, fakeNewContacts{isNew: true, today: 2}, quiet)
		_, err := r.svc.Send(t.Context(), textReq("cap"))
		var ref *RefusedError
		if !errors.As(err, &ref) || ref.Reason != ReasonNewContactLimit {
			t.Fatalf("Send = %v; want refused new_contact_limit", err)
		}
		req := textReq("cap-defer")
		req.AllowDefer = true
		m, err := r.svc.Send(t.Context(), req)
		tomorrow := r.clock.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		if err != nil || m.Status != StatusDeferred || m.DeferredUntil == nil || !m.DeferredUntil.Equal(tomorrow) {
			t.Fatalf("Send with defer = %+v, %v; want deferred until %s", m, err, tomorrow)
		}
		if r.inv.count() != 0 {
			t.Fatalf("%d provider calls; want none", r.inv.count())
		}
		// Someone who wrote to the number is not a new contact.
		r2 := linkedRig(t, time.Hour, fakeNewContacts{isNew: true, today: 99}, quiet)
		if _, err := r2.svc.Send(t.Context(), textReq("reply")); err != nil {
			t.Fatalf("a reply over the cap: %v; want sent", err)
		}
	})

	t.Run("sends of one number are spaced by the pacing", func(t *testing.T) {
		t.Parallel()
		r := linkedRig(t, 0, fakeNewContacts{}, LinkedPacing{MessagesPerMinute: 4, NewContactsPerDay: 100, MinGap: 5 * time.Second, MaxGap: 9 * time.Second})
		start := r.clock.Now()
		var sentAt []time.Time
		for i, to := range []string{"+393330000001", "+393330000002", "+393330000003"} {
			req := textReq(fmt.Sprint("k", i))
			req.To = to
			if _, err := r.svc.Send(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			sentAt = append(sentAt, r.clock.Now())
		}
		for i := 1; i < len(sentAt); i++ {
			if gap := sentAt[i].Sub(sentAt[i-1]); gap < 15*time.Second {
				t.Errorf("gap %d = %s; want at least 60s/4 = 15s", i, gap)
			}
		}
		if sentAt[0] != start {
			t.Errorf("the first send waited %s; want none", sentAt[0].Sub(start))
		}
	})

	t.Run("a reply shows typing first, for a time bounded by TypingMax", func(t *testing.T) {
		t.Parallel()
		p := quiet
		p.Typing, p.TypingMax = true, 3*time.Second
		r := linkedRig(t, time.Hour, fakeNewContacts{}, p)
		start := r.clock.Now()
		long := textReq("typing")
		long.Text = strings.Repeat("a longer answer ", 10) // 160 characters: 10.6 s at a person's pace
		if _, err := r.svc.Send(t.Context(), long); err != nil {
			t.Fatal(err)
		}
		if len(r.inv.calls) != 2 || r.inv.calls[0].Action != ActionSendChatState || r.inv.calls[1].Action != ActionSendText {
			t.Fatalf("calls %+v; want send_chat_state then send_text", r.inv.calls)
		}
		if d := r.clock.Now().Sub(start); d != 3*time.Second {
			t.Fatalf("typing lasted %s; want TypingMax 3s for this text", d)
		}
		short := linkedRig(t, time.Hour, fakeNewContacts{}, p)
		start = short.clock.Now()
		if _, err := short.svc.Send(t.Context(), textReq("short")); err != nil {
			t.Fatal(err)
		}
		if d := short.clock.Now().Sub(start); d != 1300*time.Millisecond {
			t.Fatalf("typing for %q lasted %s; want 1 s + 60 ms a character", "hello", d)
		}
	})

	t.Run("a number that is not connected queues the send instead of marking it unknown", func(t *testing.T) {
		t.Parallel()
		notConnected := &sdk.Error{Kind: sdk.KindRetryable, Code: "not_connected", Message: "session not connected"}
		r := linkedRig(t, 0, fakeNewContacts{isNew: false}, quiet, notConnected)
		m, err := r.svc.Send(t.Context(), textReq("q"))
		if err != nil || m.Status != StatusQueued || m.StatusReason != ReasonChannelUnavailable || m.DeferredUntil == nil {
			t.Fatalf("Send = %+v, %v; want queued channel_unavailable with a retry time", m, err)
		}
		// The Scheduler's re-attempt sends it once the number is back.
		got, err := r.svc.resend(t.Context(), m)
		if err != nil || got.Status != StatusSent || r.inv.count() != 2 {
			t.Fatalf("resend = %s, %v after %d calls; want sent on the second call", got.Status, err, r.inv.count())
		}
	})
}

func TestLinkedDeviceReactions(t *testing.T) {
	t.Parallel()
	react := func(key, emoji string) SendRequest {
		return SendRequest{TenantID: "ten_1", ConnectionID: "con_1", To: "+393331234567", Kind: KindReaction,
			Reaction: &Reaction{MessageID: "3EB0CUSTOMER", Emoji: emoji}, IdempotencyKey: key}
	}
	pacing := LinkedPacing{MessagesPerMinute: 60, NewContactsPerDay: 5, Typing: true, TypingMax: 5 * time.Second}

	r := linkedRig(t, time.Hour, fakeNewContacts{}, pacing)
	r.svc.fromMe = func(_ context.Context, _, _, wamid string) (bool, error) { return wamid == "3EB0OURS", nil }
	m, err := r.svc.Send(t.Context(), react("r1", "👍"))
	if err != nil || m.Status != StatusSent || m.Kind != "reaction" {
		t.Fatalf("Send reaction = %+v, %v; want sent", m, err)
	}
	if len(r.inv.calls) != 1 {
		t.Fatalf("calls %+v; want the reaction alone (no typing before a reaction)", r.inv.calls)
	}
	var params map[string]any
	if err := json.Unmarshal(r.inv.calls[0].Params, &params); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"to": "+393331234567", "ledger_id": m.ID, "message_id": "3EB0CUSTOMER", "emoji": "👍",
		"from_me": false, "reaction_id": LinkedMessageID(m.ID)}
	if r.inv.calls[0].Action != ActionSendReaction || !cmp.Equal(params, want) {
		t.Fatalf("call %s %v; want send_reaction %v", r.inv.calls[0].Action, params, want)
	}
	// On one of our own messages, from_me is set; an empty emoji removes.
	req := react("r2", "")
	req.Reaction.MessageID = "3EB0OURS"
	if _, err := r.svc.Send(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(r.inv.calls[1].Params, &params)
	if params["from_me"] != true || params["emoji"] != "" {
		t.Fatalf("params %v; want from_me and an empty emoji", params)
	}

	for name, bad := range map[string]SendRequest{
		"no message":   {TenantID: "ten_1", ConnectionID: "con_1", To: "+393331234567", Kind: KindReaction, IdempotencyKey: "b1"},
		"a sentence":   react("b2", "this is not one emoji"),
		"a word":       react("b4", "ok"),
		"two emoji":    react("b5", "👍👍"),
		"with a quote": func() SendRequest { q := react("b3", "👍"); q.ReplyTo = "x"; return q }(),
	} {
		var inv *InvalidError
		if _, err := r.svc.Send(t.Context(), bad); !errors.As(err, &inv) {
			t.Errorf("%s: %v; want invalid", name, err)
		}
	}
	// A Cloud API number sends it too, with the Cloud API connector's
	// parameters (plugin_test.go sends one through the real plugin).
	cloud := newRig(t, time.Hour, nil)
	cm, err := cloud.svc.Send(t.Context(), react("c1", "👍"))
	if err != nil || cm.Status != StatusSent || len(cloud.inv.calls) != 1 || cloud.inv.calls[0].Action != ActionSendReaction {
		t.Fatalf("reaction on a Cloud API number = %+v, %v, calls %+v; want sent by send_reaction", cm, err, cloud.inv.calls)
	}
	var cparams map[string]any
	if err := json.Unmarshal(cloud.inv.calls[0].Params, &cparams); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"to": "+393331234567", "ledger_id": cm.ID, "message_id": "3EB0CUSTOMER", "emoji": "👍"}; !cmp.Equal(cparams, want) {
		t.Fatalf("cloud api params %v; want %v", cparams, want)
	}
}

func TestLinkedDeviceTemplateTextFallback(t *testing.T) {
	t.Parallel()
	r := linkedRig(t, 0, fakeNewContacts{}, LinkedPacing{MessagesPerMinute: 60, NewContactsPerDay: 10})
	req := templateReq("tf", "promo")
	req.Purpose, req.TextFallback = PurposeMarketing, "Ciao Anna, il tuo carrello ti aspetta: https://shop.example/c/1"
	m, err := r.svc.Send(t.Context(), req)
	if err != nil || m.Status != StatusSent || m.Kind != "text" || m.Purpose != PurposeMarketing {
		t.Fatalf("Send = %+v, %v; want the fallback text sent as a marketing text", m, err)
	}
	var params map[string]any
	_ = json.Unmarshal(r.inv.calls[0].Params, &params)
	if r.inv.calls[0].Action != ActionSendText || params["body"] != req.TextFallback {
		t.Fatalf("call %s %v; want send_text with the fallback", r.inv.calls[0].Action, params)
	}
	// The consent rules are those of the purpose: no marketing opt-in, no send.
	denied := linkedRig(t, 0, fakeNewContacts{}, LinkedPacing{MessagesPerMinute: 60, NewContactsPerDay: 10})
	denied.consent.decision = map[Purpose]ConsentDecision{PurposeMarketing: {Reason: ReasonNoMarketingConsent}}
	var ref *RefusedError
	if _, err := denied.svc.Send(t.Context(), req); !errors.As(err, &ref) || ref.Reason != ReasonNoMarketingConsent {
		t.Fatalf("without a marketing opt-in: %v; want refused", err)
	}
	// A fallback on a Cloud API number is not used: the template goes.
	cloud := newRig(t, 0, nil)
	if m, err := cloud.svc.Send(t.Context(), req); err != nil || m.Kind != "template" {
		t.Fatalf("Cloud API send with a fallback = %+v, %v; want the template", m, err)
	}
}

func TestLinkedMessageID(t *testing.T) {
	t.Parallel()
	a, b := LinkedMessageID("msg_1"), LinkedMessageID("msg_2")
	if a == b || a != LinkedMessageID("msg_1") || len(a) != 22 || a[:4] != "3EB0" {
		t.Fatalf("LinkedMessageID = %q, %q; want stable, distinct, 22 chars starting 3EB0", a, b)
	}
}
