package shopify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Headers Shopify sends with every webhook delivery.
const (
	HeaderHmac        = "X-Shopify-Hmac-Sha256"
	HeaderTopic       = "X-Shopify-Topic"
	HeaderShopDomain  = "X-Shopify-Shop-Domain"
	HeaderAPIVersion  = "X-Shopify-Api-Version"
	HeaderWebhookID   = "X-Shopify-Webhook-Id"
	HeaderEventID     = "X-Shopify-Event-Id"
	HeaderTriggeredAt = "X-Shopify-Triggered-At"
)

// RevokedReason is the reason of the connection.revoked event emitted on
// app/uninstalled.
const RevokedReason = "the app was uninstalled from the shop"

// Sign returns the X-Shopify-Hmac-Sha256 value of body under the app's
// client secret: the base64 of the body's HMAC-SHA256. Tests and fakes use it
// to sign deliveries.
func Sign(secret, body []byte) string {
	return base64.StdEncoding.EncodeToString(sdk.SignHMACSHA256(secret, body))
}

// Delivery is what the connector keeps of a webhook delivery itself, in the
// "shopify" object of every payload it emits.
type Delivery struct {
	Topic       string    `json:"topic"`
	WebhookID   string    `json:"webhook_id,omitempty"`
	EventID     string    `json:"event_id,omitempty"`
	TriggeredAt time.Time `json:"triggered_at,omitzero"`
	APIVersion  string    `json:"api_version,omitempty"`
	ShopDomain  string    `json:"shop_domain,omitempty"`
}

// Payloads as emitted: a commerce type with the delivery alongside. The
// workflows decode them into the commerce type and ignore "shopify".
type (
	checkoutPayload struct {
		commerce.Checkout
		Shopify Delivery `json:"shopify"`
	}
	orderPayload struct {
		commerce.Order
		Shopify Delivery `json:"shopify"`
	}
	fulfillmentPayload struct {
		commerce.Fulfillment
		Shopify Delivery `json:"shopify"`
	}
	customerPayload struct {
		commerce.Customer
		Shopify Delivery `json:"shopify"`
	}
	revokedPayload struct {
		Reason  string   `json:"reason"`
		Shopify Delivery `json:"shopify"`
	}
)

// HandleWebhook verifies a delivery's signature and turns it into commerce
// events. A missing or wrong X-Shopify-Hmac-Sha256 is Auth; a body that is
// not the topic's JSON, or a delivery for another shop than the
// connection's, is Invalid; a topic the connector does not handle gives no
// events (Shopify gets its 200 and stops retrying).
func (c *Connector) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return sdk.WebhookResult{}, err
	}
	sig := strings.TrimSpace(req.Header(HeaderHmac))
	if sig == "" {
		return sdk.WebhookResult{}, sdk.Auth("the delivery has no %s header", HeaderHmac)
	}
	mac, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return sdk.WebhookResult{}, sdk.Auth("the %s header is not base64", HeaderHmac)
	}
	if !sdk.VerifyHMACSHA256([]byte(cfg.ClientSecret), req.Body, mac) {
		return sdk.WebhookResult{}, sdk.Auth("the %s signature does not match the body", HeaderHmac)
	}
	if d := strings.ToLower(strings.TrimSpace(req.Header(HeaderShopDomain))); d != "" && cfg.ShopDomain != "" && d != cfg.ShopDomain {
		return sdk.WebhookResult{}, sdk.Invalid("the delivery is for shop %s, but this connection is for %s", d, cfg.ShopDomain)
	}

	d := Delivery{
		Topic:      strings.ToLower(strings.TrimSpace(req.Header(HeaderTopic))),
		WebhookID:  strings.TrimSpace(req.Header(HeaderWebhookID)),
		EventID:    strings.TrimSpace(req.Header(HeaderEventID)),
		APIVersion: strings.TrimSpace(req.Header(HeaderAPIVersion)),
		ShopDomain: strings.ToLower(strings.TrimSpace(req.Header(HeaderShopDomain))),
	}
	if v := strings.TrimSpace(req.Header(HeaderTriggeredAt)); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			d.TriggeredAt = t.UTC()
		}
	}
	n := normalizer{c: c, conn: conn, cfg: cfg, d: d, received: req.ReceivedAt}
	ev, ok, err := n.event(ctx, req.Body)
	if err != nil || !ok {
		if !ok && err == nil {
			c.log.Debug("shopify webhook ignored", "connection", conn.ID, "topic", d.Topic)
		}
		return sdk.WebhookResult{}, err
	}
	c.log.Debug("shopify webhook", "connection", conn.ID, "topic", d.Topic, "type", ev.Type, "webhook_id", d.WebhookID)
	return sdk.WebhookResult{Events: []sdk.Event{ev}}, nil
}

