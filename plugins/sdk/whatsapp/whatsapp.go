// Package whatsapp is the shared vocabulary of WhatsApp connectors: the event
// types, correlation keys, signal kinds and payload parts a connector for a
// WhatsApp number emits so that Ponte's inbox, contact book, consent keywords
// and message ledger work with it unchanged.
//
// Ponte ships two such connectors, one for Meta's Cloud API
// (connectors/cloudapi) and one for a linked device (connectors/linkeddevice);
// an agency writing another (a Business Solution Provider's API, another
// bridge) normalizes its provider's messages into these types and emits them
// with these event types and correlation keys. Connectors import only the SDK,
// never each other, which is why the vocabulary lives here.
//
// The JSON of every type here is a wire contract: the core decodes it from
// stored events, so a field's name and its omitempty are never changed, only
// new optional fields added. Fields one kind of connector cannot know (a Cloud
// API media id, a linked device's download keys) are omitted when empty, so
// each connector's payloads carry only what it has.
//
// The envelopes of the two message events are not here yet: the Cloud API
// connector's message.received payload carries "contacts" in Meta's own shape
// where the linked-device connector carries a list of [SharedContact], and the
// two message.status payloads disagree on whether "ledger_id" is omitted when
// empty. Until one shape is chosen, each connector declares its InboundMessage
// and MessageStatus around the parts below, with the same names for the
// fields they share: phone_number_id, from, wa_id, profile_name, message_id,
// timestamp, type, text, media, location, interactive, button, reaction,
// context and errors on messages; phone_number_id, message_id, recipient_id,
// recipient_phone, status and timestamp on statuses.
package whatsapp

import "time"

// Event types of WhatsApp connectors. Declare the ones the connector emits in
// its manifest.
const (
	// EventMessageReceived: a contact sent a message to the connection's
	// number. Its dedupe key is "msg:" and the message id, so that a
	// provider's redelivery is stored once.
	EventMessageReceived = "message.received"
	// EventMessageEcho: the number's own account sent a message by other
	// means than Ponte (its phone, another linked device). Only connectors
	// that see such messages emit it; it has the payload of
	// EventMessageReceived, with the contact in "to".
	EventMessageEcho = "message.echo"
	// EventMessageStatus: a message the number sent changed status (sent,
	// delivered, read, played, failed). Its dedupe key is "status:", the
	// message id, ":" and the status, so every transition is one event.
	EventMessageStatus = "message.status"
)

// Correlation keys WhatsApp connectors set on their events (sdk.Event
// Correlation), each only when its value is known and non-empty.
const (
	// CorrelationPhoneNumberID is the connection's own number as the
	// payload's phone_number_id has it: Meta's phone number id on the Cloud
	// API, the account's number in E.164 on a linked device.
	CorrelationPhoneNumberID = "phone_number_id"
	// CorrelationWAID is the contact's WhatsApp id: the digits of its phone
	// number, without "+".
	CorrelationWAID = "wa_id"
	// CorrelationContactPhone is the contact's phone in E.164
	// ("+393331234567"): the sender of a received message, the recipient of
	// an echo or a status.
	CorrelationContactPhone = "contact_phone"
	// CorrelationWAMID is WhatsApp's message id of the message an event is
	// about (Meta's "wamid.…" on the Cloud API).
	CorrelationWAMID = "wamid"
	// CorrelationLedgerID is the id of Ponte's ledger entry a status is
	// about, when the provider echoes it back (the Cloud API's
	// biz_opaque_callback_data). The ledger prefers it over the wamid.
	CorrelationLedgerID = "ledger_id"
)

// Signal kinds of WhatsApp connectors (sdk.Signal Kind): short-lived notices
// that are relayed to open inboxes and never stored.
const (
	// SignalPresence carries a [Presence]: a contact came online or went
	// offline.
	SignalPresence = "presence"
	// SignalChatState carries a [ChatState]: a contact is typing or
	// recording, or stopped.
	SignalChatState = "chat_state"
)

// Media is a received image, audio, video, document or sticker. Which fields
// are set depends on how the connector reaches WhatsApp: the Cloud API gives
// a media id to download the file with, a linked device gives the CDN path
// and the keys that decrypt it. Pass the object whole to the connector's
// download action.
type Media struct {
	// ID is the provider's media id (the Cloud API's); empty on a linked
	// device, which has none.
	ID string `json:"id,omitempty"`
	// MimeType is the file's type as the sender's app declared it.
	MimeType string `json:"mime_type,omitempty"`
	// SHA256 is the SHA-256 of the decrypted file: hex on a linked device,
	// as Meta sends it (base64) on the Cloud API.
	SHA256 string `json:"sha256,omitempty"`
	// Caption is the text sent with an image, video or document.
	Caption string `json:"caption,omitempty"`
	// Filename is a document's file name.
	Filename string `json:"filename,omitempty"`
	// Voice is true for an audio recorded as a voice note (push to talk).
	Voice bool `json:"voice,omitempty"`
	// Animated is true for an animated sticker or a video sent as a GIF.
	Animated bool `json:"animated,omitempty"`
	// FileLength is the file's size in bytes, when the sender announced it.
	FileLength uint64 `json:"file_length,omitempty"`
	// Kind is the message kind the media came in (image, audio, video,
	// document, sticker): a linked device needs it to derive the keys.
	Kind string `json:"kind,omitempty"`
	// DirectPath is the file's path on WhatsApp's CDN (linked device).
	DirectPath string `json:"direct_path,omitempty"`
	// MediaKey is the key the file is encrypted with, base64 (linked
	// device). It is as secret as the file itself.
	MediaKey string `json:"media_key,omitempty"`
	// FileEncSHA256 is the SHA-256 of the encrypted file, base64 (linked
	// device), checked on download.
	FileEncSHA256 string `json:"file_enc_sha256,omitempty"`
}

