package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// maxResponseBody bounds what is read of an Admin API response; a page of
// 250 customers is the largest thing the connector asks for.
const maxResponseBody = 8 << 20

// DefaultRetryAfter is the wait suggested for a throttled call when Shopify
// gives neither a Retry-After header nor its bucket's state. The bucket
// restores 50 points a second on standard plans, so a second or two is what
// a typical query needs.
const DefaultRetryAfter = 2 * time.Second

// graphQLError is one entry of a GraphQL response's "errors" array.
type graphQLError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// queryCost is the "cost" extension Shopify adds to every GraphQL response:
// the calculated cost of the query and the state of the app's leaky bucket.
type queryCost struct {
	RequestedQueryCost float64  `json:"requestedQueryCost"`
	ActualQueryCost    *float64 `json:"actualQueryCost"`
	ThrottleStatus     struct {
		MaximumAvailable   float64 `json:"maximumAvailable"`
		CurrentlyAvailable float64 `json:"currentlyAvailable"`
		RestoreRate        float64 `json:"restoreRate"`
	} `json:"throttleStatus"`
}

// graphQLResponse is the body of an Admin GraphQL answer. Errors is kept raw
// because Shopify answers some failures (a bad token) with a string there
// instead of the GraphQL array.
type graphQLResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     json.RawMessage `json:"errors"`
	Extensions struct {
		Cost *queryCost `json:"cost"`
	} `json:"extensions"`
}

// userError is a mutation's userErrors entry (UserError and
// DiscountUserError share these fields).
type userError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
	Code    string   `json:"code"`
}

