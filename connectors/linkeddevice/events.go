package linkeddevice

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// InboundMessage is the payload of [EventMessageReceived] and
// [EventMessageEcho]: the Cloud API connector's shape (the same envelope and
// content fields), plus what only a linked device knows (lid, edit, revoke,
// media download keys). Its parts are plugins/sdk/whatsapp's; the envelope
// stays here because Contacts is a list of [SharedContact], where the Cloud
// API connector sends Meta's own shape.
type InboundMessage struct {
	// PhoneNumberID is the linked account's own phone number, E.164. (The
	// Cloud API puts Meta's phone number id here; a linked device has no
	// other id for the number.)
	PhoneNumberID string `json:"phone_number_id"`
	// From is the sender in E.164 when its phone number is known (for an
	// echo, the account itself). WhatsApp may address a contact by LID
	// only; then From is empty and LID is set.
	From string `json:"from"`
	// To is the recipient of an echo, E.164 when known.
	To string `json:"to,omitempty"`
	// WAID is the contact's WhatsApp id (digits of its phone number).
	WAID string `json:"wa_id"`
	// LID is the contact's hidden-number identity ("123456789@lid"), when
	// known.
	LID string `json:"lid,omitempty"`
	// ProfileName is the sender's push name.
	ProfileName string `json:"profile_name,omitempty"`
	// MessageID is WhatsApp's message id, also in the dedupe key.
	MessageID string `json:"message_id"`
	// Timestamp is when the message was sent, UTC.
	Timestamp time.Time `json:"timestamp"`
	// Type is text, image, audio, video, document, sticker, location,
	// contacts, reaction, interactive, button, edit, revoke or unsupported.
	Type string `json:"type"`
	// Text is the body of a text message.
	Text string `json:"text,omitempty"`
	// Media describes an image, audio, video, document or sticker.
	Media *Media `json:"media,omitempty"`
	// Location is a shared location.
	Location *Location `json:"location,omitempty"`
	// Contacts are shared contact cards.
	Contacts []SharedContact `json:"contacts,omitempty"`
	// Interactive is an answer to buttons or a list.
	Interactive *InteractiveReply `json:"interactive,omitempty"`
	// Button is a tap on a template's quick-reply button.
	Button *ButtonReply `json:"button,omitempty"`
	// Reaction is an emoji reaction (an empty emoji removes it).
	Reaction *Reaction `json:"reaction,omitempty"`
	// Context is set when the message quotes another message.
	Context *MessageContext `json:"context,omitempty"`
	// Edit is set on type "edit": the message edited and its new text.
	Edit *Edit `json:"edit,omitempty"`
	// Revoke is set on type "revoke": the message deleted for everyone.
	Revoke *Revoke `json:"revoke,omitempty"`
	// Errors explain an "unsupported" message, as the Cloud API's do.
	Errors []ErrorDetail `json:"errors,omitempty"`
}

// The parts of the payloads are the WhatsApp connectors' shared vocabulary,
// plugins/sdk/whatsapp; the names stay declared here so that callers of this
// package read them as before.
type (
	// Media is a received media object. Pass it whole to the download_media
	// action: the download fields are WhatsApp's CDN path and the keys that
	// decrypt the file (base64).
	Media = whatsapp.Media
	// Location is a shared location.
	Location = whatsapp.Location
	// SharedContact is a contact card: its display name and vCard.
	SharedContact = whatsapp.SharedContact
	// InteractiveReply is an answer to buttons or a list, in the Cloud API's
	// shape: type button_reply, list_reply or nfm_reply.
	InteractiveReply = whatsapp.InteractiveReply
	// ButtonReply is a tap on a template's quick-reply button.
	ButtonReply = whatsapp.ButtonReply
	// Reaction is an emoji reaction to a message.
	Reaction = whatsapp.Reaction
	// MessageContext names the message a reply quotes.
	MessageContext = whatsapp.MessageContext
	// Edit is an edit of an earlier message.
	Edit = whatsapp.Edit
	// Revoke is the deletion of an earlier message for everyone.
	Revoke = whatsapp.Revoke
	// ErrorDetail explains an unsupported message.
	ErrorDetail = whatsapp.ErrorDetail
)

