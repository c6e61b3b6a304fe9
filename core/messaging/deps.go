package messaging

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/invoke"
)

// Invoker runs connector actions for a tenant; *invoke.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error)
}

// Recipient is who a send goes to, on one number.
type Recipient struct {
	ContactID string
	// Phone is E.164; "" for a contact known only by its LID.
	Phone string
	WAID  string
	// LID is the contact's WhatsApp hidden-number identity
	// ("123456789@lid"), when known. A contact without a phone can only be
	// reached at it, from a linked-device number.
	LID            string
	ConversationID string
	// LastInboundAt is the customer's last message on this number, which
	// opens the 24-hour window; nil when the customer never wrote.
	LastInboundAt *time.Time
}

// Directory finds recipients. [SQLDirectory] implements it on the contacts
// and conversations tables.
type Directory interface {
	// Recipient returns the contact with phone (created when new) or the
	// contact contactID (an error wrapping ErrNotFound when the tenant has
	// none), with its conversation on connectionID (created when new).
	Recipient(ctx context.Context, tenantID, connectionID, phone, contactID string) (Recipient, error)
}

// ConsentQuery asks whether a contact may be messaged for a purpose now.
type ConsentQuery struct {
	TenantID  string
	ContactID string
	Phone     string
	Purpose   Purpose
	At        time.Time
}

// ConsentDecision is the consent engine's answer. Reason is one of
// no_marketing_consent, opted_out, excluded, quiet_hours (with DeferUntil).
type ConsentDecision struct {
	Allowed    bool
	Reason     string
	DeferUntil time.Time
}

// Consent checks consent, exclusions and quiet hours (core/consent).
type Consent interface {
	Check(ctx context.Context, q ConsentQuery) (ConsentDecision, error)
}

// SendGuard is the consent engine's STOP protocol. HoldCheck checks q and,
// when the decision allows the message, runs send so that an opt-out of the
// contact either committed before the check (which then saw it) or commits
// only after send returns. The check is the last step before the provider
// call, which is what makes a stored STOP final. send's error is returned
// with the decision; send does not run when the decision refuses.
type SendGuard interface {
	HoldCheck(ctx context.Context, q ConsentQuery, send func(ctx context.Context) error) (ConsentDecision, error)
}

// GroupGuard is a SendGuard that can also hold many new sends at once and
// commit their ledger rows in the round trip that takes the hold (consent's
// HoldCheckGroup): the rows are durable before the calls, as when they are
// written first, and a group costs one round trip, one connection and the
// statements of a single send. A Service whose Guard implements it takes
// every first attempt of a send through a group; ConsentService does.
type GroupGuard interface {
	SendGuard
	HoldCheckGroup(ctx context.Context, members []consent.GroupMember, first *consent.Prelude, send func(ctx context.Context) error) error
}

// TemplateInfo is what a send needs to know of a template.
type TemplateInfo struct {
	// Status is approved, pending, rejected, paused, disabled or incompatible.
	Status string
	// Category is marketing, utility or authentication.
	Category string
	// Parameters is the number of body variables {{1}}..{{n}}.
	Parameters int
}

// Templates looks templates up (core/templates). A template the connection
// does not have is an error wrapping ErrNotFound or store.ErrNotFound.
type Templates interface {
	Template(ctx context.Context, tenantID, connectionID, name, language string) (TemplateInfo, error)
}

// Channel is what a send needs to know of its connection.
type Channel struct {
	Connector string
	Status    string
	// Tier is the number's throughput in messages per second (80 or 1000).
	Tier int
}

// Channels looks connections up; [SQLChannels] implements it.
type Channels interface {
	Channel(ctx context.Context, tenantID, connectionID string) (Channel, error)
}