// normalizer turns one verified delivery into an event.
type normalizer struct {
	c        *Connector
	conn     sdk.Connection
	cfg      Config
	d        Delivery
	received time.Time
	pc       *phoneContext
}

func (n *normalizer) phones(ctx context.Context) phoneContext {
	if n.pc == nil {
		shop := n.c.shopInfo(ctx, n.conn.ID)
		n.pc = &phoneContext{defaultCountry: n.cfg.DefaultCountry, shopCountry: shop.Country}
	}
	return *n.pc
}

// event builds the event of the delivery; ok is false for topics the
// connector does not handle.
func (n *normalizer) event(ctx context.Context, body []byte) (sdk.Event, bool, error) {
	switch n.d.Topic {
	case "checkouts/create", "checkouts/update", "checkouts/delete":
		var p restCheckout
		if err := decode(n.d.Topic, body, &p); err != nil {
			return sdk.Event{}, false, err
		}
		return n.checkoutEvent(ctx, p)
	case "orders/create", "orders/paid", "orders/updated", "orders/cancelled", "orders/fulfilled":
		var p restOrder
		if err := decode(n.d.Topic, body, &p); err != nil {
			return sdk.Event{}, false, err
		}
		return n.orderEvent(ctx, p)
	case "refunds/create":
		var p restRefund
		if err := decode(n.d.Topic, body, &p); err != nil {
			return sdk.Event{}, false, err
		}
		return n.refundEvent(p)
	case "fulfillments/create", "fulfillments/update":
		var p restFulfillment
		if err := decode(n.d.Topic, body, &p); err != nil {
			return sdk.Event{}, false, err
		}
		return n.fulfillmentEvent(ctx, p)
	case "customers/create", "customers/update":
		var p restCustomer
		if err := decode(n.d.Topic, body, &p); err != nil {
			return sdk.Event{}, false, err
		}
		return n.customerEvent(ctx, p)
	case "app/uninstalled":
		if !json.Valid(body) {
			return sdk.Event{}, false, sdk.Invalid("app/uninstalled: the body is not JSON")
		}
		return n.finish(sdk.EventConnectionRevoked, "", time.Time{}, nil, revokedPayload{Reason: RevokedReason, Shopify: n.d})
	}
	return sdk.Event{}, false, nil
}

func decode(topic string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return sdk.Invalid("%s: the body is not the topic's JSON: %v", topic, err)
	}
	return nil
}

// finish assembles the event: the dedupe key is the webhook id (Shopify
// keeps it across retries of a delivery); OccurredAt is the triggered-at
// time, else the resource's updated_at, else when Ponte received it.
func (n *normalizer) finish(typ, resourceID string, updated time.Time, corr map[string]string, payload any) (sdk.Event, bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return sdk.Event{}, false, sdk.Permanent("%s: encoding the event: %v", n.d.Topic, err)
	}
	at := n.d.TriggeredAt
	if at.IsZero() {
		at = updated
	}
	if at.IsZero() {
		at = n.received
	}
	key := n.d.WebhookID
	if key == "" {
		// Shopify always sends one; a delivery without (a hand-made test
		// call) gets a key that still repeats for a repeated delivery.
		key = n.d.Topic + ":" + resourceID + ":" + at.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range corr {
		if v == "" {
			delete(corr, k)
		}
	}
	if len(corr) == 0 {
		corr = nil
	}
	return sdk.Event{DedupeKey: key, Type: typ, OccurredAt: at.UTC(), Correlation: corr, Payload: b}, true, nil
}

var checkoutTypes = map[string]string{
	"checkouts/create": commerce.EventCheckoutCreated,
	"checkouts/update": commerce.EventCheckoutUpdated,
	"checkouts/delete": commerce.EventCheckoutDeleted,
}

