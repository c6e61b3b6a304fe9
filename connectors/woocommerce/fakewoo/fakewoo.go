// Package fakewoo is a TEST FAKE of a WooCommerce store's REST API
// (/wp-json/wc/v3) and of its webhooks. It is not used in production. Tests
// of Ponte's WooCommerce connector, and end-to-end tests of the commerce
// workflows, start one with [New] and point a connection's store_url at
// [Server.URL]; it listens on 127.0.0.1 on a random port and stops when the
// test ends.
//
// It reproduces these documented behaviours of WooCommerce (REST API v3,
// WC_Webhook), and nothing else; other routes answer 404 rest_no_route:
//
//   - Authentication: HTTP Basic with the REST API key's consumer key and
//     secret. A wrong key answers 401 woocommerce_rest_authentication_error
//     ("Consumer key is invalid." / "Consumer secret is invalid."), none at
//     all 401 woocommerce_rest_cannot_view (or _cannot_create, _cannot_edit,
//     _cannot_delete by method), and a read-only key ([Options].ReadOnly)
//     writing 401 woocommerce_rest_cannot_create / _edit / _delete. (Real
//     WooCommerce takes Basic only over HTTPS; the fake, on plain loopback
//     HTTP, takes it there.) Errors have WordPress's shape
//     {"code", "message", "data": {"status"}}.
//   - Collections: page (default 1) and per_page (default 10, 1 to 100,
//     else 400 rest_invalid_param), X-WP-Total and X-WP-TotalPages headers.
//   - Webhooks: GET /webhooks (status all|active|paused|disabled), POST
//     /webhooks (topic must be a valid resource.event, delivery_url an http(s)
//     URL, status defaults to active; answers 201 and then POSTs the ping,
//     body webhook_id=N, unsigned, to the delivery URL, ignoring its answer,
//     as WC_REST_Webhooks_Controller::create_item does), GET/PUT/DELETE
//     /webhooks/{id} (DELETE needs force=true, else 501
//     woocommerce_rest_trash_not_supported; an unknown id is 404
//     woocommerce_rest_webhook_invalid_id). Responses never include the
//     secret.
//   - Deliveries: changing an order or a customer through the test API
//     ([Server.PutOrder], [Server.UpdateOrder], [Server.DeleteOrder],
//     [Server.PutCustomer], [Server.UpdateCustomer]) POSTs the resource, as
//     GET returns it ({"id": N} for *.deleted), to every active webhook of
//     the topic, with WooCommerce's headers (X-WC-Webhook-Source, -Topic,
//     -Resource, -Event, -Signature = base64 HMAC-SHA256 of the body under
//     the webhook's secret, -ID, -Delivery-ID) and user agent. An answer of
//     200 to 302 resets the webhook's failure count; anything else (or no
//     answer) is a failure, and once more than woocommerce_max_webhook_
//     delivery_failures (5, [Options].MaxDeliveryFailures) have been counted
//     the next failure sets the webhook to disabled, as
//     WC_Webhook::failed_delivery does. Setting a webhook active again over
//     REST does not reset its count. Nothing is retried. WooCommerce queues
//     deliveries in Action Scheduler and sends them within seconds; the fake
//     sends them before the changing call returns, so a test sees their
//     outcome at once. [Server.DropDeliveries] loses deliveries in transit
//     (counted as failures, as a connection error is).
//   - Orders: GET /orders/{id} (404 woocommerce_rest_shop_order_invalid_id),
//     GET /orders with status (default any: every status but trash),
//     after/before (date_created), modified_after/modified_before (exclusive,
//     as WordPress's date_query is), dates_are_gmt, orderby
//     date|id|include|title|slug|modified and order asc|desc (default date
//     desc; ties by id). date_modified only moves forward: the fake gives
//     each change of an order a later second than the last (real
//     WooCommerce can give two changes within a second the same one).
//   - Coupons: POST /coupons (code required, lower-cased as
//     wc_format_coupon_code does; a code in use is 400
//     woocommerce_rest_coupon_code_already_exists; discount_type
//     percent|fixed_cart|fixed_product; email_restrictions must be emails,
//     else 400 coupon_invalid_email_address), GET /coupons?code=,
//     GET /coupons/{id}.
//   - Customers: GET /customers (role, default customer; orderby
//     id|include|name|registered_date; order) and GET /customers/{id}.
//
// [Server.FailNext] makes the next REST requests fail with a given status
// in WooCommerce's error shape (a 502 answers a proxy's HTML page), for
// tests of error handling. Every REST request is logged ([Server.Requests]),
// and every delivery ([Server.Deliveries]).
package fakewoo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default credentials of a fake store, in WooCommerce's format.
const (
	DefaultConsumerKey    = "ck_0b1d6a5c3e2f4a7b8c9d0e1f2a3b4c5d6e7f8a9b"
	DefaultConsumerSecret = "cs_9f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5"
)

// DefaultMaxDeliveryFailures is WooCommerce's default of the
// woocommerce_max_webhook_delivery_failures filter.
const DefaultMaxDeliveryFailures = 5

const (
	timeLayout = "2006-01-02T15:04:05"
	userAgent  = "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"
	apiPrefix  = "/wp-json/wc/v3/"
)

