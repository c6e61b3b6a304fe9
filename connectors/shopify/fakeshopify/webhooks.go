package fakeshopify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Delivery is one webhook POST the fake made.
type Delivery struct {
	// Topic is REST's spelling, e.g. "checkouts/create".
	Topic       string
	URL         string
	WebhookID   string
	EventID     string
	TriggeredAt time.Time
	Body        []byte
	// Status is the receiver's HTTP status; 0 when it could not be reached
	// (Err says why).
	Status int
	Err    error
}

// Sign returns the X-Shopify-Hmac-Sha256 header value of body under the
// shop's client secret.
func (s *Shop) Sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(s.ClientSecret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Deliver sends a webhook of topic ("checkouts/create" or
// "CHECKOUTS_CREATE") to every subscription of that topic, signed as Shopify
// signs it, and returns the receiver's status (the first non-2xx one when
// there are several subscriptions). payload is sent as is when it is []byte
// or json.RawMessage, else encoded as JSON (use the ...Payload builders for
// Shopify's shapes). It fails when no subscription has the topic.
func (s *Shop) Deliver(ctx context.Context, topic string, payload any) (int, error) {
	body, err := encodePayload(payload)
	if err != nil {
		return 0, err
	}
	enum := topicEnum(topic)
	var urls []string
	for _, sub := range s.Subscriptions() {
		if sub.Topic == enum {
			urls = append(urls, sub.CallbackURL)
		}
	}
	if len(urls) == 0 {
		return 0, fmt.Errorf("fakeshopify: no webhook subscription for %s", topicREST(enum))
	}
	triggered := time.Now().UTC()
	eventID := uuid.NewString()
	status := 0
	var firstErr error
	for _, u := range urls {
		d := Delivery{Topic: topicREST(enum), URL: u, WebhookID: uuid.NewString(), EventID: eventID, TriggeredAt: triggered, Body: body}
		st, err := s.post(ctx, d)
		if (status == 0 || (status >= 200 && status < 300)) && st != 0 {
			status = st
		}
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	return status, firstErr
}

// Redeliver sends an earlier delivery again with the same webhook id,
// event id, triggered-at time and body, as Shopify's retries do.
func (s *Shop) Redeliver(ctx context.Context, webhookID string) (int, error) {
	for _, d := range s.Deliveries() {
		if d.WebhookID == webhookID {
			d.Status, d.Err = 0, nil
			return s.post(ctx, d)
		}
	}
	return 0, fmt.Errorf("fakeshopify: no delivery with webhook id %s", webhookID)
}

func encodePayload(payload any) ([]byte, error) {
	switch p := payload.(type) {
	case []byte:
		return p, nil
	case json.RawMessage:
		return p, nil
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("fakeshopify: encoding the payload: %w", err)
		}
		return b, nil
	}
}

func (s *Shop) post(ctx context.Context, d Delivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("fakeshopify: building the delivery: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Shopify-Captain-Hook")
	req.Header.Set("X-Shopify-Topic", d.Topic)
	req.Header.Set("X-Shopify-Hmac-Sha256", s.Sign(d.Body))
	req.Header.Set("X-Shopify-Shop-Domain", s.Domain)
	req.Header.Set("X-Shopify-Api-Version", s.opts.WebhookAPIVersion)
	req.Header.Set("X-Shopify-Webhook-Id", d.WebhookID)
	req.Header.Set("X-Shopify-Event-Id", d.EventID)
	req.Header.Set("X-Shopify-Triggered-At", d.TriggeredAt.Format(time.RFC3339Nano))
	resp, err := s.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		d.Status = resp.StatusCode
	} else {
		d.Err = err
	}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("fakeshopify: delivering %s: %w", d.Topic, err)
	}
	return d.Status, nil
}

// --- REST-shaped webhook payloads ---

func restTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339)
}

func restTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return restTime(*t)
}

func restAddress(a *Address) any {
	if a == nil {
		return nil
	}
	return map[string]any{"first_name": a.FirstName, "last_name": a.LastName, "phone": nullable(a.Phone), "country_code": a.CountryCode,
		"city": a.City, "address1": "Via Roma 1", "address2": nil, "company": nil, "zip": "00100", "province": nil, "province_code": nil,
		"name": strings.TrimSpace(a.FirstName + " " + a.LastName)}
}

func restConsent(c *Consent) any {
	if c == nil {
		return nil
	}
	return map[string]any{"state": c.State, "opt_in_level": nullable(c.OptInLevel), "consent_updated_at": restTime(c.UpdatedAt),
		"consent_collected_from": nullable(c.CollectedFrom)}
}

