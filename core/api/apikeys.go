package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

// APIKeyBody is an API key as listings show it: never the secret.
type APIKeyBody struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix" example:"ponte_ab3d5fgh" doc:"The non-secret start of the key, to tell keys apart."`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Updated at most once a minute."`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func apiKeyBody(k store.APIKey) APIKeyBody {
	return APIKeyBody{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

type createAPIKeyInput struct {
	Body struct {
		Name   string   `json:"name" minLength:"1" maxLength:"200" example:"shop backend"`
		Scopes []string `json:"scopes" minItems:"1" uniqueItems:"true" enum:"read,write,admin" doc:"read: read everything; write: also change connections and create payment links; admin: also manage API keys."`
	}
}

type createdAPIKeyOutput struct {
	Body struct {
		APIKeyBody
		Key string `json:"key" doc:"The API key. It is shown only this once; Ponte keeps only its hash."`
	}
}

type apiKeyList struct {
	Body struct {
		Data []APIKeyBody `json:"data"`
	}
}

type apiKeyIDInput struct {
	ID string `path:"id" maxLength:"100"`
}

type apiKeyOutput struct {
	Body APIKeyBody
}

func (s *server) registerAPIKeys() {
	op := operation("create-api-key", http.MethodPost, "/v1/api-keys", "Create an API key", tagAPIKeys, store.ScopeAdmin)
	op.DefaultStatus = http.StatusCreated
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *createAPIKeyInput) (*createdAPIKeyOutput, error) {
		k, plain, err := s.deps.Store.CreateAPIKey(ctx, tenant(ctx), in.Body.Name, in.Body.Scopes)
		if err != nil {
			return nil, s.storeError(ctx, "creating API key", "tenant not found", err)
		}
		out := &createdAPIKeyOutput{}
		out.Body.APIKeyBody = apiKeyBody(k)
		out.Body.Key = plain
		return out, nil
	})

	op = operation("list-api-keys", http.MethodGet, "/v1/api-keys", "List API keys", tagAPIKeys, store.ScopeAdmin)
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*apiKeyList, error) {
		keys, err := s.deps.Store.ListAPIKeys(ctx, tenant(ctx))
		if err != nil {
			return nil, s.internal(ctx, "listing API keys", err)
		}
		out := &apiKeyList{}
		out.Body.Data = make([]APIKeyBody, len(keys))
		for i, k := range keys {
			out.Body.Data[i] = apiKeyBody(k)
		}
		return out, nil
	})

	op = operation("revoke-api-key", http.MethodDelete, "/v1/api-keys/{id}", "Revoke an API key", tagAPIKeys, store.ScopeAdmin)
	op.Description = "The key stops working at once. Revoking the key that makes the request is allowed."
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *apiKeyIDInput) (*apiKeyOutput, error) {
		tenantID := tenant(ctx)
		if err := s.deps.Store.RevokeAPIKey(ctx, tenantID, in.ID); err != nil {
			return nil, s.storeError(ctx, "revoking API key", "API key not found", err)
		}
		k, err := s.deps.Store.GetAPIKey(ctx, tenantID, in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading API key", "API key not found", err)
		}
		return &apiKeyOutput{Body: apiKeyBody(k)}, nil
	})
}
