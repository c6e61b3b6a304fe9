package sdk

import (
	"context"
	"encoding/json"
	"time"
)

// SessionHolder is implemented by connectors that keep a long-lived
// connection open per Ponte connection, such as a WhatsApp linked device: a
// socket that the provider pushes messages down and that must be held by
// exactly one process at a time.
//
// The host decides where a session lives. When several Ponte nodes share one
// database, each session is held by one node through a lease in the
// database; the host of that node calls OpenSession on its plugin process and
// CloseSession when it gives the session up (the connection is disabled or
// deleted, the node shuts down, or the node lost its lease). A node that dies
// without calling CloseSession loses its lease when the lease expires, and
// another node opens the session there: everything a session needs to
// resume (keys, the provider's device identity) must therefore be kept in
// storage that every node reaches, never only in the plugin's memory.
//
// Report what happens to a session with [Host].UpdateSession (state changes,
// pairing codes), messages and receipts with [Host].Emit, and short-lived
// notices (presence, typing) with [Host].Signal. The host refuses those calls
// for a session its node no longer holds (an Invalid error with code
// [CodeSessionNotHeld]); the connector must then close the session.
//
// Actions ([ActionInvoker]) of a session connector run in the plugin process
// of the node that holds the connection's session: the host routes them
// there.
type SessionHolder interface {
	// OpenSession starts holding conn's session and returns once the session
	// is started, without waiting for the provider (connecting, pairing and
	// reconnecting go on in the background and are reported through
	// UpdateSession). Calling it for a session already open updates its
	// connection (a configuration change) and keeps the session.
	OpenSession(ctx context.Context, conn Connection) error
	// CloseSession stops holding the session: it disconnects from the
	// provider without logging out, so the session can be opened again here
	// or on another node. Closing a session that is not open succeeds.
	CloseSession(ctx context.Context, connectionID string) error
}

// CodeSessionNotHeld is the [Error].Code of the host's answer to a session
// report (UpdateSession, Emit, Signal) for a session this node does not hold.
const CodeSessionNotHeld = "session_not_held"

// SessionState is the state of a connector session, reported in
// [SessionUpdate].State.
type SessionState string

// Session states. A session starts pairing (no account linked yet) or
// connecting (an account is linked); it is connected when the provider
// accepted it; disconnected when the network or the provider dropped it and
// it reconnects by itself (with RetryAt set); logged out when the account
// removed the device (a new pairing is needed); banned or temporarily banned
// when the provider refuses the account (with Reason, and BannedUntil for a
// temporary ban).
const (
	SessionPairing           SessionState = "pairing"
	SessionConnecting        SessionState = "connecting"
	SessionConnected         SessionState = "connected"
	SessionDisconnected      SessionState = "disconnected"
	SessionLoggedOut         SessionState = "logged_out"
	SessionBanned            SessionState = "banned"
	SessionTemporarilyBanned SessionState = "temporarily_banned"
)

// SessionUpdate is a report on a session, passed to [Host].UpdateSession.
// Every report carries the session's current State; the other fields are set
// when they are known and left zero otherwise.
type SessionUpdate struct {
	// State is the session's state now.
	State SessionState
	// Reason says why the session is in State, for people and machines,
	// e.g. "network unreachable", "stream replaced", or the provider's ban
	// reason. Never a secret.
	Reason string
	// RetryAt is when a disconnected session tries again.
	RetryAt time.Time
	// BannedUntil is when a temporary ban ends.
	BannedUntil time.Time
	// QRCode, while pairing, is the string to show as a QR code for the
	// phone to scan; QRExpiresAt is when the provider replaces it.
	QRCode      string
	QRExpiresAt time.Time
	// PairingCode, while pairing by phone number, is the code to type on
	// the phone.
	PairingCode string
	// Account is the account the session is linked to, once known.
	Account *SessionAccount
	// PhoneSeenAt is the last time the account's primary phone was seen
	// active (it sent a message or a receipt); providers log linked devices
	// out when the phone stays away too long.
	PhoneSeenAt time.Time
}

// SessionAccount is the provider account a session is linked to.
type SessionAccount struct {
	// Phone is the account's phone number in E.164.
	Phone string `json:"phone,omitempty"`
	// JID is the device's address at the provider (WhatsApp's
	// 393331234567:12@s.whatsapp.net).
	JID string `json:"jid,omitempty"`
	// LID is the account's hidden-number identity, when the provider gives one.
	LID string `json:"lid,omitempty"`
	// PushName is the account's display name.
	PushName string `json:"push_name,omitempty"`
	// Platform is the primary device's platform, when known.
	Platform string `json:"platform,omitempty"`
}

// Signal is a short-lived notice from a session that live listeners (an
// inbox open in a browser) want and nobody needs later, passed to
// [Host].Signal: a contact's presence, a "typing..." indicator. The host does
// not store signals.
type Signal struct {
	// Kind names the notice, e.g. "presence" or "chat_state".
	Kind string `json:"kind"`
	// Payload is the notice as a JSON object.
	Payload json.RawMessage `json:"payload"`
	// At is when it happened.
	At time.Time `json:"at"`
}

// Events the host itself records for a session connector's connections (a
// connector does not emit or declare them). Their payload is a JSON object
// with the session's state, reason and times.
const (
	// EventSessionStateChanged: the session's state changed (every change,
	// as reported through UpdateSession).
	EventSessionStateChanged = "session.state_changed"
	// EventSessionCleanupWarning: the session has been disconnected or
	// logged out for long and will be cleaned up (closed, logged out, its
	// device forgotten and the connection disabled) at the time in the
	// payload's "cleanup_at" unless it connects again.
	EventSessionCleanupWarning = "session.cleanup_warning"
	// EventSessionCleaned: the session was cleaned up as warned.
	EventSessionCleaned = "session.cleaned"
	// EventSessionPhoneInactive: the account's primary phone has not been
	// seen for long; providers log linked devices out soon after (WhatsApp
	// after 14 days).
	EventSessionPhoneInactive = "session.phone_inactive"
)
