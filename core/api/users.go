package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

// Users is the part of the store that manages agents; *store.Store
// implements it.
type Users interface {
	CreateUser(ctx context.Context, tenantID string, in store.NewUser) (store.User, error)
	ListUsers(ctx context.Context, tenantID string) ([]store.User, error)
	GetUser(ctx context.Context, tenantID, id string) (store.User, error)
	UpdateUser(ctx context.Context, tenantID, id string, u store.UserUpdate) (store.User, error)
	CreateUserAPIKey(ctx context.Context, tenantID, userID, name string) (store.APIKey, string, error)
}

var _ Users = (*store.Store)(nil)

// UserBody is an agent of the tenant.
type UserBody struct {
	ID         string     `json:"id"`
	Email      string     `json:"email" format:"email"`
	Name       string     `json:"name"`
	Role       string     `json:"role" enum:"admin,manager,operator,read_only"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty" doc:"Set while the user is disabled; its API keys do not work."`
}

func userBody(u store.User) UserBody {
	return UserBody{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt, DisabledAt: u.DisabledAt}
}

const roleDoc = "admin: everything; manager: everything but users and API keys; operator: only the conversations assigned to it, " +
	"where it can reply; read_only: reads only."

type createUserInput struct {
	Body struct {
		Email string `json:"email" format:"email" maxLength:"254" example:"ada@example.com"`
		Name  string `json:"name" minLength:"1" maxLength:"200" example:"Ada"`
		Role  string `json:"role" enum:"admin,manager,operator,read_only" doc:"admin: everything; manager: everything but users and API keys; operator: only the conversations assigned to it, where it can reply; read_only: reads only."`
	}
}

type updateUserInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		Name     *string `json:"name,omitempty" minLength:"1" maxLength:"200"`
		Role     *string `json:"role,omitempty" enum:"admin,manager,operator,read_only"`
		Disabled *bool   `json:"disabled,omitempty" doc:"true disables the user (its keys stop working at once); false enables it again."`
	}
}

type userIDInput struct {
	ID string `path:"id" maxLength:"100"`
}

type userOutput struct {
	Body UserBody
}

type userList struct {
	Body struct {
		Data []UserBody `json:"data"`
	}
}

type createUserKeyInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"200" example:"Ada's laptop"`
	}
}

type createdUserKeyOutput struct {
	Body struct {
		APIKeyBody
		UserID string `json:"user_id"`
		Key    string `json:"key" doc:"The API key. It is shown only this once; Ponte keeps only its hash."`
	}
}

func (s *server) userError(ctx context.Context, doing string, err error) error {
	if errors.Is(err, store.ErrConflict) {
		return huma.Error409Conflict("a user with this email already exists")
	}
	return s.storeError(ctx, doing, "user not found", err)
}

func (s *server) registerUsers() {
	users, ok := s.deps.Store.(Users)
	if !ok {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagUsers, Description: "The tenant's agents and their roles (admins only). " + roleDoc})

	op := operation("create-user", http.MethodPost, "/v1/users", "Create a user", tagUsers, store.ScopeAdmin)
	op.DefaultStatus = http.StatusCreated
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity, http.StatusConflict)
	huma.Register(s.api, op, func(ctx context.Context, in *createUserInput) (*userOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin); err != nil {
			return nil, err
		}
		u, err := users.CreateUser(ctx, tenant(ctx), store.NewUser{Email: in.Body.Email, Name: in.Body.Name, Role: in.Body.Role})
		if err != nil {
			return nil, s.userError(ctx, "creating user", err)
		}
		return &userOutput{Body: userBody(u)}, nil
	})

	op = operation("list-users", http.MethodGet, "/v1/users", "List users", tagUsers, store.ScopeAdmin)
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*userList, error) {
		if err := s.requireRole(ctx, store.RoleAdmin); err != nil {
			return nil, err
		}
		us, err := users.ListUsers(ctx, tenant(ctx))
		if err != nil {
			return nil, s.internal(ctx, "listing users", err)
		}
		out := &userList{}
		out.Body.Data = make([]UserBody, len(us))
		for i, u := range us {
			out.Body.Data[i] = userBody(u)
		}
		return out, nil
	})

	op = operation("get-user", http.MethodGet, "/v1/users/{id}", "Get a user", tagUsers, store.ScopeAdmin)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *userIDInput) (*userOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin); err != nil {
			return nil, err
		}
		u, err := users.GetUser(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.userError(ctx, "reading user", err)
		}
		return &userOutput{Body: userBody(u)}, nil
	})

	op = operation("update-user", http.MethodPatch, "/v1/users/{id}", "Change a user's name, role or disabled state", tagUsers, store.ScopeAdmin)
	op.Description = "A new role applies to the user's existing API keys at once (capped by the scopes each key was created with)."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *updateUserInput) (*userOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin); err != nil {
			return nil, err
		}
		p := principal(ctx)
		if in.ID == p.UserID && (in.Body.Disabled != nil && *in.Body.Disabled || in.Body.Role != nil && *in.Body.Role != store.RoleAdmin) {
			// An admin locking itself out is almost always a mistake, and
			// can leave a tenant without anyone to undo it.
			return nil, invalid("you cannot demote or disable yourself", store.FieldProblem{Field: "role", Message: "ask another admin"})
		}
		u, err := users.UpdateUser(ctx, p.TenantID, in.ID, store.UserUpdate{Name: in.Body.Name, Role: in.Body.Role, Disabled: in.Body.Disabled})
		if err != nil {
			return nil, s.userError(ctx, "updating user", err)
		}
		return &userOutput{Body: userBody(u)}, nil
	})

	op = operation("create-user-api-key", http.MethodPost, "/v1/users/{id}/api-keys", "Create an API key for a user", tagUsers, store.ScopeAdmin)
	op.Description = "The key acts as the user, with the scopes the user's role implies, and is shown only in this response."
	op.DefaultStatus = http.StatusCreated
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *createUserKeyInput) (*createdUserKeyOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin); err != nil {
			return nil, err
		}
		k, plain, err := users.CreateUserAPIKey(ctx, tenant(ctx), in.ID, in.Body.Name)
		if err != nil {
			return nil, s.userError(ctx, "creating user API key", err)
		}
		out := &createdUserKeyOutput{}
		out.Body.APIKeyBody = apiKeyBody(k)
		out.Body.UserID = k.UserID
		out.Body.Key = plain
		return out, nil
	})
}
