package stripeconnector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// DefaultRetryAfter is how long the host is told to wait after Stripe
// throttled a call without saying for how long. Stripe's rate limits are per
// second, so a couple of seconds lets the window pass without stalling a
// workflow for long.
const DefaultRetryAfter = 2 * time.Second

// mapError turns an error from a Stripe API call into an *sdk.Error whose kind
// tells the host what to do. op says what was being done, e.g. "creating
// payment link".
//
// Stripe's HTTP status decides first, because Stripe reuses the error type
// invalid_request_error for authentication failures (401) and missing objects
// (404); the error type and code refine it:
//
//   - 401, 403 (a restricted key without the permission): Auth
//   - 404 or code resource_missing: NotFound
//   - 429 or code rate_limit: RateLimited, with Retry-After when Stripe sent
//     one; except code lock_timeout, a conflict on one object: Retryable
//   - 409 (a concurrent request with the same idempotency key, or a conflict):
//     Retryable
//   - 5xx or type api_error: Retryable
//   - type card_error (402): Permanent; the code is the decline code when there
//     is one
//   - type idempotency_error (the key was reused with other parameters):
//     Permanent, since retrying with the same key can never succeed
//   - 400 or type invalid_request_error: Invalid
//   - network failures and timeouts: Retryable
//
// Anything else is Permanent. The message carries Stripe's message, code,
// parameter and request id, with API keys and webhook secrets masked: real
// Stripe masks keys in its messages, but stripe-mock and proxies echo them
// whole.
//
// last is the last HTTP response the call received, if any. It classifies
// errors stripe-go could not turn into a *stripe.Error: a 502 page from a load
// balancer, say, whose body is not Stripe's JSON, still is a 5xx.
func mapError(op string, err error, last responseInfo) error {
	if err == nil {
		return nil
	}
	e := classify(op, err, last)
	e.Message = redactSecrets(e.Message)
	e.Err = redactedError{err}
	return e
}

func classify(op string, err error, last responseInfo) *sdk.Error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return mapNonAPIError(op, err, last)
	}

	msg := describe(op, se)
	code := string(se.Code)
	status := se.HTTPStatusCode
	var e *sdk.Error
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e = sdk.Auth("%s", msg)
	case status == http.StatusNotFound || se.Code == stripe.ErrorCodeResourceMissing:
		e = sdk.NotFound("%s", msg)
	case se.Code == stripe.ErrorCodeLockTimeout:
		e = sdk.Retryable("%s", msg)
	case status == http.StatusTooManyRequests || se.Code == stripe.ErrorCodeRateLimit:
		e = sdk.RateLimited(retryAfter(se), "%s", msg)
	case status == http.StatusConflict:
		e = sdk.Retryable("%s", msg)
	case status >= 500 || se.Type == stripe.ErrorTypeAPI:
		e = sdk.Retryable("%s", msg)
		if ra, ok := parseRetryAfter(se); ok {
			e.RetryAfter = ra
		}
	case se.Type == stripe.ErrorTypeCard:
		e = sdk.Permanent("%s", msg)
		if se.DeclineCode != "" {
			code = string(se.DeclineCode)
		}
	case se.Type == stripe.ErrorTypeIdempotency:
		e = sdk.Permanent("%s", msg)
	case status == http.StatusBadRequest || se.Type == stripe.ErrorTypeInvalidRequest:
		e = sdk.Invalid("%s", msg)
	default:
		e = sdk.Permanent("%s", msg)
	}
	e.Code = code
	return e
}

// describe builds a message from a Stripe error's public fields.
func describe(op string, se *stripe.Error) string {
	var b strings.Builder
	b.WriteString(op)
	b.WriteString(": stripe ")
	if se.HTTPStatusCode != 0 {
		b.WriteString(strconv.Itoa(se.HTTPStatusCode))
		b.WriteString(" ")
	}
	if se.Type != "" {
		b.WriteString(string(se.Type))
	} else {
		b.WriteString("error")
	}
	if se.Msg != "" {
		b.WriteString(": ")
		b.WriteString(se.Msg)
	}
	if se.Param != "" {
		fmt.Fprintf(&b, " (param %s)", se.Param)
	}
	if se.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", se.RequestID)
	}
	return b.String()
}

