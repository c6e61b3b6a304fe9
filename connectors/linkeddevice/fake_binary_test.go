package linkeddevice

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// fakeCall mirrors the fake build's FakeCall (declared only in that build).
type fakeCall struct {
	Method  string          `json:"method"`
	Device  string          `json:"device"`
	To      string          `json:"to"`
	ID      string          `json:"id"`
	Message json.RawMessage `json:"message"`
	IDs     []string        `json:"ids"`
	State   string          `json:"state"`
	Phones  []string        `json:"phones"`
	Size    int             `json:"size"`
}

const (
	ownJID   = "393331234567:12@s.whatsapp.net"
	ownPhone = "+393331234567"
	msgTime  = "2026-01-02T03:04:05Z"
)

func inject(t *testing.T, p *plugin, conn sdk.Connection, event string, data any, extra map[string]any) {
	t.Helper()
	params := map[string]any{"event": event}
	if data != nil {
		params["data"] = data
	}
	for k, v := range extra {
		params[k] = v
	}
	p.mustInvoke(t, conn, "test_inject", params, nil)
}

func sentCalls(t *testing.T, p *plugin, conn sdk.Connection) []fakeCall {
	t.Helper()
	var res struct {
		Calls []fakeCall `json:"calls"`
	}
	p.mustInvoke(t, conn, "test_sent", map[string]any{}, &res)
	return res.Calls
}

// pair opens conn and pairs it by QR code as jid, then connects it.
func pair(t *testing.T, p *plugin, conn sdk.Connection, jid string) {
	t.Helper()
	n := len(p.host.SessionUpdates(conn.ID))
	p.open(t, conn)
	code := "qr-" + jid
	// The session starts its QR pairing in the background; the codes
	// arrive once the fake's QR channel exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		inject(t, p, conn, "QR", map[string]any{"Codes": []string{code}}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		got := p.host.WaitFor(ctx, func() bool {
			return slices.ContainsFunc(p.host.SessionUpdates(conn.ID)[n:], func(u sdk.SessionUpdate) bool { return u.QRCode == code })
		})
		cancel()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no QR code reported for %s: %+v", conn.ID, p.host.SessionUpdates(conn.ID))
		}
	}
	inject(t, p, conn, "PairSuccess", map[string]any{"ID": jid, "LID": "111222333:12@lid", "Platform": "android"}, nil)
	u, _ := waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionConnecting))
	if u.Account == nil || u.Account.JID != jid {
		t.Fatalf("connecting after pairing: account %+v", u.Account)
	}
	if v, _ := p.host.State(conn.ID, StateDeviceJID); string(v) != jid {
		t.Fatalf("device_jid in host state = %q, want %q", v, jid)
	}
	inject(t, p, conn, "Connected", nil, nil)
	waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionConnected))
}

// TestIntegrationFakePlugin drives the plugin binary built with the
// linkeddevice_fake tag: whatsmeow's own event values, injected through
// test_inject, go through the connector's real event handler, and what the
// connector reports, emits and sends is checked at the host.
func TestIntegrationFakePlugin(t *testing.T) {
	path := buildPlugin(t, t.TempDir(), "linkeddevice_fake")
	host := testkit.NewMemoryHost()
	p := startPlugin(t, path, host, "debug")

	t.Run("manifest", func(t *testing.T) {
		var names []string
		for _, a := range p.manifest.Actions {
			names = append(names, a.Name)
		}
		want := []string{ActionSendText, ActionSendMedia, ActionSendReaction, ActionMarkRead, ActionSendChatState, ActionCheckNumbers,
			ActionDownloadMedia, ActionStartPairing, ActionLogout, "test_inject", "test_sent"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("actions (-want +got):\n%s", diff)
		}
		if !p.manifest.Sessions || p.manifest.Webhooks || p.manifest.Lifecycle {
			t.Errorf("manifest flags: sessions %v webhooks %v lifecycle %v", p.manifest.Sessions, p.manifest.Webhooks, p.manifest.Lifecycle)
		}
	})

	conn := sdk.Connection{ID: "conn_msgs", TenantID: "tenant_a"}
	t.Run("pairing by QR code", func(t *testing.T) {
		pair(t, p, conn, ownJID)
		u, _ := waitUpdate(t, host, conn.ID, 0, time.Second, stateIs(sdk.SessionConnected))
		want := &sdk.SessionAccount{Phone: ownPhone, JID: ownJID, LID: "111222333@lid", Platform: "android"}
		if diff := cmp.Diff(want, u.Account); diff != "" {
			t.Errorf("account (-want +got):\n%s", diff)
		}
		qr, _ := waitUpdate(t, host, conn.ID, 0, time.Second, func(u sdk.SessionUpdate) bool { return u.QRCode != "" })
		if qr.State != sdk.SessionPairing || time.Until(qr.QRExpiresAt) > 61*time.Second || qr.QRExpiresAt.IsZero() {
			t.Errorf("QR update %+v", qr)
		}
	})

	t.Run("messages of every kind", func(t *testing.T) { testMessages(t, p, conn) })
	t.Run("receipts presence and echo", func(t *testing.T) { testReceipts(t, p, conn) })
	t.Run("sends", func(t *testing.T) { testSends(t, p, conn) })
	t.Run("a message waits for a host that cannot store it", func(t *testing.T) { testHostDown(t, p, conn) })
	t.Run("QR loop is bounded and pairing restarts", func(t *testing.T) { testQRBound(t, p) })
	t.Run("connection states", func(t *testing.T) { testStates(t, p) })
	t.Run("session no longer held", func(t *testing.T) { testNotHeld(t, p) })

	t.Run("every emitted event type is declared", func(t *testing.T) {
		declared := map[string]bool{}
		for _, e := range p.manifest.Events {
			declared[e.Type] = true
		}
		for _, id := range []string{conn.ID} {
			for _, e := range host.Events(id) {
				if !declared[e.Type] {
					t.Errorf("event type %s is not declared", e.Type)
				}
			}
		}
	})
	t.Run("no data race in the plugin process", func(t *testing.T) {
		if strings.Contains(p.bin.Logs(), "DATA RACE") {
			t.Errorf("the plugin reported a data race (built with PONTE_TEST_PLUGIN_RACE=1):\n%s", p.bin.Logs())
		}
	})
	t.Run("no message body in the logs at info level", func(t *testing.T) {
		for _, line := range strings.Split(p.bin.Logs(), "\n") {
			if strings.Contains(line, "[INFO]") && strings.Contains(line, "secret body") {
				t.Errorf("message body logged at info: %s", line)
			}
		}
	})
}

