// Package api is Ponte's REST API: a Gin engine whose /v1 operations are
// declared with huma, so the OpenAPI 3.1 document at /openapi.json and the
// browsable reference at /docs are derived from the handlers themselves.
//
// Every /v1 operation requires an API key (Authorization: Bearer ...) with the
// operation's scope and works on the key's tenant only; another tenant's ids
// answer 404 exactly like ids that do not exist. Errors are RFC 9457
// problem+json everywhere, including the router's own 404/405, panics and
// oversized bodies. The provider-facing webhook ingress is mounted at /hooks
// outside API-key auth.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// MaxBodyBytes is the largest request body the /v1 API reads.
const MaxBodyBytes = 1 << 20

// Store is the part of the store the API uses. *store.Store implements it.
type Store interface {
	Authenticate(ctx context.Context, plaintext string) (store.APIKey, error)

	CreateAPIKey(ctx context.Context, tenantID, name string, scopes []string) (store.APIKey, string, error)
	ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error)
	GetAPIKey(ctx context.Context, tenantID, keyID string) (store.APIKey, error)
	RevokeAPIKey(ctx context.Context, tenantID, keyID string) error

	CreateConnection(ctx context.Context, tenantID string, in store.NewConnection) (store.Connection, error)
	GetConnection(ctx context.Context, tenantID, id string) (store.Connection, error)
	ListConnections(ctx context.Context, tenantID string, f store.ConnectionFilter) ([]store.Connection, string, error)
	UpdateConnection(ctx context.Context, tenantID, id string, u store.ConnectionUpdate) (store.Connection, error)
	DeleteConnection(ctx context.Context, tenantID, id string) error
	ResolvedConnection(ctx context.Context, id string) (store.Connection, sdk.Config, error)

	ListEvents(ctx context.Context, tenantID string, f store.EventFilter) ([]store.Event, string, error)
	GetEvent(ctx context.Context, tenantID string, id int64) (store.Event, error)
}

var _ Store = (*store.Store)(nil)

// PaymentLinks creates and reads payment links (workflows/paymentlink).
//
// Errors are mapped to HTTP statuses: store.ErrNotFound (a link that does not
// exist or belongs to another tenant) 404, *paymentlink.InvalidError 422 at
// its field, paymentlink.ErrIdempotencyConflict 409, paymentlink.ErrInvalidCursor
// 400, pluginhost.ErrUnavailable 503, and errors carrying an sdk error kind:
// invalid 422, rate limited and retryable 503 with Retry-After, auth 502.
type PaymentLinks interface {
	Create(ctx context.Context, tenantID string, req paymentlink.CreateRequest) (paymentlink.Link, error)
	Get(ctx context.Context, tenantID, id string) (paymentlink.Link, error)
	List(ctx context.Context, tenantID string, cursor string, limit int) ([]paymentlink.Link, string, error)
}

