package stripeconnector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// CreatePaymentLinkParams are the parameters of create_payment_link: either
// Amount, Currency and ProductName, or PriceID.
type CreatePaymentLinkParams struct {
	// Amount is the unit amount in the currency's minor unit.
	Amount *int64 `json:"amount,omitempty"`
	// Currency is a three-letter ISO code; it is sent to Stripe lowercased.
	Currency string `json:"currency,omitempty"`
	// ProductName is shown on the payment page.
	ProductName string `json:"product_name,omitempty"`
	// PriceID is an existing Stripe Price, instead of the three above.
	PriceID string `json:"price_id,omitempty"`
	// Quantity of the line item; 1 when absent.
	Quantity *int64 `json:"quantity,omitempty"`
	// Metadata is set on the link and on the PaymentIntent of every payment
	// made through it.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// PaymentLinkIDParams are the parameters of get_payment_link and
// deactivate_payment_link.
type PaymentLinkIDParams struct {
	// ID is Stripe's payment link id (plink_...).
	ID string `json:"id"`
}

// PaymentLink is the result of every payment link action.
type PaymentLink struct {
	// ID is Stripe's payment link id (plink_...).
	ID string `json:"id"`
	// URL is where the customer pays.
	URL string `json:"url"`
	// Active is whether the link accepts payments.
	Active bool `json:"active"`
	// Livemode is false for test-mode links.
	Livemode bool `json:"livemode"`
	// PriceID is the Price of the link's line item; set by
	// create_payment_link only.
	PriceID string `json:"price_id,omitempty"`
	// Metadata is the link's metadata.
	Metadata map[string]string `json:"metadata"`
}

var (
	currencyPattern    = regexp.MustCompile(`^[A-Za-z]{3}$`)
	priceIDPattern     = regexp.MustCompile(`^[0-9A-Za-z_-]{1,255}$`)
	paymentLinkPattern = regexp.MustCompile(`^plink_[0-9A-Za-z]+$`)
)

// Stripe's documented metadata limits.
const (
	maxMetadataKeys     = 50
	maxMetadataKeyLen   = 40
	maxMetadataValueLen = 500
	maxAmount           = 99999999
	maxIdempotencyKey   = 255
)

// Invoke runs one of the connector's actions against the connection's Stripe
// account. Every call builds its own Stripe client from the connection's
// secret_key and api_base.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	var run func(context.Context, *stripeCall, sdk.ActionCall) (any, error)
	switch call.Action {
	case ActionCreatePaymentLink:
		run = c.createPaymentLink
	case ActionGetPaymentLink:
		run = c.getPaymentLink
	case ActionDeactivatePaymentLink:
		run = c.deactivatePaymentLink
	default:
		return nil, sdk.Invalid("stripe connector has no action %q", call.Action)
	}

	sc, err := c.newCall(call.Connection)
	if err != nil {
		return nil, err
	}
	res, err := run(ctx, sc, call)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encoding %s result: %w", call.Action, err)
	}
	return out, nil
}

// stripeCall is one action call's Stripe client.
type stripeCall struct {
	api *client.API
	rec *responseRecorder
}

// fail maps an error of the call's Stripe request to an *sdk.Error.
func (s *stripeCall) fail(op string, err error) error { return mapError(op, err, s.rec.last()) }

// newCall builds a Stripe client for one call. Clients and backends are cheap
// (the HTTP transport and its connection pool are shared); building them per
// call keeps connections with different keys and API bases apart without any
// shared mutable state.
func (c *Connector) newCall(conn sdk.Connection) (*stripeCall, error) {
	cfg, err := decodeConfig(conn.Config)
	if err != nil {
		return nil, sdk.Permanent("reading stripe connection config: %v", err)
	}
	if !secretKeyPattern.MatchString(cfg.SecretKey) {
		return nil, sdk.Auth("connection has no valid secret_key")
	}
	base, err := cfg.apiURL()
	if err != nil {
		return nil, sdk.Permanent("stripe connection config: %v", err)
	}
	rec := &responseRecorder{base: c.transport}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(base),
		HTTPClient:        &http.Client{Transport: rec, Timeout: c.timeout},
		MaxNetworkRetries: stripe.Int64(c.maxNetworkRetries),
		LeveledLogger:     stripeLogger{log: c.log.With("connection", conn.ID)},
		// Telemetry reports the previous request's timing on the next one of
		// the same backend; with a backend per call there is none to report.
		EnableTelemetry: stripe.Bool(false),
	})
	// Only the API backend is used; the Connect (OAuth) and Uploads backends
	// get the same configuration rather than stripe-go's global defaults.
	api := client.New(cfg.SecretKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &stripeCall{api: api, rec: rec}, nil
}