func info(id, chat, sender string, extra map[string]any) map[string]any {
	m := map[string]any{"Chat": chat, "Sender": sender, "ID": id, "PushName": "Anna", "Timestamp": msgTime}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func testMessages(t *testing.T, p *plugin, conn sdk.Connection) {
	const anna = "393339990001@s.whatsapp.net"
	inject(t, p, conn, "LIDMapping", nil, map[string]any{"lid": "555666777@lid", "pn": "393339990003@s.whatsapp.net"})
	ts, _ := time.Parse(time.RFC3339, msgTime)
	envelope := func(id, typ string) InboundMessage {
		return InboundMessage{PhoneNumberID: ownPhone, From: "+393339990001", WAID: "393339990001", ProfileName: "Anna", MessageID: id, Timestamp: ts, Type: typ}
	}
	media := func(kind, mime string) *Media {
		return &Media{Kind: kind, MimeType: mime, SHA256: "0102", FileLength: 42, DirectPath: "/v/t62/abc", MediaKey: "a2V5", FileEncSHA256: "ZW5j"}
	}
	mediaJSON := func(mime string, more map[string]any) map[string]any {
		m := map[string]any{"mimetype": mime, "fileSHA256": "AQI=", "fileLength": "42", "directPath": "/v/t62/abc", "mediaKey": "a2V5", "fileEncSHA256": "ZW5j"}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		event   string
		data    map[string]any
		message map[string]any
		want    InboundMessage
	}{
		{name: "text", data: map[string]any{"Info": info("M_TEXT", anna, anna, nil)}, message: map[string]any{"conversation": "secret body"},
			want: func() InboundMessage { m := envelope("M_TEXT", "text"); m.Text = "secret body"; return m }()},
		{name: "extended text reply from a LID with its phone as SenderAlt",
			data:    map[string]any{"Info": info("M_REPLY", "444555666@lid", "444555666@lid", map[string]any{"SenderAlt": "393339990002@s.whatsapp.net", "AddressingMode": "lid"})},
			message: map[string]any{"extendedTextMessage": map[string]any{"text": "yes please", "contextInfo": map[string]any{"stanzaID": "M_TEXT", "participant": anna}}},
			want: func() InboundMessage {
				m := envelope("M_REPLY", "text")
				m.From, m.WAID, m.LID, m.Text = "+393339990002", "393339990002", "444555666@lid", "yes please"
				m.Context = &MessageContext{MessageID: "M_TEXT", From: "+393339990001"}
				return m
			}()},
		{name: "image from a LID known to the store", data: map[string]any{"Info": info("M_IMAGE", "555666777@lid", "555666777@lid", nil)},
			message: map[string]any{"imageMessage": mediaJSON("image/jpeg", map[string]any{"caption": "look"})},
			want: func() InboundMessage {
				m := envelope("M_IMAGE", "image")
				m.From, m.WAID, m.LID = "+393339990003", "393339990003", "555666777@lid"
				m.Media = media("image", "image/jpeg")
				m.Media.Caption = "look"
				return m
			}()},
		{name: "voice note", data: map[string]any{"Info": info("M_VOICE", anna, anna, nil)},
			message: map[string]any{"audioMessage": mediaJSON("audio/ogg; codecs=opus", map[string]any{"PTT": true})},
			want: func() InboundMessage {
				m := envelope("M_VOICE", "audio")
				m.Media = media("audio", "audio/ogg; codecs=opus")
				m.Media.Voice = true
				return m
			}()},
		{name: "video", data: map[string]any{"Info": info("M_VIDEO", anna, anna, nil)},
			message: map[string]any{"videoMessage": mediaJSON("video/mp4", map[string]any{"caption": "clip", "gifPlayback": true})},
			want: func() InboundMessage {
				m := envelope("M_VIDEO", "video")
				m.Media = media("video", "video/mp4")
				m.Media.Caption, m.Media.Animated = "clip", true
				return m
			}()},
		{name: "document", data: map[string]any{"Info": info("M_DOC", anna, anna, nil)},
			message: map[string]any{"documentMessage": mediaJSON("application/pdf", map[string]any{"fileName": "invoice.pdf", "caption": "here"})},
			want: func() InboundMessage {
				m := envelope("M_DOC", "document")
				m.Media = media("document", "application/pdf")
				m.Media.Filename, m.Media.Caption = "invoice.pdf", "here"
				return m
			}()},
		{name: "sticker", data: map[string]any{"Info": info("M_STICKER", anna, anna, nil)},
			message: map[string]any{"stickerMessage": mediaJSON("image/webp", map[string]any{"isAnimated": true})},
			want: func() InboundMessage {
				m := envelope("M_STICKER", "sticker")
				m.Media = media("sticker", "image/webp")
				m.Media.Animated = true
				return m
			}()},
		{name: "location", data: map[string]any{"Info": info("M_LOC", anna, anna, nil)},
			message: map[string]any{"locationMessage": map[string]any{"degreesLatitude": 45.46, "degreesLongitude": 9.19, "name": "Duomo", "address": "Milano"}},
			want: func() InboundMessage {
				m := envelope("M_LOC", "location")
				m.Location = &Location{Latitude: 45.46, Longitude: 9.19, Name: "Duomo", Address: "Milano"}
				return m
			}()},
		{name: "contacts", data: map[string]any{"Info": info("M_CONTACTS", anna, anna, nil)},
			message: map[string]any{"contactsArrayMessage": map[string]any{"contacts": []any{
				map[string]any{"displayName": "Bob", "vcard": "BEGIN:VCARD\nFN:Bob\nEND:VCARD"},
				map[string]any{"displayName": "Eve", "vcard": "BEGIN:VCARD\nFN:Eve\nEND:VCARD"}}}},
			want: func() InboundMessage {
				m := envelope("M_CONTACTS", "contacts")
				m.Contacts = []SharedContact{{Name: "Bob", VCard: "BEGIN:VCARD\nFN:Bob\nEND:VCARD"}, {Name: "Eve", VCard: "BEGIN:VCARD\nFN:Eve\nEND:VCARD"}}
				return m
			}()},
		{name: "reaction", data: map[string]any{"Info": info("M_REACT", anna, anna, nil)},
			message: map[string]any{"reactionMessage": map[string]any{"key": map[string]any{"remoteJID": anna, "fromMe": true, "ID": "3EB0SENT"}, "text": "👍"}},
			want: func() InboundMessage {
				m := envelope("M_REACT", "reaction")
				m.Reaction = &Reaction{MessageID: "3EB0SENT", Emoji: "👍"}
				return m
			}()},
		{name: "edit", data: map[string]any{"Info": info("M_EDIT", anna, anna, nil)},
			message: map[string]any{"protocolMessage": map[string]any{"type": "MESSAGE_EDIT", "key": map[string]any{"remoteJID": anna, "ID": "M_TEXT"}, "editedMessage": map[string]any{"conversation": "ciao!"}}},
			want: func() InboundMessage {
				m := envelope("M_EDIT", "edit")
				m.Edit = &Edit{MessageID: "M_TEXT", Text: "ciao!"}
				return m
			}()},
		{name: "revoke", data: map[string]any{"Info": info("M_REVOKE", anna, anna, nil)},
			message: map[string]any{"protocolMessage": map[string]any{"type": "REVOKE", "key": map[string]any{"remoteJID": anna, "ID": "M_LOC"}}},
			want: func() InboundMessage {
				m := envelope("M_REVOKE", "revoke")
				m.Revoke = &Revoke{MessageID: "M_LOC"}
				return m
			}()},
		{name: "list reply", data: map[string]any{"Info": info("M_LIST", anna, anna, nil)},
			message: map[string]any{"listResponseMessage": map[string]any{"title": "Tuesday", "description": "10:00", "singleSelectReply": map[string]any{"selectedRowID": "slot_2"}}},
			want: func() InboundMessage {
				m := envelope("M_LIST", "interactive")
				m.Interactive = &InteractiveReply{Type: "list_reply", ID: "slot_2", Title: "Tuesday", Description: "10:00"}
				return m
			}()},
		{name: "button reply", data: map[string]any{"Info": info("M_BUTTON", anna, anna, nil)},
			message: map[string]any{"buttonsResponseMessage": map[string]any{"selectedButtonID": "yes", "selectedDisplayText": "Yes"}},
			want: func() InboundMessage {
				m := envelope("M_BUTTON", "interactive")
				m.Interactive = &InteractiveReply{Type: "button_reply", ID: "yes", Title: "Yes"}
				return m
			}()},
		{name: "unsupported poll", data: map[string]any{"Info": info("M_POLL", anna, anna, nil)},
			message: map[string]any{"pollCreationMessage": map[string]any{"name": "Lunch?"}},
			want: func() InboundMessage {
				m := envelope("M_POLL", "unsupported")
				m.Errors = []ErrorDetail{{Title: "message type not supported", Details: `kind "pollCreation" is not relayed by the linked-device connector`}}
				return m
			}()},
		{name: "undecryptable", event: "UndecryptableMessage", data: map[string]any{"Info": info("M_UNDEC", anna, anna, nil)},
			want: func() InboundMessage {
				m := envelope("M_UNDEC", "unsupported")
				m.Errors = []ErrorDetail{{Title: "undecryptable message", Details: "WhatsApp could not decrypt the message; the sender's phone is asked to send it again"}}
				return m
			}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			event := tc.event
			if event == "" {
				event = "Message"
			}
			var extra map[string]any
			if tc.message != nil {
				extra = map[string]any{"message": tc.message}
			}
			inject(t, p, conn, event, tc.data, extra)
			ev := waitEvent(t, p.host, conn.ID, "msg:"+tc.want.MessageID)
			if ev.Type != EventMessageReceived {
				t.Errorf("type %s", ev.Type)
			}
			var got InboundMessage
			if err := json.Unmarshal(ev.Payload, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
			wantCorr := map[string]string{CorrelationPhoneNumberID: ownPhone, CorrelationWAID: tc.want.WAID, CorrelationContactPhone: tc.want.From, CorrelationWAMID: tc.want.MessageID}
			if diff := cmp.Diff(wantCorr, ev.Correlation); diff != "" {
				t.Errorf("correlation (-want +got):\n%s", diff)
			}
			if !ev.OccurredAt.Equal(ts) {
				t.Errorf("occurred at %v", ev.OccurredAt)
			}
		})
	}

	t.Run("group and status messages are skipped", func(t *testing.T) {
		before := len(p.host.Events(conn.ID))
		inject(t, p, conn, "Message", map[string]any{"Info": info("M_GROUP", "120363000000000000@g.us", anna, map[string]any{"IsGroup": true})},
			map[string]any{"message": map[string]any{"conversation": "hi all"}})
		inject(t, p, conn, "Message", map[string]any{"Info": info("M_STATUS", "status@broadcast", anna, nil)},
			map[string]any{"message": map[string]any{"conversation": "my status"}})
		// A marker message after them: once it is there, the skipped
		// ones were handled (events are handled in order).
		inject(t, p, conn, "Message", map[string]any{"Info": info("M_MARK", anna, anna, nil)}, map[string]any{"message": map[string]any{"conversation": "x"}})
		waitEvent(t, p.host, conn.ID, "msg:M_MARK")
		if n := len(p.host.Events(conn.ID)) - before; n != 1 {
			t.Errorf("%d events for a group, a status and a marker; want 1", n)
		}
	})
	t.Run("a redelivered message is one event", func(t *testing.T) {
		before := len(p.host.Events(conn.ID))
		inject(t, p, conn, "Message", map[string]any{"Info": info("M_TEXT", anna, anna, nil)}, map[string]any{"message": map[string]any{"conversation": "secret body"}})
		if n := len(p.host.Events(conn.ID)); n != before {
			t.Errorf("%d events after a redelivery, want %d", n, before)
		}
	})
}

func testReceipts(t *testing.T, p *plugin, conn sdk.Connection) {
	const bob = "393339990009@s.whatsapp.net"
	inject(t, p, conn, "Receipt", map[string]any{"Chat": bob, "Sender": bob, "MessageIDs": []string{"3EB0AAA", "3EB0BBB"}, "Type": "read", "Timestamp": msgTime}, nil)
	for _, id := range []string{"3EB0AAA", "3EB0BBB"} {
		ev := waitEvent(t, p.host, conn.ID, "status:"+id+":read")
		var got MessageStatus
		if err := json.Unmarshal(ev.Payload, &got); err != nil {
			t.Fatal(err)
		}
		ts, _ := time.Parse(time.RFC3339, msgTime)
		want := MessageStatus{PhoneNumberID: ownPhone, MessageID: id, RecipientID: "393339990009", RecipientPhone: "+393339990009", Status: "read", Timestamp: ts}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
		if ev.Type != EventMessageStatus || ev.Correlation[CorrelationWAMID] != id {
			t.Errorf("event %s correlation %v", ev.Type, ev.Correlation)
		}
	}
	inject(t, p, conn, "Receipt", map[string]any{"Chat": bob, "Sender": bob, "MessageIDs": []string{"3EB0AAA"}, "Type": "", "Timestamp": msgTime}, nil)
	waitEvent(t, p.host, conn.ID, "status:3EB0AAA:delivered")
	inject(t, p, conn, "Receipt", map[string]any{"Chat": bob, "Sender": bob, "MessageIDs": []string{"3EB0VOICE"}, "Type": "played", "Timestamp": msgTime}, nil)
	waitEvent(t, p.host, conn.ID, "status:3EB0VOICE:played")

	// A message the account sent from its phone: an echo, and the phone
	// was seen.
	before := len(p.host.SessionUpdates(conn.ID))
	now := time.Now().UTC().Truncate(time.Second)
	inject(t, p, conn, "Message", map[string]any{"Info": map[string]any{"Chat": bob, "Sender": "393331234567@s.whatsapp.net", "IsFromMe": true, "ID": "3EB0ECHO", "Timestamp": now.Format(time.RFC3339)}},
		map[string]any{"message": map[string]any{"conversation": "sent from the phone"}})
	ev := waitEvent(t, p.host, conn.ID, "msg:3EB0ECHO")
	var echo InboundMessage
	if err := json.Unmarshal(ev.Payload, &echo); err != nil {
		t.Fatal(err)
	}
	if ev.Type != EventMessageEcho || echo.From != ownPhone || echo.To != "+393339990009" || echo.WAID != "393339990009" || echo.Text != "sent from the phone" {
		t.Errorf("echo %s %+v", ev.Type, echo)
	}
	u, _ := waitUpdate(t, p.host, conn.ID, before, 5*time.Second, func(u sdk.SessionUpdate) bool { return !u.PhoneSeenAt.IsZero() })
	if !u.PhoneSeenAt.Equal(now) || u.State != sdk.SessionConnected {
		t.Errorf("phone seen update %+v, want at %v", u, now)
	}

	inject(t, p, conn, "Presence", map[string]any{"From": bob, "Unavailable": false}, nil)
	inject(t, p, conn, "ChatPresence", map[string]any{"Chat": bob, "Sender": bob, "State": "composing", "Media": ""}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.host.WaitFor(ctx, func() bool { return len(p.host.Signals(conn.ID)) >= 2 })
	sigs := p.host.Signals(conn.ID)
	if len(sigs) < 2 {
		t.Fatalf("signals %+v", sigs)
	}
	var kinds []string
	for _, s := range sigs {
		kinds = append(kinds, s.Kind+" "+string(s.Payload))
	}
	want := []string{`presence {"phone":"+393339990009","available":true}`, `chat_state {"phone":"+393339990009","state":"composing"}`}
	if diff := cmp.Diff(want, kinds[len(kinds)-2:]); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
}

func testSends(t *testing.T, p *plugin, conn sdk.Connection) {
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/photo.jpg":
			w.Header().Set("Content-Type", "image/jpeg")
			_, _ = w.Write([]byte("\xff\xd8\xff\xe0 a tiny jpeg"))
		case "/voice.ogg":
			w.Header().Set("Content-Type", "audio/ogg")
			_, _ = w.Write([]byte("OggS voice"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()

	callsBefore := len(sentCalls(t, p, conn))
	var res SendResult
	p.mustInvoke(t, conn, ActionSendText, map[string]any{"to": "+39 333 999 0001", "body": "secret body reply", "ledger_id": "msg_1",
		"reply_to": map[string]any{"message_id": "M_TEXT", "from": "+393339990001"}}, &res)
	wantID := string(MessageIDForLedger("msg_1"))
	if res.MessageID != wantID || len(wantID) != 22 || !strings.HasPrefix(wantID, "3EB0") {
		t.Errorf("send_text id %q, want %q (22 chars, 3EB0...)", res.MessageID, wantID)
	}
	// The same ledger id again (a retry after a crash): the same WhatsApp id.
	var again SendResult
	p.mustInvoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "secret body reply", "ledger_id": "msg_1"}, &again)
	if again.MessageID != wantID {
		t.Errorf("retried send id %q, want %q", again.MessageID, wantID)
	}
	// The id core/messaging fixed before the call wins over the derived one.
	var chosen SendResult
	p.mustInvoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "msg_x", "message_id": "3EB0AAAABBBBCCCCDDDDEE"}, &chosen)
	if chosen.MessageID != "3EB0AAAABBBBCCCCDDDDEE" {
		t.Errorf("send with message_id sent as %q", chosen.MessageID)
	}
	var img SendResult
	p.mustInvoke(t, conn, ActionSendMedia, map[string]any{"to": "+393339990001", "type": "image", "link": files.URL + "/photo.jpg", "caption": "our shop", "ledger_id": "msg_2"}, &img)
	p.mustInvoke(t, conn, ActionSendMedia, map[string]any{"to": "+393339990001", "type": "audio", "link": files.URL + "/voice.ogg", "voice": true, "ledger_id": "msg_3"}, nil)
	p.mustInvoke(t, conn, ActionSendReaction, map[string]any{"to": "+393339990001", "message_id": "M_TEXT", "emoji": "❤️", "ledger_id": "msg_4"}, nil)
	p.mustInvoke(t, conn, ActionMarkRead, map[string]any{"chat": "+393339990001", "message_ids": []string{"M_TEXT", "M_IMAGE"}}, nil)
	p.mustInvoke(t, conn, ActionSendChatState, map[string]any{"to": "+393339990001", "state": "composing"}, nil)
	// A contact known only by its LID is answered at its LID: typing, the
	// text quoting its message, the read receipt.
	const lid = "987654321012345@lid"
	p.mustInvoke(t, conn, ActionSendChatState, map[string]any{"to": lid, "state": "composing"}, nil)
	p.mustInvoke(t, conn, ActionSendText, map[string]any{"to": lid, "body": "secret body to a lid", "ledger_id": "msg_lid",
		"reply_to": map[string]any{"message_id": "M_LID", "from": lid}}, nil)
	p.mustInvoke(t, conn, ActionMarkRead, map[string]any{"chat": lid, "message_ids": []string{"M_LID"}}, nil)
	for _, bad := range []string{"98765:12@lid", "12ab@lid", "@lid"} {
		_, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": bad, "body": "hi", "ledger_id": "msg_bad_lid"})
		testkit.RequireKind(t, err, sdk.KindInvalid)
	}
	// A reaction is one emoji: a word is refused before anything is sent.
	_, err := p.invoke(t, conn, ActionSendReaction, map[string]any{"to": "+393339990001", "message_id": "M_TEXT", "emoji": "ok", "ledger_id": "msg_bad_emoji"})
	testkit.RequireKind(t, err, sdk.KindInvalid)

	calls := sentCalls(t, p, conn)[callsBefore:]
	type brief struct{ Method, To, ID, State string }
	var got []brief
	for _, c := range calls {
		got = append(got, brief{c.Method, c.To, c.ID, c.State})
	}
	to := "393339990001@s.whatsapp.net"
	want := []brief{
		{"SendMessage", to, wantID, ""},
		{"SendMessage", to, wantID, ""},
		{"SendMessage", to, "3EB0AAAABBBBCCCCDDDDEE", ""},
		{"Upload", "", "", "WhatsApp Image Keys"},
		{"SendMessage", to, string(MessageIDForLedger("msg_2")), ""},
		{"Upload", "", "", "WhatsApp Audio Keys"},
		{"SendMessage", to, string(MessageIDForLedger("msg_3")), ""},
		{"SendMessage", to, string(MessageIDForLedger("msg_4")), ""},
		{"MarkRead", to, "", ""},
		{"SendChatPresence", to, "", "composing"},
		{"SendChatPresence", lid, "", "composing"},
		{"SendMessage", lid, string(MessageIDForLedger("msg_lid")), ""},
		{"MarkRead", lid, "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("calls at the fake (-want +got):\n%s", diff)
	}
	var reply struct {
		ExtendedTextMessage struct {
			Text        string
			ContextInfo struct {
				StanzaID    string `json:"stanzaID"`
				Participant string
			}
		}
	}
	if err := json.Unmarshal(calls[0].Message, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.ExtendedTextMessage.Text != "secret body reply" || reply.ExtendedTextMessage.ContextInfo.StanzaID != "M_TEXT" || reply.ExtendedTextMessage.ContextInfo.Participant != to {
		t.Errorf("reply message %s", calls[0].Message)
	}
	var image struct {
		ImageMessage struct {
			Caption, Mimetype, DirectPath, MediaKey, FileSHA256, FileEncSHA256 string
			FileLength                                                         string
		}
	}
	if err := json.Unmarshal(calls[4].Message, &image); err != nil {
		t.Fatal(err)
	}
	if image.ImageMessage.Caption != "our shop" || image.ImageMessage.Mimetype != "image/jpeg" || image.ImageMessage.DirectPath == "" {
		t.Errorf("image message %s", calls[4].Message)
	}
	var voice struct {
		AudioMessage struct {
			PTT      bool
			Mimetype string
		}
	}
	if err := json.Unmarshal(calls[6].Message, &voice); err != nil {
		t.Fatal(err)
	}
	if !voice.AudioMessage.PTT || voice.AudioMessage.Mimetype != "audio/ogg; codecs=opus" {
		t.Errorf("voice message %s", calls[6].Message)
	}
	if ids := calls[8].IDs; !slices.Equal(ids, []string{"M_TEXT", "M_IMAGE"}) {
		t.Errorf("mark_read ids %v", ids)
	}
	var lidReply struct {
		ExtendedTextMessage struct {
			ContextInfo struct{ Participant string }
		}
	}
	if err := json.Unmarshal(calls[11].Message, &lidReply); err != nil {
		t.Fatal(err)
	}
	if lidReply.ExtendedTextMessage.ContextInfo.Participant != lid {
		t.Errorf("reply to a LID contact quotes participant %q, want %q", lidReply.ExtendedTextMessage.ContextInfo.Participant, lid)
	}

	t.Run("download_media of a received image", func(t *testing.T) {
		// The image the connector uploaded comes back as a received
		// message; its media object is what download_media takes.
		inject(t, p, conn, "Message", map[string]any{"Info": info("M_DL", to, to, nil)}, map[string]any{"message": map[string]any{"imageMessage": map[string]any{
			"mimetype": "image/jpeg", "directPath": image.ImageMessage.DirectPath, "mediaKey": image.ImageMessage.MediaKey,
			"fileSHA256": image.ImageMessage.FileSHA256, "fileEncSHA256": image.ImageMessage.FileEncSHA256, "fileLength": image.ImageMessage.FileLength}}})
		ev := waitEvent(t, p.host, conn.ID, "msg:M_DL")
		var m InboundMessage
		if err := json.Unmarshal(ev.Payload, &m); err != nil {
			t.Fatal(err)
		}
		var dl DownloadResult
		p.mustInvoke(t, conn, ActionDownloadMedia, map[string]any{"media": m.Media}, &dl)
		sum := sha256.Sum256([]byte("\xff\xd8\xff\xe0 a tiny jpeg"))
		if dl.SHA256 != fmt.Sprintf("%x", sum) || dl.FileLength != 16 || dl.MimeType != "image/jpeg" {
			t.Errorf("download %+v", dl)
		}
		big := *m.Media
		big.FileLength = MaxDownloadBytes + 1
		_, err := p.invoke(t, conn, ActionDownloadMedia, map[string]any{"media": big})
		testkit.RequireKind(t, err, sdk.KindInvalid)
		gone := *m.Media
		gone.DirectPath = "/v/gone"
		_, err = p.invoke(t, conn, ActionDownloadMedia, map[string]any{"media": gone})
		testkit.RequireKind(t, err, sdk.KindNotFound)
	})

	t.Run("typed errors", func(t *testing.T) {
		_, err := p.invoke(t, conn, ActionSendMedia, map[string]any{"to": "+393339990001", "type": "image", "link": files.URL + "/missing.jpg", "ledger_id": "msg_5"})
		testkit.RequireKind(t, err, sdk.KindInvalid)
		inject(t, p, conn, "NotOnWhatsApp", nil, map[string]any{"phones": []string{"+393330000404"}})
		_, err = p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393330000404", "body": "hi", "ledger_id": "msg_6"})
		if e := testkit.RequireKind(t, err, sdk.KindInvalid); e.Code != "not_on_whatsapp" {
			t.Errorf("code %q", e.Code)
		}
		_, err = p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "msg_7"})
		if err != nil {
			t.Errorf("send after an error: %v", err)
		}
		_, err = p.invoke(t, sdk.Connection{ID: "conn_elsewhere"}, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "msg_8"})
		if e := testkit.RequireKind(t, err, sdk.KindRetryable); e.Code != sdk.CodeSessionNotHeld {
			t.Errorf("code %q", e.Code)
		}
	})

	t.Run("check_numbers is rate-limited", func(t *testing.T) {
		var out struct{ Results []NumberCheck }
		p.mustInvoke(t, conn, ActionCheckNumbers, map[string]any{"phones": []string{"+393330000404", "+393339990001"}}, &out)
		want := []NumberCheck{{Phone: "+393330000404"}, {Phone: "+393339990001", OnWhatsApp: true, JID: "393339990001@s.whatsapp.net"}}
		if diff := cmp.Diff(want, out.Results); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		for i := 1; i < checkNumbersBurst; i++ {
			p.mustInvoke(t, conn, ActionCheckNumbers, map[string]any{"phones": []string{"+393339990001"}}, nil)
		}
		_, err := p.invoke(t, conn, ActionCheckNumbers, map[string]any{"phones": []string{"+393339990001"}})
		if e := testkit.RequireKind(t, err, sdk.KindRateLimited); e.RetryAfter <= 0 || e.RetryAfter > checkNumbersEvery {
			t.Errorf("retry after %v", e.RetryAfter)
		}
		many := make([]string, MaxCheckNumbers+1)
		for i := range many {
			many[i] = fmt.Sprintf("+3933300%05d", i)
		}
		_, err = p.invoke(t, conn, ActionCheckNumbers, map[string]any{"phones": many})
		testkit.RequireKind(t, err, sdk.KindInvalid)
	})

	t.Run("start_pairing refuses a paired connection", func(t *testing.T) {
		_, err := p.invoke(t, conn, ActionStartPairing, map[string]any{})
		if e := testkit.RequireKind(t, err, sdk.KindInvalid); e.Code != "already_paired" {
			t.Errorf("code %q", e.Code)
		}
	})

	t.Run("logout", func(t *testing.T) {
		before := len(p.host.SessionUpdates(conn.ID))
		var out LogoutResult
		p.mustInvoke(t, conn, ActionLogout, map[string]any{}, &out)
		if !out.Unlinked {
			t.Error("logout did not unlink at WhatsApp")
		}
		u, _ := waitUpdate(t, p.host, conn.ID, before, 5*time.Second, stateIs(sdk.SessionLoggedOut))
		if u.Reason != ReasonLoggedOutByUser || u.Account != nil {
			t.Errorf("logged out update %+v", u)
		}
		if v, _ := p.host.State(conn.ID, StateDeviceJID); len(v) != 0 {
			t.Errorf("device_jid still %q", v)
		}
		_, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "msg_9"})
		if e := testkit.RequireKind(t, err, sdk.KindRetryable); e.Message != "session not connected" || e.Code != CodeNotConnected {
			t.Errorf("send after logout: %v", e)
		}
		p.mustInvoke(t, conn, ActionLogout, map[string]any{}, &out)
		if out.Unlinked {
			t.Error("second logout unlinked again")
		}
	})
}

