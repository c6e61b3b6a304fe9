package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lidDirectory knows every contact only by its LID, as core/contacts does
// for a sender a linked device received without the number.
type lidDirectory struct {
	lid         string
	lastInbound *time.Time
}

func (d lidDirectory) Recipient(_ context.Context, _, _, _, contactID string) (Recipient, error) {
	return Recipient{ContactID: contactID, LID: d.lid, ConversationID: "cv_" + contactID, LastInboundAt: d.lastInbound}, nil
}

func TestRecipientAddress(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		rcpt      Recipient
		linked    bool
		want      string
		wantField string // "" when no error
		wantIn    string // part of the reason
	}{
		"phone, cloud":            {rcpt: Recipient{Phone: "+393331234567", LID: "1@lid"}, want: "+393331234567"},
		"phone, linked":           {rcpt: Recipient{Phone: "+393331234567", LID: "1@lid"}, linked: true, want: "+393331234567"},
		"lid, linked":             {rcpt: Recipient{LID: "123456789012345@lid"}, linked: true, want: "123456789012345@lid"},
		"lid digits only, linked": {rcpt: Recipient{LID: " 123456789 "}, linked: true, want: "123456789@lid"},
		"lid, cloud":              {rcpt: Recipient{LID: "123456789@lid"}, wantField: "connection_id", wantIn: "known only by its WhatsApp LID; answer from a linked-device number"},
		"bad lid, linked":         {rcpt: Recipient{LID: "12:3@lid"}, linked: true, wantField: "contact_id", wantIn: "is not a WhatsApp LID"},
		"neither":                 {rcpt: Recipient{}, linked: true, wantField: "contact_id", wantIn: "neither a phone number nor a WhatsApp LID"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := recipientAddress(tc.rcpt, tc.linked)
			if tc.wantField == "" {
				if err != nil || got != tc.want {
					t.Fatalf("recipientAddress = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field != tc.wantField || !strings.Contains(inv.Reason, tc.wantIn) {
				t.Fatalf("recipientAddress = %q, %v; want invalid %s containing %q", got, err, tc.wantField, tc.wantIn)
			}
		})
	}
}

func TestLinkedParamsToLID(t *testing.T) {
	t.Parallel()
	const lid = "123456789012345@lid"
	tests := map[string]struct {
		kind       Kind
		c          content
		wantAction string
		want       map[string]any
	}{
		"text quoting the contact": {
			kind: KindText, c: content{To: lid, Text: "hi", ReplyTo: "M_IN"}, wantAction: ActionSendText,
			want: map[string]any{"to": lid, "body": "hi", "ledger_id": "msg_1", "message_id": LinkedMessageID("msg_1"),
				"reply_to": map[string]string{"message_id": "M_IN", "from": lid}},
		},
		"media": {
			kind: KindMedia, c: content{To: lid, Media: &Media{Type: "image", Link: "https://x.test/a.jpg"}}, wantAction: ActionSendMedia,
			want: map[string]any{"to": lid, "type": "image", "link": "https://x.test/a.jpg", "ledger_id": "msg_1", "message_id": LinkedMessageID("msg_1")},
		},
		"reaction": {
			kind: KindReaction, c: content{To: lid, Reaction: &Reaction{MessageID: "M_IN", Emoji: "👍"}}, wantAction: ActionSendReaction,
			want: map[string]any{"to": lid, "message_id": "M_IN", "emoji": "👍", "from_me": false, "ledger_id": "msg_1", "reaction_id": LinkedMessageID("msg_1")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			action, params := linkedParams(tc.kind, tc.c, "msg_1")
			if action != tc.wantAction {
				t.Errorf("action %s, want %s", action, tc.wantAction)
			}
			if diff := cmp.Diff(tc.want, params); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendToLIDOnlyContact(t *testing.T) {
	t.Parallel()
	const lid = "123456789012345@lid"
	req := SendRequest{TenantID: "ten_1", ConnectionID: "con_1", ContactID: "ct_anon", Kind: KindText, Text: "hello", IdempotencyKey: "k"}

	t.Run("a linked-device number answers at the LID, typing included", func(t *testing.T) {
		t.Parallel()
		r := linkedRig(t, time.Hour, fakeNewContacts{}, LinkedPacing{MessagesPerMinute: 60, NewContactsPerDay: 10, Typing: true, TypingMax: time.Second})
		at := r.clock.Now().Add(-time.Hour)
		r.svc.dir = lidDirectory{lid: lid, lastInbound: &at}
		m, err := r.svc.Send(t.Context(), req)
		if err != nil || m.Status != StatusSent {
			t.Fatalf("Send = %+v, %v; want sent", m, err)
		}
		if m.To != lid {
			t.Errorf("ledger row to %q, want %q", m.To, lid)
		}
		var got []map[string]any
		var actions []string
		for _, c := range r.inv.calls {
			var p map[string]any
			if err := json.Unmarshal(c.Params, &p); err != nil {
				t.Fatal(err)
			}
			got, actions = append(got, p), append(actions, c.Action)
		}
		if diff := cmp.Diff([]string{ActionSendChatState, ActionSendText}, actions); diff != "" {
			t.Fatalf("actions (-want +got):\n%s", diff)
		}
		if got[0]["to"] != lid || got[1]["to"] != lid {
			t.Errorf("typing to %v, text to %v; want both %s", got[0]["to"], got[1]["to"], lid)
		}
	})

	t.Run("a Cloud API number refuses it as invalid, before any row or call", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, time.Hour, nil)
		r.svc.dir = lidDirectory{lid: lid}
		_, err := r.svc.Send(t.Context(), req)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Reason != "this contact is known only by its WhatsApp LID; answer from a linked-device number" {
			t.Fatalf("Send = %v; want the LID-only invalid error", err)
		}
		if r.inv.count() != 0 || len(r.ledger.rows) != 0 {
			t.Errorf("%d calls, %d rows; want none", r.inv.count(), len(r.ledger.rows))
		}
	})
}