func (c *Connector) createPaymentLink(ctx context.Context, sc *stripeCall, call sdk.ActionCall) (any, error) {
	var p CreatePaymentLinkParams
	if err := decodeParams(call.Params, &p); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	quantity := int64(1)
	if p.Quantity != nil {
		quantity = *p.Quantity
	}

	priceID := p.PriceID
	if priceID == "" {
		// Stripe's API version 2023-10-16 (stripe-go v76) has no price_data on
		// payment link line items (it came with 2025-07-30.basil), so the
		// Price is created first; product_data creates its Product in the
		// same request.
		pp := &stripe.PriceParams{
			Currency:    stripe.String(strings.ToLower(p.Currency)),
			UnitAmount:  p.Amount,
			ProductData: &stripe.PriceProductDataParams{Name: stripe.String(p.ProductName)},
			Metadata:    p.Metadata,
		}
		pp.Context = ctx
		pp.IdempotencyKey = idempotencyKey(call.IdempotencyKey, "price")
		price, err := sc.api.Prices.New(pp)
		if err != nil {
			return nil, sc.fail("creating price for payment link", err)
		}
		priceID = price.ID
	}

	lp := &stripe.PaymentLinkParams{
		LineItems: []*stripe.PaymentLinkLineItemParams{{
			Price:    stripe.String(priceID),
			Quantity: stripe.Int64(quantity),
		}},
	}
	if len(p.Metadata) > 0 {
		lp.Metadata = p.Metadata
		// Payment events are about PaymentIntents and Charges, not the link:
		// payment_intent_data.metadata is copied onto each PaymentIntent the
		// link creates (and from there onto its charges), which is how a
		// payment_intent.* or charge.* event finds its Ponte payment link.
		lp.PaymentIntentData = &stripe.PaymentLinkPaymentIntentDataParams{Metadata: p.Metadata}
	}
	lp.Context = ctx
	lp.IdempotencyKey = idempotencyKey(call.IdempotencyKey, "")
	link, err := sc.api.PaymentLinks.New(lp)
	if err != nil {
		return nil, sc.fail("creating payment link", err)
	}
	c.log.DebugContext(ctx, "created stripe payment link",
		"connection", call.Connection.ID, "payment_link", link.ID, "price", priceID)
	res := toPaymentLink(link)
	res.PriceID = priceID
	return res, nil
}

func (c *Connector) getPaymentLink(ctx context.Context, sc *stripeCall, call sdk.ActionCall) (any, error) {
	var p PaymentLinkIDParams
	if err := decodeParams(call.Params, &p); err != nil {
		return nil, err
	}
	if !paymentLinkPattern.MatchString(p.ID) {
		return nil, sdk.Invalid("id %q is not a Stripe payment link id (plink_...)", p.ID)
	}
	params := &stripe.PaymentLinkParams{}
	params.Context = ctx
	link, err := sc.api.PaymentLinks.Get(p.ID, params)
	if err != nil {
		return nil, sc.fail("reading payment link "+p.ID, err)
	}
	return toPaymentLink(link), nil
}

func (c *Connector) deactivatePaymentLink(ctx context.Context, sc *stripeCall, call sdk.ActionCall) (any, error) {
	var p PaymentLinkIDParams
	if err := decodeParams(call.Params, &p); err != nil {
		return nil, err
	}
	if !paymentLinkPattern.MatchString(p.ID) {
		return nil, sdk.Invalid("id %q is not a Stripe payment link id (plink_...)", p.ID)
	}
	params := &stripe.PaymentLinkParams{Active: stripe.Bool(false)}
	params.Context = ctx
	params.IdempotencyKey = idempotencyKey(call.IdempotencyKey, "")
	link, err := sc.api.PaymentLinks.Update(p.ID, params)
	if err != nil {
		return nil, sc.fail("deactivating payment link "+p.ID, err)
	}
	c.log.DebugContext(ctx, "deactivated stripe payment link",
		"connection", call.Connection.ID, "payment_link", link.ID)
	return toPaymentLink(link), nil
}

