// Package stripeconnector is Ponte's Stripe connector: it verifies and
// normalizes Stripe's payment webhooks and creates, reads and deactivates
// Stripe Payment Links.
//
// The connector is built on plugins/sdk only and runs as its own plugin process
// (see cmd/ponte-connector-stripe). One process serves every Stripe connection
// of every tenant at once, so it keeps no per-connection state: each call
// builds its own Stripe client from the connection's config, and nothing ever
// touches stripe-go's global stripe.Key or default backends.
//
// # Configuration
//
//   - secret_key (secret, required): a secret or restricted API key,
//     sk_test_..., sk_live_..., rk_test_... or rk_live_....
//   - webhook_secret (secret, required): the signing secret of the webhook
//     endpoint, whsec_....
//   - api_base (optional): overrides https://api.stripe.com, e.g. to point the
//     connection at stripe-mock in tests and development.
//
// # Events
//
// Events keep Stripe's type names (see [EventTypes]); every payload is a
// [Payment]. Correlation keys are [CorrelationPaymentLink] (the Ponte payment
// link id found in the object's metadata under [MetadataPaymentLink]),
// [CorrelationCheckoutSession], [CorrelationPaymentIntent],
// [CorrelationStripePaymentLink] and [CorrelationCharge], each present only
// when the Stripe object carries it.
//
// # Actions
//
// create_payment_link, deactivate_payment_link and get_payment_link; their
// parameter and result JSON Schemas are in schemas/ and in the manifest.
package stripeconnector

