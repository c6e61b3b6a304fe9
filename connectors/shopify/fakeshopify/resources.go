package fakeshopify

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Subscription is a webhook subscription of the app.
type Subscription struct {
	// ID is the subscription's gid://shopify/WebhookSubscription/… id.
	ID string
	// Topic is the GraphQL topic, e.g. "CHECKOUTS_CREATE".
	Topic       string
	CallbackURL string
	Format      string
	CreatedAt   time.Time
}

// Address is a mailing address (billing, shipping, a fulfillment's
// destination, a customer's default).
type Address struct {
	FirstName, LastName, Phone string
	// CountryCode is ISO 3166 alpha-2.
	CountryCode string
	City        string
}

// Consent is a customer's SMS marketing consent as Shopify records it.
type Consent struct {
	// State is "subscribed", "not_subscribed", "unsubscribed", "pending" or
	// "redacted".
	State string
	// OptInLevel is "single_opt_in", "confirmed_opt_in" or "unknown".
	OptInLevel string
	UpdatedAt  time.Time
	// CollectedFrom is "SHOPIFY" or "OTHER".
	CollectedFrom string
}

// Customer is a customer of the shop.
type Customer struct {
	ID                         int64
	Email, FirstName, LastName string
	Phone, Locale              string
	Tags                       []string
	SMSConsent                 *Consent
	Address                    *Address
	CreatedAt, UpdatedAt       time.Time
}

// LineItem is a line of a checkout or an order.
type LineItem struct {
	Title, VariantTitle, SKU string
	ProductID, VariantID     int64
	Quantity                 int
	// Price is the unit price, a decimal string ("19.90").
	Price string
}

// Checkout is an abandoned checkout.
type Checkout struct {
	// ID is the numeric id; Token the checkout token (both generated when
	// zero).
	ID                       int64
	Token                    string
	Email, Phone             string
	SMSMarketingPhone        string
	BuyerAcceptsSMSMarketing bool
	Locale                   string
	// Currency defaults to the shop's.
	Currency        string
	LineItems       []LineItem
	Customer        *Customer
	ShippingAddress *Address
	BillingAddress  *Address
	// CreatedAt and UpdatedAt default to now.
	CreatedAt, UpdatedAt time.Time
	CompletedAt          *time.Time
}

// RecoveryURL is the checkout's abandoned_checkout_url in this shop, in the
// shape Shopify gives it.
func (s *Shop) RecoveryURL(c Checkout) string {
	return fmt.Sprintf("https://%s/%d/checkouts/ac/%s/recover?key=%s", s.Domain, s.shopID, c.Token, c.Token[:min(len(c.Token), 12)])
}

// Fulfillment is a shipment of an order.
type Fulfillment struct {
	ID, OrderID int64
	// Status is "pending", "open", "success", "cancelled", "error" or
	// "failure" (default "success").
	Status string
	// ShipmentStatus is the carrier's: "label_printed", "confirmed",
	// "in_transit", "out_for_delivery", "delivered", "failure", ...
	ShipmentStatus                               string
	TrackingCompany, TrackingNumber, TrackingURL string
	Email                                        string
	Destination                                  *Address
	CreatedAt, UpdatedAt                         time.Time
}

// Refund is a refund of an order, made of one successful transaction.
type Refund struct {
	ID, OrderID int64
	// Amount is a decimal string; Currency defaults to the shop's.
	Amount, Currency string
	CreatedAt        time.Time
}

// Order is an order of the shop.
type Order struct {
	ID int64
	// Name defaults to "#" and a number.
	Name          string
	CheckoutToken string
	Email, Phone  string
	Locale        string
	// Currency defaults to the shop's.
	Currency  string
	LineItems []LineItem
	Customer  *Customer
	// FinancialStatus is REST's: "pending", "authorized", "paid",
	// "partially_refunded", "refunded", "voided", ... (default "paid").
	FinancialStatus string
	// FulfillmentStatus is "", "partial" or "fulfilled".
	FulfillmentStatus string
	Fulfillments      []Fulfillment
	Refunds           []Refund
	ShippingAddress   *Address
	BillingAddress    *Address
	CreatedAt         time.Time
	UpdatedAt         time.Time
	CancelledAt       *time.Time
	// CancelReason is REST's: "customer", "fraud", "inventory", "declined",
	// "other".
	CancelReason string
}

