package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// ConnectionBody is a connection as the API shows it: its non-secret
// configuration, the names of the secret fields that are set (never their
// values) and the webhook URL to paste into the provider.
type ConnectionBody struct {
	ID           string          `json:"id" example:"con_3kq5x7wz2m4n6p8r0t2v4x6z"`
	Connector    string          `json:"connector" example:"stripe"`
	Name         string          `json:"name" example:"Stripe (live)"`
	Status       string          `json:"status" enum:"active,disabled"`
	StatusReason string          `json:"status_reason,omitempty" doc:"Why Ponte disabled the connection, e.g. the app was uninstalled from the shop. Cleared when the status is changed."`
	Config       json.RawMessage `json:"config" doc:"The non-secret configuration fields, defaults applied."`
	SecretFields []string        `json:"secret_fields" doc:"Names of the secret configuration fields that hold a value. Secret values are write-only."`
	WebhookURL   string          `json:"webhook_url" format:"uri" doc:"Where the provider sends this connection's webhooks."`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func (s *server) connectionBody(c store.Connection) ConnectionBody {
	cfg := c.Config
	if len(cfg) == 0 {
		cfg = json.RawMessage(`{}`)
	}
	secretFields := c.SecretFields
	if secretFields == nil {
		secretFields = []string{}
	}
	return ConnectionBody{
		ID: c.ID, Connector: c.Connector, Name: c.Name, Status: c.Status, StatusReason: c.StatusReason, Config: cfg,
		SecretFields: secretFields, WebhookURL: s.publicURL + "/hooks/" + c.ID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}

type createConnectionInput struct {
	Body struct {
		Connector string         `json:"connector" minLength:"1" maxLength:"100" example:"stripe" doc:"The name of an installed connector (GET /v1/connectors)."`
		Name      string         `json:"name" minLength:"1" maxLength:"200" example:"Stripe (live)"`
		Config    map[string]any `json:"config,omitempty" doc:"The configuration, secret fields included, as the connector's manifest describes it."`
	}
}

type updateConnectionInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		Name   *string        `json:"name,omitempty" minLength:"1" maxLength:"200"`
		Status *string        `json:"status,omitempty" enum:"active,disabled" doc:"A disabled connection keeps its configuration but refuses webhooks."`
		Config map[string]any `json:"config,omitempty" doc:"A JSON merge patch over the configuration: fields given replace, null removes a field (its default applies again), fields left out keep their value. So secrets need not be sent again."`
	}
}

type connectionIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The connection's id."`
}

