// Package linkeddevice is Ponte's WhatsApp linked-device connector: it holds
// a WhatsApp account as a linked device (the way WhatsApp Web does), built on
// go.mau.fi/whatsmeow, and relays what the account receives to the Ponte host
// in the vocabulary of the Cloud API connector (connectors/cloudapi), so that
// contacts, conversations and the inbox handle both channels alike.
//
// The connector is a session connector ([sdk.SessionHolder]): the host calls
// OpenSession on the one node that holds a connection's lease and CloseSession
// when it gives the lease up. One plugin process holds many sessions, one
// whatsmeow client each. Nothing a session needs to resume on another node
// lives only in memory: the device's keys are in whatsmeow's own tables in
// Postgres (its sqlstore, in a schema of its own, by default "whatsmeow"),
// and the device's JID for a connection is in host state under
// [StateDeviceJID].
//
// # Configuration
//
// The connector has no per-connection configuration: an account is linked by
// pairing. The device store is configured for the whole plugin process by
// environment variables, which the host passes to this plugin only:
// [EnvStoreURL] (a Postgres URL, required to open sessions) and
// [EnvStoreSchema] (default [DefaultStoreSchema]). The database is opened on
// the first OpenSession; without EnvStoreURL the plugin still starts and
// serves its manifest, and OpenSession fails with a Permanent error that says
// so.
//
// # Session states
//
// A connection without a device pairs: OpenSession shows QR codes (reported
// with state pairing, QRCode and QRExpiresAt) until one is scanned or
// whatsmeow's code list runs out (at most [MaxQRCodes] codes), then reports
// logged_out "pairing timed out: no QR code was scanned". The start_pairing
// action starts again, or pairs by phone code instead. A paired connection
// connects; when the network is unreachable it reports disconnected with a
// reason starting "network unreachable" and RetryAt, and tries again forever
// with exponential backoff (about 2 s doubling to 5 min, with jitter). A
// device removed from the phone reports logged_out and is forgotten (deleted
// from the store, device_jid cleared). A stream replaced by another client
// reports disconnected and does not reconnect: another node took the session
// over, and the host decides what happens next. Temporary and permanent bans
// are reported as temporarily_banned (with BannedUntil) and banned.
//
// When the host answers a report with [sdk.CodeSessionNotHeld], the session
// is closed here at once (disconnected, never logged out).
//
// # Events
//
// [EventMessageReceived] (payload [InboundMessage]) for one-to-one messages
// of every kind: text, media (image, audio incl. voice notes, video,
// document, sticker; with what download_media needs), location, contacts,
// reactions, replies (context), edits (type "edit"), deletions (type
// "revoke"), button and list replies, and "unsupported" for anything else,
// including messages WhatsApp could not decrypt. [EventMessageEcho] for
// messages the account sent from its phone. [EventMessageStatus] (payload
// [MessageStatus]) for delivered, read and played receipts. Group messages
// and status broadcasts are skipped (logged at debug): Ponte's inbox is for
// one-to-one conversations. Presence and typing go to the host as signals
// ("presence", "chat_state"), which are not stored.
//
// # Actions
//
// send_text, send_media, send_reaction, mark_read, send_chat_state,
// check_numbers (rate-limited per connection: WhatsApp bans accounts that
// enumerate numbers), download_media, start_pairing and logout; their JSON
// Schemas are in schemas/ and in the manifest. An action runs only in the
// process that holds the connection's session; elsewhere it fails Retryable
// with code [sdk.CodeSessionNotHeld]; a session held here but not connected
// answers Retryable with code [CodeNotConnected]. A send's WhatsApp message
// id is the caller's message_id, or derived from its ledger_id
// ([MessageIDForLedger]), so a send retried after a crash reuses its id and
// the recipient's phone drops the duplicate.
//
// # What runs without internet
//
// WhatsApp's servers are not reachable from the machines this connector is
// tested on. Tested there: the event handling, fed with whatsmeow's own event
// types through the real plugin process (a build with the linkeddevice_fake
// tag swaps the whatsmeow client for a fake and adds the test_inject and
// test_sent actions); the device store on a real Postgres; and the production
// binary offline (disconnected "network unreachable" with backoff). Not
// exercised: the WhatsApp protocol itself (pairing, connecting, sending,
// media upload and download against WhatsApp's servers), which is whatsmeow's.
// See README.md.
package linkeddevice

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// Version is the connector's own version, reported in its manifest.
const Version = "0.1.0"

// Environment variables the host passes to this plugin (pluginhost
// Options.PluginEnv) to configure the device store.
const (
	// EnvStoreURL is the Postgres URL of the device store (a pgx URL or
	// key/value DSN). Without it, sessions cannot be opened.
	EnvStoreURL = "PONTE_LINKEDDEVICE_STORE_URL"
	// EnvStoreSchema is the schema holding whatsmeow's tables and version
	// table; it is created when missing. Default [DefaultStoreSchema].
	EnvStoreSchema = "PONTE_LINKEDDEVICE_STORE_SCHEMA"
)

// DefaultStoreSchema is the device store's schema when [EnvStoreSchema] is
// not set; Ponte's own migrations create it too.
const DefaultStoreSchema = "whatsmeow"