// mapNonAPIError classifies errors that are not Stripe API errors. Either the
// request got no answer (connection refused, reset, timeout, canceled), which
// a retry with the same idempotency key may fix; or it got a response that was
// not Stripe's error JSON, classified by its status; or the library failed on
// its own (a 200 it could not decode, a bad parameter it caught itself), which
// a retry will not fix.
func mapNonAPIError(op string, err error, last responseInfo) *sdk.Error {
	var (
		netErr net.Error
		urlErr *url.Error
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr), errors.As(err, &urlErr):
		return sdk.Retryable("%s: calling stripe: %v", op, err)
	case last.status == http.StatusTooManyRequests:
		ra, ok := parseRetryAfterValue(last.retryAfter)
		if !ok {
			ra = DefaultRetryAfter
		}
		return sdk.RateLimited(ra, "%s: stripe answered %d: %v", op, last.status, err)
	case last.status >= 500:
		e := sdk.Retryable("%s: stripe answered %d: %v", op, last.status, err)
		if ra, ok := parseRetryAfterValue(last.retryAfter); ok {
			e.RetryAfter = ra
		}
		return e
	case last.status == http.StatusUnauthorized || last.status == http.StatusForbidden:
		return sdk.Auth("%s: stripe answered %d: %v", op, last.status, err)
	case last.status == http.StatusNotFound:
		return sdk.NotFound("%s: stripe answered %d: %v", op, last.status, err)
	}
	return sdk.Permanent("%s: %v", op, err)
}

// retryAfter is how long to wait after a rate-limited call.
func retryAfter(se *stripe.Error) time.Duration {
	if d, ok := parseRetryAfter(se); ok {
		return d
	}
	return DefaultRetryAfter
}

// parseRetryAfter reads a Retry-After header from the response that carried a
// Stripe error.
func parseRetryAfter(se *stripe.Error) (time.Duration, bool) {
	if se.LastResponse == nil || se.LastResponse.Header == nil {
		return 0, false
	}
	return parseRetryAfterValue(se.LastResponse.Header.Get("Retry-After"))
}

// parseRetryAfterValue parses a Retry-After value: seconds or an HTTP date.
func parseRetryAfterValue(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// responseInfo is what a call's last HTTP response said, for errors stripe-go
// could not parse into a *stripe.Error.
type responseInfo struct {
	status     int
	retryAfter string
}

// responseRecorder is the http.RoundTripper of one call's HTTP client: it
// passes requests to the shared transport (and its connection pool) and keeps
// the last response's status.
type responseRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	info responseInfo
}

// RoundTrip implements http.RoundTripper.
func (r *responseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if resp != nil {
		r.mu.Lock()
		r.info = responseInfo{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		r.mu.Unlock()
	}
	return resp, err
}

func (r *responseRecorder) last() responseInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// secretPattern matches Stripe API keys and webhook signing secrets.
var secretPattern = regexp.MustCompile(`\b((?:sk|rk|pk)_(?:test|live)_|whsec_)([0-9A-Za-z+/=_-]+)`)

// redactSecrets masks every key or secret in s, keeping its prefix and last
// four characters so a person can still tell keys apart.
func redactSecrets(s string) string {
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		parts := secretPattern.FindStringSubmatch(m)
		prefix, rest := parts[1], parts[2]
		tail := ""
		if len(rest) > 8 {
			tail = rest[len(rest)-4:]
		}
		return prefix + "****" + tail
	})
}

// redactedError is an error whose message has secrets masked; errors.Is and
// errors.As still see the original.
type redactedError struct{ err error }

func (r redactedError) Error() string { return redactSecrets(r.err.Error()) }
func (r redactedError) Unwrap() error { return r.err }
