package stripeconnector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// mapped is the part of an *sdk.Error the host acts on.
type mapped struct {
	Kind       sdk.ErrorKind
	Code       string
	RetryAfter time.Duration
}

func toMapped(t *testing.T, err error) mapped {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *sdk.Error", err, err)
	}
	return mapped{Kind: e.Kind, Code: e.Code, RetryAfter: e.RetryAfter}
}

// TestMapErrorFromStripeResponses runs each error response through a real
// stripe-go client (so Stripe's error parsing and response headers are part of
// the test) and checks the kind the host gets.
func TestMapErrorFromStripeResponses(t *testing.T) {
	t.Parallel()
	httpDate := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := map[string]struct {
		status  int
		headers map[string]string
		body    string
		want    mapped
	}{
		"400 invalid request": {
			status: 400,
			body:   `{"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer", "param": "unit_amount", "message": "Invalid integer: abc"}}`,
			want:   mapped{Kind: sdk.KindInvalid, Code: "parameter_invalid_integer"},
		},
		"400 without code": {
			status: 400,
			body:   `{"error": {"type": "invalid_request_error", "message": "Received unknown parameter: bogus"}}`,
			want:   mapped{Kind: sdk.KindInvalid},
		},
		"401 bad key": {
			status: 401,
			body:   `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****1234"}}`,
			want:   mapped{Kind: sdk.KindAuth},
		},
		"401 expired key": {
			status: 401,
			body:   `{"error": {"type": "invalid_request_error", "code": "api_key_expired", "message": "Expired API Key provided"}}`,
			want:   mapped{Kind: sdk.KindAuth, Code: "api_key_expired"},
		},
		"403 restricted key without permission": {
			status: 403,
			body:   `{"error": {"type": "invalid_request_error", "message": "The provided key 'rk_test_***abc' does not have the required permissions for this endpoint"}}`,
			want:   mapped{Kind: sdk.KindAuth},
		},
		"404 resource missing": {
			status: 404,
			body:   `{"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "id", "message": "No such payment_link: 'plink_123'"}}`,
			want:   mapped{Kind: sdk.KindNotFound, Code: "resource_missing"},
		},
		"400 resource missing": {
			status: 400,
			body:   `{"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "line_items[0][price]", "message": "No such price: 'price_123'"}}`,
			want:   mapped{Kind: sdk.KindNotFound, Code: "resource_missing"},
		},
		"429 rate limited with Retry-After seconds": {
			status:  429,
			headers: map[string]string{"Retry-After": "7"},
			body:    `{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests hit the API too quickly."}}`,
			want:    mapped{Kind: sdk.KindRateLimited, Code: "rate_limit", RetryAfter: 7 * time.Second},
		},
		"429 rate limited without Retry-After": {
			status: 429,
			body:   `{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests hit the API too quickly."}}`,
			want:   mapped{Kind: sdk.KindRateLimited, Code: "rate_limit", RetryAfter: DefaultRetryAfter},
		},
		"429 without code": {
			status: 429,
			body:   `{"error": {"type": "invalid_request_error", "message": "Too many requests"}}`,
			want:   mapped{Kind: sdk.KindRateLimited, RetryAfter: DefaultRetryAfter},
		},
		"429 lock timeout": {
			status: 429,
			body:   `{"error": {"type": "invalid_request_error", "code": "lock_timeout", "message": "This object cannot be accessed right now because another API request or Stripe process is currently accessing it."}}`,
			want:   mapped{Kind: sdk.KindRetryable, Code: "lock_timeout"},
		},
		"409 idempotency key in use": {
			status: 409,
			body:   `{"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use", "message": "There is currently another in-progress request using this Idempotent Key"}}`,
			want:   mapped{Kind: sdk.KindRetryable, Code: "idempotency_key_in_use"},
		},
		"400 idempotency error": {
			status: 400,
			body:   `{"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}`,
			want:   mapped{Kind: sdk.KindPermanent},
		},
		"402 card declined": {
			status: 402,
			body:   `{"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}`,
			want:   mapped{Kind: sdk.KindPermanent, Code: "insufficient_funds"},
		},
		"402 card error without decline code": {
			status: 402,
			body:   `{"error": {"type": "card_error", "code": "expired_card", "message": "Your card has expired."}}`,
			want:   mapped{Kind: sdk.KindPermanent, Code: "expired_card"},
		},
		"500 api error": {
			status: 500,
			body:   `{"error": {"type": "api_error", "message": "An unknown error occurred"}}`,
			want:   mapped{Kind: sdk.KindRetryable},
		},
		"503 with Retry-After date": {
			status:  503,
			headers: map[string]string{"Retry-After": httpDate},
			body:    `{"error": {"type": "api_error", "message": "Service unavailable"}}`,
			want:    mapped{Kind: sdk.KindRetryable, RetryAfter: 30 * time.Second},
		},
		"502 without a Stripe error body": {
			status: 502,
			body:   `{"error": {"message": "Bad gateway"}}`,
			want:   mapped{Kind: sdk.KindRetryable},
		},
		// Responses that are not Stripe's error JSON (a proxy or load balancer
		// answered) are classified by their status.
		"502 html page": {
			status: 502,
			body:   "<html><body><h1>502 Bad Gateway</h1></body></html>",
			want:   mapped{Kind: sdk.KindRetryable},
		},
		"500 empty object": {
			status: 500,
			body:   `{}`,
			want:   mapped{Kind: sdk.KindRetryable},
		},
		"429 plain text with Retry-After": {
			status:  429,
			headers: map[string]string{"Retry-After": "3"},
			body:    "slow down",
			want:    mapped{Kind: sdk.KindRateLimited, RetryAfter: 3 * time.Second},
		},
		"404 html page": {
			status: 404,
			body:   "<html>not here</html>",
			want:   mapped{Kind: sdk.KindNotFound},
		},
		"200 with an undecodable body": {
			status: 200,
			body:   "<html>surprise</html>",
			want:   mapped{Kind: sdk.KindPermanent},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Request-Id", "req_test")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			conn := testConn(t, map[string]string{"secret_key": "sk_test_123", "webhook_secret": testWebhookSecret, "api_base": srv.URL})
			_, err := testConnector(t).Invoke(context.Background(), sdk.ActionCall{
				Connection: conn, Action: ActionGetPaymentLink, Params: json.RawMessage(`{"id": "plink_123"}`),
			})
			if err == nil {
				t.Fatal("Invoke succeeded, want an error")
			}
			got := toMapped(t, err)
			// An HTTP date has one-second resolution, and time passes (slowly, under -race on a busy machine).
			if tt.want.RetryAfter > 0 && got.RetryAfter > tt.want.RetryAfter-5*time.Second && got.RetryAfter <= tt.want.RetryAfter {
				got.RetryAfter = tt.want.RetryAfter
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mapped error of %v (-want +got):\n%s", err, diff)
			}
		})
	}
}

