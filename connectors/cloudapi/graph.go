package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// maxResponseBody bounds what is read of a Graph API response. Send responses
// are a few hundred bytes; a page of templates with their components is the
// largest thing the connector reads.
const maxResponseBody = 8 << 20

// Retry-after values for rate errors that come without a hint. Meta measures
// a number's throughput per second and the pair rate as one message every
// six seconds; the WABA and app limits (80007, 4) are counted over an hour,
// so a minute is the shortest wait worth trying.
const (
	ThroughputRetryAfter = time.Second
	PairRateRetryAfter   = 6 * time.Second
	AccountRetryAfter    = time.Minute
)

// GraphError is an error response of the Graph API:
//
//	{"error": {"message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
//	  "type": "OAuthException", "code": 131056, "error_subcode": 2494055,
//	  "error_data": {"messaging_product": "whatsapp", "details": "..."},
//	  "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}
//
// with the HTTP status and the rate-limit headers of the response.
type GraphError struct {
	HTTPStatus int    `json:"-"`
	Message    string `json:"message"`
	Type       string `json:"type"`
	Code       int    `json:"code"`
	Subcode    int    `json:"error_subcode"`
	ErrorData  struct {
		Details string `json:"details"`
	} `json:"error_data"`
	FBTraceID string `json:"fbtrace_id"`
	// RetryAfter is a hint read from the response's headers (Retry-After, or
	// estimated_time_to_regain_access in X-Business-Use-Case-Usage), zero
	// when there was none.
	RetryAfter time.Duration `json:"-"`
}

// parseGraphError reads an error response. A body that is not Graph's error
// JSON (a proxy's HTML page) gives a GraphError with only the status.
func parseGraphError(status int, header http.Header, body []byte) GraphError {
	var wrapper struct {
		Error GraphError `json:"error"`
	}
	_ = json.Unmarshal(body, &wrapper)
	ge := wrapper.Error
	ge.HTTPStatus = status
	ge.RetryAfter = retryHint(header)
	return ge
}

// retryHint reads how long Meta says to wait: a Retry-After header in
// seconds, or the largest estimated_time_to_regain_access (minutes) in
// X-Business-Use-Case-Usage, which Meta sends when a business use case
// (e.g. whatsapp_business_management) is throttled.
func retryHint(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
	}
	var usage map[string][]struct {
		Minutes int `json:"estimated_time_to_regain_access"`
	}
	if v := h.Get("X-Business-Use-Case-Usage"); v != "" && json.Unmarshal([]byte(v), &usage) == nil {
		var most int
		for _, list := range usage {
			for _, u := range list {
				most = max(most, u.Minutes)
			}
		}
		return time.Duration(most) * time.Minute
	}
	return 0
}

