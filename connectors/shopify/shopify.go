// Package shopify is Ponte's Shopify connector. It registers the webhook
// subscriptions a shop must send (through the Admin GraphQL API, on
// connect), verifies and normalizes those webhooks into the shared commerce
// vocabulary of plugins/sdk/commerce (checkouts, orders, refunds,
// fulfillments, customers with their SMS marketing consent), and offers the
// commerce actions the cart-recovery and order-notification workflows call:
// fetching an abandoned checkout or an order, creating a single-use discount
// code, and listing customers page by page.
//
// The connector is built on plugins/sdk only and runs as its own plugin
// process (see cmd/ponte-connector-shopify). One process serves every
// Shopify connection; what a connection needs beyond its config (the shop's
// country, the ids of the webhook subscriptions it created, the numeric ids
// of checkouts seen by token) is kept in the host's per-connection state.
//
// # Configuration
//
//   - shop_domain (required): the shop's permanent domain, name.myshopify.com.
//   - access_token (secret, required): an Admin API access token of the app
//     installed on the shop (sent as X-Shopify-Access-Token).
//   - client_secret (secret, required): the app's client secret, with which
//     Shopify signs every webhook (X-Shopify-Hmac-Sha256).
//   - api_version (default [DefaultAPIVersion]): the Admin API version.
//   - default_country (optional): ISO 3166 alpha-2 country used to read phone
//     numbers written without an international prefix, before the shop's own.
//   - api_base (optional, default https://{shop_domain}): tests point it at
//     connectors/shopify/fakeshopify.
//
// # Events
//
// The commerce event types (checkout.*, order.*, fulfillment.*,
// customer.*) with the commerce payloads, plus [sdk.EventConnectionRevoked]
// on app/uninstalled. Every payload also carries a "shopify" object with the
// delivery's topic, webhook id, event id, triggered-at time and API version
// (see [Delivery]). Ids are Shopify's numeric (REST) ids as strings; a
// checkout's id is its token, which orders carry as checkout_token. The
// dedupe key is X-Shopify-Webhook-Id, which Shopify keeps across retries of
// one delivery.
//
// # Actions
//
// get_checkout, get_order, create_discount and list_customers, with the
// names and shapes of plugins/sdk/commerce; their JSON Schemas are in
// schemas/ and in the manifest. Admin API errors become typed *sdk.Error
// values (see [mapHTTPError] and [mapGraphQLErrors]).
package shopify

import (
	"embed"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Version is the connector's own version, reported in its manifest.
const Version = "0.1.0"

// DefaultAPIVersion is the Admin API version called when the connection does
// not name one: a stable version Shopify supports for a year from its
// release.
const DefaultAPIVersion = "2025-07"

// requestTimeout bounds one Admin API call.
const requestTimeout = 30 * time.Second

var (
	shopDomainPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*\.myshopify\.com$`)
	versionPattern    = regexp.MustCompile(`^(20[0-9]{2}-(01|04|07|10)|unstable)$`)
	countryPattern    = regexp.MustCompile(`^[A-Za-z]{2}$`)
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Interface assertions: what the connector promises the SDK.
var (
	_ sdk.Connector      = (*Connector)(nil)
	_ sdk.WebhookHandler = (*Connector)(nil)
	_ sdk.Lifecycle      = (*Connector)(nil)
	_ sdk.ActionInvoker  = (*Connector)(nil)
)

// Connector is the Shopify connector. It is safe for concurrent use by any
// number of connections.
type Connector struct {
	log      *slog.Logger
	host     sdk.Host
	client   *http.Client
	manifest sdk.Manifest
	now      func() time.Time
}

// New builds the connector. It is the [sdk.Factory] handed to sdk.Serve.
func New(host sdk.Host) (sdk.Connector, error) {
	return NewConnector(slog.Default(), host, nil)
}

// NewConnector builds the connector with a logger, the host (for
// per-connection state) and an HTTP client; a nil client gets a pooled one
// with [requestTimeout]. It is exported for tests that run the connector
// in-process.
func NewConnector(log *slog.Logger, host sdk.Host, client *http.Client) (*Connector, error) {
	if host == nil {
		return nil, fmt.Errorf("building the shopify connector: no host")
	}
	m, err := buildManifest()
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: requestTimeout,
		}}
	}
	return &Connector{log: log.With("connector", "shopify"), host: host, client: client, manifest: m, now: time.Now}, nil
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest { return c.manifest }

var actionDescriptions = []sdk.ActionSpec{
	{Name: commerce.ActionGetCheckout, Description: "Fetches an abandoned checkout by its token (the id of checkout events) or its numeric id: recovery URL, line items, totals and the customer's phone."},
	{Name: commerce.ActionGetOrder, Description: "Fetches an order by its numeric id: status, totals, line items, fulfillments with tracking."},
	{Name: commerce.ActionCreateDiscount, Description: "Creates a single-use percentage discount code, restricted to one customer when customer_id is given. Idempotent: a retry with the same idempotency key returns the same code."},
	{Name: commerce.ActionListCustomers, Description: "Lists the shop's customers one page at a time, with their SMS marketing consent."},
}

func buildManifest() (sdk.Manifest, error) {
	m := sdk.Manifest{
		Name:        "shopify",
		Version:     Version,
		DisplayName: "Shopify",
		Description: "A Shopify shop: abandoned checkouts, orders, refunds, fulfillments with tracking and customers' SMS marketing consent, and discount codes for cart recovery.",
		Webhooks:    true,
		Lifecycle:   true,
		Config: []sdk.ConfigField{
			{Name: "shop_domain", Type: sdk.FieldString, Required: true, Pattern: shopDomainPattern.String(),
				Description: "The shop's permanent domain, e.g. my-shop.myshopify.com (not a custom domain)."},
			{Name: "access_token", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "Admin API access token of the app installed on the shop (shpat_...), with read_orders, read_customers, read_fulfillments and write_discounts."},
			{Name: "client_secret", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "The app's client secret (API secret key); Shopify signs every webhook with it."},
			{Name: "api_version", Type: sdk.FieldString, Default: DefaultAPIVersion, Pattern: versionPattern.String(),
				Description: "Admin API version to call, e.g. 2025-07."},
			{Name: "default_country", Type: sdk.FieldString, Pattern: `^([A-Za-z]{2})?$`,
				Description: "Optional ISO 3166 country code (e.g. IT) for reading phone numbers written without +prefix; the shop's own country is used otherwise."},
			{Name: "api_base", Type: sdk.FieldString, Pattern: `^(https?://[^\s]+)?$`,
				Description: "Base URL of the Admin API; empty means https://{shop_domain}. Leave it empty; tests point it at a fake."},
		},
		Events: []sdk.EventType{
			{Type: commerce.EventCheckoutCreated, Description: "checkouts/create: a customer started a checkout (payload commerce.Checkout, id = checkout token)."},
			{Type: commerce.EventCheckoutUpdated, Description: "checkouts/update: a checkout changed, or was completed (completed_at set)."},
			{Type: commerce.EventCheckoutDeleted, Description: "checkouts/delete: a checkout was deleted (only its id is certain)."},
			{Type: commerce.EventOrderCreated, Description: "orders/create (payload commerce.Order; checkout_id is the checkout token it came from)."},
			{Type: commerce.EventOrderPaid, Description: "orders/paid: the order was paid in full."},
			{Type: commerce.EventOrderUpdated, Description: "orders/updated."},
			{Type: commerce.EventOrderCancelled, Description: "orders/cancelled."},
			{Type: commerce.EventOrderFulfilled, Description: "orders/fulfilled: every line item was fulfilled."},
			{Type: commerce.EventOrderRefunded, Description: "refunds/create: a refund was made; the payload's refunded_amount is this refund's amount."},
			{Type: commerce.EventFulfillmentCreated, Description: "fulfillments/create: a shipment was created, with its tracking."},
			{Type: commerce.EventFulfillmentUpdated, Description: "fulfillments/update: tracking or the carrier's shipment status changed (in transit, out for delivery, delivered, ...)."},
			{Type: commerce.EventCustomerCreated, Description: "customers/create (payload commerce.Customer with SMS marketing consent)."},
			{Type: commerce.EventCustomerUpdated, Description: "customers/update, including changes of SMS marketing consent."},
			{Type: sdk.EventConnectionRevoked, Description: "app/uninstalled: the app was removed from the shop; the host disables the connection."},
		},
	}
	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas", actionDescriptions...)
	if err != nil {
		return sdk.Manifest{}, err
	}
	m.Actions = actions
	return m, nil
}