// graphql POSTs one operation to the connection's Admin GraphQL endpoint and
// decodes its data into out. op says what is being done ("listing webhook
// subscriptions") and starts every error message. Failures come back as
// *sdk.Error values whose kind says what the caller should do.
func (c *Connector) graphql(ctx context.Context, cfg Config, op, query string, vars map[string]any, out any) error {
	if err := cfg.validForCalls(); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return sdk.Permanent("%s: encoding the request: %v", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.graphqlURL(), bytes.NewReader(body))
	if err != nil {
		return sdk.Invalid("%s: building the request: %v", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Shopify-Access-Token", cfg.AccessToken)
	req.Header.Set("User-Agent", "ponte-connector-shopify/"+Version)

	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		// The error text carries the URL, never the token (a header).
		return sdk.Retryable("%s: calling the Admin API: %v", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return sdk.Retryable("%s: reading the Admin API's answer: %v", op, err)
	}
	c.log.Debug("admin api call", "op", op, "shop", cfg.ShopDomain, "status", resp.StatusCode, "duration", time.Since(start))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return mapHTTPError(op, resp.StatusCode, resp.Header, raw)
	}
	var gr graphQLResponse
	if err := json.Unmarshal(raw, &gr); err != nil {
		return sdk.Retryable("%s: the Admin API answered %d with a body that is not JSON: %v", op, resp.StatusCode, err)
	}
	if err := mapGraphQLErrors(op, gr); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if len(gr.Data) == 0 || string(gr.Data) == "null" {
		return sdk.Retryable("%s: the Admin API answered without data", op)
	}
	if err := json.Unmarshal(gr.Data, out); err != nil {
		return sdk.Permanent("%s: decoding the Admin API's data: %v", op, err)
	}
	return nil
}

// mapHTTPError turns a non-2xx answer of the Admin API into an *sdk.Error:
//
//   - 401 (bad or revoked token), 403 (missing scope): Auth
//   - 404 (no such shop or API version): NotFound
//   - 402 (the shop is frozen for an unpaid bill), 423 (the shop is locked):
//     Permanent, since retrying cannot help until the merchant acts
//   - 429: RateLimited, after the Retry-After header (seconds, possibly
//     fractional) or [DefaultRetryAfter]
//   - 5xx: Retryable
//   - any other 4xx: Invalid
func mapHTTPError(op string, status int, h http.Header, body []byte) *sdk.Error {
	msg := fmt.Sprintf("%s: the Admin API answered %d", op, status)
	if detail := errorDetail(body); detail != "" {
		msg += ": " + detail
	}
	switch {
	case status == http.StatusUnauthorized:
		return &sdk.Error{Kind: sdk.KindAuth, Message: msg + " (the access token is wrong or the app was uninstalled)", Code: strconv.Itoa(status)}
	case status == http.StatusForbidden:
		return &sdk.Error{Kind: sdk.KindAuth, Message: msg + " (the app lacks an access scope)", Code: strconv.Itoa(status)}
	case status == http.StatusNotFound:
		return &sdk.Error{Kind: sdk.KindNotFound, Message: msg, Code: strconv.Itoa(status)}
	case status == http.StatusPaymentRequired:
		return &sdk.Error{Kind: sdk.KindPermanent, Message: msg + " (the shop is frozen until its bill is paid)", Code: strconv.Itoa(status)}
	case status == http.StatusLocked:
		return &sdk.Error{Kind: sdk.KindPermanent, Message: msg + " (the shop is locked)", Code: strconv.Itoa(status)}
	case status == http.StatusTooManyRequests:
		return &sdk.Error{Kind: sdk.KindRateLimited, Message: msg, Code: strconv.Itoa(status), RetryAfter: retryAfterHeader(h)}
	case status >= 500:
		return &sdk.Error{Kind: sdk.KindRetryable, Message: msg, Code: strconv.Itoa(status), RetryAfter: retryAfterHeaderOrZero(h)}
	default:
		return &sdk.Error{Kind: sdk.KindInvalid, Message: msg, Code: strconv.Itoa(status)}
	}
}

// errorDetail reads Shopify's error text from an error body: {"errors": "..."}
// or {"errors": {"field": ["..."]}} or a GraphQL errors array. Anything else
// (an HTML page from a proxy) gives "", so it never lands in a message.
func errorDetail(body []byte) string {
	var v struct {
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Errors) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Errors, &s) == nil {
		return truncate(s, 300)
	}
	var list []graphQLError
	if json.Unmarshal(v.Errors, &list) == nil {
		msgs := make([]string, 0, len(list))
		for _, e := range list {
			msgs = append(msgs, e.Message)
		}
		return truncate(strings.Join(msgs, "; "), 300)
	}
	return truncate(string(v.Errors), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func retryAfterHeaderOrZero(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 || math.IsInf(secs, 0) || math.IsNaN(secs) {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

func retryAfterHeader(h http.Header) time.Duration {
	if d := retryAfterHeaderOrZero(h); d > 0 {
		return d
	}
	return DefaultRetryAfter
}

// mapGraphQLErrors turns the "errors" of a 200 answer into an *sdk.Error, or
// nil when there are none. A THROTTLED error is RateLimited, with the wait
// computed from the bucket: the points the query needs beyond those
// available, at the restore rate. ACCESS_DENIED is Auth; SHOP_INACTIVE is
// Permanent; INTERNAL_SERVER_ERROR is Retryable; MAX_COST_EXCEEDED and
// errors of the query itself (a field the API version does not have) are
// Permanent, because the same query can never succeed.
func mapGraphQLErrors(op string, gr graphQLResponse) error {
	if len(gr.Errors) == 0 || string(gr.Errors) == "null" {
		return nil
	}
	var list []graphQLError
	if err := json.Unmarshal(gr.Errors, &list); err != nil {
		var s string
		if json.Unmarshal(gr.Errors, &s) == nil {
			return sdk.Permanent("%s: %s", op, truncate(s, 300))
		}
		return sdk.Permanent("%s: the Admin API answered errors it cannot read", op)
	}
	if len(list) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(list))
	for _, e := range list {
		msgs = append(msgs, e.Message)
	}
	msg := fmt.Sprintf("%s: %s", op, truncate(strings.Join(msgs, "; "), 300))
	code := list[0].Extensions.Code
	switch code {
	case "THROTTLED":
		return &sdk.Error{Kind: sdk.KindRateLimited, Message: msg, Code: code, RetryAfter: throttleWait(gr.Extensions.Cost)}
	case "ACCESS_DENIED":
		return &sdk.Error{Kind: sdk.KindAuth, Message: msg, Code: code}
	case "SHOP_INACTIVE":
		return &sdk.Error{Kind: sdk.KindPermanent, Message: msg, Code: code}
	case "INTERNAL_SERVER_ERROR":
		return &sdk.Error{Kind: sdk.KindRetryable, Message: msg, Code: code}
	default:
		return &sdk.Error{Kind: sdk.KindPermanent, Message: msg, Code: code}
	}
}

// throttleWait is how long until the bucket holds the points a throttled
// query asked for: (requested - available) / restoreRate seconds, at least
// a tenth of a second so a caller never spins.
func throttleWait(c *queryCost) time.Duration {
	if c == nil || c.ThrottleStatus.RestoreRate <= 0 {
		return DefaultRetryAfter
	}
	missing := c.RequestedQueryCost - c.ThrottleStatus.CurrentlyAvailable
	wait := time.Duration(missing / c.ThrottleStatus.RestoreRate * float64(time.Second))
	return max(wait, 100*time.Millisecond)
}

// userErrorsError turns a mutation's userErrors into an Invalid error, or
// nil when there are none.
func userErrorsError(op string, errs []userError) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		m := e.Message
		if len(e.Field) > 0 {
			m = strings.Join(e.Field, ".") + ": " + m
		}
		msgs = append(msgs, m)
	}
	return &sdk.Error{Kind: sdk.KindInvalid, Message: fmt.Sprintf("%s: Shopify refused it: %s", op, strings.Join(msgs, "; ")), Code: errs[0].Code}
}

// gidPrefix is how Shopify's global ids start: gid://shopify/{Type}/{id}.
const gidPrefix = "gid://shopify/"

// gid builds the global id of a numeric (REST) id; a value that already is a
// global id of that type is returned as is.
func gid(typ, id string) (string, error) {
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, gidPrefix+typ+"/") {
		return id, nil
	}
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", fmt.Errorf("%q is neither a numeric %s id nor its gid://shopify/%s/ id", id, typ, typ)
	}
	return gidPrefix + typ + "/" + id, nil
}

// legacyID returns the numeric id at the end of a global id ("" for "").
func legacyID(g string) string {
	if i := strings.LastIndexByte(g, '/'); i >= 0 && strings.HasPrefix(g, gidPrefix) {
		id := g[i+1:]
		if q := strings.IndexByte(id, '?'); q >= 0 {
			id = id[:q]
		}
		return id
	}
	return g
}

// errorsAsSDK returns the *sdk.Error in err's chain.
func errorsAsSDK(err error) (*sdk.Error, bool) {
	var e *sdk.Error
	ok := errors.As(err, &e)
	return e, ok
}