// Error codes the connector treats specially. Meta documents them in
// "Cloud API error codes"; the comments give Meta's titles.
const (
	codeAuthException       = 0      // AuthException
	codeAPIUnknown          = 1      // API Unknown
	codeAPIService          = 2      // API Service (temporary)
	codeAPIMethod           = 3      // capability or permissions issue
	codeTooManyCalls        = 4      // API Too Many Calls (app)
	codePermissionDenied    = 10     // Permission Denied
	codeInvalidParameter    = 100    // Invalid parameter
	codeAccessTokenExpired  = 190    // Access token has expired
	codePolicyBlocked       = 368    // Temporarily blocked for policies violations
	codeRateLimitUser       = 613    // Calls to this api have exceeded the rate limit
	codeWABARateLimit       = 80007  // Rate limit issues (WABA)
	codeThroughput          = 130429 // Rate limit hit (Cloud API throughput)
	codeCountryRestricted   = 130497 // Business account restricted from messaging users in this country
	codeGenericUser         = 131000 // Something went wrong
	codeAccessDenied        = 131005 // Access denied
	codeMissingParameter    = 131008 // Required parameter is missing
	codeParameterInvalid    = 131009 // Parameter value is not valid
	codeServiceUnavailable  = 131016 // Service unavailable
	codeRecipientIsSender   = 131021 // Recipient cannot be sender
	codeUndeliverable       = 131026 // Message undeliverable
	codeAccountLocked       = 131031 // Business account has been locked
	codePaymentIssue        = 131042 // Business eligibility payment issue
	codeReengagement        = 131047 // Re-engagement message (outside the 24-hour window)
	codeSpamRateLimit       = 131048 // Spam rate limit hit
	codeHealthyEcosystem    = 131049 // Meta chose not to deliver (marketing per-user limit)
	codeMarketingStopped    = 131050 // User stopped marketing messages
	codeUnsupportedType     = 131051 // Unsupported message type
	codeMediaDownload       = 131052 // Media download error
	codeMediaUpload         = 131053 // Media upload error
	codePairRate            = 131056 // (Business Account, Consumer Account) pair rate limit hit
	codeTemplateParamCount  = 132000 // Template param count mismatch
	codeTemplateNotFound    = 132001 // Template does not exist (in that language, or not approved)
	codeTemplateTextLength  = 132005 // Template hydrated text too long
	codeTemplatePolicy      = 132007 // Template format character policy violated
	codeTemplateParamFormat = 132012 // Template parameter format mismatch
	codeTemplatePaused      = 132015 // Template is paused
	codeTemplateDisabled    = 132016 // Template is disabled
	codeServerUnavailable   = 133004 // Server temporarily unavailable
	codeGenericError        = 135000 // Generic user error
)

// MapGraphError turns a Graph API error into an *sdk.Error whose kind tells
// the host and the messaging core what to do. op says what was being done.
// Meta's error code decides first (Meta asks integrators to build on code,
// not on HTTP status or subcode), the HTTP status decides codes it does not
// know:
//
//   - 130429 throughput, 80007 WABA limit, 4 and 613 app limits: RateLimited,
//     retry after the response's hint or 1 s (130429) / 1 min (the others);
//   - 131056 pair rate limit: RateLimited, retry after at least 6 s;
//   - 190, 0, 10, 3, 131005 and 200-299, and any HTTP 401: Auth;
//   - 100, 131008, 131009, 131021, 131051, 132000, 132005, 132007, 132012,
//     135000: Invalid (the request must change);
//   - 132001 template missing or not approved in that language: NotFound;
//   - 131047 outside the window, 131026 undeliverable, 131050 marketing
//     stopped, 131049, 131048 spam limit, 131031, 131042, 368, 130497,
//     132015/132016 template paused/disabled, 131052/131053 media: Permanent;
//   - 1, 2, 131000, 131016, 133004 and HTTP 5xx: Retryable;
//   - other codes: by HTTP status (429 RateLimited, 403 Auth, 404 NotFound,
//     other 4xx Permanent).
//
// The returned error's Code is Meta's code as a decimal string.
func MapGraphError(op string, ge GraphError) *sdk.Error {
	msg := describeGraphError(op, ge)
	hint := ge.RetryAfter
	if !ge.fromGraph() {
		// Not Graph's error JSON (a proxy's error page): only the HTTP
		// status says anything, and code 0 must not read as AuthException.
		return mapHTTPStatus(ge.HTTPStatus, hint, msg)
	}
	var e *sdk.Error
	switch c := ge.Code; {
	case c == codeThroughput:
		e = sdk.RateLimited(orDefault(hint, ThroughputRetryAfter), "%s", msg)
	case c == codeWABARateLimit || c == codeTooManyCalls || c == codeRateLimitUser:
		e = sdk.RateLimited(orDefault(hint, AccountRetryAfter), "%s", msg)
	case c == codePairRate:
		e = sdk.RateLimited(max(hint, PairRateRetryAfter), "%s", msg)
	case c == codeAccessTokenExpired || c == codeAuthException || c == codePermissionDenied ||
		c == codeAPIMethod || c == codeAccessDenied || (c >= 200 && c <= 299):
		e = sdk.Auth("%s", msg)
	case c == codeInvalidParameter || c == codeMissingParameter || c == codeParameterInvalid ||
		c == codeRecipientIsSender || c == codeUnsupportedType || c == codeTemplateParamCount ||
		c == codeTemplateTextLength || c == codeTemplatePolicy || c == codeTemplateParamFormat ||
		c == codeGenericError:
		e = sdk.Invalid("%s", msg)
	case c == codeTemplateNotFound:
		e = sdk.NotFound("%s", msg)
	case c == codeReengagement || c == codeUndeliverable || c == codeMarketingStopped ||
		c == codeHealthyEcosystem || c == codeSpamRateLimit || c == codeAccountLocked ||
		c == codePaymentIssue || c == codePolicyBlocked || c == codeCountryRestricted ||
		c == codeTemplatePaused || c == codeTemplateDisabled || c == codeMediaDownload || c == codeMediaUpload:
		e = sdk.Permanent("%s", msg)
	case c == codeAPIUnknown || c == codeAPIService || c == codeGenericUser ||
		c == codeServiceUnavailable || c == codeServerUnavailable:
		e = sdk.Retryable("%s", msg)
		e.RetryAfter = hint
	default:
		e = mapHTTPStatus(ge.HTTPStatus, hint, msg)
	}
	e.Code = strconv.Itoa(ge.Code)
	return e
}

