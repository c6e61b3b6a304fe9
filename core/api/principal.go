package api

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

// Principal is who makes a request: the API key, its tenant, and for a
// user's key the user and the user's role. Every authenticated request's
// context carries one; handlers read it with principal(ctx).
//
// A key without a user is a tenant service key, governed by its scopes only
// (Role ""). A user's key is bounded by the user's role, read at every
// request: admin and manager see the whole tenant (a manager cannot manage
// users or keys), an operator only the conversations assigned to it (and
// their contacts), read_only reads and never changes anything.
type Principal struct {
	TenantID string
	KeyID    string
	// Scopes are the key's effective scopes: for a user's key, the key's
	// scopes capped by what the user's role implies (store.RoleScopes).
	Scopes []string
	// UserID is the agent the key belongs to, "" for a service key.
	UserID string
	// Role is the agent's role (store.RoleAdmin, ...), "" for a service key.
	Role string
}

// Allows reports whether the principal's effective scopes grant scope
// (ladder admin > write > read).
func (p Principal) Allows(scope string) bool {
	return store.APIKey{Scopes: p.Scopes}.Allows(scope)
}

// IsService reports whether the request comes from a tenant service key.
func (p Principal) IsService() bool { return p.UserID == "" }

// principalFor derives the principal of an authenticated key. A user's key
// gets the highest scope that both the key and the user's role allow, so a
// demoted user's old keys lose what the new role does not grant.
func principalFor(k store.APIKey) Principal {
	p := Principal{TenantID: k.TenantID, KeyID: k.ID, UserID: k.UserID, Role: k.Role}
	if k.UserID == "" {
		p.Scopes = slices.Clone(k.Scopes)
		return p
	}
	roleKey := store.APIKey{Scopes: store.RoleScopes(k.Role)}
	for _, sc := range []string{store.ScopeAdmin, store.ScopeWrite, store.ScopeRead} {
		if k.Allows(sc) && roleKey.Allows(sc) {
			p.Scopes = []string{sc}
			break
		}
	}
	return p
}

type principalCtxKey struct{}

// principal returns the principal of an authenticated request. Like apiKey,
// it panics (a 500 through the recovery middleware) when called from an
// operation registered without a scope: a programming error.
func principal(ctx context.Context) Principal {
	p, ok := ctx.Value(principalCtxKey{}).(Principal)
	if !ok {
		panic("api: no principal in context")
	}
	return p
}

// metaRoles is the operation metadata key listing the user roles that may
// call an operation ([]string). Operations without it admit every role but
// operator: operators are confined to the inbox, so each operation open to
// them says so with allowRoles and checks conversation access in its handler.
// Scopes still apply on top: a read_only user's key has only the read scope,
// a manager's no admin scope.
const metaRoles = "ponte.roles"

// allowRoles sets the user roles admitted to op (see metaRoles); service keys
// are not affected.
func allowRoles(op huma.Operation, roles ...string) huma.Operation {
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[metaRoles] = roles
	return op
}

// defaultRoles admit everyone but operators.
var defaultRoles = []string{store.RoleAdmin, store.RoleManager, store.RoleReadOnly}

// rolesOf returns the roles admitted to an operation.
func rolesOf(op *huma.Operation) []string {
	if op != nil {
		if roles, ok := op.Metadata[metaRoles].([]string); ok {
			return roles
		}
	}
	return defaultRoles
}

// forbidden is the 403 problem of a role or scope refusal.
func forbidden(format string, args ...any) error {
	return huma.Error403Forbidden(fmt.Sprintf(format, args...))
}

// roleScope is the least scope a service key needs to stand in for role.
func roleScope(role string) string {
	if sc := store.RoleScopes(role); len(sc) == 1 {
		return sc[0]
	}
	return store.ScopeAdmin
}

// requireRole lets the request through when its user has one of roles. A
// service key passes when its scopes allow what the least powerful of roles
// implies (e.g. write for manager or operator, admin for admin alone).
// A refusal is a 403 problem naming the role.
func (s *server) requireRole(ctx context.Context, roles ...string) error {
	p := principal(ctx)
	if p.IsService() {
		need := store.ScopeAdmin
		for _, r := range roles {
			if sc := roleScope(r); (store.APIKey{Scopes: []string{need}}).Allows(sc) {
				need = sc // a lower rung of the ladder
			}
		}
		if !p.Allows(need) {
			return forbidden("this API key lacks the %q scope", need)
		}
		return nil
	}
	if slices.Contains(roles, p.Role) {
		return nil
	}
	return forbidden("the %s role cannot do this", p.Role)
}

// requireWrite refuses read-only principals: read_only users, and service
// keys without the write scope. Operators pass; what they may change is
// checked per conversation by requireConversationAccess.
func (s *server) requireWrite(ctx context.Context) error {
	p := principal(ctx)
	if p.Role == store.RoleReadOnly {
		return forbidden("the read_only role cannot change anything")
	}
	if !p.Allows(store.ScopeWrite) {
		return forbidden("this API key lacks the %q scope", store.ScopeWrite)
	}
	return nil
}

// requireConversationAccess checks that the principal may read (write false)
// or act on (write true: reply, assign, tag, note, mark read) a conversation
// of its tenant. A conversation that does not exist or is another tenant's is
// a 404, like everywhere; a role refusal is a 403 problem: operators reach
// only the conversations assigned to them, read_only users and read-scoped
// service keys never write.
func (s *server) requireConversationAccess(ctx context.Context, conversationID string, write bool) error {
	p := principal(ctx)
	if s.deps.Inbox == nil {
		return s.internal(ctx, "checking conversation access", errors.New("api: Deps.Inbox is not configured"))
	}
	assignee, err := s.deps.Inbox.ConversationAssignee(ctx, p.TenantID, conversationID)
	if err != nil {
		return s.storeError(ctx, "checking conversation access", "conversation not found", err)
	}
	if write {
		if err := s.requireWrite(ctx); err != nil {
			return err
		}
	}
	if p.Role == store.RoleOperator && assignee != p.UserID {
		return forbidden("the conversation is not assigned to you")
	}
	return nil
}

// requireContactAccess is requireConversationAccess for a contact: operators
// reach the contacts of the conversations assigned to them.
func (s *server) requireContactAccess(ctx context.Context, contactID string, write bool) error {
	p := principal(ctx)
	if s.deps.Inbox == nil {
		return s.internal(ctx, "checking contact access", errors.New("api: Deps.Inbox is not configured"))
	}
	assigned, err := s.deps.Inbox.ContactAssignedTo(ctx, p.TenantID, contactID, p.UserID)
	if err != nil {
		return s.storeError(ctx, "checking contact access", "contact not found", err)
	}
	if write {
		if err := s.requireWrite(ctx); err != nil {
			return err
		}
	}
	if p.Role == store.RoleOperator && !assigned {
		return forbidden("the contact has no conversation assigned to you")
	}
	return nil
}