// MessageStatus is the payload of [EventMessageStatus], the Cloud API
// connector's shape without what only Meta reports (ledger_id, conversation,
// pricing, errors), and with the recipient's LID.
type MessageStatus struct {
	PhoneNumberID string `json:"phone_number_id"`
	MessageID     string `json:"message_id"`
	// RecipientID is the recipient's WhatsApp id (digits), when known.
	RecipientID string `json:"recipient_id,omitempty"`
	// RecipientPhone is the recipient, E.164, when known.
	RecipientPhone string `json:"recipient_phone,omitempty"`
	// RecipientLID is the recipient's LID when WhatsApp addressed it so.
	RecipientLID string `json:"recipient_lid,omitempty"`
	// Status is delivered, read, played or failed.
	Status    string    `json:"status"`
	Timestamp time.Time `json:"timestamp"`
}

type (
	// Presence is the payload of the presence signal.
	Presence = whatsapp.Presence
	// ChatState is the payload of the chat_state signal: a contact is typing
	// (composing, media "audio" while recording) or stopped (paused).
	ChatState = whatsapp.ChatState
)

// e164 returns "+digits" for the user part of a phone-number JID.
func e164(user string) string {
	if user == "" {
		return ""
	}
	return "+" + user
}

func isPhoneServer(server string) bool {
	return server == types.DefaultUserServer || server == types.HostedServer || server == types.LegacyUserServer
}

func isLIDServer(server string) bool {
	return server == types.HiddenUserServer || server == types.HostedLIDServer
}

// party is a contact as an event names it.
type party struct {
	phone types.JID // phone-number JID, empty when unknown
	lid   types.JID
}

func (p party) e164() string {
	if p.phone.IsEmpty() {
		return ""
	}
	return e164(p.phone.User)
}

func (p party) lidString() string {
	if p.lid.IsEmpty() {
		return ""
	}
	return p.lid.String()
}

// resolve returns the phone number and LID of a user addressed as jid, with
// alt its other address when WhatsApp sent one; a LID without alt is looked
// up in the store's LID map.
func (s *session) resolve(ctx context.Context, cli waClient, jid, alt types.JID) party {
	jid, alt = jid.ToNonAD(), alt.ToNonAD()
	var p party
	switch {
	case isLIDServer(jid.Server):
		p.lid = jid
		if isPhoneServer(alt.Server) {
			p.phone = alt
		} else if pn, err := cli.phoneForLID(ctx, jid); err != nil {
			s.log.Warn("looking up the phone number of a LID", "error", err)
		} else if !pn.IsEmpty() {
			p.phone = pn.ToNonAD()
		}
	case isPhoneServer(jid.Server):
		p.phone = jid
		if isLIDServer(alt.Server) {
			p.lid = alt
		}
	}
	if !p.phone.IsEmpty() {
		p.phone.Server = types.DefaultUserServer
	}
	return p
}

// skipChat reports why a chat is not one Ponte's inbox handles, or "".
func skipChat(src types.MessageSource) string {
	switch {
	case src.IsGroup || src.Chat.Server == types.GroupServer:
		return "group chat"
	case src.Chat.Server == types.BroadcastServer:
		return "status or broadcast list"
	case src.Chat.Server == types.NewsletterServer:
		return "channel"
	case !isPhoneServer(src.Chat.Server) && !isLIDServer(src.Chat.Server):
		return "chat on server " + src.Chat.Server
	}
	return ""
}