func testQRBound(t *testing.T, p *plugin) {
	conn := sdk.Connection{ID: "conn_qr_bound", TenantID: "tenant_a"}
	p.open(t, conn)
	// Two short-lived codes that nobody scans: pairing, pairing, then the
	// pairing ends instead of looping.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(p.host.SessionUpdates(conn.ID), func(u sdk.SessionUpdate) bool { return u.QRCode == "b1" }) {
		if time.Now().After(deadline) {
			t.Fatal("no QR code")
		}
		inject(t, p, conn, "QR", map[string]any{"Codes": []string{"b1", "b2"}}, map[string]any{"timeout_ms": 300})
		time.Sleep(100 * time.Millisecond)
	}
	u, i := waitUpdate(t, p.host, conn.ID, 0, 5*time.Second, stateIs(sdk.SessionLoggedOut))
	if u.Reason != ReasonPairingTimedOut {
		t.Errorf("reason %q", u.Reason)
	}
	var codes []string
	for _, u := range p.host.SessionUpdates(conn.ID)[:i] {
		if u.QRCode != "" {
			codes = append(codes, u.QRCode)
		}
	}
	if len(codes) < 2 || codes[len(codes)-1] != "b2" {
		t.Errorf("codes before the end %v", codes)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(p.host.SessionUpdates(conn.ID)); n != i+1 {
		t.Errorf("%d updates after the pairing ended: %+v", n-i-1, p.host.SessionUpdates(conn.ID)[i+1:])
	}

	// Pairing by phone code, started by the action: it waits for the
	// pairing socket's first QR code, then asks for a code.
	done := make(chan error, 1)
	var res PairingResult
	go func() {
		out, err := p.invoke(t, conn, ActionStartPairing, map[string]any{"phone": "+39 333 765 4321"})
		if err == nil {
			err = json.Unmarshal(out, &res)
		}
		done <- err
	}()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(200 * time.Millisecond):
			inject(t, p, conn, "QR", map[string]any{"Codes": []string{"p1"}}, nil)
		}
	}
	if err != nil {
		t.Fatalf("start_pairing by phone: %v", err)
	}
	h := sha256.Sum256([]byte("393337654321"))
	code := fmt.Sprintf("%X", h[:4])
	if want := code[:4] + "-" + code[4:]; res.PairingCode != want {
		t.Errorf("pairing code %q, want %q", res.PairingCode, want)
	}
	waitUpdate(t, p.host, conn.ID, i+1, 5*time.Second, func(u sdk.SessionUpdate) bool {
		return u.State == sdk.SessionPairing && u.PairingCode == res.PairingCode
	})
	inject(t, p, conn, "PairError", map[string]any{"ID": "393337654321:3@s.whatsapp.net"}, map[string]any{"error": "invalid device signature"})
	u, _ = waitUpdate(t, p.host, conn.ID, i+1, 5*time.Second, stateIs(sdk.SessionLoggedOut))
	if u.Reason != "pairing failed: invalid device signature" {
		t.Errorf("pair error reason %q", u.Reason)
	}

	// A pairing whose socket cannot connect reports the network and
	// retries by itself.
	inject(t, p, conn, "ConnectError", nil, map[string]any{"error": "dns"})
	defer inject(t, p, conn, "ConnectError", nil, map[string]any{"error": ""})
	n := len(p.host.SessionUpdates(conn.ID))
	p.mustInvoke(t, conn, ActionStartPairing, map[string]any{}, &res)
	if !res.Started {
		t.Error("QR pairing not started")
	}
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Reason != "network unreachable: lookup web.whatsapp.com: no such host" || u.RetryAt.Before(time.Now()) {
		t.Errorf("pairing without network: %+v", u)
	}
}