func toPaymentLink(l *stripe.PaymentLink) PaymentLink {
	md := l.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return PaymentLink{ID: l.ID, URL: l.URL, Active: l.Active, Livemode: l.Livemode, Metadata: md}
}

// decodeParams reads an action's JSON parameters strictly. The host has
// validated them against the manifest's schema already; checking again keeps
// the connector correct when called directly (tests, other hosts).
func decodeParams(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return sdk.Invalid("decoding parameters: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return sdk.Invalid("decoding parameters: trailing data after the JSON object")
	}
	return nil
}

// validate checks what the JSON Schema says, for direct callers.
func (p CreatePaymentLinkParams) validate() error {
	inline := p.Amount != nil || p.Currency != "" || p.ProductName != ""
	switch {
	case p.PriceID != "" && inline:
		return sdk.Invalid("give either price_id or amount, currency and product_name, not both")
	case p.PriceID == "" && (p.Amount == nil || p.Currency == "" || p.ProductName == ""):
		return sdk.Invalid("amount, currency and product_name are required when price_id is absent")
	}
	if p.PriceID != "" && !priceIDPattern.MatchString(p.PriceID) {
		return sdk.Invalid("price_id %q is not a Stripe id", p.PriceID)
	}
	if p.Amount != nil && (*p.Amount < 1 || *p.Amount > maxAmount) {
		return sdk.Invalid("amount must be between 1 and %d minor units", maxAmount)
	}
	if p.Currency != "" && !currencyPattern.MatchString(p.Currency) {
		return sdk.Invalid("currency %q is not a three-letter ISO code", p.Currency)
	}
	if len(p.ProductName) > 250 {
		return sdk.Invalid("product_name is longer than 250 characters")
	}
	if p.Quantity != nil && *p.Quantity < 1 {
		return sdk.Invalid("quantity must be at least 1")
	}
	if len(p.Metadata) > maxMetadataKeys {
		return sdk.Invalid("metadata has %d keys; Stripe allows %d", len(p.Metadata), maxMetadataKeys)
	}
	for k, v := range p.Metadata {
		if k == "" || len(k) > maxMetadataKeyLen || strings.ContainsAny(k, "[]") {
			return sdk.Invalid("metadata key %q must be 1-%d characters without square brackets", k, maxMetadataKeyLen)
		}
		if len(v) > maxMetadataValueLen {
			return sdk.Invalid("metadata value of %q is longer than %d characters", k, maxMetadataValueLen)
		}
	}
	return nil
}

// idempotencyKey derives the Idempotency-Key of one Stripe request from the
// call's key. A call that makes several requests gives each a distinct key
// (key:suffix), so a retried call repeats each request exactly once at Stripe.
// Keys longer than Stripe's 255-character limit are replaced by a hash of the
// call's key. With no call key it returns nil and stripe-go generates a random
// key, which still makes its own network retries safe.
func idempotencyKey(callKey, suffix string) *string {
	if callKey == "" {
		return nil
	}
	k := callKey
	if suffix != "" {
		k += ":" + suffix
	}
	if len(k) > maxIdempotencyKey {
		sum := sha256.Sum256([]byte(callKey))
		k = "sha256-" + hex.EncodeToString(sum[:])
		if suffix != "" {
			k += ":" + suffix
		}
	}
	return &k
}

// stripeLogger sends stripe-go's own log lines to slog at debug level: every
// failure it logs is also returned to the caller, which decides what deserves
// a log line, and its lines can carry response bodies.
type stripeLogger struct{ log *slog.Logger }

func (l stripeLogger) Debugf(format string, v ...any) { l.emit(format, v) }
func (l stripeLogger) Infof(format string, v ...any)  { l.emit(format, v) }
func (l stripeLogger) Warnf(format string, v ...any)  { l.emit(format, v) }
func (l stripeLogger) Errorf(format string, v ...any) { l.emit(format, v) }

func (l stripeLogger) emit(format string, v []any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	// Its error lines quote Stripe's responses, which can echo a key.
	l.log.Debug(redactSecrets(fmt.Sprintf(format, v...)), "source", "stripe-go")
}
