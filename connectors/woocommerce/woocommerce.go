// Package woocommerce is Ponte's WooCommerce connector: it registers webhook
// subscriptions on a WooCommerce store through the REST API
// (/wp-json/wc/v3), verifies and normalizes the order and customer webhooks
// the store sends into Ponte's commerce vocabulary (plugins/sdk/commerce),
// reconciles missed deliveries by polling the orders modified since its last
// pass, and offers the shop actions the commerce workflows call (fetch an
// order or an unpaid cart, create a single-use coupon, list customers).
//
// The connector is built on plugins/sdk only and runs as its own plugin
// process (see cmd/ponte-connector-woocommerce).
//
// # Configuration
//
//   - store_url (required): the store's address, e.g. https://shop.example.
//     The REST API keys are sent with HTTP Basic authentication, which
//     WooCommerce accepts only over HTTPS (over plain HTTP it expects OAuth
//     1.0a signatures and answers 401), so a plain http:// URL is refused
//     unless it is a loopback address (tests run a fake store there).
//   - consumer_key, consumer_secret (secrets, required): a REST API key with
//     Read/Write permissions (WooCommerce > Settings > Advanced > REST API).
//     Read/Write is needed because the connector creates webhooks and coupons.
//   - webhook_secret (secret, required): the secret the connector gives the
//     webhooks it registers; WooCommerce signs every delivery with it
//     (X-WC-Webhook-Signature). Letters, digits and ._~+/=- only, at least 16:
//     WooCommerce runs secrets through sanitize_text_field, which would
//     silently change other characters and break every signature.
//   - default_country (optional, ISO 3166 alpha-2): the country used to read a
//     phone number written without its international prefix when the order or
//     customer has no billing or shipping country.
//   - reconcile_minutes (default 10): how often the reconciliation poll runs.
//
// # Events
//
// WooCommerce has no abandoned-checkout object: a cart the customer started
// paying for is an order in status pending (awaiting payment), failed
// (payment failed) or checkout-draft (block checkout in progress), and its
// payment_url takes the customer back to pay it. The connector therefore
// emits such orders as commerce checkouts (checkout.created, .updated,
// .deleted; Checkout.ID is the order id, RecoveryURL its payment_url), and
// orders in processing, on-hold, completed, cancelled or refunded as commerce
// orders whose CheckoutID is the order id itself, so that an unpaid order
// becoming a real one ends its cart's recovery. Which events an order state
// produces does not depend on the webhook topic that carried it (the table
// is in normalize.go, orderEvents), so the reconciliation poll, which sees
// states and not topics, produces the very same events with the same dedupe
// keys and the host stores each once. Customers become customer.created and
// customer.updated; WooCommerce records no consent to phone marketing, so
// their MarketingConsent is always nil.
//
// Dedupe keys: WooCommerce has no delivery id that survives a redelivery (a
// redelivery gets a new X-WC-Webhook-Delivery-ID), so keys are built from
// the resource id and what happened to it: the order's date_modified_gmt and
// status for updates, and a fixed milestone (created, paid, fulfilled,
// cancelled, refunded, deleted) for events that happen once per order.
//
// # Reconciliation
//
// WooCommerce does not retry a failed delivery, and disables a webhook after
// more than five consecutive failures. The connector is a [sdk.Poller]: every
// reconcile_minutes it lists the orders modified since its cursor
// (modified_after, dates_are_gmt, orderby=modified ascending, 100 a page) and
// emits the events their states produce, and it re-activates the connection's
// webhooks that WooCommerce disabled. See poll.go for the cursor.
//
// # Actions
//
// get_order, get_checkout, create_discount and list_customers, with the
// names, parameters and results of plugins/sdk/commerce; their JSON Schemas
// are in schemas/ and in the manifest. REST errors become typed *sdk.Error
// values (see [MapError]).
package woocommerce

