// Package messaging sends WhatsApp messages for workflows, flows and the API,
// and keeps the message ledger true.
//
// A send goes through, in this order and all before any provider call:
// consent and exclusion, quiet hours (deferred when the caller allows), the
// 24-hour customer-service window (free-form messages only inside it), the
// template's state, then pacing (a token bucket per number at its throughput
// tier, and at least 6 s between two messages to the same recipient without
// holding up anyone else). Consent is checked a second time as the very last
// step, under the consent engine's send guard, so a STOP that committed
// before the provider call always wins.
//
// Every outcome is a row of the messages table (the ledger). A row in status
// sending is written before the provider call, unique on the caller's
// idempotency key: a repeated Send with the same key returns that row and
// never calls the provider again. The row's id goes to Meta as
// biz_opaque_callback_data, so a send whose outcome is unknown (the process
// died between the call and the record, the call timed out) is reconciled by
// the status webhook that carries it, and marked unknown by the [Reconciler]
// when none arrives in a bounded time. It is never repeated blindly.
package messaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind is what a send carries.
type Kind string

// Kinds of outbound messages.
const (
	KindText        Kind = "text"
	KindMedia       Kind = "media"
	KindTemplate    Kind = "template"
	KindInteractive Kind = "interactive"
	// KindReaction is an emoji on a message of the conversation (any
	// number; from a Cloud API number only inside the 24-hour window).
	KindReaction Kind = "reaction"
)

// Purpose is why a message is sent; consent rules depend on it. A template
// send takes its template's category.
type Purpose string

// Purposes.
const (
	PurposeMarketing      Purpose = "marketing"
	PurposeUtility        Purpose = "utility"
	PurposeAuthentication Purpose = "authentication"
	PurposeService        Purpose = "service"
)

// Status is a ledger row's state.
type Status string

// Statuses of outbound messages. Queued and deferred rows wait for the
// [Scheduler]; sending rows wait for the provider's answer or a status
// webhook; refused rows were never sent; unknown rows may or may not have
// been sent and are never retried automatically.
const (
	StatusQueued    Status = "queued"
	StatusDeferred  Status = "deferred"
	StatusSending   Status = "sending"
	StatusSent      Status = "sent"
	StatusDelivered Status = "delivered"
	StatusRead      Status = "read"
	StatusFailed    Status = "failed"
	StatusRefused   Status = "refused"
	StatusUnknown   Status = "unknown"
	StatusReceived  Status = "received"
)