type listConnectionsInput struct {
	Connector string `query:"connector" maxLength:"100" doc:"Only connections of this connector."`
	Cursor    string `query:"cursor" maxLength:"500" doc:"next_cursor of the previous page."`
	Limit     int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type connectionOutput struct {
	Body ConnectionBody
}

type connectionList struct {
	Body struct {
		Data       []ConnectionBody `json:"data"`
		NextCursor string           `json:"next_cursor" doc:"Cursor of the next page; empty on the last page."`
	}
}

func (s *server) registerConnections() {
	op := operation("create-connection", http.MethodPost, "/v1/connections", "Create a connection", tagConnections, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Validates the configuration against the connector's manifest (unknown fields, required fields, types, enum, pattern), applies defaults, and encrypts the secret fields at rest. Returns the webhook URL to configure at the provider."
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *createConnectionInput) (*connectionOutput, error) {
		m, ok := s.manifest(in.Body.Connector)
		if !ok {
			return nil, invalid("unknown connector", store.FieldProblem{Field: "connector", Message: "no installed connector has this name (see GET /v1/connectors)"})
		}
		cfg, err := json.Marshal(in.Body.Config)
		if err != nil {
			return nil, s.internal(ctx, "encoding connection config", err)
		}
		c, err := s.deps.Store.CreateConnection(ctx, tenant(ctx), store.NewConnection{
			Connector: m.Name, Name: in.Body.Name, Config: cfg, Fields: m.Config,
		})
		if err != nil {
			return nil, s.storeError(ctx, "creating connection", "tenant not found", err)
		}
		// The row exists before Connect runs, so a provider that pings the
		// webhook URL while subscriptions are created (WooCommerce) reaches
		// it. A connection the provider refuses is not kept.
		if err := s.lifecycle(ctx, c, true); err != nil {
			if derr := s.deps.Store.DeleteConnection(context.WithoutCancel(ctx), c.TenantID, c.ID); derr != nil {
				s.log.ErrorContext(ctx, "removing a connection whose setup failed", "connection", c.ID, "err", derr)
			}
			return nil, s.lifecycleError(ctx, "connecting", err)
		}
		return &connectionOutput{Body: s.connectionBody(c)}, nil
	})

	op = operation("list-connections", http.MethodGet, "/v1/connections", "List connections", tagConnections, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listConnectionsInput) (*connectionList, error) {
		conns, next, err := s.deps.Store.ListConnections(ctx, tenant(ctx), store.ConnectionFilter{Connector: in.Connector, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, s.storeError(ctx, "listing connections", "", err)
		}
		out := &connectionList{}
		out.Body.Data = make([]ConnectionBody, len(conns))
		for i, c := range conns {
			out.Body.Data[i] = s.connectionBody(c)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = operation("get-connection", http.MethodGet, "/v1/connections/{id}", "Get a connection", tagConnections, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *connectionIDInput) (*connectionOutput, error) {
		c, err := s.deps.Store.GetConnection(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading connection", "connection not found", err)
		}
		return &connectionOutput{Body: s.connectionBody(c)}, nil
	})

	op = operation("update-connection", http.MethodPatch, "/v1/connections/{id}", "Update a connection", tagConnections, store.ScopeWrite)
	op.Description = "Renames, disables or re-enables a connection, or changes its configuration. The configuration is merged (JSON merge patch): secret fields left out keep their stored value."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *updateConnectionInput) (*connectionOutput, error) {
		tenantID := tenant(ctx)
		u := store.ConnectionUpdate{Name: in.Body.Name, Status: in.Body.Status}
		if in.Body.Config != nil {
			// The manifest is needed to validate the merged configuration;
			// look the connection up first so another tenant's id is a 404,
			// not a hint about which connector it uses.
			cur, err := s.deps.Store.GetConnection(ctx, tenantID, in.ID)
			if err != nil {
				return nil, s.storeError(ctx, "reading connection", "connection not found", err)
			}
			m, ok := s.manifest(cur.Connector)
			if !ok {
				return nil, huma.Error409Conflict("the connector " + cur.Connector + " is not installed, so its configuration cannot be validated; name and status can still be changed")
			}
			cfg, err := json.Marshal(in.Body.Config)
			if err != nil {
				return nil, s.internal(ctx, "encoding connection config", err)
			}
			u.Config, u.Fields = cfg, m.Config
		}
		before, err := s.deps.Store.GetConnection(ctx, tenantID, in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading connection", "connection not found", err)
		}
		// The full configuration before the change (secrets included), to
		// put back if the provider refuses the new one.
		var beforeConfig sdk.Config
		if in.Body.Config != nil {
			if _, beforeConfig, err = s.deps.Store.ResolvedConnection(ctx, in.ID); err != nil {
				return nil, s.internal(ctx, "reading connection configuration", err)
			}
		}
		c, err := s.deps.Store.UpdateConnection(ctx, tenantID, in.ID, u)
		if err != nil {
			return nil, s.storeError(ctx, "updating connection", "connection not found", err)
		}
		// Set the provider side up again when the connection is (still)
		// active and its configuration or status changed; tear it down when
		// it was just disabled. A refused setup undoes the change.
		switch {
		case c.Status == store.StatusActive && (before.Status != c.Status || in.Body.Config != nil):
			if err := s.lifecycle(ctx, c, true); err != nil {
				s.undoUpdate(ctx, before, beforeConfig)
				return nil, s.lifecycleError(ctx, "connecting", err)
			}
		case c.Status == store.StatusDisabled && before.Status == store.StatusActive:
			if err := s.lifecycle(ctx, c, false); err != nil {
				s.log.WarnContext(ctx, "disconnecting a disabled connection at the provider failed",
					"connection", c.ID, "err", err)
			}
		}
		return &connectionOutput{Body: s.connectionBody(c)}, nil
	})

	op = operation("delete-connection", http.MethodDelete, "/v1/connections/{id}", "Delete a connection", tagConnections, store.ScopeWrite)
	op.DefaultStatus = http.StatusNoContent
	op.Description = "Deletes the connection with its stored events. A linked-device number's connection is logged out of WhatsApp first, as DELETE /v1/numbers/{id} does. " +
		"A connection that payment links refer to cannot be deleted (409); disable it instead."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict)
	huma.Register(s.api, op, func(ctx context.Context, in *connectionIDInput) (*struct{}, error) {
		cur, err := s.deps.Store.GetConnection(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading connection", "connection not found", err)
		}
		// Remove the provider side first, while the credentials are still
		// stored; a provider that refuses (a revoked token) cannot be
		// cleaned up anyway, so the deletion goes ahead.
		if cur.Connector == numbers.ConnectorLinkedDevice {
			// As DELETE /v1/numbers: the device leaves the phone's list of
			// linked devices instead of lingering there until removed by hand.
			s.logoutDeletedDevice(ctx, cur.TenantID, cur.ID)
		}
		if cur.Status == store.StatusActive {
			if err := s.lifecycle(ctx, cur, false); err != nil {
				s.log.WarnContext(ctx, "disconnecting a deleted connection at the provider failed",
					"connection", cur.ID, "err", err)
			}
		}
		err = s.deps.Store.DeleteConnection(ctx, tenant(ctx), in.ID)
		if errors.Is(err, store.ErrConnectionInUse) {
			return nil, huma.Error409Conflict("payment links refer to this connection; disable it instead (PATCH status=disabled)")
		}
		if err != nil {
			return nil, s.storeError(ctx, "deleting connection", "connection not found", err)
		}
		if cur.Connector == numbers.ConnectorLinkedDevice {
			s.refreshSessions()
		}
		// Automations that sent from this connection (a number) send from
		// any of the tenant's numbers from now on, as after DELETE
		// /v1/numbers, instead of failing on a connection that is gone.
		if r, ok := s.deps.Automations.(BindingReleaser); ok {
			if _, err := r.ReleaseConnection(ctx, tenant(ctx), in.ID); err != nil {
				s.log.ErrorContext(ctx, "releasing the automations bound to a deleted connection", "connection", in.ID, "err", err)
			}
		}
		return nil, nil
	})
}