import (
	"embed"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Version is the connector's own version, reported in its manifest.
const Version = "0.1.0"

// Correlation keys this connector sets on its events.
const (
	// CorrelationPaymentLink carries the Ponte payment link id read from the
	// Stripe object's metadata key [MetadataPaymentLink]. It is the same string
	// as workflows/paymentlink.CorrelationKey; it is repeated here because a
	// connector must not import Ponte's workflows.
	CorrelationPaymentLink = "payment_link"
	// CorrelationCheckoutSession carries a Checkout Session id (cs_...).
	CorrelationCheckoutSession = "checkout_session"
	// CorrelationPaymentIntent carries a PaymentIntent id (pi_...).
	CorrelationPaymentIntent = "payment_intent"
	// CorrelationStripePaymentLink carries Stripe's own Payment Link id
	// (plink_...), set on Checkout Sessions opened from a payment link.
	CorrelationStripePaymentLink = "stripe_payment_link"
	// CorrelationCharge carries a Charge id (ch_...).
	CorrelationCharge = "charge"
)

// MetadataPaymentLink is the Stripe metadata key under which Ponte stores its
// payment link id when it creates a link, so payment events can be matched
// back. It is the same string as workflows/paymentlink.MetadataKey, repeated
// here because a connector must not import Ponte's workflows.
const MetadataPaymentLink = "ponte_payment_link"

// Event types this connector emits. They keep Stripe's own names.
const (
	EventCheckoutSessionCompleted = "checkout.session.completed"
	EventCheckoutSessionExpired   = "checkout.session.expired"
	EventPaymentIntentSucceeded   = "payment_intent.succeeded"
	EventPaymentIntentFailed      = "payment_intent.payment_failed"
	EventChargeRefunded           = "charge.refunded"
)

// Action names this connector offers.
const (
	ActionCreatePaymentLink     = "create_payment_link"
	ActionDeactivatePaymentLink = "deactivate_payment_link"
	ActionGetPaymentLink        = "get_payment_link"
)

// WebhookTolerance is how old a signed webhook may be before it is rejected as
// a possible replay. It is Stripe's recommended (and stripe-go's default)
// window.
const WebhookTolerance = 300 * time.Second

// Patterns of the secret config fields. They are declared in the manifest, so
// the host rejects a malformed key when the connection is created, and checked
// again here because a connector must never verify a signature with an empty
// secret (an empty HMAC key would let anyone sign).
var (
	secretKeyPattern     = regexp.MustCompile(`^(sk|rk)_(test|live)_[0-9A-Za-z]+$`)
	webhookSecretPattern = regexp.MustCompile(`^whsec_[0-9A-Za-z+/=_-]+$`)
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Interface assertions: what the connector promises the SDK.
var (
	_ sdk.Connector      = (*Connector)(nil)
	_ sdk.WebhookHandler = (*Connector)(nil)
	_ sdk.ActionInvoker  = (*Connector)(nil)
)

// Connector is the Stripe connector. It is safe for concurrent use by any
// number of connections.
type Connector struct {
	log *slog.Logger
	// transport is shared by every call, so connections to Stripe are pooled.
	transport http.RoundTripper
	// timeout bounds one HTTP request to Stripe.
	timeout time.Duration
	// maxNetworkRetries is how often stripe-go retries a request that failed in
	// a way known to be safe to retry (every write carries an idempotency key).
	maxNetworkRetries int64
	manifest          sdk.Manifest
}

// New builds the Stripe connector. It is the [sdk.Factory] handed to
// sdk.Serve; the host is not needed because the connector keeps no state.
func New(_ sdk.Host) (sdk.Connector, error) {
	return newConnector(slog.Default(), http.DefaultTransport.(*http.Transport).Clone(), 60*time.Second, 2)
}

func newConnector(log *slog.Logger, transport http.RoundTripper, timeout time.Duration, retries int64) (*Connector, error) {
	m, err := buildManifest()
	if err != nil {
		return nil, err
	}
	return &Connector{
		log:               log.With("connector", "stripe"),
		transport:         transport,
		timeout:           timeout,
		maxNetworkRetries: retries,
		manifest:          m,
	}, nil
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest { return c.manifest }

// EventTypes lists the Stripe event types the connector normalizes, in the
// order of the manifest.
func EventTypes() []string {
	return []string{
		EventCheckoutSessionCompleted,
		EventCheckoutSessionExpired,
		EventPaymentIntentSucceeded,
		EventPaymentIntentFailed,
		EventChargeRefunded,
	}
}

func buildManifest() (sdk.Manifest, error) {
	specs := []sdk.ActionSpec{
		{Name: ActionCreatePaymentLink, Description: "Creates a Stripe Payment Link for an amount, currency and product name (a Price is created for it) or for an existing Price. The metadata is set on the link and on the PaymentIntent of every payment made through it, so payment events carry it."},
		{Name: ActionDeactivatePaymentLink, Description: "Deactivates a Stripe Payment Link so it no longer accepts payments."},
		{Name: ActionGetPaymentLink, Description: "Reads a Stripe Payment Link."},
	}
	m := sdk.Manifest{
		Name:        "stripe",
		Version:     Version,
		DisplayName: "Stripe",
		Description: "Payment links in chat and Stripe payment events (checkout completed or expired, payment succeeded or failed, refunds).",
		Webhooks:    true,
		Config: []sdk.ConfigField{
			{
				Name:        "secret_key",
				Type:        sdk.FieldString,
				Description: "Secret (sk_...) or restricted (rk_...) API key, from Developers > API keys in the Stripe Dashboard. A restricted key needs write access to Prices and Payment Links.",
				Required:    true,
				Secret:      true,
				Pattern:     secretKeyPattern.String(),
			},
			{
				Name:        "webhook_secret",
				Type:        sdk.FieldString,
				Description: "Signing secret (whsec_...) of the webhook endpoint you created in Stripe for this connection's webhook URL.",
				Required:    true,
				Secret:      true,
				Pattern:     webhookSecretPattern.String(),
			},
			{
				Name:        "api_base",
				Type:        sdk.FieldString,
				Description: "Base URL of the Stripe API. Leave empty for https://api.stripe.com; set it to a stripe-mock URL for tests and development.",
				Pattern:     `^https?://[^\s]+$`,
			},
		},
		Events: []sdk.EventType{
			{Type: EventCheckoutSessionCompleted, Description: "A customer completed a Checkout Session (for example, paid through a payment link). Check payment_status: \"paid\", or \"unpaid\" for delayed payment methods."},
			{Type: EventCheckoutSessionExpired, Description: "A Checkout Session expired before the customer completed it."},
			{Type: EventPaymentIntentSucceeded, Description: "A payment succeeded."},
			{Type: EventPaymentIntentFailed, Description: "A payment attempt failed; failure_code and failure_message say why. The customer may still retry."},
			{Type: EventChargeRefunded, Description: "A charge was refunded, fully or in part; amount_refunded is the total refunded so far."},
		},
	}
	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas", specs...)
	if err != nil {
		return sdk.Manifest{}, err
	}
	m.Actions = actions
	return m, nil
}

// config is a Stripe connection's configuration.
type config struct {
	SecretKey     string `json:"secret_key"`
	WebhookSecret string `json:"webhook_secret"`
	APIBase       string `json:"api_base"`
}

// decodeConfig reads a connection's config. It checks only that the JSON is
// an object of the right shape; each use checks the fields it needs.
func decodeConfig(c sdk.Config) (config, error) {
	var cfg config
	if err := c.Decode(&cfg); err != nil {
		return config{}, err
	}
	cfg.SecretKey = strings.TrimSpace(cfg.SecretKey)
	cfg.WebhookSecret = strings.TrimSpace(cfg.WebhookSecret)
	cfg.APIBase = strings.TrimSpace(cfg.APIBase)
	return cfg, nil
}

// apiURL returns the API base URL to call, validated.
func (cfg config) apiURL() (string, error) {
	if cfg.APIBase == "" {
		return "https://api.stripe.com", nil
	}
	u, err := url.Parse(cfg.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("api_base %q is not an absolute http(s) URL", cfg.APIBase)
	}
	return strings.TrimSuffix(cfg.APIBase, "/"), nil
}
