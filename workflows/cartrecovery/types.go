// Package cartrecovery is abandoned-cart recovery: one Temporal workflow per
// shop checkout that, while the customer stays away, sends the configured
// sequence of WhatsApp templates (a reminder with the recovery link, a
// discount code created for the customer, a last chance), and stops at once
// when the checkout becomes an order, is deleted, or the customer opts out or
// replies. Orders from checkouts that received a message are attributed as
// recovered, with their revenue, for the report.
//
// The workflow reads only the commerce vocabulary (plugins/sdk/commerce), so
// any shop connector that emits it works unchanged.
package cartrecovery

import (
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// WorkflowName is the cart recovery workflow's registered type name.
const WorkflowName = "cartrecovery"

// Signal names. Checkout events start the workflow (signal-with-start);
// orders and replies only reach a running one.
const (
	SignalCheckout = "checkout"
	SignalOrder    = "order"
	SignalReply    = "reply"
)

// WorkflowID is the id of the workflow that follows checkout checkoutID of
// the tenant's shop connection. The tenant is part of it, so an event of one
// tenant never reaches another's cart.
func WorkflowID(tenantID, connectionID, checkoutID string) string {
	return "cartrecovery/" + tenantID + "/" + connectionID + "/" + checkoutID
}

// CartRef names a cart: a checkout of a tenant's shop connection.
type CartRef struct {
	TenantID     string `json:"tenant_id"`
	ConnectionID string `json:"connection_id"`
	CheckoutID   string `json:"checkout_id"`
}

// WorkflowID is the cart's workflow id.
func (r CartRef) WorkflowID() string { return WorkflowID(r.TenantID, r.ConnectionID, r.CheckoutID) }

// Status is a cart's state in the cart_recoveries table.
type Status string

// Cart states. Waiting and contacted are open (a workflow follows the cart);
// the others are final.
const (
	StatusWaiting   Status = "waiting"   // no message sent yet
	StatusContacted Status = "contacted" // at least one message sent, sequence running
	StatusRecovered Status = "recovered" // an order followed a message
	StatusConverted Status = "converted" // an order came before any message
	StatusEnded     Status = "ended"     // stopped without an order (see the reason)
	StatusSkipped   Status = "skipped"   // the customer could not be reached at all
)

// Open reports whether a cart in status s is still followed.
func (s Status) Open() bool { return s == StatusWaiting || s == StatusContacted }

// Reasons a cart's sequence ended, recorded in end_reason. Skipped carts
// carry commerce.PhoneMissing or commerce.PhoneInvalid.
const (
	ReasonOrderPlaced       = "order_placed"       // an order event, or a completed checkout
	ReasonCheckoutDeleted   = "checkout_deleted"   // the shop deleted the checkout
	ReasonReplied           = "replied"            // the customer wrote; handed to a human
	ReasonOptedOut          = "opted_out"          // the customer opted out
	ReasonExcluded          = "excluded"           // the number is on the tenant's exclusion list
	ReasonMarketingDeclined = "marketing_declined" // WhatsApp says the user stopped this business's marketing
	ReasonSequenceCompleted = "sequence_completed" // the last step ran
	ReasonDisabled          = "disabled"           // cart recovery was turned off for the shop
)

// Step reasons, recorded on a step that was skipped or failed (besides the
// messaging refusal and failure reasons, which are recorded as given).
const (
	ReasonDiscountFailed = "discount_failed"
	ReasonQuietHours     = "quiet_hours" // still in quiet hours after MaxQuietRetries
)

// StepStatus is the outcome of one step.
type StepStatus string

// Step outcomes.
const (
	StepSent    StepStatus = "sent"
	StepSkipped StepStatus = "skipped"
	StepFailed  StepStatus = "failed"
)

// CheckoutEvent is the signal a checkout event becomes.
type CheckoutEvent struct {
	EventID    int64             `json:"event_id"` // events.id; ids already seen are ignored
	Type       string            `json:"type"`
	OccurredAt time.Time         `json:"occurred_at"`
	Checkout   commerce.Checkout `json:"checkout"`
}

// OrderEvent is the signal an order event naming the cart's checkout becomes.
type OrderEvent struct {
	EventID    int64          `json:"event_id"`
	Type       string         `json:"type"`
	OccurredAt time.Time      `json:"occurred_at"`
	Order      commerce.Order `json:"order"`
}

// ReplyEvent is the signal an inbound WhatsApp message from the cart's phone
// becomes.
type ReplyEvent struct {
	EventID int64 `json:"event_id"`
	// ConnectionID is the WhatsApp connection the customer wrote to.
	ConnectionID string    `json:"connection_id"`
	From         string    `json:"from"`
	MessageID    string    `json:"message_id"`
	At           time.Time `json:"at"`
}

// OrderInfo is an order as attribution records it.
type OrderInfo struct {
	OrderID  string    `json:"order_id"`
	Total    string    `json:"total"` // decimal string
	Currency string    `json:"currency"`
	At       time.Time `json:"at"`
}

// Result is what a cart's workflow returns.
type Result struct {
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Sent is how many messages this run sent.
	Sent int `json:"sent"`
}