func testStates(t *testing.T, p *plugin) {
	conn := sdk.Connection{ID: "conn_states", TenantID: "tenant_b"}
	pair(t, p, conn, "393330001111:5@s.whatsapp.net")
	next := func() int { return len(p.host.SessionUpdates(conn.ID)) }

	n := next()
	inject(t, p, conn, "Disconnected", nil, nil)
	u, _ := waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Reason != reasonConnectionLost || time.Until(u.RetryAt) > 3*time.Second || u.RetryAt.IsZero() {
		t.Errorf("disconnected %+v", u)
	}
	// The session reconnects by itself after the backoff; whatsmeow then
	// says Connected.
	time.Sleep(time.Until(u.RetryAt) + 300*time.Millisecond)
	inject(t, p, conn, "Connected", nil, nil)
	waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionConnected))

	// Keepalives failing for long: the session drops the socket and
	// reconnects (whatsmeow does so only with its own auto-reconnect).
	n = next()
	inject(t, p, conn, "KeepAliveTimeout", map[string]any{"ErrorCount": 1, "LastSuccess": time.Now().Add(-time.Second).Format(time.RFC3339Nano)}, nil)
	inject(t, p, conn, "KeepAliveTimeout", map[string]any{"ErrorCount": 5, "LastSuccess": time.Now().Add(-5 * time.Minute).Format(time.RFC3339Nano)}, nil)
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Reason != reasonConnectionLost+": keepalive timed out" || u.RetryAt.IsZero() {
		t.Errorf("keepalive %+v", u)
	}
	if got := len(p.host.SessionUpdates(conn.ID)) - n; got != 1 {
		t.Errorf("%d updates for two keepalive timeouts, want 1 (the short one is ignored)", got)
	}
	time.Sleep(time.Until(u.RetryAt) + 300*time.Millisecond)
	inject(t, p, conn, "Connected", nil, nil)
	waitUpdate(t, p.host, conn.ID, n+1, 5*time.Second, stateIs(sdk.SessionConnected))

	n = next()
	inject(t, p, conn, "StreamReplaced", nil, nil)
	u, i := waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Reason != ReasonStreamReplaced || !u.RetryAt.IsZero() {
		t.Errorf("stream replaced %+v", u)
	}
	_, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "st_1"})
	testkit.RequireKind(t, err, sdk.KindRetryable)

	inject(t, p, conn, "Connected", nil, nil)
	waitUpdate(t, p.host, conn.ID, i+1, 5*time.Second, stateIs(sdk.SessionConnected))
	n = next()
	inject(t, p, conn, "TemporaryBan", map[string]any{"Code": 101, "Expire": int64(time.Hour)}, nil)
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionTemporarilyBanned))
	if !strings.HasPrefix(u.Reason, "temporary ban (101): ") || u.BannedUntil.Before(time.Now().Add(59*time.Minute)) || u.BannedUntil.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("temporary ban %+v", u)
	}

	inject(t, p, conn, "Connected", nil, nil)
	n = next()
	inject(t, p, conn, "ConnectFailure", map[string]any{"Reason": 403, "Message": "account locked"}, nil)
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionBanned))
	if u.Reason != "banned (403): primary device was logged out (account locked)" {
		t.Errorf("ban reason %q", u.Reason)
	}

	inject(t, p, conn, "Connected", nil, nil)
	n = next()
	inject(t, p, conn, "ClientOutdated", nil, nil)
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Reason != ReasonClientOutdated {
		t.Errorf("client outdated %q", u.Reason)
	}

	inject(t, p, conn, "Connected", nil, nil)
	n = next()
	inject(t, p, conn, "LoggedOut", map[string]any{"Reason": 401}, nil)
	u, _ = waitUpdate(t, p.host, conn.ID, n, 5*time.Second, stateIs(sdk.SessionLoggedOut))
	if u.Reason != "logged out: logged out from another device" || u.Account != nil {
		t.Errorf("logged out %+v", u)
	}
	if v, _ := p.host.State(conn.ID, StateDeviceJID); len(v) != 0 {
		t.Errorf("device_jid still %q", v)
	}

	// Opened again (on this node or another), the connection pairs anew.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.bin.Client.CloseSession(ctx, conn.ID); err != nil {
		t.Fatal(err)
	}
	pair(t, p, conn, "393330001111:6@s.whatsapp.net")
	if _, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "st_2"}); err != nil {
		t.Errorf("send after pairing again: %v", err)
	}
}

