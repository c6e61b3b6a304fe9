package paymentlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"go.temporal.io/sdk/temporal"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/workflows/internal/connerr"
)

// Connector actions the workflow calls (the Stripe connector's names).
const (
	ActionCreatePaymentLink     = "create_payment_link"
	ActionDeactivatePaymentLink = "deactivate_payment_link"
)

// Invoker runs connector actions for a tenant; *invoke.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error)
}

// Store is the payment_links storage the activities need; *DB implements it.
type Store interface {
	GetLink(ctx context.Context, tenantID, id string) (Link, error)
	// MarkOpen records the provider's link on a row still creating.
	MarkOpen(ctx context.Context, tenantID, id, url, providerID string) error
	// Apply applies r if the row's status is one of r.From; it reports
	// whether it did.
	Apply(ctx context.Context, r Record) (bool, error)
}

// Activities are the payment link workflow's activities.
type Activities struct {
	Store   Store
	Invoker Invoker
	// Messenger sends the link and the payment confirmation over WhatsApp
	// for links created with a chat; nil fails those sends (not retried).
	Messenger Messenger
	// Chat configures those messages.
	Chat ChatConfig
}

// createParams are create_payment_link's parameters.
type createParams struct {
	Amount      *int64            `json:"amount,omitempty"`
	Currency    string            `json:"currency,omitempty"`
	ProductName string            `json:"product_name,omitempty"`
	PriceID     string            `json:"price_id,omitempty"`
	Quantity    int               `json:"quantity,omitempty"`
	Metadata    map[string]string `json:"metadata"`
}

// linkParams builds create_payment_link's parameters for a link. The link id
// goes into the provider's metadata under MetadataKey, which is how payment
// events find their way back to this link.
func linkParams(l Link) createParams {
	md := maps.Clone(l.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[MetadataKey] = l.ID
	return createParams{
		Amount:      l.Amount,
		Currency:    l.Currency,
		ProductName: l.ProductName,
		PriceID:     l.PriceID,
		Quantity:    l.Quantity,
		Metadata:    md,
	}
}

// CreateLink creates the link at the provider and records its URL. The link id
// is the idempotency key, so a retry after a crash (or after the provider
// answered but the row was not yet updated) returns the same provider link
// instead of a second one.
func (a *Activities) CreateLink(ctx context.Context, ref LinkRef) (Created, error) {
	link, err := a.Store.GetLink(ctx, ref.TenantID, ref.LinkID)
	if errors.Is(err, store.ErrNotFound) {
		return Created{}, temporal.NewNonRetryableApplicationError("payment link row not found", ErrTypeNotFound, err)
	}
	if err != nil {
		return Created{}, fmt.Errorf("loading payment link %s: %w", ref.LinkID, err)
	}
	if link.Status != StatusCreating {
		if link.URL == "" {
			return Created{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("payment link is %s without a URL", link.Status), ErrTypePermanent, nil)
		}
		return Created{URL: link.URL, ProviderID: link.ProviderID}, nil
	}
	params, err := json.Marshal(linkParams(link))
	if err != nil {
		return Created{}, fmt.Errorf("encoding create_payment_link parameters: %w", err)
	}
	out, err := a.Invoker.Invoke(ctx, invoke.Call{
		TenantID:       link.TenantID,
		ConnectionID:   link.ConnectionID,
		Action:         ActionCreatePaymentLink,
		Params:         params,
		IdempotencyKey: link.ID,
	})
	if err != nil {
		return Created{}, ActivityError(err)
	}
	var res struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.URL == "" || res.ID == "" {
		// The connector broke its own result schema; retrying the same call
		// returns the same answer.
		return Created{}, temporal.NewNonRetryableApplicationError(
			"connector returned a payment link without id or url", ErrTypePermanent, err)
	}
	if err := a.Store.MarkOpen(ctx, link.TenantID, link.ID, res.URL, res.ID); err != nil {
		return Created{}, fmt.Errorf("recording payment link %s: %w", link.ID, err)
	}
	return Created{URL: res.URL, ProviderID: res.ID}, nil
}

// DeactivateLink stops the provider's link from taking payments.
func (a *Activities) DeactivateLink(ctx context.Context, ref LinkRef) error {
	link, err := a.Store.GetLink(ctx, ref.TenantID, ref.LinkID)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("payment link row not found", ErrTypeNotFound, err)
	}
	if err != nil {
		return fmt.Errorf("loading payment link %s: %w", ref.LinkID, err)
	}
	if link.ProviderID == "" {
		return nil // never created at the provider: nothing to deactivate
	}
	params, err := json.Marshal(map[string]string{"id": link.ProviderID})
	if err != nil {
		return fmt.Errorf("encoding deactivate_payment_link parameters: %w", err)
	}
	_, err = a.Invoker.Invoke(ctx, invoke.Call{
		TenantID:       link.TenantID,
		ConnectionID:   link.ConnectionID,
		Action:         ActionDeactivatePaymentLink,
		Params:         params,
		IdempotencyKey: link.ID + ":deactivate",
	})
	if err != nil {
		return ActivityError(err)
	}
	return nil
}

// Record applies a change to the link's row. A change whose From no longer
// matches (a replay after the row moved on) is a no-op.
func (a *Activities) Record(ctx context.Context, r Record) error {
	if _, err := a.Store.Apply(ctx, r); err != nil {
		return fmt.Errorf("recording payment link %s: %w", r.LinkID, err)
	}
	return nil
}

// ActivityError turns a connector call's error into the activity's (see
// connerr.ActivityError).
func ActivityError(err error) error { return connerr.ActivityError(err) }