// Options configure a fake store.
type Options struct {
	// ConsumerKey and ConsumerSecret are the valid REST API key; empty means
	// DefaultConsumerKey and DefaultConsumerSecret.
	ConsumerKey, ConsumerSecret string
	// ReadOnly gives the key Read permission only: writes answer 401.
	ReadOnly bool
	// MaxDeliveryFailures is woocommerce_max_webhook_delivery_failures
	// (default 5).
	MaxDeliveryFailures int
	// Now is the store's clock (default time.Now).
	Now func() time.Time
}

// Server is a fake WooCommerce store. Its methods are safe for concurrent
// use.
type Server struct {
	t    testing.TB
	srv  *httptest.Server
	opts Options
	hc   *http.Client

	mu         sync.Mutex
	nextID     int64
	orders     map[int64]*Order
	customers  map[int64]*Customer
	coupons    map[int64]*Coupon
	webhooks   map[int64]*Webhook
	deliveries []Delivery
	requests   []Request
	fails      []int
	drop       int
}

// New starts a fake store on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ConsumerKey == "" {
		opts.ConsumerKey = DefaultConsumerKey
	}
	if opts.ConsumerSecret == "" {
		opts.ConsumerSecret = DefaultConsumerSecret
	}
	if opts.MaxDeliveryFailures == 0 {
		opts.MaxDeliveryFailures = DefaultMaxDeliveryFailures
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		t: t, opts: opts,
		hc:        &http.Client{Timeout: 10 * time.Second},
		nextID:    100,
		orders:    map[int64]*Order{},
		customers: map[int64]*Customer{},
		coupons:   map[int64]*Coupon{},
		webhooks:  map[int64]*Webhook{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the store's address, for a connection's store_url.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the store before the test ends, for tests of an unreachable
// store.
func (s *Server) Close() { s.srv.Close() }

// FailNext makes the next REST request answer status in WooCommerce's error
// shape (a 502 with a proxy's HTML page instead); several calls queue up.
// A 429 carries Retry-After: 7.
func (s *Server) FailNext(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, status)
}

// DropDeliveries makes the next n webhook deliveries (not pings) get lost
// on the way: the receiver never sees them, and the store counts each as a
// failed delivery, as it does when the URL cannot be reached.
func (s *Server) DropDeliveries(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop += n
}

// Requests returns the REST requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Deliveries returns the deliveries and pings made so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// Webhooks returns the store's webhooks, by id.
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Webhook
	for _, id := range slices.Sorted(maps.Keys(s.webhooks)) {
		out = append(out, *s.webhooks[id])
	}
	return out
}

// SetWebhookStatus sets a webhook's status as a shop manager would in
// WooCommerce > Settings > Advanced > Webhooks ("active", "paused" or
// "disabled").
func (s *Server) SetWebhookStatus(id int64, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.webhooks[id]
	if !ok {
		return fmt.Errorf("fakewoo: no webhook %d", id)
	}
	if !validWebhookStatus(status) {
		return fmt.Errorf("fakewoo: bad webhook status %q", status)
	}
	w.Status = status
	return nil
}

// Coupons returns the store's coupons, by id.
func (s *Server) Coupons() []Coupon {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Coupon
	for _, id := range slices.Sorted(maps.Keys(s.coupons)) {
		out = append(out, *s.coupons[id])
	}
	return out
}

// Order returns an order as the REST API would.
func (s *Server) Order(id int64) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// PutOrder stores an order: a new one when o.ID is 0 or unknown (firing
// order.created), else a replacement (firing order.updated). The fake fills
// what WooCommerce would (see [Order]) and returns the stored order after
// its webhooks were delivered.
func (s *Server) PutOrder(o Order) Order {
	s.mu.Lock()
	now := s.now()
	_, exists := s.orders[o.ID]
	if o.ID == 0 {
		o.ID = s.newID()
	} else if o.ID >= s.nextID {
		s.nextID = o.ID + 1
	}
	prev := s.orders[o.ID]
	s.completeOrder(&o, prev, now)
	s.orders[o.ID] = &o
	topic := "order.created"
	if exists {
		topic = "order.updated"
	}
	out := o
	jobs := s.deliveriesFor(topic, o.ID, mustJSON(o))
	s.mu.Unlock()
	s.deliver(jobs)
	return out
}

// UpdateOrder changes an order as WooCommerce saves it: fn edits it, the
// modification date moves on and order.updated is delivered.
func (s *Server) UpdateOrder(id int64, fn func(*Order)) (Order, error) {
	s.mu.Lock()
	cur, ok := s.orders[id]
	if !ok {
		s.mu.Unlock()
		return Order{}, fmt.Errorf("fakewoo: no order %d", id)
	}
	o := *cur
	o.LineItems = slices.Clone(cur.LineItems)
	o.MetaData = slices.Clone(cur.MetaData)
	o.Refunds = slices.Clone(cur.Refunds)
	fn(&o)
	o.ID = id
	s.completeOrder(&o, cur, s.now())
	s.orders[id] = &o
	out := o
	jobs := s.deliveriesFor("order.updated", id, mustJSON(o))
	s.mu.Unlock()
	s.deliver(jobs)
	return out, nil
}

