// Package fakeshopify is a TEST FAKE of the Shopify Admin GraphQL API of one
// shop, and of the webhooks Shopify sends. It is not used in production.
// Tests of Ponte's Shopify connector, of the commerce workflows and the
// end-to-end tests start one with [New] and point a connection's api_base at
// [Shop.URL]; it listens on 127.0.0.1 on a random port and stops when the
// test ends.
//
// It reproduces these documented behaviours of Shopify (and nothing else):
//
//   - POST /admin/api/{version}/graphql.json only, for the API versions in
//     [Options].APIVersions (others: 404 {"errors":"Not Found"}); the
//     X-Shopify-Access-Token header must be the shop's token, else HTTP 401
//     with Shopify's body {"errors":"[API] Invalid API key or access token
//     (unrecognized login or wrong password)"}.
//   - The calculated query cost and its leaky bucket: every answer carries
//     extensions.cost {requestedQueryCost, actualQueryCost, throttleStatus
//     {maximumAvailable, currentlyAvailable, restoreRate}}; a query whose
//     requested cost exceeds the points available is not run and answers
//     HTTP 200 with errors [{message: "Throttled", extensions: {code:
//     "THROTTLED"}}]; one above the bucket's size answers MAX_COST_EXCEEDED.
//     Defaults are Shopify's standard plan: 1,000 points, restoring 50 a
//     second. Costs follow Shopify's rules roughly: 1 per object, 2 plus the
//     page size per connection, 10 per mutation; the actual cost counts the
//     objects returned, and only it is taken from the bucket.
//   - The operations Ponte's connector sends, recognised by their root field
//     (the fake does not implement GraphQL; it answers every field the
//     connector selects, with Shopify's shapes and enum spellings): shop;
//     webhookSubscriptions (first <= 250, after); webhookSubscriptionCreate
//     (topic must be a WebhookSubscriptionTopic, callbackUrl https, or http
//     to a loopback host for tests, format JSON or XML; an address already
//     subscribed to the topic is the userError "Address for this topic has
//     already been taken"); webhookSubscriptionUpdate and
//     webhookSubscriptionDelete (an unknown id is the userError "Webhook
//     subscription does not exist"); node(id:) for AbandonedCheckout,
//     Order and Customer gids; order(id:); customers (first 1..250, after,
//     opaque cursors, pageInfo); discountCodeBasicCreate (title and code
//     required, code unique case-insensitively: userError code TAKEN
//     "Code must be unique. Please try a different code.", percentage in
//     0..1, usageLimit >= 1, endsAt after startsAt, context or the
//     deprecated customerSelection required, customers must exist);
//     codeDiscountNodeByCode. A variable of the wrong type is the top-level
//     error code INVALID_VARIABLE; an operation it does not know is
//     "Field 'x' doesn't exist on type 'QueryRoot'" (undefinedField).
//   - Webhooks as Shopify sends them ([Shop.Deliver]): a POST of the
//     REST-shaped JSON resource to every subscription of the topic, with
//     X-Shopify-Topic, X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of the raw
//     body under the app's client secret), X-Shopify-Shop-Domain,
//     X-Shopify-API-Version, X-Shopify-Webhook-Id (kept by
//     [Shop.Redeliver], as Shopify keeps it across retries),
//     X-Shopify-Triggered-At and X-Shopify-Event-Id. Retries are not
//     automatic; each delivery's answer is recorded ([Shop.Deliveries]).
//
// [Shop.FailNext] makes the next calls fail with an HTTP status (401, 402,
// 423, 429 with Retry-After, 5xx) with Shopify's bodies, and
// [Shop.SetAvailable] empties the bucket, for tests of errors.
package fakeshopify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a [Shop]. Zero values get the defaults named.
type Options struct {
	// Domain is the shop's myshopify domain (default "ponte-test.myshopify.com").
	Domain string
	// AccessToken is the Admin API token calls must carry (default a random
	// "shpat_…").
	AccessToken string
	// ClientSecret signs the webhooks (default random).
	ClientSecret string
	// Name, Currency, Timezone and Country describe the shop (defaults
	// "Ponte Test Shop", "EUR", "Europe/Rome", "IT").
	Name, Currency, Timezone, Country string
	// APIVersions are the versions served (default 2025-01, 2025-04,
	// 2025-07, 2025-10); WebhookAPIVersion is the one webhooks say they are
	// serialized with (default 2025-07).
	APIVersions       []string
	WebhookAPIVersion string
	// BucketSize and RestoreRate shape the query-cost bucket (defaults
	// 1,000 points and 50 points a second).
	BucketSize  float64
	RestoreRate float64
}

