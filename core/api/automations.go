package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/workflows/cartrecovery"
	"github.com/ponte-hub/ponte/workflows/ordernotify"
)

const (
	tagAutomations = "Automations"
	tagReports     = "Reports"
)

// Automations stores each shop connection's automation settings (a
// *automations.Store).
type Automations interface {
	Get(ctx context.Context, tenantID, connectionID, kind string, v any) (bool, error)
	Put(ctx context.Context, tenantID, connectionID, kind string, v any) error
}

// BindingReleaser unbinds automations from a connection that is deleted;
// *automations.Store implements it (the Automations dependency is checked
// for it).
type BindingReleaser interface {
	ReleaseConnection(ctx context.Context, tenantID, connectionID string) (int, error)
}

// CartRecoveryReports computes the cart recovery report (a
// *cartrecovery.DB).
type CartRecoveryReports interface {
	Report(ctx context.Context, tenantID string, from, to time.Time) (cartrecovery.Report, error)
}

// channelConnector is the connector whose connections send WhatsApp messages
// for the automations.
const channelConnector = "cloudapi"

// linkedDeviceConnector's connections (WhatsApp linked devices) send too.
const linkedDeviceConnector = "linkeddevice"

type cartRecoveryInput struct {
	ID   string `path:"id" doc:"The shop connection's id."`
	Body cartrecovery.Settings
}

type cartRecoveryOutput struct {
	Body cartrecovery.Settings
}

type orderNotifyInput struct {
	ID   string `path:"id" doc:"The shop connection's id."`
	Body ordernotify.Settings
}

type orderNotifyOutput struct {
	Body ordernotify.Settings
}

type reportInput struct {
	From time.Time `query:"from" required:"true" doc:"Start of the period (RFC 3339, inclusive)."`
	To   time.Time `query:"to" required:"true" doc:"End of the period (RFC 3339, exclusive)."`
}

type reportOutput struct {
	Body cartrecovery.Report
}

