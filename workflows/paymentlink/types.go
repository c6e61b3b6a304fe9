// Package paymentlink is the payment-link-in-chat workflow: it creates a
// payment link through a payments connector (Stripe), waits for the payment or
// the link's expiry, and records the outcome.
package paymentlink

import (
	"encoding/json"
	"time"
)

// Status is a payment link's state.
type Status string

// Payment link states.
const (
	StatusCreating Status = "creating"
	StatusOpen     Status = "open"
	StatusPaid     Status = "paid"
	StatusExpired  Status = "expired"
	StatusFailed   Status = "failed"
	StatusRefunded Status = "refunded"
)

// CreateRequest is what a caller asks for when creating a payment link.
// Either Amount+Currency+ProductName or PriceID is given.
type CreateRequest struct {
	ConnectionID   string            `json:"connection_id"`
	Amount         int64             `json:"amount,omitempty"` // minor units (cents)
	Currency       string            `json:"currency,omitempty"`
	ProductName    string            `json:"product_name,omitempty"`
	PriceID        string            `json:"price_id,omitempty"`
	Quantity       int               `json:"quantity,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	ExpiresIn      time.Duration     `json:"expires_in,omitempty"` // default 24h
	IdempotencyKey string            `json:"-"`
	// To, when set, is the customer's phone (E.164): the workflow sends the
	// link there over WhatsApp from ChannelConnectionID (a Cloud API
	// connection), and confirms the payment in the same chat.
	To                  string `json:"to,omitempty"`
	ChannelConnectionID string `json:"channel_connection_id,omitempty"`
	// Message is the text sent with the link (the URL is appended); a
	// default is used when empty.
	Message string `json:"message,omitempty"`
}

// Link is a payment link as Ponte records it.
type Link struct {
	ID           string            `json:"id"`
	TenantID     string            `json:"-"`
	ConnectionID string            `json:"connection_id"`
	Status       Status            `json:"status"`
	Amount       *int64            `json:"amount,omitempty"`
	Currency     string            `json:"currency,omitempty"`
	ProductName  string            `json:"product_name,omitempty"`
	PriceID      string            `json:"price_id,omitempty"`
	Quantity     int               `json:"quantity"`
	Metadata     map[string]string `json:"metadata"`
	URL          string            `json:"url,omitempty"`
	ProviderID   string            `json:"provider_id,omitempty"`
	WorkflowID   string            `json:"workflow_id"`
	ExpiresAt    time.Time         `json:"expires_at"`
	PaidAt       *time.Time        `json:"paid_at,omitempty"`
	AmountPaid   *int64            `json:"amount_paid,omitempty"`
	LastError    string            `json:"last_error,omitempty"`
	// To and ChannelConnectionID say where the link is sent over WhatsApp
	// (empty for links without a chat); Message is the text sent with it.
	To                  string    `json:"to,omitempty"`
	ChannelConnectionID string    `json:"channel_connection_id,omitempty"`
	Message             string    `json:"message,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// PaymentEvent is the signal the dispatcher sends to a payment link's workflow
// for each stored payment event that names the link.
type PaymentEvent struct {
	EventID    int64           `json:"event_id"` // events.id; the workflow ignores ids it has seen
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// SignalPaymentEvent is the name of the signal carrying a PaymentEvent.
const SignalPaymentEvent = "payment-event"

// CorrelationKey is the event correlation key under which a payments connector
// reports the Ponte payment link id it found in the provider's metadata.
const CorrelationKey = "payment_link"

// MetadataKey is the provider metadata key under which Ponte stores its payment
// link id when creating the link, so payment events can be matched back.
const MetadataKey = "ponte_payment_link"