// Shop is a running fake shop.
type Shop struct {
	// Domain, AccessToken and ClientSecret are the shop's, as configured.
	Domain       string
	AccessToken  string
	ClientSecret string

	opts   Options
	srv    *httptest.Server
	client *http.Client

	mu          sync.Mutex
	shopID      int64
	nextID      int64
	subs        []Subscription
	checkouts   map[int64]Checkout
	orders      map[int64]Order
	customers   map[int64]Customer
	discounts   []Discount
	failures    []int
	available   float64
	lastRestore time.Time
	operations  []string
	deliveries  []Delivery
}

// New starts a fake shop for the test; it is stopped when the test ends.
func New(t testing.TB, opts Options) *Shop {
	t.Helper()
	if opts.Domain == "" {
		opts.Domain = "ponte-test.myshopify.com"
	}
	if opts.AccessToken == "" {
		opts.AccessToken = "shpat_" + randomHex(16)
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = randomHex(16)
	}
	if opts.Name == "" {
		opts.Name = "Ponte Test Shop"
	}
	if opts.Currency == "" {
		opts.Currency = "EUR"
	}
	if opts.Timezone == "" {
		opts.Timezone = "Europe/Rome"
	}
	if opts.Country == "" {
		opts.Country = "IT"
	}
	if len(opts.APIVersions) == 0 {
		opts.APIVersions = []string{"2025-01", "2025-04", "2025-07", "2025-10"}
	}
	if opts.WebhookAPIVersion == "" {
		opts.WebhookAPIVersion = "2025-07"
	}
	if opts.BucketSize <= 0 {
		opts.BucketSize = 1000
	}
	if opts.RestoreRate <= 0 {
		opts.RestoreRate = 50
	}
	s := &Shop{
		Domain: opts.Domain, AccessToken: opts.AccessToken, ClientSecret: opts.ClientSecret,
		opts:      opts,
		client:    &http.Client{Timeout: 10 * time.Second},
		shopID:    548380009,
		nextID:    1_000_000_000_000,
		checkouts: map[int64]Checkout{},
		orders:    map[int64]Order{},
		customers: map[int64]Customer{},
		available: opts.BucketSize,
	}
	s.lastRestore = time.Now()
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// URL is the base URL to use as a connection's api_base.
func (s *Shop) URL() string { return s.srv.URL }

// Config returns a connection config for this shop (shop_domain,
// access_token, client_secret, api_base).
func (s *Shop) Config() map[string]any {
	return map[string]any{
		"shop_domain":   s.Domain,
		"access_token":  s.AccessToken,
		"client_secret": s.ClientSecret,
		"api_base":      s.URL(),
	}
}

// newID hands out increasing numeric ids, like Shopify's.
func (s *Shop) newID() int64 {
	s.nextID += 7
	return s.nextID
}

// FailNext makes the next len(statuses) Admin API calls (after the path
// check) answer with these HTTP statuses instead of running (0 lets that
// call through, to fail a later one): 401 with
// Shopify's bad-token body, 402 "Unavailable Shop" (frozen), 423 (locked),
// 429 with Retry-After: 2.0, 5xx "Internal Server Error".
func (s *Shop) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, statuses...)
}

// SetAvailable sets the points left in the query-cost bucket (it keeps
// restoring at the restore rate from now).
func (s *Shop) SetAvailable(points float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.available = min(points, s.opts.BucketSize)
	s.lastRestore = time.Now()
}

// Operations returns the root fields of the operations run so far, in
// order (throttled and failed calls included), e.g. "webhookSubscriptionCreate".
func (s *Shop) Operations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.operations)
}

// Subscriptions returns the webhook subscriptions, oldest first.
func (s *Shop) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subs)
}

// AddSubscription subscribes callbackURL to a topic, as another app
// installation or an earlier Ponte address would have; topic is REST
// ("orders/create") or GraphQL ("ORDERS_CREATE") spelling.
func (s *Shop) AddSubscription(topic, callbackURL string) Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := Subscription{ID: fmt.Sprintf("gid://shopify/WebhookSubscription/%d", s.newID()), Topic: topicEnum(topic), CallbackURL: callbackURL, Format: "JSON", CreatedAt: time.Now().UTC()}
	s.subs = append(s.subs, sub)
	return sub
}