func (n *normalizer) checkoutEvent(ctx context.Context, p restCheckout) (sdk.Event, bool, error) {
	token := p.Token
	id := string(p.ID)
	if token == "" && id != "" {
		// checkouts/delete may carry the numeric id only: find the token
		// the checkout's earlier webhooks were known by.
		if b, err := n.c.host.GetState(ctx, n.conn.ID, stateCheckoutIDPrefix+id); err == nil && len(b) > 0 {
			token = string(b)
		}
	}
	if token == "" && id == "" {
		return sdk.Event{}, false, sdk.Invalid("%s: the checkout has neither token nor id", n.d.Topic)
	}
	if token != "" && id != "" && n.d.Topic != "checkouts/delete" {
		if err := n.c.rememberCheckout(ctx, n.conn.ID, token, id); err != nil {
			return sdk.Event{}, false, err
		}
	}
	co := checkoutFromREST(p, n.phones(ctx))
	if co.ID == "" {
		// A deleted checkout: named by the token found in state, or, never
		// seen by token, by its id, which is all there is.
		co.ID = firstNonEmpty(token, id)
	}
	corr := map[string]string{
		commerce.CorrelationCheckout: co.ID,
		commerce.CorrelationCustomer: co.CustomerID,
		commerce.CorrelationPhone:    co.Phone,
	}
	return n.finish(checkoutTypes[n.d.Topic], co.ID, co.UpdatedAt, corr, checkoutPayload{Checkout: co, Shopify: n.d})
}

const stateCheckoutIDPrefix = "checkout_id:"

// rememberCheckout keeps both directions of token <-> numeric id. It must
// succeed before the event is accepted: without it, get_checkout could not
// find the checkout later, so a failure makes Shopify redeliver.
func (c *Connector) rememberCheckout(ctx context.Context, connID, token, id string) error {
	if err := c.host.SetState(ctx, connID, stateCheckoutPrefix+token, []byte(id)); err != nil {
		return sdk.Retryable("remembering checkout %s: %v", token, err)
	}
	if err := c.host.SetState(ctx, connID, stateCheckoutIDPrefix+id, []byte(token)); err != nil {
		return sdk.Retryable("remembering checkout %s: %v", token, err)
	}
	return nil
}

func checkoutFromREST(p restCheckout, pc phoneContext) commerce.Checkout {
	co := commerce.Checkout{
		ID:          p.Token,
		Currency:    firstNonEmpty(p.PresentmentCurrency, p.Currency),
		Subtotal:    string(p.SubtotalPrice),
		Total:       string(p.TotalPrice),
		LineItems:   lineItemsFromREST(p.LineItems),
		RecoveryURL: p.AbandonedCheckoutURL,
		CreatedAt:   p.CreatedAt.UTC(),
		UpdatedAt:   p.UpdatedAt.UTC(),
		CompletedAt: p.CompletedAt.ptr(),
		OrderID:     string(p.OrderID),
	}
	co.Email = p.Email
	co.Locale = p.CustomerLocale
	cands := []phoneCandidate{{raw: p.Phone}, {raw: p.SMSMarketingPhone}}
	if cu := p.Customer; cu != nil {
		co.CustomerID = string(cu.ID)
		co.Email = firstNonEmpty(co.Email, cu.Email)
		co.FirstName, co.LastName = cu.FirstName, cu.LastName
		cands = append(cands, phoneCandidate{raw: cu.Phone})
		co.MarketingConsent = consentFromREST(cu.SMSMarketingConsent)
	}
	for _, a := range []*restAddress{p.ShippingAddress, p.BillingAddress} {
		if a == nil {
			continue
		}
		cands = append(cands, phoneCandidate{raw: a.Phone, country: a.CountryCode})
		co.Country = firstNonEmpty(co.Country, a.CountryCode)
		if co.FirstName == "" && co.LastName == "" {
			co.FirstName, co.LastName = a.FirstName, a.LastName
		}
	}
	// The checkout's own phones (contact, SMS marketing) have no address;
	// read them with the customer's address country when there is one.
	for i := range cands {
		if cands[i].country == "" {
			cands[i].country = co.Country
		}
	}
	applyPhone(&co.Contact, pc, cands...)
	if co.Country == "" {
		co.Country = firstNonEmpty(pc.defaultCountry, pc.shopCountry)
	}
	if co.MarketingConsent == nil && p.BuyerAcceptsSMSMarketing {
		// The buyer ticked SMS marketing at this checkout and no customer
		// record says more.
		co.MarketingConsent = &commerce.MarketingConsent{State: commerce.ConsentSubscribed, OptInLevel: "unknown", UpdatedAt: p.UpdatedAt.ptr(), Source: "checkout"}
	}
	if co.LineItems == nil {
		co.LineItems = []commerce.LineItem{}
	}
	return co
}