// Discount is a basic code discount created through the API.
type Discount struct {
	// ID is its gid://shopify/DiscountCodeNode/… id.
	ID    string
	Title string
	Code  string
	// Percentage is Shopify's fraction (0.15 for 15%).
	Percentage             float64
	UsageLimit             int
	AppliesOncePerCustomer bool
	// CustomerIDs are the gids the code is restricted to; AllCustomers is
	// set when it is for everyone.
	CustomerIDs  []string
	AllCustomers bool
	StartsAt     time.Time
	EndsAt       *time.Time
}

func (s *Shop) defaults(created, updated *time.Time, currency *string) {
	now := time.Now().UTC().Truncate(time.Second)
	if created.IsZero() {
		*created = now
	}
	if updated.IsZero() {
		*updated = *created
	}
	if currency != nil && *currency == "" {
		*currency = s.opts.Currency
	}
}

// PutCustomer stores a customer (an id is generated when zero) and returns
// it as stored.
func (s *Shop) PutCustomer(c Customer) Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putCustomer(c)
}

func (s *Shop) putCustomer(c Customer) Customer {
	if c.ID == 0 {
		c.ID = s.newID()
	}
	s.defaults(&c.CreatedAt, &c.UpdatedAt, nil)
	s.customers[c.ID] = c
	return c
}

// PutCheckout stores an abandoned checkout for get_checkout to find (ids,
// token, currency and times generated when zero; its customer is stored
// too) and returns it as stored.
func (s *Shop) PutCheckout(c Checkout) Checkout {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == 0 {
		c.ID = s.newID()
	}
	if c.Token == "" {
		c.Token = randomHex(16)
	}
	s.defaults(&c.CreatedAt, &c.UpdatedAt, &c.Currency)
	if c.Customer != nil {
		cu := s.putCustomer(*c.Customer)
		c.Customer = &cu
	}
	s.checkouts[c.ID] = c
	return c
}

// PutOrder stores an order for get_order to find (defaults as for
// checkouts; fulfillments and refunds get ids and the order's id) and
// returns it as stored.
func (s *Shop) PutOrder(o Order) Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ID == 0 {
		o.ID = s.newID()
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("#%d", 1000+len(s.orders)+1)
	}
	if o.FinancialStatus == "" {
		o.FinancialStatus = "paid"
	}
	s.defaults(&o.CreatedAt, &o.UpdatedAt, &o.Currency)
	if o.Customer != nil {
		cu := s.putCustomer(*o.Customer)
		o.Customer = &cu
	}
	o.Fulfillments = slices.Clone(o.Fulfillments)
	for i := range o.Fulfillments {
		f := &o.Fulfillments[i]
		if f.ID == 0 {
			f.ID = s.newID()
		}
		f.OrderID = o.ID
		s.defaults(&f.CreatedAt, &f.UpdatedAt, nil)
	}
	o.Refunds = slices.Clone(o.Refunds)
	for i := range o.Refunds {
		r := &o.Refunds[i]
		if r.ID == 0 {
			r.ID = s.newID()
		}
		r.OrderID = o.ID
		s.defaults(&r.CreatedAt, &r.CreatedAt, &r.Currency)
	}
	s.orders[o.ID] = o
	return o
}

// --- GraphQL shapes ---

func money(amount, currency string) map[string]any {
	m := map[string]any{"amount": amount, "currencyCode": currency}
	return map[string]any{"shopMoney": m, "presentmentMoney": m}
}

func gqlTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func gqlTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return gqlTime(*t)
}