// StateDeviceJID is the host state key holding the JID of a connection's
// device (e.g. "393331234567:12@s.whatsapp.net"), set when pairing succeeds
// and cleared when the device is logged out.
const StateDeviceJID = "device_jid"

// Event types this connector emits.
const (
	// EventMessageReceived: a contact sent a message to the account.
	EventMessageReceived = whatsapp.EventMessageReceived
	// EventMessageEcho: the account sent a message from its primary phone
	// (or another of its devices).
	EventMessageEcho = whatsapp.EventMessageEcho
	// EventMessageStatus: a message the account sent was delivered, read or
	// played.
	EventMessageStatus = whatsapp.EventMessageStatus
)

// Action names this connector offers.
const (
	ActionSendText      = "send_text"
	ActionSendMedia     = "send_media"
	ActionSendReaction  = "send_reaction"
	ActionMarkRead      = "mark_read"
	ActionSendChatState = "send_chat_state"
	ActionCheckNumbers  = "check_numbers"
	ActionDownloadMedia = "download_media"
	ActionStartPairing  = "start_pairing"
	ActionLogout        = "logout"
)

// Correlation keys set on events (only when non-empty), the WhatsApp
// connectors' shared ones.
const (
	CorrelationPhoneNumberID = whatsapp.CorrelationPhoneNumberID
	CorrelationWAID          = whatsapp.CorrelationWAID
	CorrelationContactPhone  = whatsapp.CorrelationContactPhone
	CorrelationWAMID         = whatsapp.CorrelationWAMID
)

// Signal kinds relayed with [sdk.Host].Signal.
const (
	SignalPresence  = whatsapp.SignalPresence
	SignalChatState = whatsapp.SignalChatState
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Interface assertions: what the connector promises the SDK.
var (
	_ sdk.Connector     = (*Connector)(nil)
	_ sdk.SessionHolder = (*Connector)(nil)
	_ sdk.ActionInvoker = (*Connector)(nil)
)

// Connector is the linked-device connector: the sessions of one plugin
// process. It is safe for concurrent use.
type Connector struct {
	host     sdk.Host
	log      *slog.Logger
	backend  backend
	manifest sdk.Manifest
	// extra are the actions of the build (the test actions of the fake
	// build), run before the connector's own.
	extra map[string]func(ctx context.Context, c *Connector, call sdk.ActionCall) (json.RawMessage, error)

	mu       sync.Mutex
	sessions map[string]*session
}

// New builds the connector with the production whatsmeow backend (or, in a
// build with the linkeddevice_fake tag, the fake one). It is the
// [sdk.Factory] handed to sdk.Serve.
func New(host sdk.Host) (sdk.Connector, error) {
	return newConnector(host, slog.Default(), defaultBackend(slog.Default()))
}

func newConnector(host sdk.Host, log *slog.Logger, b backend) (*Connector, error) {
	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas",
		sdk.ActionSpec{Name: ActionSendText, Description: "Sends a text message, optionally quoting a received message."},
		sdk.ActionSpec{Name: ActionSendMedia, Description: "Downloads a file from a URL, uploads it to WhatsApp and sends it as image, audio, video, document or sticker."},
		sdk.ActionSpec{Name: ActionSendReaction, Description: "Reacts to a message with an emoji; an empty emoji removes the reaction."},
		sdk.ActionSpec{Name: ActionMarkRead, Description: "Marks received messages as read (blue ticks)."},
		sdk.ActionSpec{Name: ActionSendChatState, Description: "Shows or stops the typing indicator in a chat, e.g. before a reply."},
		sdk.ActionSpec{Name: ActionCheckNumbers, Description: "Checks which phone numbers are on WhatsApp; rate-limited, since WhatsApp bans accounts that enumerate numbers."},
		sdk.ActionSpec{Name: ActionDownloadMedia, Description: "Downloads and decrypts the media of a received message."},
		sdk.ActionSpec{Name: ActionStartPairing, Description: "Starts pairing an account: by QR code, or by a code typed on the phone when a phone number is given."},
		sdk.ActionSpec{Name: ActionLogout, Description: "Unlinks the device from the account and forgets it."},
	)
	if err != nil {
		return nil, fmt.Errorf("loading action schemas: %w", err)
	}
	extraActions, extra, err := buildActions()
	if err != nil {
		return nil, fmt.Errorf("loading test action schemas: %w", err)
	}
	actions = append(actions, extraActions...)
	return &Connector{
		host:    host,
		log:     log,
		backend: b,
		extra:   extra,
		manifest: sdk.Manifest{
			Name:        "linkeddevice",
			Version:     Version,
			DisplayName: "WhatsApp (linked device)",
			Description: "Links a WhatsApp number as a device, like WhatsApp Web, to receive and send its messages.",
			Config:      []sdk.ConfigField{},
			Events: []sdk.EventType{
				{Type: EventMessageReceived, Description: "A contact sent a one-to-one message to the linked number (any kind: text, media, location, contacts, reaction, reply, edit, deletion, unsupported)."},
				{Type: EventMessageEcho, Description: "The linked number sent a message from its phone or another device."},
				{Type: EventMessageStatus, Description: "A message sent by the linked number was delivered, read or played."},
			},
			Actions: actions,
		},
		sessions: map[string]*session{},
	}, nil
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest { return c.manifest }
