package whatsapp_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// A connector for another WhatsApp provider turns a received voice note into
// a message.received event: its own envelope (the field names every WhatsApp
// connector uses) around the shared parts, the dedupe key "msg:" and the
// message id, and the shared correlation keys.
func Example() {
	type inboundMessage struct {
		PhoneNumberID string                   `json:"phone_number_id"`
		From          string                   `json:"from"`
		WAID          string                   `json:"wa_id"`
		MessageID     string                   `json:"message_id"`
		Timestamp     time.Time                `json:"timestamp"`
		Type          string                   `json:"type"`
		Media         *whatsapp.Media          `json:"media,omitempty"`
		Context       *whatsapp.MessageContext `json:"context,omitempty"`
	}
	m := inboundMessage{
		PhoneNumberID: "+393330000000",
		From:          "+393331234567",
		WAID:          "393331234567",
		MessageID:     "3EB0C767D26A1B",
		Timestamp:     time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC),
		Type:          "audio",
		Media:         &whatsapp.Media{ID: "1038117", MimeType: "audio/ogg; codecs=opus", Voice: true},
		Context:       &whatsapp.MessageContext{MessageID: "3EB0AA01", From: "+393330000000"},
	}
	payload, err := json.Marshal(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := sdk.Event{
		DedupeKey:  "msg:" + m.MessageID,
		Type:       whatsapp.EventMessageReceived,
		OccurredAt: m.Timestamp,
		Correlation: map[string]string{
			whatsapp.CorrelationPhoneNumberID: m.PhoneNumberID,
			whatsapp.CorrelationWAID:          m.WAID,
			whatsapp.CorrelationContactPhone:  m.From,
			whatsapp.CorrelationWAMID:         m.MessageID,
		},
		Payload: payload,
	}
	fmt.Println(ev.Type, ev.DedupeKey)
	fmt.Println(string(ev.Payload))
	// Output:
	// message.received msg:3EB0C767D26A1B
	// {"phone_number_id":"+393330000000","from":"+393331234567","wa_id":"393331234567","message_id":"3EB0C767D26A1B","timestamp":"2026-03-14T09:30:00Z","type":"audio","media":{"id":"1038117","mime_type":"audio/ogg; codecs=opus","voice":true},"context":{"message_id":"3EB0AA01","from":"+393330000000"}}
}

// A linked device relays that a contact started typing as a chat_state
// signal; signals are shown to open inboxes and never stored.
func ExampleChatState() {
	b, err := json.Marshal(whatsapp.ChatState{Phone: "+393331234567", State: "composing"})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := sdk.Signal{Kind: whatsapp.SignalChatState, Payload: b, At: time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)}
	fmt.Println(s.Kind, string(s.Payload))
	// Output: chat_state {"phone":"+393331234567","state":"composing"}
}