// emit stores events at the host. With SynchronousAck whatsmeow
// acknowledges a message to WhatsApp only when the handler returns, so a
// host that cannot store it right now (restarting, its database failing
// over) is waited for, with backoff up to emitMaxDelay, for as long as the
// session is held here: the handler holds up this session's events
// meanwhile, and if the socket drops, WhatsApp redelivers what was never
// acknowledged. It gives up only on errors retrying cannot fix (a connector
// bug, a disabled connection) and when the session closes.
func (s *session) emit(evs ...sdk.Event) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.ctx, hostCallTimeout)
		err := s.c.host.Emit(ctx, s.id, evs...)
		cancel()
		if err == nil {
			return
		}
		if s.checkHeld(err) {
			return
		}
		if k := sdk.KindOf(err); k == sdk.KindInvalid || k == sdk.KindPermanent || k == sdk.KindNotFound {
			s.log.Error("emitting events to the host failed for good", "type", evs[0].Type, "error", err, "attempts", attempt)
			return
		}
		if attempt == 4 {
			s.log.Warn("the host cannot store events; waiting for it", "type", evs[0].Type, "error", err)
		}
		select {
		case <-s.ctx.Done():
			s.log.Warn("session closed before the host stored its events; WhatsApp redelivers unacknowledged messages",
				"type", evs[0].Type, "attempts", attempt)
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, emitMaxDelay)
	}
}

// emitMaxDelay caps the wait between two attempts to store events.
const emitMaxDelay = 30 * time.Second