// lifecycle runs the connector's sdk.Lifecycle for c: Connect when connect
// is true, else Disconnect. Connectors without setup at the provider answer
// at once.
func (s *server) lifecycle(ctx context.Context, c store.Connection, connect bool) error {
	if m, ok := s.manifest(c.Connector); !ok || !m.Lifecycle {
		if ok || !connect {
			return nil // nothing to set up; or nothing installed to clean up
		}
		return pluginhost.ErrUnknownConnector
	}
	client, err := s.deps.Connectors.Connector(c.Connector)
	if err != nil {
		return err
	}
	_, cfg, err := s.deps.Store.ResolvedConnection(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("reading the connection's configuration: %w", err)
	}
	conn := sdk.Connection{ID: c.ID, TenantID: c.TenantID, Config: cfg, WebhookURL: s.publicURL + "/hooks/" + c.ID}
	if connect {
		return client.Connect(ctx, conn)
	}
	return client.Disconnect(ctx, conn)
}

// undoUpdate restores the status and, when it was changed, the whole
// configuration (secrets included) of a connection whose new state the
// provider refused.
func (s *server) undoUpdate(ctx context.Context, before store.Connection, beforeConfig sdk.Config) {
	ctx = context.WithoutCancel(ctx)
	u := store.ConnectionUpdate{Status: &before.Status}
	if beforeConfig != nil {
		if m, ok := s.manifest(before.Connector); ok {
			u.Config, u.Fields = json.RawMessage(beforeConfig), m.Config
		}
	}
	if _, err := s.deps.Store.UpdateConnection(ctx, before.TenantID, before.ID, u); err != nil {
		s.log.ErrorContext(ctx, "restoring a connection after a refused setup", "connection", before.ID, "err", err)
	}
}

// lifecycleError maps a Connect failure to the API's answer: the provider's
// own words for invalid or refused credentials (422), 503 with Retry-After
// when it or the plugin is unavailable, 502 for anything else it answered.
func (s *server) lifecycleError(ctx context.Context, doing string, err error) error {
	var se *sdk.Error
	switch {
	case errors.Is(err, pluginhost.ErrUnknownConnector):
		return huma.Error409Conflict("the connector is not installed, so the connection cannot be set up at the provider")
	case isUnavailable(err):
		return unavailable("the connector is restarting; retry shortly", 5)
	case errors.As(err, &se):
		switch se.Kind {
		case sdk.KindInvalid, sdk.KindNotFound:
			return huma.Error422UnprocessableEntity("the provider refused the connection's setup: " + se.Message)
		case sdk.KindAuth:
			return huma.Error422UnprocessableEntity("the provider rejected the connection's credentials: " + se.Message)
		case sdk.KindRateLimited, sdk.KindRetryable:
			secs := max(int(se.RetryAfter.Seconds()), 5)
			return unavailable("the provider is unavailable or throttling; retry shortly: "+se.Message, secs)
		}
		return huma.Error502BadGateway("the provider failed the connection's setup: " + se.Message)
	}
	return s.internal(ctx, doing, err)
}