// DeleteOrder moves an order to the trash (status trash, no longer listed
// by GET /orders) and delivers order.deleted with body {"id": N}, as
// WooCommerce does when an order is trashed.
func (s *Server) DeleteOrder(id int64) error {
	s.mu.Lock()
	cur, ok := s.orders[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("fakewoo: no order %d", id)
	}
	o := *cur
	o.Status = "trash"
	s.completeOrder(&o, cur, s.now())
	s.orders[id] = &o
	jobs := s.deliveriesFor("order.deleted", id, mustJSON(map[string]int64{"id": id}))
	s.mu.Unlock()
	s.deliver(jobs)
	return nil
}

// PutCustomer stores a customer, new (customer.created) or replaced
// (customer.updated), and delivers the webhook.
func (s *Server) PutCustomer(c Customer) Customer {
	s.mu.Lock()
	now := s.now()
	prev, exists := s.customers[c.ID]
	if c.ID == 0 {
		c.ID = s.newID()
	} else if c.ID >= s.nextID {
		s.nextID = c.ID + 1
	}
	s.completeCustomer(&c, prev, now)
	s.customers[c.ID] = &c
	topic := "customer.created"
	if exists {
		topic = "customer.updated"
	}
	jobs := s.deliveriesFor(topic, c.ID, mustJSON(c))
	s.mu.Unlock()
	s.deliver(jobs)
	return c
}

// UpdateCustomer changes a customer and delivers customer.updated.
func (s *Server) UpdateCustomer(id int64, fn func(*Customer)) (Customer, error) {
	s.mu.Lock()
	cur, ok := s.customers[id]
	if !ok {
		s.mu.Unlock()
		return Customer{}, fmt.Errorf("fakewoo: no customer %d", id)
	}
	c := *cur
	fn(&c)
	c.ID = id
	s.completeCustomer(&c, cur, s.now())
	s.customers[id] = &c
	jobs := s.deliveriesFor("customer.updated", id, mustJSON(c))
	s.mu.Unlock()
	s.deliver(jobs)
	return c, nil
}

func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Second) }

func (s *Server) newID() int64 {
	id := s.nextID
	s.nextID++
	return id
}

// nextModified is the modification time of a new version: now, but always
// a later second than the previous version's.
func nextModified(prev string, now time.Time) time.Time {
	if p, err := time.Parse(timeLayout, prev); err == nil && !now.After(p) {
		return p.Add(time.Second)
	}
	return now
}

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func ptr[T any](v T) *T { return &v }

// completeOrder fills what WooCommerce derives when it saves an order.
func (s *Server) completeOrder(o *Order, prev *Order, now time.Time) {
	if o.Status == "" {
		o.Status = "pending"
	}
	if o.Currency == "" {
		o.Currency = "EUR"
	}
	if o.Version == "" {
		o.Version = "9.4.2"
	}
	if o.CreatedVia == "" {
		o.CreatedVia = "checkout"
	}
	if o.Number == "" {
		o.Number = strconv.FormatInt(o.ID, 10)
	}
	if o.OrderKey == "" {
		if prev != nil {
			o.OrderKey = prev.OrderKey
		} else {
			o.OrderKey = "wc_order_" + randomHex(7)
		}
	}
	if o.DateCreatedGMT == "" {
		if prev != nil {
			o.DateCreatedGMT = prev.DateCreatedGMT
		} else {
			o.DateCreatedGMT = fmtTime(now)
		}
	}
	o.DateCreated = o.DateCreatedGMT
	mod := now
	if prev != nil {
		mod = nextModified(prev.DateModifiedGMT, now)
	} else if c, err := time.Parse(timeLayout, o.DateCreatedGMT); err == nil && c.After(mod) {
		mod = c
	}
	o.DateModifiedGMT = fmtTime(mod)
	o.DateModified = o.DateModifiedGMT
	// WC_Order::maybe_set_date_paid and maybe_set_date_completed.
	if (o.Status == "processing" || o.Status == "completed") && o.DatePaidGMT == nil {
		o.DatePaidGMT = ptr(fmtTime(mod))
	}
	if o.Status == "completed" && o.DateCompletedGMT == nil {
		o.DateCompletedGMT = ptr(fmtTime(mod))
	}
	o.DatePaid, o.DateCompleted = o.DatePaidGMT, o.DateCompletedGMT
	var sum float64
	for i := range o.LineItems {
		li := &o.LineItems[i]
		if li.ID == 0 {
			li.ID = int64(1000*o.ID) + int64(i+1)
		}
		if li.Quantity == 0 {
			li.Quantity = 1
		}
		if li.Subtotal == "" {
			li.Subtotal = money(li.Price * float64(li.Quantity))
		}
		if li.Total == "" {
			li.Total = li.Subtotal
		}
		li.SubtotalTax, li.TotalTax = orZero(li.SubtotalTax), orZero(li.TotalTax)
		if li.Taxes == nil {
			li.Taxes = []any{}
		}
		if li.MetaData == nil {
			li.MetaData = []Meta{}
		}
		v, _ := strconv.ParseFloat(li.Total, 64)
		sum += v
	}
	o.DiscountTotal, o.DiscountTax, o.ShippingTax, o.CartTax, o.TotalTax = orZero(o.DiscountTotal), orZero(o.DiscountTax), orZero(o.ShippingTax), orZero(o.CartTax), orZero(o.TotalTax)
	o.ShippingTotal = orZero(o.ShippingTotal)
	if o.Total == "" {
		ship, _ := strconv.ParseFloat(o.ShippingTotal, 64)
		o.Total = money(sum + ship)
	}
	for _, l := range []*[]json.RawMessage{&o.TaxLines, &o.ShippingLines, &o.FeeLines, &o.CouponLines} {
		if *l == nil {
			*l = []json.RawMessage{}
		}
	}
	if o.MetaData == nil {
		o.MetaData = []Meta{}
	}
	if o.LineItems == nil {
		o.LineItems = []LineItem{}
	}
	if o.Refunds == nil {
		o.Refunds = []Refund{}
	}
	o.PaymentURL = s.srv.URL + "/checkout/order-pay/" + strconv.FormatInt(o.ID, 10) + "/?pay_for_order=true&key=" + o.OrderKey
	o.NeedsPayment = o.Status == "pending" || o.Status == "failed"
	o.NeedsProcessing = true
	o.IsEditable = o.Status == "pending" || o.Status == "on-hold" || o.Status == "auto-draft" || o.Status == "checkout-draft"
	if o.CurrencySymbol == "" {
		o.CurrencySymbol = "&euro;"
	}
}

