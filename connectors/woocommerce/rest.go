package woocommerce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// maxResponseBody bounds what is read of a REST response: a page of 100
// orders with their line items and meta is the largest thing read.
const maxResponseBody = 16 << 20

// DefaultRetryAfter is waited after a 429 without a usable Retry-After.
// WooCommerce itself has no rate limit on the REST API; a 429 comes from a
// security plugin or the host's firewall, which count per minute.
const DefaultRetryAfter = time.Minute

// RESTError is an error response of the WordPress REST API, which
// WooCommerce's routes use:
//
//	{"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.", "data": {"status": 404}}
//
// with the HTTP status and the Retry-After header of the response.
type RESTError struct {
	HTTPStatus int    `json:"-"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Data       struct {
		Status int `json:"status"`
	} `json:"data"`
	RetryAfter time.Duration `json:"-"`
}

// parseRESTError reads an error response; a body that is not the REST
// error JSON (a proxy's HTML page) gives a RESTError with only the status.
func parseRESTError(status int, h http.Header, body []byte) RESTError {
	var e RESTError
	_ = json.Unmarshal(body, &e)
	e.HTTPStatus = status
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// MapError turns a REST error into an *sdk.Error whose kind tells the host
// what to do; op says what was being done. The HTTP status decides, since
// WooCommerce's codes are many and per resource:
//
//   - 401 and 403 (woocommerce_rest_authentication_error for a wrong key,
//     woocommerce_rest_cannot_view / _create / _edit / _delete for a key
//     without the permission, or Basic auth over plain HTTP): Auth;
//   - 404, and any *_invalid_id code (some routes answer those with 400):
//     NotFound;
//   - other 400s (rest_invalid_param, woocommerce_rest_coupon_code_already_exists,
//     ...): Invalid with WooCommerce's message;
//   - 429: RateLimited after Retry-After, or [DefaultRetryAfter];
//   - 408 and 5xx but 501 (a route that will not do what was asked, as
//     woocommerce_rest_trash_not_supported): Retryable;
//   - anything else: Permanent.
//
// The returned error's Code is WooCommerce's code.
func MapError(op string, re RESTError) *sdk.Error {
	msg := describe(op, re)
	var e *sdk.Error
	switch s := re.HTTPStatus; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e = sdk.Auth("%s", msg+authHint(re))
	case s == http.StatusNotFound || strings.HasSuffix(re.Code, "_invalid_id"):
		e = sdk.NotFound("%s", msg)
	case s == http.StatusBadRequest:
		e = sdk.Invalid("%s", msg)
	case s == http.StatusTooManyRequests:
		e = sdk.RateLimited(orDefault(re.RetryAfter, DefaultRetryAfter), "%s", msg)
	case s == http.StatusRequestTimeout || (s >= 500 && s != http.StatusNotImplemented):
		e = sdk.Retryable("%s", msg)
		e.RetryAfter = re.RetryAfter
	default:
		e = sdk.Permanent("%s", msg)
	}
	e.Code = re.Code
	return e
}

// authHint says what to fix for the usual causes of a 401.
func authHint(re RESTError) string {
	switch {
	case re.Code == "woocommerce_rest_authentication_error":
		return " (the consumer key or secret is wrong: check the connection's REST API key)"
	case strings.HasPrefix(re.Code, "woocommerce_rest_cannot_create"), strings.HasPrefix(re.Code, "woocommerce_rest_cannot_edit"),
		strings.HasPrefix(re.Code, "woocommerce_rest_cannot_delete"):
		return " (the REST API key needs Read/Write permissions)"
	case strings.HasPrefix(re.Code, "woocommerce_rest_cannot_view"):
		return " (WooCommerce did not see the key: check it, and that the server passes the Authorization header to WordPress)"
	}
	return ""
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func describe(op string, re RESTError) string {
	var b strings.Builder
	b.WriteString(op)
	b.WriteString(": woocommerce answered ")
	b.WriteString(strconv.Itoa(re.HTTPStatus))
	if re.Message != "" {
		b.WriteString(": ")
		b.WriteString(re.Message)
	}
	if re.Code != "" {
		b.WriteString(" [")
		b.WriteString(re.Code)
		b.WriteString("]")
	}
	return b.String()
}

// restResponse is a successful response's headers, for paging.
type restResponse struct {
	header http.Header
}

// totalPages reads X-WP-TotalPages, 0 when absent.
func (r restResponse) totalPages() int {
	n, _ := strconv.Atoi(r.header.Get("X-WP-TotalPages"))
	return n
}

// call makes one REST request with the connection's key and decodes a 2xx
// JSON answer into out. The connector never retries on its own: the host
// (and Temporal's retry policy, for actions) decide on the error's kind.
func (c *Connector) call(ctx context.Context, cfg Config, op, method, route string, q url.Values, body, out any) (restResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return restResponse{}, sdk.Invalid("%s: encoding the request: %v", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, cfg.endpoint(route, q), rd)
	if err != nil {
		return restResponse{}, sdk.Invalid("%s: building the request: %v", op, err)
	}
	req.SetBasicAuth(cfg.ConsumerKey, cfg.ConsumerSecret)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Ponte-WooCommerce/"+Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The *url.Error names the URL, which carries no secret: the key
		// travels in the Authorization header.
		if errors.Is(err, context.Canceled) {
			return restResponse{}, sdk.Retryable("%s: canceled: %v", op, err)
		}
		return restResponse{}, sdk.Retryable("%s: calling the store: %v", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return restResponse{}, sdk.Retryable("%s: reading the store's response: %v", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return restResponse{}, MapError(op, parseRESTError(resp.StatusCode, resp.Header, raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			// A 200 that is not JSON is usually a caching plugin or a
			// maintenance page answering for WordPress.
			return restResponse{}, sdk.Retryable("%s: the store's answer is not WooCommerce JSON (%s): %v", op, snippet(raw), err)
		}
	}
	return restResponse{header: resp.Header}, nil
}

// snippet is the start of a body, for error messages about unexpected
// answers (never a request: requests may carry personal data).
func snippet(b []byte) string {
	const n = 80
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return fmt.Sprintf("%q", s)
}