func gqlAddress(a *Address) any {
	if a == nil {
		return nil
	}
	return map[string]any{"firstName": a.FirstName, "lastName": a.LastName, "phone": nullable(a.Phone), "countryCodeV2": a.CountryCode, "city": a.City}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func gqlCustomer(c *Customer) any {
	if c == nil {
		return nil
	}
	m := map[string]any{
		"id": fmt.Sprintf("gid://shopify/Customer/%d", c.ID), "firstName": nullable(c.FirstName), "lastName": nullable(c.LastName),
		"email": nullable(c.Email), "phone": nullable(c.Phone), "locale": c.Locale, "tags": nonNil(c.Tags),
		"createdAt": gqlTime(c.CreatedAt), "updatedAt": gqlTime(c.UpdatedAt),
		"defaultAddress": gqlAddress(c.Address), "smsMarketingConsent": nil,
	}
	if c.SMSConsent != nil {
		m["smsMarketingConsent"] = map[string]any{
			"marketingState":       strings.ToUpper(c.SMSConsent.State),
			"marketingOptInLevel":  nullable(strings.ToUpper(c.SMSConsent.OptInLevel)),
			"consentUpdatedAt":     gqlTime(c.SMSConsent.UpdatedAt),
			"consentCollectedFrom": nullable(strings.ToUpper(c.SMSConsent.CollectedFrom)),
		}
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func lineTotal(items []LineItem) string {
	var cents int64
	for _, li := range items {
		whole, frac, _ := strings.Cut(li.Price, ".")
		frac = (frac + "00")[:2]
		n, _ := strconv.ParseInt(whole+frac, 10, 64)
		cents += n * int64(li.Quantity)
	}
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

func gqlLineItems(items []LineItem, currency string) map[string]any {
	nodes := make([]any, 0, len(items))
	for _, li := range items {
		m := map[string]any{"title": li.Title, "variantTitle": nullable(li.VariantTitle), "sku": nullable(li.SKU), "quantity": li.Quantity,
			"originalUnitPriceSet": money(li.Price, currency), "product": nil, "variant": nil}
		if li.ProductID != 0 {
			m["product"] = map[string]any{"id": fmt.Sprintf("gid://shopify/Product/%d", li.ProductID)}
		}
		if li.VariantID != 0 {
			m["variant"] = map[string]any{"id": fmt.Sprintf("gid://shopify/ProductVariant/%d", li.VariantID)}
		}
		nodes = append(nodes, m)
	}
	return map[string]any{"nodes": nodes}
}

func (s *Shop) gqlCheckout(c Checkout) map[string]any {
	total := lineTotal(c.LineItems)
	return map[string]any{
		"__typename": "AbandonedCheckout", "id": fmt.Sprintf("gid://shopify/AbandonedCheckout/%d", c.ID),
		"abandonedCheckoutUrl": s.RecoveryURL(c), "createdAt": gqlTime(c.CreatedAt), "updatedAt": gqlTime(c.UpdatedAt),
		"completedAt": gqlTimePtr(c.CompletedAt), "subtotalPriceSet": money(total, c.Currency), "totalPriceSet": money(total, c.Currency),
		"customer": gqlCustomer(c.Customer), "billingAddress": gqlAddress(c.BillingAddress), "shippingAddress": gqlAddress(c.ShippingAddress),
		"lineItems": gqlLineItems(c.LineItems, c.Currency),
	}
}

func refundedTotal(o Order) string {
	var items []LineItem
	for _, r := range o.Refunds {
		items = append(items, LineItem{Price: r.Amount, Quantity: 1})
	}
	return lineTotal(items)
}

func (s *Shop) gqlOrder(o Order) map[string]any {
	total := lineTotal(o.LineItems)
	fulfillments := make([]any, 0, len(o.Fulfillments))
	for _, f := range o.Fulfillments {
		var tracking []any
		if f.TrackingNumber != "" || f.TrackingCompany != "" || f.TrackingURL != "" {
			tracking = append(tracking, map[string]any{"company": nullable(f.TrackingCompany), "number": nullable(f.TrackingNumber), "url": nullable(f.TrackingURL)})
		}
		status := f.Status
		if status == "" {
			status = "success"
		}
		display := strings.ToUpper(f.ShipmentStatus)
		if display == "" {
			display = "FULFILLED"
		}
		fulfillments = append(fulfillments, map[string]any{"id": fmt.Sprintf("gid://shopify/Fulfillment/%d", f.ID), "status": strings.ToUpper(status),
			"displayStatus": display, "updatedAt": gqlTime(f.UpdatedAt), "trackingInfo": nonNilAny(tracking)})
	}
	fulfillment := "UNFULFILLED"
	switch o.FulfillmentStatus {
	case "fulfilled":
		fulfillment = "FULFILLED"
	case "partial":
		fulfillment = "PARTIALLY_FULFILLED"
	}
	return map[string]any{
		"__typename": "Order", "id": fmt.Sprintf("gid://shopify/Order/%d", o.ID), "name": o.Name, "email": nullable(o.Email), "phone": nullable(o.Phone),
		"customerLocale": nullable(o.Locale), "createdAt": gqlTime(o.CreatedAt), "updatedAt": gqlTime(o.UpdatedAt),
		"cancelledAt": gqlTimePtr(o.CancelledAt), "cancelReason": nullable(strings.ToUpper(o.CancelReason)),
		"displayFinancialStatus": strings.ToUpper(o.FinancialStatus), "displayFulfillmentStatus": fulfillment,
		"statusPageUrl": s.statusURL(o), "totalPriceSet": money(total, o.Currency), "totalRefundedSet": money(refundedTotal(o), o.Currency),
		"customer": gqlCustomer(o.Customer), "billingAddress": gqlAddress(o.BillingAddress), "shippingAddress": gqlAddress(o.ShippingAddress),
		"lineItems": gqlLineItems(o.LineItems, o.Currency), "fulfillments": fulfillments,
	}
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func (s *Shop) statusURL(o Order) string {
	return fmt.Sprintf("https://%s/%d/orders/%x/authenticate?key=%x", s.Domain, s.shopID, o.ID, o.ID*31)
}

// --- operations ---

func (s *Shop) opShop(map[string]json.RawMessage) result {
	return result{actual: 2, data: map[string]any{
		"name": s.opts.Name, "myshopifyDomain": s.Domain, "currencyCode": s.opts.Currency, "ianaTimezone": s.opts.Timezone,
		"billingAddress": map[string]any{"countryCodeV2": s.opts.Country},
	}}
}

func (s *Shop) gqlSubscription(sub Subscription) map[string]any {
	return map[string]any{"id": sub.ID, "topic": sub.Topic, "format": sub.Format, "callbackUrl": sub.CallbackURL,
		"createdAt": gqlTime(sub.CreatedAt), "endpoint": map[string]any{"__typename": "WebhookHttpEndpoint", "callbackUrl": sub.CallbackURL}}
}

// cursor encodes a position as an opaque cursor, as Shopify's are.
func cursor(id int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"last_id":%d}`, id))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	var v struct {
		LastID int64 `json:"last_id"`
	}
	if json.Unmarshal(b, &v) != nil || v.LastID == 0 {
		return 0, false
	}
	return v.LastID, true
}

// pageArgs reads first and after, checking them as Shopify does.
func pageArgs(vars map[string]json.RawMessage, def int) (int, string, *result) {
	first := def
	if raw, ok := vars["first"]; ok {
		if json.Unmarshal(raw, &first) != nil {
			r := invalidVariable("first", "Int!", "Could not coerce value to Int")
			return 0, "", &r
		}
	}
	if first < 1 || first > 250 {
		r := result{errors: []gqlError{{Message: "The 'first' argument must be between 1 and 250", Extensions: map[string]any{"code": "argumentLiteralsIncompatible"}}}}
		return 0, "", &r
	}
	var after string
	if raw, ok := vars["after"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &after) != nil {
			r := invalidVariable("after", "String", "Could not coerce value to String")
			return 0, "", &r
		}
	}
	return first, after, nil
}

func subID(id string) int64 {
	n, _ := strconv.ParseInt(id[strings.LastIndexByte(id, '/')+1:], 10, 64)
	return n
}

func (s *Shop) opSubscriptions(vars map[string]json.RawMessage) result {
	first, after, bad := pageArgs(vars, 100)
	if bad != nil {
		return *bad
	}
	var start int64
	if after != "" {
		id, ok := decodeCursor(after)
		if !ok {
			return result{errors: []gqlError{{Message: "Invalid cursor for current pagination sort.", Extensions: map[string]any{"code": "BAD_REQUEST"}}}}
		}
		start = id
	}
	var nodes []any
	var last int64
	more := false
	for _, sub := range s.subs {
		if subID(sub.ID) <= start {
			continue
		}
		if len(nodes) == first {
			more = true
			break
		}
		nodes = append(nodes, s.gqlSubscription(sub))
		last = subID(sub.ID)
	}
	return result{actual: 2 + float64(len(nodes)), data: map[string]any{"nodes": nonNilAny(nodes), "pageInfo": pageInfo(more, last)}}
}

func pageInfo(more bool, last int64) map[string]any {
	var end any
	if last != 0 {
		end = cursor(last)
	}
	return map[string]any{"hasNextPage": more, "endCursor": end}
}

var validTopics = []string{
	"APP_UNINSTALLED", "CARTS_CREATE", "CARTS_UPDATE", "CHECKOUTS_CREATE", "CHECKOUTS_DELETE", "CHECKOUTS_UPDATE",
	"CUSTOMERS_CREATE", "CUSTOMERS_DELETE", "CUSTOMERS_DISABLE", "CUSTOMERS_ENABLE", "CUSTOMERS_UPDATE",
	"CUSTOMERS_MARKETING_CONSENT_UPDATE", "FULFILLMENTS_CREATE", "FULFILLMENTS_UPDATE", "ORDERS_CANCELLED", "ORDERS_CREATE",
	"ORDERS_DELETE", "ORDERS_EDITED", "ORDERS_FULFILLED", "ORDERS_PAID", "ORDERS_PARTIALLY_FULFILLED", "ORDERS_UPDATED",
	"REFUNDS_CREATE", "SHOP_UPDATE",
}

// subscriptionInput reads a WebhookSubscriptionInput; it returns a userError
// message for a callback URL Shopify refuses.
func subscriptionInput(vars map[string]json.RawMessage) (callback, format string, userErr string, bad *result) {
	var in struct {
		CallbackURL *string `json:"callbackUrl"`
		URI         *string `json:"uri"`
		Format      *string `json:"format"`
	}
	raw, ok := vars["webhookSubscription"]
	if !ok || json.Unmarshal(raw, &in) != nil {
		r := invalidVariable("webhookSubscription", "WebhookSubscriptionInput!", "Expected value to not be null")
		return "", "", "", &r
	}
	format = "JSON"
	if in.Format != nil {
		format = *in.Format
		if format != "JSON" && format != "XML" {
			r := invalidVariable("webhookSubscription", "WebhookSubscriptionInput!", fmt.Sprintf("Expected %q to be one of: JSON, XML", format))
			return "", "", "", &r
		}
	}
	switch {
	case in.CallbackURL != nil:
		callback = *in.CallbackURL
	case in.URI != nil:
		callback = *in.URI
	}
	u, err := url.Parse(callback)
	switch {
	case callback == "" || err != nil || u.Host == "":
		userErr = "Address is invalid"
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		// Shopify wants https; the fake lets tests use their local server.
	default:
		userErr = fmt.Sprintf("Address protocol %s:// is not supported", u.Scheme)
	}
	return callback, format, userErr, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func userErrors(field []string, msg string) []map[string]any {
	return []map[string]any{{"field": field, "message": msg}}
}

func (s *Shop) opSubscriptionCreate(vars map[string]json.RawMessage) result {
	var topic string
	if raw, ok := vars["topic"]; !ok || json.Unmarshal(raw, &topic) != nil || !slices.Contains(validTopics, topic) {
		return invalidVariable("topic", "WebhookSubscriptionTopic!", fmt.Sprintf("Expected %s to be one of: %s", string(vars["topic"]), strings.Join(validTopics, ", ")))
	}
	callback, format, userErr, bad := subscriptionInput(vars)
	if bad != nil {
		return *bad
	}
	if userErr != "" {
		return result{actual: 10, data: map[string]any{"webhookSubscription": nil, "userErrors": userErrors([]string{"webhookSubscription", "callbackUrl"}, userErr)}}
	}
	for _, sub := range s.subs {
		if sub.Topic == topic && sub.CallbackURL == callback {
			return result{actual: 10, data: map[string]any{"webhookSubscription": nil,
				"userErrors": userErrors([]string{"webhookSubscription", "callbackUrl"}, "Address for this topic has already been taken")}}
		}
	}
	sub := Subscription{ID: fmt.Sprintf("gid://shopify/WebhookSubscription/%d", s.newID()), Topic: topic, CallbackURL: callback, Format: format, CreatedAt: time.Now().UTC()}
	s.subs = append(s.subs, sub)
	return result{actual: 10, data: map[string]any{"webhookSubscription": s.gqlSubscription(sub), "userErrors": []any{}}}
}

func stringVar(vars map[string]json.RawMessage, name, typ string) (string, *result) {
	var v string
	if raw, ok := vars[name]; !ok || json.Unmarshal(raw, &v) != nil || v == "" {
		r := invalidVariable(name, typ, "Expected value to not be null")
		return "", &r
	}
	return v, nil
}

func (s *Shop) opSubscriptionUpdate(vars map[string]json.RawMessage) result {
	id, bad := stringVar(vars, "id", "ID!")
	if bad != nil {
		return *bad
	}
	callback, format, userErr, bad := subscriptionInput(vars)
	if bad != nil {
		return *bad
	}
	i := slices.IndexFunc(s.subs, func(sub Subscription) bool { return sub.ID == id })
	switch {
	case i < 0:
		return result{actual: 10, data: map[string]any{"webhookSubscription": nil, "userErrors": userErrors([]string{"id"}, "Webhook subscription does not exist")}}
	case userErr != "":
		return result{actual: 10, data: map[string]any{"webhookSubscription": nil, "userErrors": userErrors([]string{"webhookSubscription", "callbackUrl"}, userErr)}}
	}
	for j, sub := range s.subs {
		if j != i && sub.Topic == s.subs[i].Topic && sub.CallbackURL == callback {
			return result{actual: 10, data: map[string]any{"webhookSubscription": nil,
				"userErrors": userErrors([]string{"webhookSubscription", "callbackUrl"}, "Address for this topic has already been taken")}}
		}
	}
	s.subs[i].CallbackURL, s.subs[i].Format = callback, format
	return result{actual: 10, data: map[string]any{"webhookSubscription": s.gqlSubscription(s.subs[i]), "userErrors": []any{}}}
}

func (s *Shop) opSubscriptionDelete(vars map[string]json.RawMessage) result {
	id, bad := stringVar(vars, "id", "ID!")
	if bad != nil {
		return *bad
	}
	i := slices.IndexFunc(s.subs, func(sub Subscription) bool { return sub.ID == id })
	if i < 0 {
		return result{actual: 10, data: map[string]any{"deletedWebhookSubscriptionId": nil, "userErrors": userErrors([]string{"id"}, "Webhook subscription does not exist")}}
	}
	s.subs = slices.Delete(s.subs, i, i+1)
	return result{actual: 10, data: map[string]any{"deletedWebhookSubscriptionId": id, "userErrors": []any{}}}
}

// parseGID splits gid://shopify/{Type}/{id}.
func parseGID(g string) (string, int64, bool) {
	rest, ok := strings.CutPrefix(g, "gid://shopify/")
	if !ok {
		return "", 0, false
	}
	typ, id, ok := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(id, 10, 64)
	return typ, n, ok && err == nil
}

func (s *Shop) opNode(vars map[string]json.RawMessage) result {
	g, bad := stringVar(vars, "id", "ID!")
	if bad != nil {
		return *bad
	}
	typ, id, ok := parseGID(g)
	if !ok {
		return result{errors: []gqlError{{Message: fmt.Sprintf("Invalid global id '%s'", g), Extensions: map[string]any{"code": "argumentLiteralsIncompatible"}}}}
	}
	switch typ {
	case "AbandonedCheckout":
		if c, ok := s.checkouts[id]; ok {
			return result{actual: float64(5 + len(c.LineItems)), data: s.gqlCheckout(c)}
		}
	case "Order":
		if o, ok := s.orders[id]; ok {
			return result{actual: float64(5 + len(o.LineItems) + len(o.Fulfillments)), data: s.gqlOrder(o)}
		}
	case "Customer":
		if c, ok := s.customers[id]; ok {
			return result{actual: 3, data: gqlCustomer(&c)}
		}
	}
	return result{actual: 1, data: nullData{}}
}

// nullData makes execute answer {"data": {"root": null}}.
type nullData struct{}

func (nullData) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func (s *Shop) opOrder(vars map[string]json.RawMessage) result {
	g, bad := stringVar(vars, "id", "ID!")
	if bad != nil {
		return *bad
	}
	typ, id, ok := parseGID(g)
	if !ok || typ != "Order" {
		return result{errors: []gqlError{{Message: fmt.Sprintf("Invalid global id '%s'", g), Extensions: map[string]any{"code": "argumentLiteralsIncompatible"}}}}
	}
	if o, ok := s.orders[id]; ok {
		return result{actual: float64(5 + len(o.LineItems) + len(o.Fulfillments)), data: s.gqlOrder(o)}
	}
	return result{actual: 1, data: nullData{}}
}

func (s *Shop) opCustomers(vars map[string]json.RawMessage) result {
	first, after, bad := pageArgs(vars, 0)
	if bad != nil {
		return *bad
	}
	var start int64
	if after != "" {
		id, ok := decodeCursor(after)
		if !ok {
			return result{errors: []gqlError{{Message: "Invalid cursor for current pagination sort.", Extensions: map[string]any{"code": "BAD_REQUEST"}}}}
		}
		start = id
	}
	ids := make([]int64, 0, len(s.customers))
	for id := range s.customers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var nodes []any
	var last int64
	more := false
	for _, id := range ids {
		if id <= start {
			continue
		}
		if len(nodes) == first {
			more = true
			break
		}
		c := s.customers[id]
		nodes = append(nodes, gqlCustomer(&c))
		last = id
	}
	return result{actual: 2 + 3*float64(len(nodes)), data: map[string]any{"nodes": nonNilAny(nodes), "pageInfo": pageInfo(more, last)}}
}

func discountUserError(field []string, code, msg string) []map[string]any {
	return []map[string]any{{"field": field, "code": code, "message": msg, "extraInfo": nil}}
}

func (s *Shop) opDiscountCreate(vars map[string]json.RawMessage) result {
	var in struct {
		Title                  *string    `json:"title"`
		Code                   *string    `json:"code"`
		StartsAt               *time.Time `json:"startsAt"`
		EndsAt                 *time.Time `json:"endsAt"`
		UsageLimit             *int       `json:"usageLimit"`
		AppliesOncePerCustomer *bool      `json:"appliesOncePerCustomer"`
		Context                *struct {
			All       *string `json:"all"`
			Customers *struct {
				Add []string `json:"add"`
			} `json:"customers"`
		} `json:"context"`
		CustomerSelection *struct {
			All       *bool `json:"all"`
			Customers *struct {
				Add []string `json:"add"`
			} `json:"customers"`
		} `json:"customerSelection"`
		CustomerGets *struct {
			Value *struct {
				Percentage *float64 `json:"percentage"`
			} `json:"value"`
			Items *struct {
				All *bool `json:"all"`
			} `json:"items"`
		} `json:"customerGets"`
	}
	raw, ok := vars["basicCodeDiscount"]
	if !ok || json.Unmarshal(raw, &in) != nil {
		return invalidVariable("basicCodeDiscount", "DiscountCodeBasicInput!", "Expected value to not be null or invalid")
	}
	fail := func(field, code, msg string) result {
		return result{actual: 10, data: map[string]any{"codeDiscountNode": nil,
			"userErrors": discountUserError([]string{"basicCodeDiscount", field}, code, msg)}}
	}
	if in.Title == nil || strings.TrimSpace(*in.Title) == "" {
		return fail("title", "BLANK", "Title can't be blank")
	}
	if in.Code == nil || strings.TrimSpace(*in.Code) == "" {
		return fail("code", "BLANK", "Code can't be blank")
	}
	code := strings.TrimSpace(*in.Code)
	if len(code) > 255 {
		return fail("code", "TOO_LONG", "Code is too long (maximum is 255 characters)")
	}
	for _, d := range s.discounts {
		if strings.EqualFold(d.Code, code) {
			return fail("code", "TAKEN", "Code must be unique. Please try a different code.")
		}
	}
	if in.StartsAt == nil {
		return fail("startsAt", "BLANK", "Starts at can't be blank")
	}
	if in.EndsAt != nil && !in.EndsAt.After(*in.StartsAt) {
		return fail("endsAt", "INVALID", "Ends at needs to be after starts_at")
	}
	if in.UsageLimit != nil && *in.UsageLimit < 1 {
		return fail("usageLimit", "GREATER_THAN", "Usage limit must be greater than 0")
	}
	if in.CustomerGets == nil || in.CustomerGets.Value == nil || in.CustomerGets.Value.Percentage == nil {
		return fail("customerGets", "BLANK", "Customer gets value can't be blank")
	}
	pct := *in.CustomerGets.Value.Percentage
	if pct <= 0 || pct > 1 {
		return fail("customerGets", "VALUE_OUTSIDE_RANGE", "Percentage must be between 0.0 and 1.0")
	}
	if in.CustomerGets.Items == nil {
		return fail("customerGets", "BLANK", "Items can't be blank")
	}
	d := Discount{ID: fmt.Sprintf("gid://shopify/DiscountCodeNode/%d", s.newID()), Title: *in.Title, Code: code, Percentage: pct,
		StartsAt: in.StartsAt.UTC(), AppliesOncePerCustomer: in.AppliesOncePerCustomer != nil && *in.AppliesOncePerCustomer}
	if in.EndsAt != nil {
		e := in.EndsAt.UTC()
		d.EndsAt = &e
	}
	if in.UsageLimit != nil {
		d.UsageLimit = *in.UsageLimit
	}
	var customers []string
	switch {
	case in.Context != nil && in.CustomerSelection != nil:
		return fail("context", "INVALID", "Only one of context or customerSelection can be provided")
	case in.Context != nil && in.Context.All != nil:
		if *in.Context.All != "ALL" {
			return invalidVariable("basicCodeDiscount", "DiscountCodeBasicInput!", "Expected all to be one of: ALL")
		}
		d.AllCustomers = true
	case in.Context != nil && in.Context.Customers != nil:
		customers = in.Context.Customers.Add
	case in.CustomerSelection != nil && in.CustomerSelection.All != nil && *in.CustomerSelection.All:
		d.AllCustomers = true
	case in.CustomerSelection != nil && in.CustomerSelection.Customers != nil:
		customers = in.CustomerSelection.Customers.Add
	default:
		return fail("context", "BLANK", "Context can't be blank")
	}
	for _, g := range customers {
		typ, id, ok := parseGID(g)
		if _, exists := s.customers[id]; !ok || typ != "Customer" || !exists {
			return fail("context", "INVALID", fmt.Sprintf("Customer %s does not exist", g))
		}
	}
	d.CustomerIDs = customers
	s.discounts = append(s.discounts, d)
	return result{actual: 10, data: map[string]any{"codeDiscountNode": gqlDiscount(d), "userErrors": []any{}}}
}

func gqlDiscount(d Discount) map[string]any {
	var ends any
	if d.EndsAt != nil {
		ends = gqlTime(*d.EndsAt)
	}
	return map[string]any{"id": d.ID, "codeDiscount": map[string]any{
		"__typename": "DiscountCodeBasic", "title": d.Title, "startsAt": gqlTime(d.StartsAt), "endsAt": ends,
		"codes":        map[string]any{"nodes": []any{map[string]any{"code": d.Code}}},
		"customerGets": map[string]any{"value": map[string]any{"__typename": "DiscountPercentage", "percentage": d.Percentage}},
	}}
}

func (s *Shop) opDiscountByCode(vars map[string]json.RawMessage) result {
	code, bad := stringVar(vars, "code", "String!")
	if bad != nil {
		return *bad
	}
	for _, d := range s.discounts {
		if strings.EqualFold(d.Code, code) {
			return result{actual: 4, data: gqlDiscount(d)}
		}
	}
	return result{actual: 1, data: nullData{}}
}