func lineItemsFromREST(items []restLineItem) []commerce.LineItem {
	if len(items) == 0 {
		return nil
	}
	out := make([]commerce.LineItem, 0, len(items))
	for _, li := range items {
		price := string(li.Price)
		if li.PriceSet != nil && li.PriceSet.PresentmentMoney.Amount != "" {
			price = string(li.PriceSet.PresentmentMoney.Amount)
		}
		out = append(out, commerce.LineItem{
			Title:        firstNonEmpty(li.Title, li.Name),
			VariantTitle: li.VariantTitle,
			SKU:          li.SKU,
			ProductID:    string(li.ProductID),
			VariantID:    string(li.VariantID),
			Quantity:     li.Quantity,
			Price:        price,
		})
	}
	return out
}

// consentFromREST maps sms_marketing_consent. Shopify's states are the
// commerce ones, lower case; opt-in levels likewise.
func consentFromREST(c *restConsent) *commerce.MarketingConsent {
	if c == nil || c.State == "" {
		return nil
	}
	return &commerce.MarketingConsent{
		State:      normalizeConsentState(c.State),
		OptInLevel: strings.ToLower(c.OptInLevel),
		UpdatedAt:  c.ConsentUpdatedAt.ptr(),
		Source:     strings.ToLower(c.ConsentCollectedFrom),
	}
}

func normalizeConsentState(s string) string {
	switch s = strings.ToLower(s); s {
	case commerce.ConsentSubscribed, commerce.ConsentNotSubscribed, commerce.ConsentUnsubscribed, commerce.ConsentPending, commerce.ConsentRedacted:
		return s
	case "invalid":
		// Shopify marks a number it cannot reach INVALID; for consent that
		// is no permission.
		return commerce.ConsentNotSubscribed
	}
	return s
}

var orderTypes = map[string]string{
	"orders/create":    commerce.EventOrderCreated,
	"orders/paid":      commerce.EventOrderPaid,
	"orders/updated":   commerce.EventOrderUpdated,
	"orders/cancelled": commerce.EventOrderCancelled,
	"orders/fulfilled": commerce.EventOrderFulfilled,
}

func (n *normalizer) orderEvent(ctx context.Context, p restOrder) (sdk.Event, bool, error) {
	if p.ID == "" {
		return sdk.Event{}, false, sdk.Invalid("%s: the order has no id", n.d.Topic)
	}
	o := orderFromREST(p, n.phones(ctx))
	if n.d.Topic == "orders/paid" && o.PaidAt == nil {
		// Shopify sends orders/paid when the order becomes paid, which is
		// when the webhook was triggered.
		at := n.d.TriggeredAt
		if at.IsZero() {
			at = o.UpdatedAt
		}
		if !at.IsZero() {
			o.PaidAt = &at
		}
	}
	corr := map[string]string{
		commerce.CorrelationOrder:    o.ID,
		commerce.CorrelationCheckout: o.CheckoutID,
		commerce.CorrelationCustomer: o.CustomerID,
		commerce.CorrelationPhone:    o.Phone,
	}
	return n.finish(orderTypes[n.d.Topic], o.ID, o.UpdatedAt, corr, orderPayload{Order: o, Shopify: n.d})
}

// financialStatus maps Shopify's financial_status (REST, lower case) and
// displayFinancialStatus (GraphQL, upper case). partially_paid is still
// pending payment; an expired authorization is a failed payment.
func financialStatus(s string) string {
	switch strings.ToLower(s) {
	case "pending", "partially_paid":
		return commerce.FinancialPending
	case "authorized":
		return commerce.FinancialAuthorized
	case "paid":
		return commerce.FinancialPaid
	case "partially_refunded":
		return commerce.FinancialPartiallyRefunded
	case "refunded":
		return commerce.FinancialRefunded
	case "voided":
		return commerce.FinancialVoided
	case "expired":
		return commerce.FinancialFailed
	}
	return strings.ToLower(s)
}

// fulfillmentStatus maps an order's fulfillment status to "", "partial" or
// "fulfilled" (GraphQL's UNFULFILLED, and REST's null, are "").
func fulfillmentStatus(s string) string {
	switch strings.ToLower(s) {
	case "fulfilled":
		return "fulfilled"
	case "partial", "partially_fulfilled":
		return "partial"
	}
	return ""
}