// Deps is what the API needs. Store, Connectors, PaymentLinks and PublicURL
// are required.
type Deps struct {
	// Store is the system of record.
	Store Store
	// Connectors are the installed connector plugins.
	Connectors pluginhost.Registry
	// PaymentLinks runs payment links.
	PaymentLinks PaymentLinks
	// Hooks is the webhook ingress, mounted at /hooks/* for GET and POST
	// without API-key auth. Nil leaves /hooks unrouted.
	Hooks http.Handler
	// Internal serves the calls other nodes forward to this one (actions
	// of the linked-device sessions it holds), mounted at
	// invoke.InternalPath without API-key auth: the handler checks the
	// nodes' signature itself. Nil leaves it unrouted.
	Internal http.Handler
	// Ready runs the readiness checks (database, Temporal, plugins) and returns
	// each check's result by name, nil for a passing check. Nil means the
	// process is ready whenever it is up.
	Ready func(ctx context.Context) map[string]error
	// PublicURL is the externally reachable base URL, e.g.
	// "https://ponte.example.com"; webhook URLs are PublicURL/hooks/{id}.
	PublicURL string
	// Logger receives the access log and errors; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is the Prometheus registry served at /metrics; the API registers
	// its HTTP metrics and the Go and process collectors in it. Nil means a new
	// registry.
	Metrics *prometheus.Registry
	// Version is the running Ponte version, shown in the OpenAPI document.
	Version string
	// Inbox is the contacts and conversations service (core/contacts). Nil
	// leaves the inbox and contacts operations unregistered; when set,
	// Sender and InboxStream are required too.
	Inbox Inbox
	// Sender sends agents' replies in conversations (core/messaging).
	Sender Sender
	// InboxStream feeds GET /v1/stream (a *contacts.Hub).
	InboxStream InboxStream
	// StreamHeartbeat is how often an idle GET /v1/stream sends a comment
	// line; zero means 15 s.
	StreamHeartbeat time.Duration
	// Consent is the consent ledger, exclusion list and messaging settings
	// (a *consent.Service). Nil leaves those operations unregistered.
	Consent Consent
	// Templates manages message templates (a *templates.Service). Nil leaves
	// the template operations unregistered.
	Templates Templates
	// Messages sends and reads messages of the ledger (core/messaging). Nil
	// leaves POST /v1/messages and GET /v1/messages/{id} unregistered.
	Messages Messages
	// Automations stores shop connections' automation settings (a
	// *automations.Store). Nil leaves the automation operations
	// unregistered.
	Automations Automations
	// CartRecoveryReports computes GET /v1/reports/cart-recovery (a
	// *cartrecovery.DB); nil leaves it unregistered.
	CartRecoveryReports CartRecoveryReports
	// Numbers serves the numbers operations (linked devices and Cloud API
	// numbers, pairing); a nil Numbers.Store leaves them unregistered.
	Numbers NumbersDeps
	// SMS serves the SMS-compatible endpoint, Twilio's Messages resource
	// at /2010-04-01 (a *sms.Service); nil leaves it unregistered.
	SMS SMS
}

type server struct {
	deps      Deps
	log       *slog.Logger
	publicURL string
	api       huma.API
}

// New builds the HTTP handler: the /v1 API, /openapi.json, /docs, /hooks,
// /healthz, /readyz and /metrics.
func New(deps Deps) (*gin.Engine, error) {
	if deps.Store == nil || deps.Connectors == nil || deps.PaymentLinks == nil {
		return nil, errors.New("api: Store, Connectors and PaymentLinks are required")
	}
	if deps.Inbox != nil && (deps.Sender == nil || deps.InboxStream == nil) {
		return nil, errors.New("api: Inbox needs Sender and InboxStream")
	}
	if err := deps.Numbers.check(); err != nil {
		return nil, err
	}
	publicURL, err := checkPublicURL(deps.PublicURL)
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Version == "" {
		deps.Version = "dev"
	}
	m, err := newHTTPMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s := &server{deps: deps, log: deps.Logger, publicURL: publicURL}

	// Gin's debug mode prints every route to stdout at start; Ponte logs
	// through slog instead. GIN_MODE still wins when set explicitly.
	if os.Getenv(gin.EnvGinMode) == "" {
		gin.SetMode(gin.ReleaseMode)
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true // c.Value reaches the request context
	// Ponte does not sit behind a proxy it knows of; never trust
	// X-Forwarded-For for the client address in logs.
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("api: configuring trusted proxies: %w", err)
	}
	r.Use(s.requestID, s.accessLog(m), s.recover, securityHeaders)
	r.NoRoute(func(c *gin.Context) { writeProblem(c, http.StatusNotFound, "no such route") })
	r.NoMethod(func(c *gin.Context) { writeProblem(c, http.StatusMethodNotAllowed, "method not allowed on this route") })

	s.api = humagin.New(r, s.humaConfig())
	s.api.UseMiddleware(s.authenticate)
	s.registerHealth()
	s.registerConnectors()
	s.registerConnections()
	s.registerEvents()
	s.registerPaymentLinks()
	s.registerMessages()
	s.registerAPIKeys()
	s.registerUsers()
	s.registerInbox()
	s.registerContacts()
	s.registerConsent()
	s.registerSettings()
	s.registerTemplates()
	s.registerAutomations()
	s.registerNumbers()
	s.registerSMS()

	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(deps.Metrics, promhttp.HandlerOpts{Registry: deps.Metrics})))
	if deps.Internal != nil {
		r.POST(invoke.InternalPath, gin.WrapH(deps.Internal))
	}
	if deps.Hooks != nil {
		hooks := gin.WrapH(deps.Hooks)
		r.GET("/hooks/*path", hooks)
		r.POST("/hooks/*path", hooks)
	}
	return r, nil
}

func checkPublicURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("api: PublicURL %q must be an absolute http(s) URL without query", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

const apiDescription = `Ponte connects a business's shop, CRM, payments and calendar to WhatsApp.

This API manages **connections** (a tenant's configured instance of a connector such as Stripe), reads the
**events** received from them, and creates **payment links** sent in chat.

**Authentication.** Every /v1 operation needs an API key: ` + "`Authorization: Bearer ponte_...`" + `.
Keys carry scopes: *read* (read everything), *write* (also change connections and create payment links),
*admin* (also manage API keys). A key sees only its own tenant's data.

**Errors** are RFC 9457 problem details (` + "`application/problem+json`" + `); validation errors list each
problem in ` + "`errors`" + ` with its location. Every response carries an ` + "`X-Request-Id`" + `.

**Pagination.** List operations return ` + "`next_cursor`" + `; pass it as ` + "`cursor`" + ` to get the next page.
It is empty on the last page.`

// schemaNamer names schemas as huma does, prefixing the types of the
// workflows' packages with the package's name (CartrecoverySettings,
// OrdernotifySettings): each automation has a Settings type of its own.
func schemaNamer(t reflect.Type, hint string) string {
	name := huma.DefaultSchemaNamer(t, hint)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if pkg := t.PkgPath(); strings.Contains(pkg, "/workflows/") && t.Name() != "" {
		base := path.Base(pkg)
		return strings.ToUpper(base[:1]) + base[1:] + name
	}
	return name
}

func (s *server) humaConfig() huma.Config {
	cfg := huma.DefaultConfig("Ponte API", s.deps.Version)
	cfg.Info.Description = apiDescription
	cfg.Servers = []*huma.Server{{URL: s.publicURL}}
	cfg.OpenAPIPath = "/openapi" // serves /openapi.json and /openapi.yaml
	cfg.DocsPath = "/docs"
	// No $schema links in response bodies and no /schemas route: the
	// document at /openapi.json is the one place the schemas live.
	cfg.CreateHooks = nil
	cfg.SchemasPath = ""
	cfg.Transformers = []huma.Transformer{redactErrorValues}
	cfg.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaNamer)
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityScheme: {
			Type:         "http",
			Scheme:       "bearer",
			BearerFormat: "ponte_<prefix>_<secret>",
			Description:  "An API key of the tenant, created with `ponte admin key create` or POST /v1/api-keys.",
		},
	}
	cfg.Tags = []*huma.Tag{
		{Name: tagConnectors, Description: "Installed connector plugins and what they offer."},
		{Name: tagConnections, Description: "A tenant's configured connectors. Secret fields are write-only."},
		{Name: tagEvents, Description: "Events received from connections, newest first."},
		{Name: tagPaymentLinks, Description: "Payment links sent in chat, each driven by a durable workflow."},
		{Name: tagAPIKeys, Description: "The tenant's API keys (admin scope)."},
		{Name: tagOperations, Description: "Health and readiness for load balancers and orchestrators."},
	}
	return cfg
}

// Tags group operations in the OpenAPI document.
const (
	tagConnectors   = "Connectors"
	tagConnections  = "Connections"
	tagEvents       = "Events"
	tagPaymentLinks = "Payment links"
	tagAPIKeys      = "API keys"
	tagOperations   = "Operations"
)

const securityScheme = "apiKey"

// operation returns the common shape of a /v1 operation needing scope.
func operation(id, method, path, summary, tag, scope string) huma.Operation {
	return huma.Operation{
		OperationID:  id,
		Method:       method,
		Path:         path,
		Summary:      summary,
		Tags:         []string{tag},
		Security:     []map[string][]string{{securityScheme: {}}},
		Metadata:     map[string]any{metaScope: scope},
		MaxBodyBytes: MaxBodyBytes,
		Errors:       []int{http.StatusUnauthorized, http.StatusForbidden},
	}
}