func testNotHeld(t *testing.T, p *plugin) {
	conn := sdk.Connection{ID: "conn_moved", TenantID: "tenant_b"}
	pair(t, p, conn, "393330002222:7@s.whatsapp.net")
	p.host.ReleaseSession(conn.ID, false)
	defer p.host.ReleaseSession(conn.ID, true)
	// The next report is refused: the session closes here at once.
	_, _ = p.invoke(t, conn, "test_inject", map[string]any{"event": "Message", "data": map[string]any{"Info": info("M_MOVED", "393339990001@s.whatsapp.net", "393339990001@s.whatsapp.net", nil)},
		"message": map[string]any{"conversation": "hi"}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "nh_1"})
		var e *sdk.Error
		if ok := asSDK(err, &e); ok && e.Code == sdk.CodeSessionNotHeld {
			if e.Kind != sdk.KindRetryable {
				t.Errorf("kind %s", e.Kind)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session is still held after the host refused a report: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(p.host.Events(conn.ID)); n != 0 {
		t.Errorf("%d events stored for a session not held", n)
	}
}

// testHostDown: while the host cannot store events (its database failing
// over), a received message is held, not acknowledged and dropped; it is
// stored as soon as the host can again.
func testHostDown(t *testing.T, p *plugin, conn sdk.Connection) {
	const anna = "393339990001@s.whatsapp.net"
	p.host.FailEmits(sdk.Retryable("the database is failing over"))
	done := make(chan error, 1)
	go func() {
		// test_inject returns when the connector's handler does.
		_, err := p.invoke(t, conn, "test_inject", map[string]any{"event": "Message", "data": map[string]any{"Info": info("M_WAITS", anna, anna, nil)},
			"message": map[string]any{"conversation": "still there?"}})
		done <- err
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the handler returned (and whatsmeow would acknowledge the message) while the host could not store it")
	default:
	}
	p.host.FailEmits(nil)
	waitEvent(t, p.host, conn.ID, "msg:M_WAITS")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("test_inject: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the host stored the message")
	}
}