func orderFromREST(p restOrder, pc phoneContext) commerce.Order {
	o := commerce.Order{
		ID:                string(p.ID),
		Name:              p.Name,
		CheckoutID:        p.CheckoutToken,
		Currency:          firstNonEmpty(p.Currency, p.PresentmentCurrency),
		Total:             string(p.TotalPrice),
		LineItems:         lineItemsFromREST(p.LineItems),
		FinancialStatus:   financialStatus(p.FinancialStatus),
		FulfillmentStatus: fulfillmentStatus(p.FulfillmentStatus),
		StatusURL:         p.OrderStatusURL,
		CreatedAt:         p.CreatedAt.UTC(),
		UpdatedAt:         p.UpdatedAt.UTC(),
		CancelledAt:       p.CancelledAt.ptr(),
		CancelReason:      p.CancelReason,
	}
	if ps := p.TotalPriceSet; ps != nil && ps.PresentmentMoney.Amount != "" {
		// What the customer saw and paid, in their currency.
		o.Total = string(ps.PresentmentMoney.Amount)
		o.Currency = firstNonEmpty(ps.PresentmentMoney.CurrencyCode, p.PresentmentCurrency, o.Currency)
	}
	if o.LineItems == nil {
		o.LineItems = []commerce.LineItem{}
	}
	o.Email = p.Email
	o.Locale = p.CustomerLocale
	cands := []phoneCandidate{{raw: p.Phone}}
	if cu := p.Customer; cu != nil {
		o.CustomerID = string(cu.ID)
		o.Email = firstNonEmpty(o.Email, cu.Email)
		o.FirstName, o.LastName = cu.FirstName, cu.LastName
		cands = append(cands, phoneCandidate{raw: cu.Phone})
	}
	for _, a := range []*restAddress{p.ShippingAddress, p.BillingAddress} {
		if a == nil {
			continue
		}
		cands = append(cands, phoneCandidate{raw: a.Phone, country: a.CountryCode})
		o.Country = firstNonEmpty(o.Country, a.CountryCode)
		if o.FirstName == "" && o.LastName == "" {
			o.FirstName, o.LastName = a.FirstName, a.LastName
		}
	}
	for i := range cands {
		if cands[i].country == "" {
			cands[i].country = o.Country
		}
	}
	applyPhone(&o.Contact, pc, cands...)
	if o.Country == "" {
		o.Country = firstNonEmpty(pc.defaultCountry, pc.shopCountry)
	}
	for _, f := range p.Fulfillments {
		ff := fulfillmentFromREST(f)
		if ff.OrderID == "" {
			ff.OrderID = o.ID
		}
		o.Fulfillments = append(o.Fulfillments, ff)
	}
	var refunded []string
	for _, r := range p.Refunds {
		refunded = append(refunded, refundAmounts(r)...)
	}
	o.RefundedAmount = sumMoney(refunded...)
	return o
}

// refundAmounts lists the amounts of a refund's successful refund
// transactions: what actually went back to the customer.
func refundAmounts(r restRefund) []string {
	var out []string
	for _, t := range r.Transactions {
		if strings.EqualFold(t.Kind, "refund") && (t.Status == "" || strings.EqualFold(t.Status, "success")) {
			out = append(out, string(t.Amount))
		}
	}
	return out
}

func (n *normalizer) refundEvent(p restRefund) (sdk.Event, bool, error) {
	if p.OrderID == "" {
		return sdk.Event{}, false, sdk.Invalid("%s: the refund has no order_id", n.d.Topic)
	}
	o := commerce.Order{ID: string(p.OrderID), LineItems: []commerce.LineItem{}, RefundedAmount: sumMoney(refundAmounts(p)...)}
	for _, t := range p.Transactions {
		o.Currency = firstNonEmpty(o.Currency, t.Currency)
	}
	updated := p.ProcessedAt.UTC()
	if updated.IsZero() {
		updated = p.CreatedAt.UTC()
	}
	o.UpdatedAt = updated
	corr := map[string]string{commerce.CorrelationOrder: o.ID}
	return n.finish(commerce.EventOrderRefunded, "refund-"+string(p.ID), updated, corr, orderPayload{Order: o, Shopify: n.d})
}