// DeleteSubscription removes a subscription, as the merchant or another
// tool might; it reports whether there was one with that id.
func (s *Shop) DeleteSubscription(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.subs, func(sub Subscription) bool { return sub.ID == id })
	if i < 0 {
		return false
	}
	s.subs = slices.Delete(s.subs, i, i+1)
	return true
}

// DiscountCodes returns the code discounts created, oldest first.
func (s *Shop) DiscountCodes() []Discount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.discounts)
}

// Deliveries returns the webhook deliveries made, oldest first.
func (s *Shop) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// topicEnum turns "orders/create" into "ORDERS_CREATE" (and leaves the
// latter alone).
func topicEnum(t string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(t), "/", "_"))
}

// topicREST turns "ORDERS_CREATE" into "orders/create".
func topicREST(t string) string {
	t = strings.ToLower(t)
	if i := strings.IndexByte(t, '_'); i >= 0 {
		return t[:i] + "/" + t[i+1:]
	}
	return t
}

const badTokenBody = `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	switch b := v.(type) {
	case string:
		_, _ = io.WriteString(w, b)
	default:
		_ = json.NewEncoder(w).Encode(v)
	}
}

func (s *Shop) serve(w http.ResponseWriter, r *http.Request) {
	version, ok := strings.CutPrefix(r.URL.Path, "/admin/api/")
	version, ok2 := strings.CutSuffix(version, "/graphql.json")
	if !ok || !ok2 || !slices.Contains(s.opts.APIVersions, version) {
		writeJSON(w, http.StatusNotFound, `{"errors":"Not Found"}`)
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, `{"errors":"Method Not Allowed"}`)
		return
	}
	s.mu.Lock()
	var fail int
	if len(s.failures) > 0 {
		fail, s.failures = s.failures[0], s.failures[1:]
	}
	s.mu.Unlock()
	switch {
	case fail == http.StatusUnauthorized:
		writeJSON(w, fail, badTokenBody)
		return
	case fail == http.StatusPaymentRequired:
		writeJSON(w, fail, `{"errors":"Unavailable Shop"}`)
		return
	case fail == http.StatusLocked:
		writeJSON(w, fail, `{"errors":"This shop is unavailable"}`)
		return
	case fail == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "2.0")
		writeJSON(w, fail, `{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}`)
		return
	case fail >= 500:
		writeJSON(w, fail, `{"errors":"Internal Server Error"}`)
		return
	case fail != 0:
		writeJSON(w, fail, fmt.Sprintf(`{"errors":%q}`, http.StatusText(fail)))
		return
	}
	if r.Header.Get("X-Shopify-Access-Token") != s.AccessToken {
		writeJSON(w, http.StatusUnauthorized, badTokenBody)
		return
	}
	var req struct {
		Query         string                     `json:"query"`
		Variables     map[string]json.RawMessage `json:"variables"`
		OperationName string                     `json:"operationName"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &req) != nil || strings.TrimSpace(req.Query) == "" {
		writeJSON(w, http.StatusBadRequest, `{"errors":{"query":"Required parameter missing or invalid"}}`)
		return
	}
	writeJSON(w, http.StatusOK, s.execute(req.Query, req.Variables))
}

// rootField finds the operation's root field: the first name after the
// selection set opens, past an alias.
func rootField(query string) string {
	i := strings.IndexByte(query, '{')
	if i < 0 {
		return ""
	}
	rest := strings.TrimSpace(query[i+1:])
	name := identifier(rest)
	rest = strings.TrimSpace(rest[len(name):])
	if strings.HasPrefix(rest, ":") {
		rest = strings.TrimSpace(rest[1:])
		name = identifier(rest)
	}
	return name
}

func identifier(s string) string {
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
			return s[:i]
		}
	}
	return s
}

// gqlError is a top-level GraphQL error.
type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// result is what an operation handler returns: data, or top-level errors,
// and the actual cost of what it returned.
type result struct {
	data   any
	errors []gqlError
	actual float64
}

