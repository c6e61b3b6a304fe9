package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Templates manages WhatsApp message templates (*templates.Service). Errors:
// store.ErrNotFound (404), *store.ValidationError (422), templates.ErrExists
// (409), and the connector's *sdk.Error kinds (not found 404, invalid 422,
// auth 502, rate limited and retryable 503).
type Templates interface {
	List(ctx context.Context, tenantID string, f templates.Filter) ([]templates.Template, string, error)
	GetByID(ctx context.Context, tenantID, id string) (templates.Template, error)
	Create(ctx context.Context, tenantID string, in templates.NewTemplate) (templates.Template, error)
	Delete(ctx context.Context, tenantID, id string) error
	Sync(ctx context.Context, tenantID, connectionID string) (templates.SyncResult, error)
}

var _ Templates = (*templates.Service)(nil)

const tagTemplates = "Templates"

// TemplateBody is a message template of a connection.
type TemplateBody struct {
	ID           string          `json:"id"`
	ConnectionID string          `json:"connection_id"`
	ProviderID   string          `json:"provider_id,omitempty" doc:"Meta's template id."`
	Name         string          `json:"name" example:"cart_reminder"`
	Language     string          `json:"language" example:"it"`
	Category     string          `json:"category" enum:"marketing,utility,authentication"`
	Status       string          `json:"status" enum:"approved,pending,rejected,paused,disabled,incompatible" doc:"Only approved templates can be sent. incompatible: a feature found it cannot fill the template (see status_reason)."`
	StatusReason string          `json:"status_reason,omitempty"`
	Components   json.RawMessage `json:"components" doc:"Meta's component objects."`
	Parameters   int             `json:"parameters" doc:"Distinct variables ({{1}}, ...) in the body."`
	SyncedAt     *time.Time      `json:"synced_at,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func templateBody(t templates.Template) TemplateBody {
	comps := t.Components
	if len(comps) == 0 {
		comps = json.RawMessage(`[]`)
	}
	return TemplateBody{ID: t.ID, ConnectionID: t.ConnectionID, ProviderID: t.ProviderID, Name: t.Name, Language: t.Language,
		Category: t.Category, Status: t.Status, StatusReason: t.StatusReason, Components: comps, Parameters: t.Parameters,
		SyncedAt: t.SyncedAt, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

type listTemplatesInput struct {
	ConnectionID string `query:"connection_id" maxLength:"100"`
	Status       string `query:"status" enum:"approved,pending,rejected,paused,disabled,incompatible,"`
	Category     string `query:"category" enum:"marketing,utility,authentication,"`
	Name         string `query:"name" maxLength:"512" doc:"Templates whose name contains this."`
	Cursor       string `query:"cursor" maxLength:"500"`
	Limit        int    `query:"limit" minimum:"0" maximum:"200" doc:"Page size (default 50)."`
}

type templateList struct {
	Body struct {
		Data       []TemplateBody `json:"data"`
		NextCursor string         `json:"next_cursor"`
	}
}

type templateIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The template's id."`
}

type templateOutput struct {
	Body TemplateBody
}

type createTemplateInput struct {
	Body struct {
		ConnectionID string          `json:"connection_id" minLength:"1" maxLength:"100" doc:"The WhatsApp connection (number) whose account gets the template."`
		Name         string          `json:"name" pattern:"^[a-z0-9_]{1,512}$" example:"order_shipped"`
		Language     string          `json:"language" minLength:"2" maxLength:"10" example:"it"`
		Category     string          `json:"category" enum:"marketing,utility,authentication,MARKETING,UTILITY,AUTHENTICATION"`
		Components   json.RawMessage `json:"components" doc:"Meta's component objects: a BODY (variables {{1}}..{{n}}), optionally a HEADER, FOOTER and BUTTONS."`
	}
}

type syncTemplatesInput struct {
	ID string `path:"id" maxLength:"100" doc:"The connection's id."`
}

type syncOutput struct {
	Body struct {
		Upserted int `json:"upserted" doc:"Templates listed by Meta and stored."`
		Removed  int `json:"removed" doc:"Templates Meta no longer has, removed."`
		Skipped  int `json:"skipped" doc:"Listed templates not stored (unknown category, deleted)."`
	}
}