func (s *Server) completeCustomer(c *Customer, prev *Customer, now time.Time) {
	if c.Role == "" {
		c.Role = "customer"
	}
	if c.DateCreatedGMT == "" {
		if prev != nil {
			c.DateCreatedGMT = prev.DateCreatedGMT
		} else {
			c.DateCreatedGMT = fmtTime(now)
		}
	}
	c.DateCreated = c.DateCreatedGMT
	mod := now
	if prev != nil {
		mod = nextModified(prev.DateModifiedGMT, now)
	}
	c.DateModifiedGMT = fmtTime(mod)
	c.DateModified = c.DateModifiedGMT
	if c.Username == "" {
		c.Username = strings.SplitN(c.Email, "@", 2)[0]
	}
	if c.MetaData == nil {
		c.MetaData = []Meta{}
	}
	c.Shipping.Email = ""
	c.AvatarURL = "https://secure.gravatar.com/avatar/" + randomHex(16) + "?s=96&d=mm&r=g"
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func orZero(s string) string {
	if s == "" {
		return "0.00"
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// --- deliveries ---

type deliveryJob struct {
	hook    Webhook
	body    []byte
	dropped bool
	ping    bool
}

// deliveriesFor lists the deliveries of a topic, under s.mu.
func (s *Server) deliveriesFor(topic string, id int64, body []byte) []deliveryJob {
	// WC_Webhook::is_valid_resource: auto-drafts are never delivered, nor
	// orders in draft (an order an admin is still writing).
	if o, ok := s.orders[id]; ok && strings.HasPrefix(topic, "order.") && (o.Status == "auto-draft" || o.Status == "draft") {
		return nil
	}
	var jobs []deliveryJob
	for _, id := range slices.Sorted(maps.Keys(s.webhooks)) {
		w := s.webhooks[id]
		if w.Status != "active" || w.Topic != topic {
			continue
		}
		j := deliveryJob{hook: *w, body: body}
		if s.drop > 0 {
			s.drop--
			j.dropped = true
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// deliver makes the deliveries, outside s.mu (the receiver may call the
// store back), and records their outcome.
func (s *Server) deliver(jobs []deliveryJob) {
	for _, j := range jobs {
		d := Delivery{WebhookID: j.hook.ID, Topic: j.hook.Topic, URL: j.hook.DeliveryURL, Body: j.body, Ping: j.ping, Dropped: j.dropped}
		if !j.ping {
			d.DeliveryID = randomHex(32)
		}
		if j.dropped {
			d.Err = "dropped by the test"
		} else {
			d.Status, d.Err = s.post(j, d.DeliveryID)
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		if w, ok := s.webhooks[j.hook.ID]; ok && !j.ping {
			if d.Status >= 200 && d.Status < 303 {
				w.FailureCount = 0
			} else if w.FailureCount > s.opts.MaxDeliveryFailures {
				w.Status = "disabled"
			} else {
				w.FailureCount++
			}
		}
		s.mu.Unlock()
	}
}

func (s *Server) post(j deliveryJob, deliveryID string) (int, string) {
	body := j.body
	ctype := "application/json"
	if j.ping {
		body = []byte("webhook_id=" + strconv.FormatInt(j.hook.ID, 10))
		ctype = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(http.MethodPost, j.hook.DeliveryURL, strings.NewReader(string(body)))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", userAgent)
	if !j.ping {
		req.Header.Set("X-WC-Webhook-Source", s.srv.URL+"/")
		req.Header.Set("X-WC-Webhook-Topic", j.hook.Topic)
		req.Header.Set("X-WC-Webhook-Resource", j.hook.Resource)
		req.Header.Set("X-WC-Webhook-Event", j.hook.Event)
		req.Header.Set("X-WC-Webhook-Signature", Sign(j.hook.Secret, body))
		req.Header.Set("X-WC-Webhook-ID", strconv.FormatInt(j.hook.ID, 10))
		req.Header.Set("X-WC-Webhook-Delivery-ID", deliveryID)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	return resp.StatusCode, ""
}

// Sign is WooCommerce's X-WC-Webhook-Signature of body under secret:
// base64(HMAC-SHA256(body, secret)).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// --- REST ---

// restError is WordPress's REST error.
type restError struct {
	status  int
	code    string
	message string
}

func (e *restError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *restError {
	return &restError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *restError) {
	writeJSON(w, e.status, map[string]any{"code": e.code, "message": e.message, "data": map[string]any{"status": e.status}})
}

// verbFor names a method as WooCommerce's permission errors do.
func verbFor(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut, http.MethodPatch:
		return "edit"
	case http.MethodDelete:
		return "delete"
	}
	return "view"
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, apiPrefix) {
		writeError(w, errf(404, "rest_no_route", "No route was found matching the URL and request method."))
		return
	}
	route := strings.Trim(strings.TrimPrefix(r.URL.Path, apiPrefix), "/")
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Route: route, Query: r.URL.Query()})
	var fail int
	if len(s.fails) > 0 {
		fail, s.fails = s.fails[0], s.fails[1:]
	}
	s.mu.Unlock()
	if fail != 0 {
		s.writeFailure(w, fail)
		return
	}
	if e := s.authenticate(r); e != nil {
		writeError(w, e)
		return
	}
	parts := strings.Split(route, "/")
	var id int64
	if len(parts) == 2 {
		n, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			writeError(w, errf(404, "rest_no_route", "No route was found matching the URL and request method."))
			return
		}
		id = n
	}
	var (
		status = http.StatusOK
		out    any
		hdr    http.Header
		e      *restError
	)
	switch {
	case route == "webhooks" && r.Method == http.MethodGet:
		out, hdr, e = s.listWebhooks(r.URL.Query())
	case route == "webhooks" && r.Method == http.MethodPost:
		var hook Webhook
		hook, e = s.createWebhook(r)
		if e == nil {
			// create_item pings the delivery URL before it returns its
			// response, and ignores how the ping went.
			s.deliver([]deliveryJob{{hook: s.webhookWithSecret(hook.ID), ping: true}})
			writeJSON(w, http.StatusCreated, hook)
			return
		}
	case len(parts) == 2 && parts[0] == "webhooks":
		out, e = s.webhookItem(r, id)
	case route == "orders" && r.Method == http.MethodGet:
		out, hdr, e = s.listOrders(r.URL.Query())
	case len(parts) == 2 && parts[0] == "orders" && r.Method == http.MethodGet:
		out, e = s.getOrder(id)
	case route == "coupons" && r.Method == http.MethodGet:
		out, hdr, e = s.listCoupons(r.URL.Query())
	case route == "coupons" && r.Method == http.MethodPost:
		out, e = s.createCoupon(r)
		status = http.StatusCreated
	case len(parts) == 2 && parts[0] == "coupons" && r.Method == http.MethodGet:
		out, e = s.getCoupon(id)
	case route == "customers" && r.Method == http.MethodGet:
		out, hdr, e = s.listCustomers(r.URL.Query())
	case len(parts) == 2 && parts[0] == "customers" && r.Method == http.MethodGet:
		out, e = s.getCustomer(id)
	default:
		e = errf(404, "rest_no_route", "No route was found matching the URL and request method.")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	for k, v := range hdr {
		w.Header()[k] = v
	}
	writeJSON(w, status, out)
}

func (s *Server) writeFailure(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
		return
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "7")
		writeError(w, errf(status, "too_many_requests", "Too many requests."))
		return
	case http.StatusUnauthorized, http.StatusForbidden:
		writeError(w, errf(status, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."))
		return
	case http.StatusNotFound:
		writeError(w, errf(status, "woocommerce_rest_invalid_id", "Invalid ID."))
		return
	case http.StatusBadRequest:
		writeError(w, errf(status, "rest_invalid_param", "Invalid parameter(s): page"))
		return
	}
	writeError(w, errf(status, "internal_server_error", "There has been a critical error on this website."))
}

func (s *Server) authenticate(r *http.Request) *restError {
	key, secret, ok := r.BasicAuth()
	verb := verbFor(r.Method)
	if !ok {
		if verb == "view" {
			return errf(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
		}
		return errf(401, "woocommerce_rest_cannot_"+verb, "Sorry, you are not allowed to %s resources.", verb)
	}
	if !hmac.Equal([]byte(key), []byte(s.opts.ConsumerKey)) {
		return errf(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
	}
	if !hmac.Equal([]byte(secret), []byte(s.opts.ConsumerSecret)) {
		return errf(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
	}
	if s.opts.ReadOnly && verb != "view" {
		return errf(401, "woocommerce_rest_cannot_"+verb, "Sorry, you are not allowed to %s resources.", verb)
	}
	return nil
}

// paging reads page and per_page and validates them as WordPress does.
func paging(q url.Values) (page, perPage int, e *restError) {
	page, perPage = 1, 10
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, errf(400, "rest_invalid_param", "Invalid parameter(s): page")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return 0, 0, errf(400, "rest_invalid_param", "Invalid parameter(s): per_page")
		}
		perPage = n
	}
	return page, perPage, nil
}

// pageOf cuts one page out of items and sets the paging headers.
func pageOf[T any](items []T, page, perPage int) ([]T, http.Header) {
	total := len(items)
	pages := (total + perPage - 1) / perPage
	h := http.Header{}
	h.Set("X-WP-Total", strconv.Itoa(total))
	h.Set("X-WP-TotalPages", strconv.Itoa(pages))
	start := (page - 1) * perPage
	if start >= total {
		return []T{}, h
	}
	return items[start:min(start+perPage, total)], h
}

func decodeBody(r *http.Request, v any) *restError {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return errf(400, "rest_invalid_json", "Invalid JSON body passed.")
	}
	return nil
}

// --- webhooks ---

var validTopics = map[string]bool{}

func init() {
	for _, res := range []string{"coupon", "customer", "order", "product"} {
		for _, ev := range []string{"created", "updated", "deleted", "restored"} {
			validTopics[res+"."+ev] = true
		}
	}
}

func validWebhookStatus(s string) bool { return s == "active" || s == "paused" || s == "disabled" }

func hooksFor(topic string) []string {
	switch topic {
	case "order.created":
		return []string{"woocommerce_new_order"}
	case "order.updated":
		return []string{"woocommerce_update_order", "woocommerce_order_refunded"}
	case "order.deleted":
		return []string{"wp_trash_post", "woocommerce_trash_order"}
	case "customer.created":
		return []string{"user_register", "woocommerce_created_customer", "woocommerce_new_customer"}
	case "customer.updated":
		return []string{"profile_update", "woocommerce_update_customer"}
	}
	return []string{}
}

func (s *Server) webhookWithSecret(id int64) Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.webhooks[id]
}

func (s *Server) listWebhooks(q url.Values) (any, http.Header, *restError) {
	page, perPage, e := paging(q)
	if e != nil {
		return nil, nil, e
	}
	status := q.Get("status")
	if status == "" {
		status = "all"
	}
	if status != "all" && !validWebhookStatus(status) {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): status")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []Webhook
	for _, id := range slices.Sorted(maps.Keys(s.webhooks)) {
		if w := s.webhooks[id]; status == "all" || w.Status == status {
			list = append(list, *w)
		}
	}
	// WooCommerce lists webhooks newest first.
	slices.Reverse(list)
	out, h := pageOf(list, page, perPage)
	return out, h, nil
}

type webhookInput struct {
	Name        *string `json:"name"`
	Status      *string `json:"status"`
	Topic       *string `json:"topic"`
	Secret      *string `json:"secret"`
	DeliveryURL *string `json:"delivery_url"`
}

func validDeliveryURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Server) createWebhook(r *http.Request) (Webhook, *restError) {
	var in webhookInput
	if e := decodeBody(r, &in); e != nil {
		return Webhook{}, e
	}
	if in.Topic == nil || !validTopics[*in.Topic] {
		return Webhook{}, errf(400, "woocommerce_rest_webhook_invalid_topic", "Webhook topic is required and must be valid.")
	}
	if in.DeliveryURL == nil || !validDeliveryURL(*in.DeliveryURL) {
		return Webhook{}, errf(400, "woocommerce_rest_webhook_invalid_delivery_url", "Webhook delivery URL must be a valid URL starting with http:// or https://.")
	}
	status := "active"
	if in.Status != nil {
		if !validWebhookStatus(*in.Status) {
			return Webhook{}, errf(400, "rest_invalid_param", "Invalid parameter(s): status")
		}
		status = *in.Status
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := fmtTime(s.now())
	res, ev, _ := strings.Cut(*in.Topic, ".")
	w := &Webhook{
		ID: s.newID(), Status: status, Topic: *in.Topic, Resource: res, Event: ev, Hooks: hooksFor(*in.Topic),
		DeliveryURL: *in.DeliveryURL, DateCreated: now, DateCreatedGMT: now, DateModified: now, DateModifiedGMT: now,
	}
	if in.Name != nil && *in.Name != "" {
		w.Name = *in.Name
	} else {
		w.Name = "Webhook created on " + now
	}
	if in.Secret != nil && *in.Secret != "" {
		w.Secret = *in.Secret
	} else {
		w.Secret = randomHex(50)
	}
	s.webhooks[w.ID] = w
	return *w, nil
}

func (s *Server) webhookItem(r *http.Request, id int64) (any, *restError) {
	invalid := errf(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		w, ok := s.webhooks[id]
		if !ok {
			return nil, invalid
		}
		return *w, nil
	case http.MethodPut, http.MethodPatch, http.MethodPost:
		var in webhookInput
		if e := decodeBody(r, &in); e != nil {
			return nil, e
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w, ok := s.webhooks[id]
		if !ok {
			// update_item answers an unknown id with 400.
			return nil, errf(400, "woocommerce_rest_webhook_invalid_id", "ID is invalid.")
		}
		if in.Topic != nil {
			if !validTopics[*in.Topic] {
				return nil, errf(400, "woocommerce_rest_webhook_invalid_topic", "Webhook topic must be valid.")
			}
			w.Topic = *in.Topic
			w.Resource, w.Event, _ = strings.Cut(*in.Topic, ".")
			w.Hooks = hooksFor(*in.Topic)
		}
		if in.DeliveryURL != nil {
			if !validDeliveryURL(*in.DeliveryURL) {
				return nil, errf(400, "woocommerce_rest_webhook_invalid_delivery_url", "Webhook delivery URL must be a valid URL starting with http:// or https://.")
			}
			w.DeliveryURL = *in.DeliveryURL
		}
		if in.Status != nil {
			if !validWebhookStatus(*in.Status) {
				return nil, errf(400, "rest_invalid_param", "Invalid parameter(s): status")
			}
			w.Status = *in.Status
		}
		if in.Secret != nil {
			w.Secret = *in.Secret
		}
		if in.Name != nil {
			w.Name = *in.Name
		}
		now := fmtTime(s.now())
		w.DateModified, w.DateModifiedGMT = now, now
		return *w, nil
	case http.MethodDelete:
		if r.URL.Query().Get("force") != "true" && r.URL.Query().Get("force") != "1" {
			return nil, errf(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w, ok := s.webhooks[id]
		if !ok {
			return nil, invalid
		}
		delete(s.webhooks, id)
		return *w, nil
	}
	return nil, errf(404, "rest_no_route", "No route was found matching the URL and request method.")
}

// --- orders ---

func (s *Server) getOrder(id int64) (any, *restError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return nil, errf(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
	}
	return *o, nil
}

func parseDateParam(q url.Values, name string) (time.Time, bool, *restError) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, false, nil
	}
	for _, layout := range []string{timeLayout, time.RFC3339, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true, nil
		}
	}
	return time.Time{}, false, errf(400, "rest_invalid_param", "Invalid parameter(s): %s", name)
}

func (s *Server) listOrders(q url.Values) (any, http.Header, *restError) {
	page, perPage, e := paging(q)
	if e != nil {
		return nil, nil, e
	}
	if v := q.Get("dates_are_gmt"); v != "" && v != "true" && v != "false" && v != "1" && v != "0" {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): dates_are_gmt")
	}
	type bound struct {
		name  string
		after bool
		field func(*Order) string
	}
	created := func(o *Order) string { return o.DateCreatedGMT }
	modified := func(o *Order) string { return o.DateModifiedGMT }
	bounds := []bound{{"after", true, created}, {"before", false, created}, {"modified_after", true, modified}, {"modified_before", false, modified}}
	type active struct {
		bound
		t time.Time
	}
	var filters []active
	for _, b := range bounds {
		t, ok, e := parseDateParam(q, b.name)
		if e != nil {
			return nil, nil, e
		}
		if ok {
			filters = append(filters, active{b, t})
		}
	}
	orderby := q.Get("orderby")
	if orderby == "" {
		orderby = "date"
	}
	if !slices.Contains([]string{"date", "id", "include", "title", "slug", "modified"}, orderby) {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): orderby")
	}
	dir := q.Get("order")
	if dir == "" {
		dir = "desc"
	}
	if dir != "asc" && dir != "desc" {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): order")
	}
	var statuses []string
	for _, v := range append(q["status"], q["status[]"]...) {
		statuses = append(statuses, strings.Split(v, ",")...)
	}
	if len(statuses) == 0 {
		statuses = []string{"any"}
	}

	s.mu.Lock()
	var list []Order
	for _, o := range s.orders {
		if !statusMatches(statuses, o.Status) {
			continue
		}
		keep := true
		for _, f := range filters {
			t, err := time.Parse(timeLayout, f.field(o))
			if err != nil || (f.after && !t.After(f.t)) || (!f.after && !t.Before(f.t)) {
				keep = false
				break
			}
		}
		if keep {
			list = append(list, *o)
		}
	}
	s.mu.Unlock()
	key := func(o Order) string {
		switch orderby {
		case "modified":
			return o.DateModifiedGMT
		case "date":
			return o.DateCreatedGMT
		}
		return fmt.Sprintf("%020d", o.ID)
	}
	slices.SortFunc(list, func(a, b Order) int {
		c := strings.Compare(key(a), key(b))
		if c == 0 {
			c = int(a.ID - b.ID)
		}
		if dir == "desc" {
			c = -c
		}
		return c
	})
	out, h := pageOf(list, page, perPage)
	return out, h, nil
}

func statusMatches(statuses []string, status string) bool {
	for _, s := range statuses {
		if s == status || (s == "any" && status != "trash") {
			return true
		}
	}
	return false
}

// --- coupons ---

func (s *Server) getCoupon(id int64) (any, *restError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.coupons[id]
	if !ok {
		return nil, errf(404, "woocommerce_rest_shop_coupon_invalid_id", "Invalid ID.")
	}
	return *c, nil
}

func (s *Server) listCoupons(q url.Values) (any, http.Header, *restError) {
	page, perPage, e := paging(q)
	if e != nil {
		return nil, nil, e
	}
	code := strings.ToLower(strings.TrimSpace(q.Get("code")))
	s.mu.Lock()
	var list []Coupon
	for _, id := range slices.Sorted(maps.Keys(s.coupons)) {
		if c := s.coupons[id]; code == "" || c.Code == code {
			list = append(list, *c)
		}
	}
	s.mu.Unlock()
	slices.Reverse(list)
	out, h := pageOf(list, page, perPage)
	return out, h, nil
}

type couponInput struct {
	Code              *string  `json:"code"`
	Amount            *string  `json:"amount"`
	DiscountType      *string  `json:"discount_type"`
	Description       string   `json:"description"`
	DateExpires       *string  `json:"date_expires"`
	DateExpiresGMT    *string  `json:"date_expires_gmt"`
	IndividualUse     bool     `json:"individual_use"`
	UsageLimit        *int     `json:"usage_limit"`
	UsageLimitPerUser *int     `json:"usage_limit_per_user"`
	EmailRestrictions []string `json:"email_restrictions"`
	FreeShipping      bool     `json:"free_shipping"`
	ProductIDs        []int64  `json:"product_ids"`
	MetaData          []Meta   `json:"meta_data"`
	ExcludeSaleItems  bool     `json:"exclude_sale_items"`
	MinimumAmount     string   `json:"minimum_amount"`
	MaximumAmount     string   `json:"maximum_amount"`
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-3 && strings.Contains(s[at:], ".") && !strings.ContainsAny(s, " ,;<>")
}

func (s *Server) createCoupon(r *http.Request) (any, *restError) {
	var in couponInput
	if e := decodeBody(r, &in); e != nil {
		return nil, e
	}
	if in.Code == nil {
		return nil, errf(400, "rest_missing_callback_param", "Missing parameter(s): code")
	}
	code := strings.ToLower(strings.TrimSpace(*in.Code))
	if code == "" {
		return nil, errf(400, "woocommerce_rest_empty_coupon_code", "The coupon code cannot be empty.")
	}
	dtype := "fixed_cart"
	if in.DiscountType != nil {
		dtype = *in.DiscountType
	}
	if dtype != "percent" && dtype != "fixed_cart" && dtype != "fixed_product" {
		return nil, errf(400, "rest_invalid_param", "Invalid parameter(s): discount_type")
	}
	amount := "0"
	if in.Amount != nil {
		if _, err := strconv.ParseFloat(*in.Amount, 64); err != nil {
			return nil, errf(400, "rest_invalid_param", "Invalid parameter(s): amount")
		}
		amount = *in.Amount
	}
	for _, em := range in.EmailRestrictions {
		if !validEmail(em) {
			return nil, errf(400, "coupon_invalid_email_address", "Invalid email address restriction.")
		}
	}
	var expires *string
	for _, v := range []*string{in.DateExpiresGMT, in.DateExpires} {
		if v != nil && *v != "" {
			t, err := time.Parse(timeLayout, *v)
			if err != nil {
				return nil, errf(400, "rest_invalid_param", "Invalid parameter(s): date_expires")
			}
			expires = ptr(fmtTime(t))
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.coupons {
		if c.Code == code {
			return nil, errf(400, "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists")
		}
	}
	now := fmtTime(s.now())
	c := &Coupon{
		ID: s.newID(), Code: code, Amount: amount, Status: "publish", DiscountType: dtype, Description: in.Description,
		DateCreated: now, DateCreatedGMT: now, DateModified: now, DateModifiedGMT: now,
		DateExpires: expires, DateExpiresGMT: expires, IndividualUse: in.IndividualUse,
		UsageLimit: in.UsageLimit, UsageLimitPerUser: in.UsageLimitPerUser,
		EmailRestrictions: nonNil(in.EmailRestrictions), FreeShipping: in.FreeShipping,
		ProductIDs: nonNil(in.ProductIDs), ExcludedProductIDs: []int64{}, ProductCategories: []int64{},
		ExcludedProductCategories: []int64{}, ExcludeSaleItems: in.ExcludeSaleItems,
		MinimumAmount: orZero(in.MinimumAmount), MaximumAmount: orZero(in.MaximumAmount),
		UsedBy: []string{}, MetaData: nonNil(in.MetaData),
	}
	s.coupons[c.ID] = c
	return *c, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// --- customers ---

func (s *Server) getCustomer(id int64) (any, *restError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.customers[id]
	if !ok {
		return nil, errf(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
	}
	return *c, nil
}

func (s *Server) listCustomers(q url.Values) (any, http.Header, *restError) {
	page, perPage, e := paging(q)
	if e != nil {
		return nil, nil, e
	}
	role := q.Get("role")
	if role == "" {
		role = "customer"
	}
	orderby := q.Get("orderby")
	if orderby == "" {
		orderby = "name"
	}
	if !slices.Contains([]string{"id", "include", "name", "registered_date"}, orderby) {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): orderby")
	}
	dir := q.Get("order")
	if dir == "" {
		dir = "asc"
	}
	if dir != "asc" && dir != "desc" {
		return nil, nil, errf(400, "rest_invalid_param", "Invalid parameter(s): order")
	}
	s.mu.Lock()
	var list []Customer
	for _, c := range s.customers {
		if role == "all" || c.Role == role {
			list = append(list, *c)
		}
	}
	s.mu.Unlock()
	key := func(c Customer) string {
		switch orderby {
		case "name":
			return strings.ToLower(c.Username)
		case "registered_date":
			return c.DateCreatedGMT
		}
		return fmt.Sprintf("%020d", c.ID)
	}
	slices.SortFunc(list, func(a, b Customer) int {
		c := strings.Compare(key(a), key(b))
		if c == 0 {
			c = int(a.ID - b.ID)
		}
		if dir == "desc" {
			c = -c
		}
		return c
	})
	out, h := pageOf(list, page, perPage)
	return out, h, nil
}