func (s *server) registerAutomations() {
	if s.deps.Automations == nil {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagAutomations, Description: "What a shop connection does on its own: abandoned-cart recovery and order notifications over WhatsApp. Settings are per shop connection; a connection without settings shows the defaults, disabled."},
		&huma.Tag{Name: tagReports, Description: "Figures of the automations."},
	)

	op := operation("get-cart-recovery", http.MethodGet, "/v1/connections/{id}/automations/cart-recovery", "Get cart recovery settings", tagAutomations, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *connectionIDInput) (*cartRecoveryOutput, error) {
		if err := s.shopConnection(ctx, in.ID, commerce.EventCheckoutCreated); err != nil {
			return nil, err
		}
		st := cartrecovery.DefaultSettings()
		if _, err := s.deps.Automations.Get(ctx, tenant(ctx), in.ID, cartrecovery.SettingsKind, &st); err != nil {
			return nil, s.internal(ctx, "reading cart recovery settings", err)
		}
		return &cartRecoveryOutput{Body: st}, nil
	})

	op = operation("put-cart-recovery", http.MethodPut, "/v1/connections/{id}/automations/cart-recovery", "Set cart recovery settings", tagAutomations, store.ScopeWrite)
	op.Description = "Replaces the shop connection's cart recovery settings. Running sequences read them when their next step is due. The channel connection must be one of the tenant's WhatsApp Cloud API connections; each step's template must exist when the step is sent (a missing or unapproved template is recorded on the step, not sent)."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *cartRecoveryInput) (*cartRecoveryOutput, error) {
		if err := s.shopConnection(ctx, in.ID, commerce.EventCheckoutCreated); err != nil {
			return nil, err
		}
		if err := in.Body.Validate(); err != nil {
			return nil, s.storeError(ctx, "validating cart recovery settings", "", err)
		}
		if err := s.checkChannel(ctx, in.Body.ChannelConnectionID); err != nil {
			return nil, err
		}
		if err := s.deps.Automations.Put(ctx, tenant(ctx), in.ID, cartrecovery.SettingsKind, in.Body); err != nil {
			return nil, s.internal(ctx, "storing cart recovery settings", err)
		}
		return &cartRecoveryOutput{Body: in.Body}, nil
	})

	op = operation("get-order-notifications", http.MethodGet, "/v1/connections/{id}/automations/order-notifications", "Get order notification settings", tagAutomations, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *connectionIDInput) (*orderNotifyOutput, error) {
		if err := s.shopConnection(ctx, in.ID, commerce.EventOrderCreated); err != nil {
			return nil, err
		}
		st := ordernotify.DefaultSettings()
		if _, err := s.deps.Automations.Get(ctx, tenant(ctx), in.ID, ordernotify.SettingsKind, &st); err != nil {
			return nil, s.internal(ctx, "reading order notification settings", err)
		}
		return &orderNotifyOutput{Body: st}, nil
	})

	op = operation("put-order-notifications", http.MethodPut, "/v1/connections/{id}/automations/order-notifications", "Set order notification settings", tagAutomations, store.ScopeWrite)
	op.Description = "Replaces the shop connection's order notification settings. Each kind (confirmation, shipped, out for delivery, delivered, cancelled, refunded, review request) is sent at most once per order; a kind without a message is not sent."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *orderNotifyInput) (*orderNotifyOutput, error) {
		if err := s.shopConnection(ctx, in.ID, commerce.EventOrderCreated); err != nil {
			return nil, err
		}
		if err := in.Body.Validate(); err != nil {
			return nil, s.storeError(ctx, "validating order notification settings", "", err)
		}
		if err := s.checkChannel(ctx, in.Body.ChannelConnectionID); err != nil {
			return nil, err
		}
		if err := s.deps.Automations.Put(ctx, tenant(ctx), in.ID, ordernotify.SettingsKind, in.Body); err != nil {
			return nil, s.internal(ctx, "storing order notification settings", err)
		}
		return &orderNotifyOutput{Body: in.Body}, nil
	})

	if s.deps.CartRecoveryReports == nil {
		return
	}
	op = operation("get-cart-recovery-report", http.MethodGet, "/v1/reports/cart-recovery", "Cart recovery report", tagReports, store.ScopeRead)
	op.Description = "Carts seen, contacted, messages sent per step, recovered orders and their revenue per currency, opt-outs and skips, for the tenant's shops in [from, to). An order counts as recovered when its checkout received a message before it."
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *reportInput) (*reportOutput, error) {
		if !in.From.Before(in.To) {
			return nil, huma.Error422UnprocessableEntity("the period is empty", &huma.ErrorDetail{Location: "query.to", Message: "must be after from"})
		}
		if in.To.Sub(in.From) > 366*24*time.Hour {
			return nil, huma.Error422UnprocessableEntity("the period is too long", &huma.ErrorDetail{Location: "query.to", Message: "at most 366 days after from"})
		}
		rep, err := s.deps.CartRecoveryReports.Report(ctx, tenant(ctx), in.From, in.To)
		if err != nil {
			return nil, s.internal(ctx, "computing the cart recovery report", err)
		}
		return &reportOutput{Body: rep}, nil
	})
}

// shopConnection checks that id is one of the tenant's connections and that
// its connector emits the commerce event an automation follows (eventType):
// 404 for a connection the tenant does not have, 422 for one of another
// kind.
func (s *server) shopConnection(ctx context.Context, id, eventType string) error {
	c, err := s.deps.Store.GetConnection(ctx, tenant(ctx), id)
	if err != nil {
		return s.storeError(ctx, "reading connection", "connection not found", err)
	}
	m, ok := s.manifest(c.Connector)
	if !ok {
		return huma.Error409Conflict("the connector " + c.Connector + " is not installed")
	}
	if !slices.ContainsFunc(m.Events, func(e sdk.EventType) bool { return e.Type == eventType }) {
		return huma.Error422UnprocessableEntity("the connection's connector (" + c.Connector + ") is not a shop that reports " + eventType + " events")
	}
	return nil
}

// checkChannel checks that id names one of the tenant's active WhatsApp
// connections (empty passes: Validate decides whether it is required).
func (s *server) checkChannel(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	c, err := s.deps.Store.GetConnection(ctx, tenant(ctx), id)
	bad := func(msg string) error {
		return invalid("invalid channel connection", store.FieldProblem{Field: "channel_connection_id", Message: msg})
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return bad("no connection of this tenant has this id")
	case err != nil:
		return s.internal(ctx, "reading the channel connection", err)
	case c.Connector != channelConnector && c.Connector != linkedDeviceConnector:
		return bad("must be a WhatsApp number (a " + channelConnector + " or " + linkedDeviceConnector + " connection), not " + c.Connector)
	case c.Status != store.StatusActive:
		return bad("the connection is disabled")
	}
	return nil
}