// Config is a Shopify connection's configuration.
type Config struct {
	ShopDomain     string `json:"shop_domain"`
	AccessToken    string `json:"access_token"`
	ClientSecret   string `json:"client_secret"`
	APIVersion     string `json:"api_version"`
	DefaultCountry string `json:"default_country"`
	APIBase        string `json:"api_base"`
}

// DecodeConfig reads a connection's config and applies the defaults. It checks
// only the shape; each use checks the fields it needs.
func DecodeConfig(c sdk.Config) (Config, error) {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return Config{}, sdk.Permanent("reading the connection config: %v", err)
	}
	cfg.ShopDomain = strings.ToLower(strings.TrimSpace(cfg.ShopDomain))
	cfg.AccessToken = strings.TrimSpace(cfg.AccessToken)
	cfg.APIVersion = strings.TrimSpace(cfg.APIVersion)
	cfg.DefaultCountry = strings.ToUpper(strings.TrimSpace(cfg.DefaultCountry))
	cfg.APIBase = strings.TrimSuffix(strings.TrimSpace(cfg.APIBase), "/")
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.APIBase == "" && cfg.ShopDomain != "" {
		cfg.APIBase = "https://" + cfg.ShopDomain
	}
	return cfg, nil
}

// validForCalls checks what every Admin API call needs.
func (cfg Config) validForCalls() error {
	if !shopDomainPattern.MatchString(cfg.ShopDomain) {
		return sdk.Invalid("shop_domain %q is not a name.myshopify.com domain", cfg.ShopDomain)
	}
	if cfg.AccessToken == "" {
		return sdk.Auth("the connection has no access_token")
	}
	if !versionPattern.MatchString(cfg.APIVersion) {
		return sdk.Invalid("api_version %q is not a Shopify API version like 2025-07", cfg.APIVersion)
	}
	if cfg.DefaultCountry != "" && !countryPattern.MatchString(cfg.DefaultCountry) {
		return sdk.Invalid("default_country %q is not an ISO 3166 alpha-2 code", cfg.DefaultCountry)
	}
	u, err := url.Parse(cfg.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return sdk.Invalid("api_base %q is not an absolute http(s) URL", cfg.APIBase)
	}
	return nil
}

// graphqlURL is the Admin GraphQL endpoint of the connection's shop.
func (cfg Config) graphqlURL() string {
	return cfg.APIBase + "/admin/api/" + cfg.APIVersion + "/graphql.json"
}