// shipmentStatus maps Shopify's shipment_status (REST) and a fulfillment's
// displayStatus (GraphQL) to the commerce ones. "confirmed" and
// "label_purchased" (the carrier knows of the parcel but has not got it)
// count as a printed label; anything unknown is "".
func shipmentStatus(s string) string {
	switch strings.ToLower(s) {
	case "label_printed", "label_purchased", "confirmed":
		return commerce.ShipmentLabelPrinted
	case "in_transit":
		return commerce.ShipmentInTransit
	case "out_for_delivery":
		return commerce.ShipmentOutForDelivery
	case "delivered":
		return commerce.ShipmentDelivered
	case "failure":
		return commerce.ShipmentFailure
	case "attempted_delivery":
		return commerce.ShipmentAttemptedDelivery
	case "ready_for_pickup", "picked_up":
		return commerce.ShipmentReadyForPickup
	}
	return ""
}

func fulfillmentFromREST(f restFulfillment) commerce.Fulfillment {
	ff := commerce.Fulfillment{
		ID:              string(f.ID),
		OrderID:         string(f.OrderID),
		Status:          strings.ToLower(f.Status),
		ShipmentStatus:  shipmentStatus(f.ShipmentStatus),
		TrackingCompany: f.TrackingCompany,
		TrackingNumber:  f.TrackingNumber,
		TrackingURL:     f.TrackingURL,
		UpdatedAt:       f.UpdatedAt.UTC(),
	}
	if ff.TrackingNumber == "" && len(f.TrackingNumbers) > 0 {
		ff.TrackingNumber = f.TrackingNumbers[0]
	}
	if ff.TrackingURL == "" && len(f.TrackingURLs) > 0 {
		ff.TrackingURL = f.TrackingURLs[0]
	}
	return ff
}

func (n *normalizer) fulfillmentEvent(ctx context.Context, p restFulfillment) (sdk.Event, bool, error) {
	if p.ID == "" || p.OrderID == "" {
		return sdk.Event{}, false, sdk.Invalid("%s: the fulfillment has no id or order_id", n.d.Topic)
	}
	ff := fulfillmentFromREST(p)
	if p.Destination != nil || p.Email != "" {
		ct := &commerce.Contact{Email: p.Email}
		var cands []phoneCandidate
		if a := p.Destination; a != nil {
			ct.FirstName, ct.LastName, ct.Country = a.FirstName, a.LastName, a.CountryCode
			cands = append(cands, phoneCandidate{raw: a.Phone, country: a.CountryCode})
		}
		applyPhone(ct, n.phones(ctx), cands...)
		ff.Contact = ct
	}
	typ := commerce.EventFulfillmentCreated
	if n.d.Topic == "fulfillments/update" {
		typ = commerce.EventFulfillmentUpdated
	}
	corr := map[string]string{commerce.CorrelationOrder: ff.OrderID}
	if ff.Contact != nil {
		corr[commerce.CorrelationPhone] = ff.Contact.Phone
	}
	return n.finish(typ, ff.ID, ff.UpdatedAt, corr, fulfillmentPayload{Fulfillment: ff, Shopify: n.d})
}

func customerFromREST(p restCustomer, pc phoneContext) commerce.Customer {
	cu := commerce.Customer{
		ID:               string(p.ID),
		MarketingConsent: consentFromREST(p.SMSMarketingConsent),
		Tags:             splitTags(p.Tags),
		CreatedAt:        p.CreatedAt.UTC(),
		UpdatedAt:        p.UpdatedAt.UTC(),
	}
	cu.CustomerID = cu.ID
	cu.Email, cu.FirstName, cu.LastName = p.Email, p.FirstName, p.LastName
	cands := []phoneCandidate{{raw: p.Phone}}
	if a := p.DefaultAddress; a != nil {
		cu.Country = a.CountryCode
		cands[0].country = a.CountryCode
		cands = append(cands, phoneCandidate{raw: a.Phone, country: a.CountryCode})
	}
	applyPhone(&cu.Contact, pc, cands...)
	return cu
}

func (n *normalizer) customerEvent(ctx context.Context, p restCustomer) (sdk.Event, bool, error) {
	if p.ID == "" {
		return sdk.Event{}, false, sdk.Invalid("%s: the customer has no id", n.d.Topic)
	}
	cu := customerFromREST(p, n.phones(ctx))
	typ := commerce.EventCustomerCreated
	if n.d.Topic == "customers/update" {
		typ = commerce.EventCustomerUpdated
	}
	corr := map[string]string{commerce.CorrelationCustomer: cu.ID, commerce.CorrelationPhone: cu.Phone}
	return n.finish(typ, cu.ID, cu.UpdatedAt, corr, customerPayload{Customer: cu, Shopify: n.d})
}

// splitTags splits Shopify's comma-separated tags ("vip, newsletter").
func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