func invalidVariable(name, typ, msg string) result {
	return result{errors: []gqlError{{
		Message:    fmt.Sprintf("Variable $%s of type %s was provided invalid value", name, typ),
		Extensions: map[string]any{"code": "INVALID_VARIABLE", "problems": []map[string]any{{"path": []string{}, "explanation": msg}}},
	}}}
}

// execute runs one operation under the bucket.
func (s *Shop) execute(query string, vars map[string]json.RawMessage) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := rootField(query)
	s.operations = append(s.operations, root)
	op, ok := s.handlers()[root]
	if !ok {
		kind := "QueryRoot"
		if strings.HasPrefix(strings.TrimSpace(query), "mutation") {
			kind = "Mutation"
		}
		return map[string]any{"errors": []gqlError{{Message: fmt.Sprintf("Field '%s' doesn't exist on type '%s'", root, kind),
			Extensions: map[string]any{"code": "undefinedField", "typeName": kind, "fieldName": root}}}}
	}

	now := time.Now()
	s.available = min(s.opts.BucketSize, s.available+now.Sub(s.lastRestore).Seconds()*s.opts.RestoreRate)
	s.lastRestore = now
	requested := op.cost(vars)
	cost := func(actual *float64) map[string]any {
		return map[string]any{"cost": map[string]any{
			"requestedQueryCost": requested,
			"actualQueryCost":    actual,
			"throttleStatus": map[string]any{
				"maximumAvailable":   s.opts.BucketSize,
				"currentlyAvailable": s.available,
				"restoreRate":        s.opts.RestoreRate,
			},
		}}
	}
	if requested > s.opts.BucketSize {
		return map[string]any{"errors": []gqlError{{
			Message:    fmt.Sprintf("Query cost is %.0f, which exceeds the single query max cost limit (%.0f).", requested, s.opts.BucketSize),
			Extensions: map[string]any{"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": s.opts.BucketSize}}},
			"extensions": cost(nil)}
	}
	if requested > s.available {
		return map[string]any{"errors": []gqlError{{Message: "Throttled",
			Extensions: map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}},
			"extensions": cost(nil)}
	}
	res := op.run(vars)
	actual := min(res.actual, requested)
	s.available -= actual
	out := map[string]any{"extensions": cost(&actual)}
	if len(res.errors) > 0 {
		out["errors"] = res.errors
	}
	if res.data != nil {
		out["data"] = map[string]any{root: res.data}
	}
	return out
}

type operation struct {
	cost func(vars map[string]json.RawMessage) float64
	run  func(vars map[string]json.RawMessage) result
}

func fixed(n float64) func(map[string]json.RawMessage) float64 {
	return func(map[string]json.RawMessage) float64 { return n }
}

func (s *Shop) handlers() map[string]operation {
	return map[string]operation{
		"shop":                      {fixed(2), s.opShop},
		"webhookSubscriptions":      {pageCost("first", 100, 2), s.opSubscriptions},
		"webhookSubscriptionCreate": {fixed(10), s.opSubscriptionCreate},
		"webhookSubscriptionUpdate": {fixed(10), s.opSubscriptionUpdate},
		"webhookSubscriptionDelete": {fixed(10), s.opSubscriptionDelete},
		"node":                      {fixed(checkoutCost), s.opNode},
		"order":                     {fixed(orderCost), s.opOrder},
		"customers":                 {pageCost("first", 0, 3), s.opCustomers},
		"discountCodeBasicCreate":   {fixed(10), s.opDiscountCreate},
		"codeDiscountNodeByCode":    {fixed(4), s.opDiscountByCode},
	}
}

// Requested costs of the single-object queries: the object, its customer
// and two addresses, and a line-item connection of 100 (2 + 100) — plus 20
// fulfillments with their tracking for an order.
const (
	checkoutCost = 1 + 2 + 2 + 102
	orderCost    = checkoutCost + 22
)

// pageCost is Shopify's connection cost: 2 plus the page size times the
// objects of each node. first comes from the named variable, or def when
// the query writes it literally.
func pageCost(variable string, def int, perNode float64) func(map[string]json.RawMessage) float64 {
	return func(vars map[string]json.RawMessage) float64 {
		n := def
		if raw, ok := vars[variable]; ok {
			_ = json.Unmarshal(raw, &n)
		}
		return 2 + float64(max(n, 0))*perNode
	}
}