// fromGraph reports whether the error was read from Graph's error JSON.
func (ge GraphError) fromGraph() bool {
	return ge.Code != 0 || ge.Type != "" || ge.Message != ""
}

func mapHTTPStatus(status int, hint time.Duration, msg string) *sdk.Error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return sdk.Auth("%s", msg)
	case status == http.StatusTooManyRequests:
		return sdk.RateLimited(orDefault(hint, AccountRetryAfter), "%s", msg)
	case status == http.StatusNotFound:
		return sdk.NotFound("%s", msg)
	case status >= 500 || status == http.StatusRequestTimeout:
		e := sdk.Retryable("%s", msg)
		e.RetryAfter = hint
		return e
	}
	return sdk.Permanent("%s", msg)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func describeGraphError(op string, ge GraphError) string {
	var b strings.Builder
	b.WriteString(op)
	b.WriteString(": graph api ")
	b.WriteString(strconv.Itoa(ge.HTTPStatus))
	if ge.Message != "" {
		b.WriteString(": ")
		b.WriteString(ge.Message)
	} else if ge.Code != 0 {
		fmt.Fprintf(&b, ": code %d", ge.Code)
	}
	if ge.ErrorData.Details != "" {
		b.WriteString(": ")
		b.WriteString(ge.ErrorData.Details)
	}
	if ge.FBTraceID != "" {
		b.WriteString(" [fbtrace_id ")
		b.WriteString(ge.FBTraceID)
		b.WriteString("]")
	}
	return b.String()
}

// graphCall makes one Graph API request with the connection's token and
// decodes a 2xx JSON answer into out. The connector never retries on its
// own: a send whose answer was lost may have been delivered, and only the
// messaging core, which holds the ledger, can decide to send again.
func (c *Connector) graphCall(ctx context.Context, cfg Config, op, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return sdk.Invalid("%s: encoding the request: %v", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return sdk.Invalid("%s: building the request: %v", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// *url.Error carries the URL, which holds no secret (the token is in
		// a header), so the message is safe to pass on.
		if errors.Is(err, context.Canceled) {
			return sdk.Retryable("%s: canceled: %v", op, err)
		}
		return sdk.Retryable("%s: calling the graph api: %v", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return sdk.Retryable("%s: reading the graph api response: %v", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return MapGraphError(op, parseGraphError(resp.StatusCode, resp.Header, raw))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		// The call succeeded at Meta; a retry could repeat it. Permanent
		// makes the caller look instead of retrying blindly.
		return sdk.Permanent("%s: decoding the graph api response: %v", op, err)
	}
	return nil
}