func (s *server) registerTemplates() {
	if s.deps.Templates == nil {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagTemplates, Description: "WhatsApp message templates per number, synced from Meta and moved by its status webhooks. Only approved templates can be sent."},
	)
	svc := s.deps.Templates
	readers := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly}

	op := allowRoles(operation("list-templates", http.MethodGet, "/v1/templates", "List templates", tagTemplates, store.ScopeRead), readers...)
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listTemplatesInput) (*templateList, error) {
		list, next, err := svc.List(ctx, tenant(ctx), templates.Filter{ConnectionID: in.ConnectionID, Status: in.Status,
			Category: in.Category, Name: in.Name, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, s.storeError(ctx, "listing templates", "", err)
		}
		out := &templateList{}
		out.Body.Data = make([]TemplateBody, len(list))
		for i, t := range list {
			out.Body.Data[i] = templateBody(t)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = allowRoles(operation("get-template", http.MethodGet, "/v1/templates/{id}", "Get a template", tagTemplates, store.ScopeRead), readers...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *templateIDInput) (*templateOutput, error) {
		t, err := svc.GetByID(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading template", "template not found", err)
		}
		return &templateOutput{Body: templateBody(t)}, nil
	})

	op = operation("create-template", http.MethodPost, "/v1/templates", "Create and submit a template", tagTemplates, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Validates the template (name, language, category, components: one BODY with variables {{1}}..{{n}} without gaps, header, footer and button limits), submits it to Meta for review and stores it, usually as pending; a status webhook moves it later."
	op.Errors = append(op.Errors, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *createTemplateInput) (*templateOutput, error) {
		tenantID := tenant(ctx)
		// The connection must be the tenant's before anything reaches Meta.
		if _, err := s.deps.Store.GetConnection(ctx, tenantID, in.Body.ConnectionID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, invalid("unknown connection", store.FieldProblem{Field: "connection_id", Message: "no connection of yours has this id"})
			}
			return nil, s.internal(ctx, "reading connection", err)
		}
		t, err := svc.Create(ctx, tenantID, templates.NewTemplate{ConnectionID: in.Body.ConnectionID, Name: in.Body.Name,
			Language: in.Body.Language, Category: in.Body.Category, Components: in.Body.Components})
		if err != nil {
			return nil, s.templateError(ctx, "creating template", err)
		}
		return &templateOutput{Body: templateBody(t)}, nil
	})

	op = operation("delete-template", http.MethodDelete, "/v1/templates/{id}", "Delete a template", tagTemplates, store.ScopeWrite)
	op.DefaultStatus = http.StatusNoContent
	op.Description = "Deletes the template at Meta (this language only) and here."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *templateIDInput) (*struct{}, error) {
		if err := svc.Delete(ctx, tenant(ctx), in.ID); err != nil {
			return nil, s.templateError(ctx, "deleting template", err)
		}
		return nil, nil
	})

	op = operation("sync-templates", http.MethodPost, "/v1/connections/{id}/templates/sync", "Sync a connection's templates", tagTemplates, store.ScopeWrite)
	op.Description = "Pulls every template of the number's WhatsApp Business Account from Meta, stores them and removes the ones Meta no longer has. Status webhooks keep them current afterwards."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *syncTemplatesInput) (*syncOutput, error) {
		res, err := svc.Sync(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.templateError(ctx, "syncing templates", err)
		}
		out := &syncOutput{}
		out.Body.Upserted, out.Body.Removed, out.Body.Skipped = res.Upserted, res.Removed, res.Skipped
		return out, nil
	})
}

// templateError maps the template service's errors: the store's, its own,
// then the kinds of the connector's errors.
func (s *server) templateError(ctx context.Context, doing string, err error) error {
	var (
		ve *store.ValidationError
		se *sdk.Error
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound("not found")
	case errors.As(err, &ve):
		return invalid("the template is invalid", ve.Problems...)
	case errors.Is(err, templates.ErrExists):
		return huma.Error409Conflict("a template with this name and language already exists on the connection")
	case isUnavailable(err):
		return unavailable("the WhatsApp connector is restarting; retry shortly", 5)
	case errors.As(err, &se):
		switch se.Kind {
		case sdk.KindNotFound:
			return huma.Error404NotFound("not found")
		case sdk.KindInvalid:
			return huma.Error422UnprocessableEntity(se.Message)
		case sdk.KindAuth:
			return huma.Error502BadGateway("Meta rejected the connection's credentials; check the connection's configuration")
		case sdk.KindRateLimited, sdk.KindRetryable:
			secs := int(se.RetryAfter.Seconds())
			if secs < 1 {
				secs = 5
			}
			return unavailable("Meta is unavailable or throttling; retry shortly", secs)
		case sdk.KindPermanent:
			return huma.Error502BadGateway("Meta refused the request: " + se.Message)
		}
	}
	return s.internal(ctx, doing, err)
}