// Location is a shared location.
type Location struct {
	// Latitude and Longitude are in degrees (WGS 84).
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	// Name is the place's name, or a live share's caption.
	Name string `json:"name,omitempty"`
	// Address is the place's address as the sender's app shows it.
	Address string `json:"address,omitempty"`
	// URL is the place's web page, when the sender's app gave one.
	URL string `json:"url,omitempty"`
	// Live is true for a live location share (the first position).
	Live bool `json:"live,omitempty"`
}

// SharedContact is a contact card: its display name and vCard.
type SharedContact struct {
	// Name is the card's display name.
	Name string `json:"name,omitempty"`
	// VCard is the card itself, a vCard 3.0 text.
	VCard string `json:"vcard,omitempty"`
}

// InteractiveReply is the user's answer to an interactive message, in the
// Cloud API's shape.
type InteractiveReply struct {
	// Type is button_reply, list_reply or nfm_reply (a WhatsApp Flow).
	Type string `json:"type"`
	// ID is the id of the chosen button or list row, as Ponte sent it.
	ID string `json:"id,omitempty"`
	// Title is the chosen button's or row's title; a Flow's name.
	Title string `json:"title,omitempty"`
	// Description is the chosen list row's description.
	Description string `json:"description,omitempty"`
	// ResponseJSON is a Flow's response, as the JSON string WhatsApp sends.
	ResponseJSON string `json:"response_json,omitempty"`
}

// ButtonReply is a tap on a template's quick-reply button.
type ButtonReply struct {
	// Payload is the button's payload as the template defined it.
	Payload string `json:"payload,omitempty"`
	// Text is the button's label.
	Text string `json:"text,omitempty"`
}

// Reaction is an emoji reaction to a message.
type Reaction struct {
	// MessageID is the id of the message reacted to.
	MessageID string `json:"message_id"`
	// Emoji is the reaction; empty when the contact removed it.
	Emoji string `json:"emoji,omitempty"`
}

// MessageContext names the message a reply quotes, or says it was forwarded.
type MessageContext struct {
	// MessageID is the id of the quoted message.
	MessageID string `json:"message_id,omitempty"`
	// From is who sent the quoted message, E.164 when known.
	From string `json:"from,omitempty"`
	// Forwarded is true when the message was forwarded.
	Forwarded bool `json:"forwarded,omitempty"`
}

// Edit is an edit of an earlier message (message type "edit").
type Edit struct {
	// MessageID is the id of the message edited.
	MessageID string `json:"message_id"`
	// Text is the message's new text or caption.
	Text string `json:"text,omitempty"`
}

// Revoke is the deletion of an earlier message for everyone (message type
// "revoke").
type Revoke struct {
	// MessageID is the id of the message deleted.
	MessageID string `json:"message_id"`
}

// ErrorDetail is one error a provider reports about a message or a status:
// why a message is "unsupported", why a status is "failed".
type ErrorDetail struct {
	// Code is the provider's error code (Meta's Graph API codes on the
	// Cloud API; 0 where the provider has none).
	Code int `json:"code"`
	// Title is the error's short description.
	Title string `json:"title,omitempty"`
	// Message is the provider's message, when it sends one besides Title.
	Message string `json:"message,omitempty"`
	// Details says more, for an operator.
	Details string `json:"details,omitempty"`
}

// Presence is the payload of [SignalPresence].
type Presence struct {
	// Phone is the contact in E.164, when known.
	Phone string `json:"phone,omitempty"`
	// LID is the contact's hidden-number identity ("123456789@lid"), when
	// WhatsApp addressed it so.
	LID string `json:"lid,omitempty"`
	// Available is true when the contact came online.
	Available bool `json:"available"`
	// LastSeen is when the contact was last online, if it shares that.
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// ChatState is the payload of [SignalChatState]: a contact is typing
// (composing; with Media "audio" while recording a voice note) or stopped
// (paused).
type ChatState struct {
	// Phone is the contact in E.164, when known.
	Phone string `json:"phone,omitempty"`
	// LID is the contact's hidden-number identity, when WhatsApp addressed
	// it so.
	LID string `json:"lid,omitempty"`
	// State is composing or paused.
	State string `json:"state"`
	// Media is "audio" while recording a voice note, else empty.
	Media string `json:"media,omitempty"`
}
