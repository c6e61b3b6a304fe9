package messaging

import (
	"context"
	"errors"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/templates"
)

// ConsentService adapts *consent.Service to Consent and SendGuard: Check and
// HoldCheck translate the query (HoldCheck is consent's shared advisory lock
// on the contact held across the provider call, taken and checked in one
// round trip).
type ConsentService struct{ *consent.Service }

var (
	_ Consent    = ConsentService{}
	_ GroupGuard = ConsentService{}
)

// Check implements Consent.
func (c ConsentService) Check(ctx context.Context, q ConsentQuery) (ConsentDecision, error) {
	d, err := c.Service.Check(ctx, consent.CheckRequest{TenantID: q.TenantID, ContactID: q.ContactID,
		Phone: q.Phone, Purpose: string(q.Purpose), At: q.At})
	if err != nil {
		return ConsentDecision{}, err
	}
	return ConsentDecision{Allowed: d.Allowed, Reason: d.Reason, DeferUntil: d.DeferUntil}, nil
}

// HoldCheck implements SendGuard.
func (c ConsentService) HoldCheck(ctx context.Context, q ConsentQuery, send func(ctx context.Context) error) (ConsentDecision, error) {
	d, err := c.Service.HoldCheck(ctx, consent.CheckRequest{TenantID: q.TenantID, ContactID: q.ContactID,
		Phone: q.Phone, Purpose: string(q.Purpose), At: q.At}, send)
	return ConsentDecision{Allowed: d.Allowed, Reason: d.Reason, DeferUntil: d.DeferUntil}, err
}

// HoldCheckGroup implements GroupGuard.
func (c ConsentService) HoldCheckGroup(ctx context.Context, members []consent.GroupMember, first *consent.Prelude, send func(ctx context.Context) error) error {
	return c.Service.HoldCheckGroup(ctx, members, first, send)
}

// Notifier sends consent's STOP / START confirmations through a Service.
type Notifier struct{ Service *Service }

var _ consent.Notifier = Notifier{}

// Notify implements consent.Notifier: a service text in the window the
// keyword just opened, idempotent on the request's key. The consent engine's
// mark in ctx lets it through to a contact who just opted out. Refusals and
// definite provider failures are permanent; an unknown outcome is not an
// error, since retrying would only find the same ledger row.
func (n Notifier) Notify(ctx context.Context, req consent.NotifyRequest) error {
	_, err := n.Service.Send(ctx, SendRequest{
		TenantID: req.TenantID, ConnectionID: req.ConnectionID, ContactID: req.ContactID,
		Kind: KindText, Text: req.Text, Purpose: PurposeService, IdempotencyKey: req.IdempotencyKey,
	})
	var (
		ref *RefusedError
		fe  *FailedError
		ie  *InvalidError
	)
	switch {
	case err == nil, errors.Is(err, ErrOutcomeUnknown):
		return nil
	case errors.As(err, &ref), errors.As(err, &fe), errors.As(err, &ie):
		return dispatch.Permanent(err)
	}
	return err
}

// TemplateService adapts *templates.Service to Templates.
type TemplateService struct{ *templates.Service }

var _ Templates = TemplateService{}

// Template implements Templates; a missing template is store.ErrNotFound.
func (t TemplateService) Template(ctx context.Context, tenantID, connectionID, name, language string) (TemplateInfo, error) {
	tp, err := t.Service.Get(ctx, tenantID, connectionID, name, language)
	if err != nil {
		return TemplateInfo{}, err
	}
	return TemplateInfo{Status: tp.Status, Category: tp.Category, Parameters: tp.Parameters}, nil
}