func correlation(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func (s *session) onMessage(cli waClient, e *events.Message) {
	if why := skipChat(e.Info.MessageSource); why != "" {
		s.log.Debug("message skipped", "why", why, "message_id", e.Info.ID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	m, ok := convertMessage(e.Message)
	if !ok {
		s.log.Debug("protocol message skipped", "message_id", e.Info.ID)
		return
	}
	if e.IsEdit && m.Type != "edit" {
		// An edit whittled down to its new content by whatsmeow.
		m = InboundMessage{Type: "edit", Edit: &Edit{MessageID: e.Info.ID, Text: textOf(e.Message)}}
	}
	s.fillEnvelope(ctx, cli, &m, e.Info)
	if e.Info.IsFromMe {
		s.sawPhone(e.Info.Timestamp)
		s.emitMessage(EventMessageEcho, m, m.To)
		return
	}
	s.emitMessage(EventMessageReceived, m, m.From)
}

func (s *session) onUndecryptable(cli waClient, e *events.UndecryptableMessage) {
	if why := skipChat(e.Info.MessageSource); why != "" {
		s.log.Debug("undecryptable message skipped", "why", why, "message_id", e.Info.ID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	detail := "WhatsApp could not decrypt the message; the sender's phone is asked to send it again"
	if e.IsUnavailable {
		detail = "the message is not available on this device (" + string(e.UnavailableType) + "); it can be read on the phone"
	}
	m := InboundMessage{Type: "unsupported", Errors: []ErrorDetail{{Code: 0, Title: "undecryptable message", Details: detail}}}
	s.fillEnvelope(ctx, cli, &m, e.Info)
	if e.Info.IsFromMe {
		return
	}
	s.emitMessage(EventMessageReceived, m, m.From)
}

// fillEnvelope sets who sent a message to whom, and when.
func (s *session) fillEnvelope(ctx context.Context, cli waClient, m *InboundMessage, info types.MessageInfo) {
	own := cli.device()
	m.PhoneNumberID = e164(own.ID.User)
	m.MessageID = info.ID
	m.Timestamp = info.Timestamp.UTC()
	m.ProfileName = info.PushName
	var contact party
	if info.IsFromMe {
		contact = s.resolve(ctx, cli, info.Chat, info.RecipientAlt)
		m.From = m.PhoneNumberID
		m.To = contact.e164()
		m.ProfileName = ""
	} else {
		contact = s.resolve(ctx, cli, info.Sender, info.SenderAlt)
		m.From = contact.e164()
	}
	m.WAID = contact.phone.User
	m.LID = contact.lidString()
	if m.Context != nil && m.Context.From != "" {
		// The quoted message's sender as a phone number when known.
		if jid, err := types.ParseJID(m.Context.From); err == nil {
			m.Context.From = s.resolve(ctx, cli, jid, types.EmptyJID).e164()
		}
	}
}

// emitMessage emits a message event with the Cloud API connector's dedupe
// key and correlation keys.
func (s *session) emitMessage(typ string, m InboundMessage, contactPhone string) {
	payload, err := json.Marshal(m)
	if err != nil {
		s.log.Error("encoding a message event", "error", err)
		return
	}
	s.log.Info("message", "event", typ, "type", m.Type, "message_id", m.MessageID)
	s.emit(sdk.Event{
		DedupeKey:   "msg:" + m.MessageID,
		Type:        typ,
		OccurredAt:  m.Timestamp,
		Correlation: correlation(CorrelationPhoneNumberID, m.PhoneNumberID, CorrelationWAID, m.WAID, CorrelationContactPhone, contactPhone, CorrelationWAMID, m.MessageID),
		Payload:     payload,
	})
}

// textOf returns the text of a text message, or the caption of media.
func textOf(msg *waE2E.Message) string {
	switch {
	case msg.GetConversation() != "":
		return msg.GetConversation()
	case msg.GetExtendedTextMessage() != nil:
		return msg.GetExtendedTextMessage().GetText()
	case msg.GetImageMessage() != nil:
		return msg.GetImageMessage().GetCaption()
	case msg.GetVideoMessage() != nil:
		return msg.GetVideoMessage().GetCaption()
	case msg.GetDocumentMessage() != nil:
		return msg.GetDocumentMessage().GetCaption()
	}
	return ""
}

func b64(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

func contextOf(ci *waE2E.ContextInfo) *MessageContext {
	if ci == nil || (ci.GetStanzaID() == "" && !ci.GetIsForwarded()) {
		return nil
	}
	return &MessageContext{MessageID: ci.GetStanzaID(), From: ci.GetParticipant(), Forwarded: ci.GetIsForwarded()}
}

// mediaFields is what every WhatsApp media message has.
type mediaFields interface {
	GetMimetype() string
	GetFileSHA256() []byte
	GetFileLength() uint64
	GetDirectPath() string
	GetMediaKey() []byte
	GetFileEncSHA256() []byte
	GetContextInfo() *waE2E.ContextInfo
}

func mediaOf(kind string, f mediaFields) *Media {
	return &Media{
		Kind:          kind,
		MimeType:      f.GetMimetype(),
		SHA256:        hex.EncodeToString(f.GetFileSHA256()),
		FileLength:    f.GetFileLength(),
		DirectPath:    f.GetDirectPath(),
		MediaKey:      b64(f.GetMediaKey()),
		FileEncSHA256: b64(f.GetFileEncSHA256()),
	}
}

// convertMessage turns a WhatsApp message into the content of an event,
// without the envelope. It reports false for protocol messages that are no
// message at all (history sync notices, key shares, disappearing-timer
// changes).
func convertMessage(msg *waE2E.Message) (InboundMessage, bool) {
	var m InboundMessage
	switch {
	case msg == nil:
		m.Type = "unsupported"
		m.Errors = []ErrorDetail{{Title: "empty message"}}
	case msg.GetProtocolMessage() != nil:
		pm := msg.GetProtocolMessage()
		switch pm.GetType() {
		case waE2E.ProtocolMessage_REVOKE:
			m.Type = "revoke"
			m.Revoke = &Revoke{MessageID: pm.GetKey().GetID()}
		case waE2E.ProtocolMessage_MESSAGE_EDIT:
			m.Type = "edit"
			m.Edit = &Edit{MessageID: pm.GetKey().GetID(), Text: textOf(pm.GetEditedMessage())}
		default:
			return m, false
		}
	case msg.GetConversation() != "":
		m.Type = "text"
		m.Text = msg.GetConversation()
	case msg.GetExtendedTextMessage() != nil:
		x := msg.GetExtendedTextMessage()
		m.Type = "text"
		m.Text = x.GetText()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetImageMessage() != nil:
		x := msg.GetImageMessage()
		m.Type = "image"
		m.Media = mediaOf("image", x)
		m.Media.Caption = x.GetCaption()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetAudioMessage() != nil:
		x := msg.GetAudioMessage()
		m.Type = "audio"
		m.Media = mediaOf("audio", x)
		m.Media.Voice = x.GetPTT()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetVideoMessage() != nil:
		x := msg.GetVideoMessage()
		m.Type = "video"
		m.Media = mediaOf("video", x)
		m.Media.Caption = x.GetCaption()
		m.Media.Animated = x.GetGifPlayback()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetDocumentMessage() != nil:
		x := msg.GetDocumentMessage()
		m.Type = "document"
		m.Media = mediaOf("document", x)
		m.Media.Caption = x.GetCaption()
		m.Media.Filename = x.GetFileName()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetStickerMessage() != nil:
		x := msg.GetStickerMessage()
		m.Type = "sticker"
		m.Media = mediaOf("sticker", x)
		m.Media.Animated = x.GetIsAnimated()
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetLocationMessage() != nil:
		x := msg.GetLocationMessage()
		m.Type = "location"
		m.Location = &Location{Latitude: x.GetDegreesLatitude(), Longitude: x.GetDegreesLongitude(), Name: x.GetName(), Address: x.GetAddress(), URL: x.GetURL()}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetLiveLocationMessage() != nil:
		x := msg.GetLiveLocationMessage()
		m.Type = "location"
		m.Location = &Location{Latitude: x.GetDegreesLatitude(), Longitude: x.GetDegreesLongitude(), Name: x.GetCaption(), Live: true}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetContactMessage() != nil:
		x := msg.GetContactMessage()
		m.Type = "contacts"
		m.Contacts = []SharedContact{{Name: x.GetDisplayName(), VCard: x.GetVcard()}}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetContactsArrayMessage() != nil:
		x := msg.GetContactsArrayMessage()
		m.Type = "contacts"
		for _, c := range x.GetContacts() {
			m.Contacts = append(m.Contacts, SharedContact{Name: c.GetDisplayName(), VCard: c.GetVcard()})
		}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetReactionMessage() != nil:
		x := msg.GetReactionMessage()
		m.Type = "reaction"
		m.Reaction = &Reaction{MessageID: x.GetKey().GetID(), Emoji: x.GetText()}
	case msg.GetButtonsResponseMessage() != nil:
		x := msg.GetButtonsResponseMessage()
		m.Type = "interactive"
		m.Interactive = &InteractiveReply{Type: "button_reply", ID: x.GetSelectedButtonID(), Title: x.GetSelectedDisplayText()}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetListResponseMessage() != nil:
		x := msg.GetListResponseMessage()
		m.Type = "interactive"
		m.Interactive = &InteractiveReply{Type: "list_reply", ID: x.GetSingleSelectReply().GetSelectedRowID(), Title: x.GetTitle(), Description: x.GetDescription()}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetTemplateButtonReplyMessage() != nil:
		x := msg.GetTemplateButtonReplyMessage()
		m.Type = "button"
		m.Button = &ButtonReply{Payload: x.GetSelectedID(), Text: x.GetSelectedDisplayText()}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetInteractiveResponseMessage() != nil:
		x := msg.GetInteractiveResponseMessage()
		m.Type = "interactive"
		m.Interactive = &InteractiveReply{Type: "nfm_reply", Title: x.GetBody().GetText(), ResponseJSON: x.GetNativeFlowResponseMessage().GetParamsJSON()}
		m.Context = contextOf(x.GetContextInfo())
	case msg.GetSenderKeyDistributionMessage() != nil && onlySenderKey(msg):
		return m, false
	default:
		m.Type = "unsupported"
		m.Errors = []ErrorDetail{{Title: "message type not supported", Details: "kind " + messageKind(msg) + " is not relayed by the linked-device connector"}}
	}
	return m, true
}

// onlySenderKey reports whether a message carries nothing but a group
// sender key (a setup message, no content).
func onlySenderKey(msg *waE2E.Message) bool { return contentField(msg) == "" }

// contentField names the first content field set on a message ("" when
// none: only context or key material).
func contentField(msg *waE2E.Message) string {
	var kind string
	msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		if name == "messageContextInfo" || name == "senderKeyDistributionMessage" {
			return true
		}
		kind = name
		return false
	})
	return kind
}

// messageKind names the kind of a message for the reason of an unsupported
// one (never its content).
func messageKind(msg *waE2E.Message) string {
	kind := contentField(msg)
	if kind == "" {
		return "unknown"
	}
	return fmt.Sprintf("%q", strings.TrimSuffix(kind, "Message"))
}

// receiptStatus maps a receipt type to the Cloud API's status vocabulary;
// "" for receipts that are not a status of a sent message.
func receiptStatus(t types.ReceiptType) string {
	switch t {
	case types.ReceiptTypeDelivered:
		return "delivered"
	case types.ReceiptTypeRead:
		return "read"
	case types.ReceiptTypePlayed:
		return "played"
	case types.ReceiptTypeServerError:
		return "failed"
	}
	return ""
}

func (s *session) onReceipt(cli waClient, e *events.Receipt) {
	if e.IsFromMe {
		// Our own phone read or played a message (read-self, played-self)
		// or confirmed a delivery to itself: it is alive.
		s.sawPhone(e.Timestamp)
		return
	}
	status := receiptStatus(e.Type)
	if status == "" {
		s.log.Debug("receipt ignored", "type", string(e.Type))
		return
	}
	if why := skipChat(e.MessageSource); why != "" {
		s.log.Debug("receipt skipped", "why", why)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	p := s.resolve(ctx, cli, e.Chat, e.SenderAlt)
	if p.phone.IsEmpty() && p.lid.IsEmpty() {
		p = s.resolve(ctx, cli, e.Sender, e.SenderAlt)
	}
	own := e164(cli.device().ID.User)
	at := e.Timestamp.UTC()
	evs := make([]sdk.Event, 0, len(e.MessageIDs))
	for _, id := range e.MessageIDs {
		payload, err := json.Marshal(MessageStatus{
			PhoneNumberID: own, MessageID: id, RecipientID: p.phone.User, RecipientPhone: p.e164(),
			RecipientLID: p.lidString(), Status: status, Timestamp: at,
		})
		if err != nil {
			s.log.Error("encoding a status event", "error", err)
			return
		}
		evs = append(evs, sdk.Event{
			DedupeKey:   "status:" + id + ":" + status,
			Type:        EventMessageStatus,
			OccurredAt:  at,
			Correlation: correlation(CorrelationWAMID, id, CorrelationPhoneNumberID, own, CorrelationContactPhone, p.e164(), CorrelationWAID, p.phone.User),
			Payload:     payload,
		})
	}
	if len(evs) > 0 {
		s.emit(evs...)
	}
}

// signal relays a short-lived notice; failures only matter when the host
// says the session moved.
func (s *session) signal(kind string, payload any, at time.Time) {
	b, err := json.Marshal(payload)
	if err != nil {
		s.log.Error("encoding a signal", "kind", kind, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	if err := s.c.host.Signal(ctx, s.id, sdk.Signal{Kind: kind, Payload: b, At: at}); err != nil && !s.checkHeld(err) {
		s.log.Debug("relaying a signal", "kind", kind, "error", err)
	}
}

func (s *session) onPresence(cli waClient, e *events.Presence) {
	if !isPhoneServer(e.From.Server) && !isLIDServer(e.From.Server) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	p := s.resolve(ctx, cli, e.From, types.EmptyJID)
	pr := Presence{Phone: p.e164(), LID: p.lidString(), Available: !e.Unavailable}
	if !e.LastSeen.IsZero() {
		t := e.LastSeen.UTC()
		pr.LastSeen = &t
	}
	s.signal(SignalPresence, pr, time.Now().UTC())
}

func (s *session) onChatPresence(cli waClient, e *events.ChatPresence) {
	if skipChat(e.MessageSource) != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	p := s.resolve(ctx, cli, e.Sender, e.SenderAlt)
	s.signal(SignalChatState, ChatState{Phone: p.e164(), LID: p.lidString(), State: string(e.State), Media: string(e.Media)}, time.Now().UTC())
}