func TestMapErrorDirect(t *testing.T) {
	t.Parallel()
	refused := func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		_, err = http.Get("http://" + addr)
		return err
	}()
	tests := map[string]struct {
		err  error
		last responseInfo
		want mapped
	}{
		"connection refused":       {err: refused, want: mapped{Kind: sdk.KindRetryable}},
		"deadline exceeded":        {err: fmt.Errorf("calling: %w", context.DeadlineExceeded), want: mapped{Kind: sdk.KindRetryable}},
		"canceled":                 {err: context.Canceled, want: mapped{Kind: sdk.KindRetryable}},
		"undecodable 200 response": {err: errors.New("invalid character '<' looking for beginning of value"), want: mapped{Kind: sdk.KindPermanent}},
		"stripe error with status 0 and api type": {
			err:  &stripe.Error{Type: stripe.ErrorTypeAPI, Msg: "boom"},
			want: mapped{Kind: sdk.KindRetryable},
		},
		"stripe error of unknown type and status": {
			err:  &stripe.Error{Type: "something_new", HTTPStatusCode: 418, Msg: "teapot"},
			want: mapped{Kind: sdk.KindPermanent},
		},
		"wrapped stripe error": {
			err:  fmt.Errorf("outer: %w", &stripe.Error{Type: stripe.ErrorTypeInvalidRequest, HTTPStatusCode: 404, Code: stripe.ErrorCodeResourceMissing}),
			want: mapped{Kind: sdk.KindNotFound, Code: "resource_missing"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := mapError("testing", tt.err, tt.last)
			if diff := cmp.Diff(tt.want, toMapped(t, err)); diff != "" {
				t.Errorf("mapError(%v) (-want +got):\n%s", tt.err, diff)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("mapped error does not wrap the original")
			}
		})
	}
	if mapError("nothing", nil, responseInfo{}) != nil {
		t.Error("mapError(nil) != nil")
	}
}

func TestConnectionErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	conn := testConn(t, map[string]string{"secret_key": "sk_test_123", "api_base": "http://" + addr})
	_, err = testConnector(t).Invoke(context.Background(), sdk.ActionCall{
		Connection: conn, Action: ActionCreatePaymentLink, IdempotencyKey: "k1",
		Params: json.RawMessage(`{"price_id": "price_123"}`),
	})
	if got := sdk.KindOf(err); got != sdk.KindRetryable {
		t.Fatalf("kind = %v (err %v), want retryable", got, err)
	}
}

func TestRedactSecrets(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Authorization was 'Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc'.": "Authorization was 'Bearer sk_live_****p7dc'.",
		"key rk_test_51HkT0aLkdIwHu7ix and whsec_abcdefghijklmnop":     "key rk_test_****u7ix and whsec_****mnop",
		"short sk_test_123":                     "short sk_test_****",
		"No such payment_link: 'plink_123'":     "No such payment_link: 'plink_123'",
		"task_test_abc is not a key (no \\b)":   "task_test_abc is not a key (no \\b)",
		"pk_test_51HkT0aLkdIwHu7ix publishable": "pk_test_****u7ix publishable",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got := redactSecrets(in); got != want {
				t.Errorf("redactSecrets(%q) = %q, want %q", in, got, want)
			}
		})
	}
	err := mapError("op", errors.New("upstream said sk_test_4eC39HqLyjWDarjtT1zdp7dc"), responseInfo{})
	if strings.Contains(err.Error(), "4eC39HqLyjWDarjtT1zdp7dc") || strings.Contains(errors.Unwrap(err).Error(), "4eC39HqLyjWDarjtT1zdp7dc") {
		t.Errorf("mapped error still carries the key: %v / %v", err, errors.Unwrap(err))
	}
}