// Media is a media message sent by link.
type Media struct {
	// Type is image, audio, video, document or sticker.
	Type     string `json:"type"`
	Link     string `json:"link"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// Reaction is an emoji reaction to a message; an empty emoji removes the
// reaction given before.
type Reaction struct {
	// MessageID is the WhatsApp id of the message reacted to.
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// Template is a template message.
type Template struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	// Components is Meta's components array (header, body and button
	// parameters), passed through as is.
	Components json.RawMessage `json:"components,omitempty"`
	// Params are the body's {{1}}..{{n}} values, a shorthand for a body
	// component of text parameters. Give Params or Components, not both.
	Params []string `json:"params,omitempty"`
}

// SendRequest is one message to send.
type SendRequest struct {
	TenantID string
	// ConnectionID is the number sending (a Cloud API or linked-device
	// connection). Empty means any of the tenant's numbers: a connected
	// linked device when the message can go over one, else a Cloud API
	// number (see Numbers).
	ConnectionID string
	// Module is the part of Ponte sending (automations, campaigns), for
	// the numbers' module switches; empty for agents and the API.
	Module Module
	// To is the recipient's phone in E.164 (+393331234567); or give ContactID.
	To        string
	ContactID string
	Kind      Kind
	// Text is the body of a text message.
	Text string
	// PreviewURL asks WhatsApp to render a preview of the first URL in Text.
	PreviewURL bool
	Media      *Media
	Template   *Template
	// Interactive is the connector's interactive object (type button or list).
	Interactive json.RawMessage
	// ReplyTo is the wamid of the message this one quotes.
	ReplyTo string
	// Reaction is the emoji of a reaction and the message it is on.
	Reaction *Reaction
	// TextFallback, on a template send, is the same message as free text,
	// sent instead when the number cannot send templates (a linked
	// device). It also lets a send bound to any number go from a linked
	// device. At most 4096 characters.
	TextFallback string
	// Purpose defaults to service for free-form messages; templates take
	// their category whatever is given here.
	Purpose Purpose
	// IdempotencyKey is required: a repeated Send with the same key returns
	// the first send's row and never calls the provider again.
	IdempotencyKey string
	// AllowDefer lets a send inside quiet hours wait (status deferred) for
	// their end instead of being refused.
	AllowDefer bool
	// AuthorID is the agent (users.id) sending, "" for automation.
	AuthorID string
}

// Message is a ledger row.
type Message struct {
	ID                string          `json:"id" doc:"The message id; also sent to Meta as biz_opaque_callback_data."`
	TenantID          string          `json:"-"`
	ConnectionID      string          `json:"connection_id"`
	ConversationID    string          `json:"conversation_id"`
	ContactID         string          `json:"contact_id"`
	To                string          `json:"to,omitempty" doc:"The recipient's phone (E.164), for outbound messages."`
	Direction         string          `json:"direction" enum:"in,out"`
	Kind              string          `json:"kind" doc:"text, image, audio, video, document, sticker, template, interactive, ..."`
	Content           json.RawMessage `json:"content"`
	Purpose           Purpose         `json:"purpose,omitempty"`
	Status            Status          `json:"status"`
	StatusReason      string          `json:"status_reason,omitempty" doc:"Why the message was refused, failed, deferred or is unknown; machine readable."`
	ErrorCode         string          `json:"error_code,omitempty" doc:"The provider's error code, e.g. 131047."`
	ErrorDetail       string          `json:"error_detail,omitempty"`
	ProviderMessageID string          `json:"provider_message_id,omitempty" doc:"WhatsApp's message id (wamid)."`
	AuthorID          string          `json:"author_id,omitempty"`
	IdempotencyKey    string          `json:"-"`
	DeferredUntil     *time.Time      `json:"deferred_until,omitempty"`
	CreatedAt         time.Time       `json:"created_at"`
	SentAt            *time.Time      `json:"sent_at,omitempty"`
	DeliveredAt       *time.Time      `json:"delivered_at,omitempty"`
	ReadAt            *time.Time      `json:"read_at,omitempty"`
	FailedAt          *time.Time      `json:"failed_at,omitempty"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

// Refusal reasons: a send refused before any provider call (or, for
// ReasonOutsideWindow, refused by the provider with 131047) says which.
const (
	ReasonNoMarketingConsent  = "no_marketing_consent"
	ReasonOptedOut            = "opted_out"
	ReasonExcluded            = "excluded"
	ReasonQuietHours          = "quiet_hours"
	ReasonOutsideWindow       = "outside_window_template_required"
	ReasonTemplateNotFound    = "template_not_found"
	ReasonTemplateNotApproved = "template_not_approved"
)

// Failure reasons recorded on failed and unknown rows.
const (
	ReasonUndeliverable     = "undeliverable"      // 131026
	ReasonMarketingDeclined = "marketing_declined" // 131050
	ReasonProviderRejected  = "provider_rejected"  // invalid, auth or permanent provider errors
	ReasonRateLimited       = "rate_limited"       // throttled; queued for a retry
	ReasonOutcomeUnknown    = "outcome_unknown"    // the call's outcome was lost; waiting for a status webhook
	ReasonNoStatusWebhook   = "no_status_webhook"  // no status webhook in the bounded time: unknown
	ReasonStatusFailed      = "provider_failed"    // a failed status webhook
)

// RefusedError is a send that was refused: nothing went to the provider (or,
// for ReasonOutsideWindow after a 131047, the provider refused it). Its row
// is in the ledger with status refused, or deferred when DeferUntil is set
// and the caller allowed deferral.
type RefusedError struct {
	// Reason is machine readable: one of the Reason... constants, or a
	// reason the consent engine gave.
	Reason string
	// Detail explains it to people.
	Detail string
	// DeferUntil is when quiet hours end, for ReasonQuietHours.
	DeferUntil time.Time
	// MessageID is the ledger row recording the refusal.
	MessageID string
}

func (e *RefusedError) Error() string {
	if e.Detail != "" {
		return "message refused: " + e.Reason + ": " + e.Detail
	}
	return "message refused: " + e.Reason
}

// RefusalReason returns the machine-readable reason, for the API.
func (e *RefusedError) RefusalReason() string { return e.Reason }

// InvalidError is a request that cannot be sent as asked (a missing field, a
// connection that is not a Cloud API number). Nothing is recorded.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return "invalid message: " + e.Field + ": " + e.Reason }

// FailedError is a send the provider refused for good (undeliverable,
// marketing declined, rejected parameters or credentials). Its row is failed.
type FailedError struct {
	Reason    string
	Code      string
	Detail    string
	MessageID string
}

func (e *FailedError) Error() string {
	s := "message failed: " + e.Reason
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ErrOutcomeUnknown is wrapped by the error of a send whose provider call may
// or may not have gone through (a timeout, the plugin dying mid-call). The
// row stays sending until a status webhook settles it or the Reconciler marks
// it unknown; it is never retried automatically.
var ErrOutcomeUnknown = errors.New("the provider call's outcome is unknown")

// ErrNotFound is returned by Get for a message that does not exist or is
// another tenant's.
var ErrNotFound = errors.New("message not found")

// outcomeError carries ErrOutcomeUnknown with the message id and cause.
type outcomeError struct {
	messageID string
	cause     error
}

func (e *outcomeError) Error() string {
	return fmt.Sprintf("sending message %s: %v: %v", e.messageID, ErrOutcomeUnknown, e.cause)
}
func (e *outcomeError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.cause} }
