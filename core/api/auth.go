package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

// metaScope is the operation metadata key holding the scope an operation
// needs; operations without it are public (health, readiness).
const metaScope = "ponte.scope"

type keyCtxKey struct{}

// apiKey returns the authenticated key of the request. Handlers of
// authenticated operations only run after authenticate put it there.
func apiKey(ctx context.Context) store.APIKey {
	k, ok := ctx.Value(keyCtxKey{}).(store.APIKey)
	if !ok {
		// A handler of an operation registered without a scope asked for a
		// key: a programming error, surfaced by the recovery middleware as 500.
		panic("api: no authenticated API key in context")
	}
	return k
}

// tenant returns the tenant of the authenticated key; every store call of a
// handler goes through it.
func tenant(ctx context.Context) string { return apiKey(ctx).TenantID }

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate checks the API key of operations that need a scope and puts
// the request's Principal in the context. Bad keys get a bare 401: no hint
// whether the key was malformed, unknown, revoked or its user disabled. A
// user's key is then held to its role: the effective scopes (the key's,
// capped by the role's) must grant the operation's scope, and the role must
// be admitted to the operation (metaRoles; operators only where allowed).
func (s *server) authenticate(ctx huma.Context, next func(huma.Context)) {
	scope, _ := ctx.Operation().Metadata[metaScope].(string)
	if scope == "" {
		next(ctx)
		return
	}
	token, ok := bearerToken(ctx.Header("Authorization"))
	if !ok {
		s.unauthorized(ctx)
		return
	}
	key, err := s.deps.Store.Authenticate(ctx.Context(), token)
	if errors.Is(err, store.ErrInvalidAPIKey) {
		s.log.DebugContext(ctx.Context(), "API key rejected", slog.String("reason", err.Error()), slog.String("request_id", RequestID(ctx.Context())))
		s.unauthorized(ctx)
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx.Context(), "authenticating API key", slog.Any("error", err), slog.String("request_id", RequestID(ctx.Context())))
		_ = huma.WriteErr(s.api, ctx, http.StatusServiceUnavailable, "cannot check API keys right now; retry shortly")
		return
	}
	if ri := infoFrom(ctx.Context()); ri != nil {
		ri.tenantID, ri.keyID = key.TenantID, key.ID
	}
	p := principalFor(key)
	if !p.Allows(scope) {
		detail := fmt.Sprintf("this API key lacks the %q scope", scope)
		if p.Role != "" {
			detail = fmt.Sprintf("this API key lacks the %q scope (its user's role is %s)", scope, p.Role)
		}
		_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, detail)
		return
	}
	if p.Role != "" && !slices.Contains(rolesOf(ctx.Operation()), p.Role) {
		_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, fmt.Sprintf("the %s role cannot use this operation", p.Role))
		return
	}
	next(huma.WithValue(huma.WithValue(ctx, keyCtxKey{}, key), principalCtxKey{}, p))
}

func (s *server) unauthorized(ctx huma.Context) {
	ctx.SetHeader("WWW-Authenticate", `Bearer realm="ponte"`)
	_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "")
}