import (
	"embed"
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

// Defaults and bounds of the connection config.
const (
	DefaultReconcileMinutes = 10
	maxReconcileMinutes     = 24 * 60
)

// PollInterval is the manifest's poll interval: how often the host asks for
// a reconciliation. The manifest is the same for every connection, so it
// cannot carry reconcile_minutes; instead Poll skips (returning its cursor
// unchanged, with no request to the store) when the connection's last
// complete pass ended less than reconcile_minutes ago. The record of that
// pass lives in Host state, so the skip holds across plugin restarts and
// across Ponte nodes. A minute is the granularity reconcile_minutes can have.
const PollInterval = time.Minute

// requestTimeout bounds one REST call. WordPress sites on shared hosting are
// slow; a minute is what WooCommerce's own clients allow.
const requestTimeout = 60 * time.Second

// Webhook topics the connector subscribes to, in the order they are created.
var webhookTopics = []string{"order.created", "order.updated", "order.deleted", "customer.created", "customer.updated"}

var (
	storeURLPattern      = regexp.MustCompile(`^https?://[^\s]+$`)
	webhookSecretPattern = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,200}$`)
	countryPattern       = regexp.MustCompile(`^[A-Z]{2}$`)
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Interface assertions: what the connector promises the SDK.
var (
	_ sdk.Connector      = (*Connector)(nil)
	_ sdk.WebhookHandler = (*Connector)(nil)
	_ sdk.Lifecycle      = (*Connector)(nil)
	_ sdk.Poller         = (*Connector)(nil)
	_ sdk.ActionInvoker  = (*Connector)(nil)
)

// Connector is the WooCommerce connector. It is safe for concurrent use by
// any number of connections; what it keeps per connection (its webhook ids,
// the last reconciliation) lives in Host state.
type Connector struct {
	host     sdk.Host
	log      *slog.Logger
	client   *http.Client
	manifest sdk.Manifest
	now      func() time.Time
}

// New builds the connector. It is the [sdk.Factory] handed to sdk.Serve.
func New(host sdk.Host) (sdk.Connector, error) {
	return NewConnector(host, slog.Default(), nil)
}

// NewConnector builds the connector with a logger and an HTTP client (nil
// for one with the connector's timeouts). It is exported for tests that run
// the connector in-process.
func NewConnector(host sdk.Host, log *slog.Logger, client *http.Client) (*Connector, error) {
	m, err := buildManifest()
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: requestTimeout}
	}
	return &Connector{host: host, log: log.With("connector", "woocommerce"), client: client, manifest: m, now: time.Now}, nil
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest { return c.manifest }

// actionDescriptions lists the actions in manifest order.
var actionDescriptions = []sdk.ActionSpec{
	{Name: commerce.ActionGetOrder, Description: "Fetches an order (GET /orders/{id}) in Ponte's commerce shape, with its shipment tracking when the Shipment Tracking extension records one."},
	{Name: commerce.ActionGetCheckout, Description: "Fetches an unpaid order (pending, failed or checkout-draft) as an abandoned cart, with its payment_url as the recovery link. An order that was since placed is returned with completed_at and order_id set; a cancelled or deleted one is not_found."},
	{Name: commerce.ActionCreateDiscount, Description: "Creates a single-use percentage coupon (one use, one per customer, restricted to the customer's email when known, with an optional expiry). The code is derived from the call's idempotency key, so a retried call returns the same coupon."},
	{Name: commerce.ActionListCustomers, Description: "Lists the store's customers page by page (cursor = page number), for imports."},
}

func buildManifest() (sdk.Manifest, error) {
	m := sdk.Manifest{
		Name:         "woocommerce",
		Version:      Version,
		DisplayName:  "WooCommerce",
		Description:  "A WooCommerce store: unpaid orders as abandoned carts with their payment link, order and customer updates, single-use coupons and customer imports.",
		Webhooks:     true,
		PollInterval: PollInterval,
		Config: []sdk.ConfigField{
			{Name: "store_url", Type: sdk.FieldString, Required: true, Pattern: storeURLPattern.String(),
				Description: "The store's address, e.g. https://shop.example. It must be https: WooCommerce accepts REST API keys over HTTP Basic authentication only over HTTPS."},
			{Name: "consumer_key", Type: sdk.FieldString, Required: true, Secret: true, Pattern: `^ck_[A-Za-z0-9]+$`,
				Description: "Consumer key (ck_...) of a REST API key with Read/Write permissions: WooCommerce > Settings > Advanced > REST API > Add key."},
			{Name: "consumer_secret", Type: sdk.FieldString, Required: true, Secret: true, Pattern: `^cs_[A-Za-z0-9]+$`,
				Description: "Consumer secret (cs_...) of the same REST API key."},
			{Name: "webhook_secret", Type: sdk.FieldString, Required: true, Secret: true, Pattern: webhookSecretPattern.String(),
				Description: "A random string of 16 or more letters, digits and ._~+/=- (e.g. openssl rand -hex 32). Ponte sets it on the webhooks it registers and WooCommerce signs every delivery with it."},
			{Name: "default_country", Type: sdk.FieldString, Pattern: countryPattern.String(),
				Description: "ISO country code (e.g. IT) used to read phone numbers written without the international prefix when an order or customer has no address country."},
			{Name: "reconcile_minutes", Type: sdk.FieldInteger, Default: float64(DefaultReconcileMinutes), // float64: what the manifest is after a trip through JSON
				Description: "How often, in minutes (1-1440), Ponte lists the orders changed since its last pass, to catch webhooks WooCommerce failed to deliver (it never retries them)."},
		},
		Events: []sdk.EventType{
			{Type: commerce.EventCheckoutCreated, Description: "An unpaid order (pending, failed or checkout-draft) was seen for the first time: an abandoned cart. Dedupe key checkout:<id>:created."},
			{Type: commerce.EventCheckoutUpdated, Description: "An unpaid order changed. Dedupe key checkout:<id>:updated:<date_modified_gmt>:<status>."},
			{Type: commerce.EventCheckoutDeleted, Description: "An order was deleted, or an unpaid order was cancelled (its payment link no longer works). Dedupe key checkout:<id>:deleted."},
			{Type: commerce.EventOrderCreated, Description: "An order was seen for the first time in a placed status (processing, on-hold, completed, refunded, or cancelled after payment). Dedupe key order:<id>:created."},
			{Type: commerce.EventOrderUpdated, Description: "A placed order changed. Dedupe key order:<id>:updated:<date_modified_gmt>:<status>."},
			{Type: commerce.EventOrderPaid, Description: "An order has a date_paid. Dedupe key order:<id>:paid."},
			{Type: commerce.EventOrderFulfilled, Description: "An order was completed, with the Shipment Tracking extension's tracking when present. Dedupe key order:<id>:fulfilled."},
			{Type: commerce.EventOrderCancelled, Description: "An order was cancelled. Dedupe key order:<id>:cancelled."},
			{Type: commerce.EventOrderRefunded, Description: "An order was refunded in full. Dedupe key order:<id>:refunded."},
			{Type: commerce.EventOrderDeleted, Description: "An order was trashed or deleted. Dedupe key order:<id>:deleted."},
			{Type: commerce.EventCustomerCreated, Description: "A customer account was created. Dedupe key customer:<id>:created."},
			{Type: commerce.EventCustomerUpdated, Description: "A customer account changed. Dedupe key customer:<id>:updated:<date_modified_gmt>."},
		},
	}
	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas", actionDescriptions...)
	if err != nil {
		return sdk.Manifest{}, err
	}
	m.Actions = actions
	return m, nil
}

// Config is a WooCommerce connection's configuration.
type Config struct {
	StoreURL         string `json:"store_url"`
	ConsumerKey      string `json:"consumer_key"`
	ConsumerSecret   string `json:"consumer_secret"`
	WebhookSecret    string `json:"webhook_secret"`
	DefaultCountry   string `json:"default_country"`
	ReconcileMinutes int    `json:"reconcile_minutes"`
}

// DecodeConfig reads a connection's config, applies the defaults and checks
// what every use needs: an https store URL (http only on loopback) and the
// key pair. The webhook secret is checked where it is used.
func DecodeConfig(c sdk.Config) (Config, error) {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return Config{}, sdk.Permanent("%v", err)
	}
	cfg.StoreURL = strings.TrimRight(strings.TrimSpace(cfg.StoreURL), "/")
	cfg.ConsumerKey = strings.TrimSpace(cfg.ConsumerKey)
	cfg.ConsumerSecret = strings.TrimSpace(cfg.ConsumerSecret)
	cfg.DefaultCountry = strings.ToUpper(strings.TrimSpace(cfg.DefaultCountry))
	if cfg.ReconcileMinutes == 0 {
		cfg.ReconcileMinutes = DefaultReconcileMinutes
	}
	if cfg.ReconcileMinutes < 1 || cfg.ReconcileMinutes > maxReconcileMinutes {
		return Config{}, sdk.Invalid("reconcile_minutes %d is not between 1 and %d", cfg.ReconcileMinutes, maxReconcileMinutes)
	}
	if cfg.DefaultCountry != "" && !countryPattern.MatchString(cfg.DefaultCountry) {
		return Config{}, sdk.Invalid("default_country %q is not an ISO 3166 alpha-2 code like IT", cfg.DefaultCountry)
	}
	if err := checkStoreURL(cfg.StoreURL); err != nil {
		return Config{}, err
	}
	if cfg.ConsumerKey == "" || cfg.ConsumerSecret == "" {
		return Config{}, sdk.Auth("the connection has no consumer_key or consumer_secret")
	}
	return cfg, nil
}

// checkStoreURL refuses a store URL over which the keys would be sent in
// clear, or which WooCommerce would not accept them over anyway.
func checkStoreURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return sdk.Invalid("store_url %q is not an absolute https URL like https://shop.example", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return sdk.Invalid("store_url %q must not have a query or fragment", s)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return sdk.Invalid("store_url %q is plain http: WooCommerce accepts REST API keys (HTTP Basic authentication) only over HTTPS, and they would travel in clear; use the store's https:// address", s)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reconcileEvery is the configured reconciliation period.
func (cfg Config) reconcileEvery() time.Duration {
	return time.Duration(cfg.ReconcileMinutes) * time.Minute
}

// endpoint returns the URL of a REST route under /wp-json/wc/v3/.
func (cfg Config) endpoint(route string, q url.Values) string {
	u := cfg.StoreURL + "/wp-json/wc/v3/" + strings.TrimPrefix(route, "/")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