func (s *Shop) restCustomer(c *Customer) any {
	if c == nil {
		return nil
	}
	return map[string]any{
		"id": c.ID, "email": nullable(c.Email), "created_at": restTime(c.CreatedAt), "updated_at": restTime(c.UpdatedAt),
		"first_name": nullable(c.FirstName), "last_name": nullable(c.LastName), "orders_count": 0, "state": "enabled",
		"total_spent": "0.00", "last_order_id": nil, "note": nil, "verified_email": true, "multipass_identifier": nil,
		"tax_exempt": false, "tags": strings.Join(c.Tags, ", "), "last_order_name": nil, "currency": s.opts.Currency,
		"phone": nullable(c.Phone), "addresses": addressList(c.Address), "tax_exemptions": []any{},
		"email_marketing_consent": nil, "sms_marketing_consent": restConsent(c.SMSConsent),
		"admin_graphql_api_id": fmt.Sprintf("gid://shopify/Customer/%d", c.ID), "default_address": restAddress(c.Address),
	}
}

func addressList(a *Address) []any {
	if a == nil {
		return []any{}
	}
	return []any{restAddress(a)}
}

func restLineItems(items []LineItem, checkout bool) []any {
	out := make([]any, 0, len(items))
	for i, li := range items {
		m := map[string]any{"title": li.Title, "variant_title": nullable(li.VariantTitle), "sku": nullable(li.SKU), "quantity": li.Quantity,
			"price": li.Price, "product_id": nullInt(li.ProductID), "variant_id": nullInt(li.VariantID), "vendor": "Ponte Test",
			"requires_shipping": true, "taxable": true, "gift_card": false, "grams": 200}
		if checkout {
			m["key"] = fmt.Sprintf("%d:%d", li.VariantID, i)
			m["line_price"] = lineTotal([]LineItem{li})
		} else {
			m["id"] = 466157049 + i
			m["name"] = strings.TrimSpace(li.Title + " - " + li.VariantTitle)
			m["fulfillable_quantity"] = li.Quantity
		}
		out = append(out, m)
	}
	return out
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// CheckoutPayload returns the checkouts/create|update body of a checkout
// (fill it with PutCheckout first to get ids and defaults, or give them).
func (s *Shop) CheckoutPayload(c Checkout) json.RawMessage {
	if c.Currency == "" {
		c.Currency = s.opts.Currency
	}
	total := lineTotal(c.LineItems)
	m := map[string]any{
		"id": c.ID, "token": c.Token, "cart_token": c.Token[:min(len(c.Token), 8)], "email": nullable(c.Email), "gateway": nil,
		"buyer_accepts_marketing": false, "buyer_accepts_sms_marketing": c.BuyerAcceptsSMSMarketing,
		"sms_marketing_phone": nullable(c.SMSMarketingPhone), "created_at": restTime(c.CreatedAt), "updated_at": restTime(c.UpdatedAt),
		"landing_site": "/", "note": nil, "note_attributes": []any{}, "referring_site": nil, "shipping_lines": []any{},
		"taxes_included": true, "total_weight": 0, "currency": c.Currency, "completed_at": restTimePtr(c.CompletedAt), "closed_at": nil,
		"user_id": nil, "location_id": nil, "source_identifier": nil, "source_url": nil, "device_id": nil,
		"phone": nullable(c.Phone), "customer_locale": nullable(c.Locale), "line_items": restLineItems(c.LineItems, true),
		"name": fmt.Sprintf("#%d", c.ID), "source": nil, "abandoned_checkout_url": s.RecoveryURL(c), "discount_codes": []any{},
		"tax_lines": []any{}, "source_name": "web", "presentment_currency": c.Currency, "total_discounts": "0.00",
		"total_line_items_price": total, "total_price": total, "total_tax": "0.00", "subtotal_price": total, "total_duties": nil,
		"billing_address": restAddress(c.BillingAddress), "shipping_address": restAddress(c.ShippingAddress),
		"customer": s.restCustomer(c.Customer),
	}
	b, _ := json.Marshal(m)
	return b
}

// CheckoutDeletePayload returns the checkouts/delete body: the id only.
func (s *Shop) CheckoutDeletePayload(c Checkout) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%d}`, c.ID))
}

func moneySet(amount, currency string) map[string]any {
	m := map[string]any{"amount": amount, "currency_code": currency}
	return map[string]any{"shop_money": m, "presentment_money": m}
}

func (s *Shop) restFulfillment(f Fulfillment) map[string]any {
	status := f.Status
	if status == "" {
		status = "success"
	}
	var numbers, urls []any
	if f.TrackingNumber != "" {
		numbers = append(numbers, f.TrackingNumber)
	}
	if f.TrackingURL != "" {
		urls = append(urls, f.TrackingURL)
	}
	return map[string]any{
		"id": f.ID, "order_id": f.OrderID, "status": status, "created_at": restTime(f.CreatedAt), "service": "manual",
		"updated_at": restTime(f.UpdatedAt), "tracking_company": nullable(f.TrackingCompany), "shipment_status": nullable(f.ShipmentStatus),
		"location_id": 655441491, "email": nullable(f.Email), "destination": restAddress(f.Destination), "line_items": []any{},
		"tracking_number": nullable(f.TrackingNumber), "tracking_numbers": nonNilAny(numbers), "tracking_url": nullable(f.TrackingURL),
		"tracking_urls": nonNilAny(urls), "receipt": map[string]any{}, "name": fmt.Sprintf("#%d.1", f.OrderID),
		"admin_graphql_api_id": fmt.Sprintf("gid://shopify/Fulfillment/%d", f.ID),
	}
}

func (s *Shop) restRefund(r Refund) map[string]any {
	return map[string]any{
		"id": r.ID, "order_id": r.OrderID, "created_at": restTime(r.CreatedAt), "note": nil, "user_id": nil,
		"processed_at": restTime(r.CreatedAt), "restock": false, "duties": []any{}, "refund_line_items": []any{}, "order_adjustments": []any{},
		"admin_graphql_api_id": fmt.Sprintf("gid://shopify/Refund/%d", r.ID),
		"transactions": []any{map[string]any{"id": r.ID + 1, "order_id": r.OrderID, "kind": "refund", "gateway": "bogus", "status": "success",
			"amount": r.Amount, "currency": r.Currency, "created_at": restTime(r.CreatedAt)}},
	}
}

// OrderPayload returns the orders/* body of an order.
func (s *Shop) OrderPayload(o Order) json.RawMessage {
	if o.Currency == "" {
		o.Currency = s.opts.Currency
	}
	total := lineTotal(o.LineItems)
	fulfillments := make([]any, 0, len(o.Fulfillments))
	for _, f := range o.Fulfillments {
		f.OrderID = o.ID
		fulfillments = append(fulfillments, s.restFulfillment(f))
	}
	refunds := make([]any, 0, len(o.Refunds))
	for _, r := range o.Refunds {
		r.OrderID = o.ID
		if r.Currency == "" {
			r.Currency = o.Currency
		}
		refunds = append(refunds, s.restRefund(r))
	}
	var fulfillment any
	if o.FulfillmentStatus != "" {
		fulfillment = o.FulfillmentStatus
	}
	m := map[string]any{
		"id": o.ID, "admin_graphql_api_id": fmt.Sprintf("gid://shopify/Order/%d", o.ID), "name": o.Name,
		"order_number": strings.TrimPrefix(o.Name, "#"), "checkout_token": nullable(o.CheckoutToken), "checkout_id": nil,
		"cart_token": nil, "email": nullable(o.Email), "contact_email": nullable(o.Email), "phone": nullable(o.Phone),
		"customer_locale": nullable(o.Locale), "currency": o.Currency, "presentment_currency": o.Currency,
		"total_price": total, "subtotal_price": total, "current_total_price": total, "total_tax": "0.00",
		"total_price_set": moneySet(total, o.Currency), "line_items": restLineItems(o.LineItems, false),
		"financial_status": o.FinancialStatus, "fulfillment_status": fulfillment, "confirmed": true, "test": false,
		"order_status_url": s.statusURL(o), "fulfillments": fulfillments, "refunds": refunds,
		"created_at": restTime(o.CreatedAt), "updated_at": restTime(o.UpdatedAt), "processed_at": restTime(o.CreatedAt),
		"cancelled_at": restTimePtr(o.CancelledAt), "cancel_reason": nullable(o.CancelReason), "closed_at": nil,
		"billing_address": restAddress(o.BillingAddress), "shipping_address": restAddress(o.ShippingAddress),
		"customer": s.restCustomer(o.Customer), "source_name": "web", "tags": "", "note": nil,
	}
	b, _ := json.Marshal(m)
	return b
}

// FulfillmentPayload returns the fulfillments/create|update body.
func (s *Shop) FulfillmentPayload(f Fulfillment) json.RawMessage {
	b, _ := json.Marshal(s.restFulfillment(f))
	return b
}

// RefundPayload returns the refunds/create body: a refund with one
// successful refund transaction of r.Amount.
func (s *Shop) RefundPayload(r Refund) json.RawMessage {
	if r.Currency == "" {
		r.Currency = s.opts.Currency
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC().Truncate(time.Second)
	}
	b, _ := json.Marshal(s.restRefund(r))
	return b
}

// CustomerPayload returns the customers/create|update body.
func (s *Shop) CustomerPayload(c Customer) json.RawMessage {
	b, _ := json.Marshal(s.restCustomer(&c))
	return b
}

// UninstalledPayload returns the app/uninstalled body: the shop.
func (s *Shop) UninstalledPayload() json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"id": s.shopID, "name": s.opts.Name, "email": "owner@" + s.Domain, "domain": s.Domain, "myshopify_domain": s.Domain,
		"country_code": s.opts.Country, "currency": s.opts.Currency, "iana_timezone": s.opts.Timezone,
	})
	return b
}
