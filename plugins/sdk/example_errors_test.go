package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// An Error can be built as a literal when the provider's own error code is
// worth keeping (Code crosses the plugin boundary; Err stays in the plugin).
func ExampleError() {
	err := &sdk.Error{
		Kind:       sdk.KindRateLimited,
		Message:    "too many messages to this number",
		Code:       "131056",
		RetryAfter: 15 * time.Second,
	}
	fmt.Println(err)
	fmt.Println(err.Retryable(), err.RetryAfter)
	// Output:
	// rate_limited (131056): too many messages to this number
	// true 15s
}

func ExampleError_Error() {
	// The kind comes first, then the provider's code when there is one.
	fmt.Println(sdk.NotFound("contact %s does not exist", "c_42").Error())
	fmt.Println((&sdk.Error{Kind: sdk.KindAuth, Code: "invalid_api_key", Message: "API key revoked"}).Error())
	// Without a Message, the underlying error's text is used.
	fmt.Println((&sdk.Error{Kind: sdk.KindRetryable, Err: context.DeadlineExceeded}).Error())
	// Output:
	// not_found: contact c_42 does not exist
	// auth (invalid_api_key): API key revoked
	// retryable: context deadline exceeded
}

func ExampleError_Retryable() {
	// What the host's retry policy does with each kind.
	for _, err := range []*sdk.Error{
		sdk.Invalid("email is not an address"),
		sdk.Auth("API key revoked"),
		sdk.RateLimited(time.Second, "slow down"),
		sdk.Retryable("CRM answered 503"),
	} {
		fmt.Println(err.Kind, err.Retryable())
	}
	// Output:
	// invalid false
	// auth false
	// rate_limited true
	// retryable true
}

func ExampleError_Unwrap() {
	// An error among the arguments becomes Err, so errors.Is still sees it in
	// the plugin process (only the kind, message, code and retry-after reach
	// the host).
	err := sdk.Retryable("calling the CRM: %v", context.DeadlineExceeded)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	fmt.Println(err.Unwrap() == context.DeadlineExceeded)
	// Output:
	// true
	// true
}

// A connector can branch on ErrorKind too, for example to retry its own call
// once on a transient failure but give up at once on anything else.
func ExampleErrorKind() {
	attempts := 0
	fetch := func() error {
		attempts++
		if attempts == 1 {
			return sdk.Retryable("CRM answered 502")
		}
		return nil
	}
	err := fetch()
	switch sdk.KindOf(err) {
	case sdk.KindRetryable, sdk.KindUnknown:
		err = fetch()
	case sdk.KindRateLimited, sdk.KindAuth, sdk.KindInvalid, sdk.KindNotFound, sdk.KindPermanent:
		// Leave these to the host: it knows the retry policy and the tenant.
	}
	fmt.Println(attempts, err)
	// Output: 2 <nil>
}

func ExampleErrorKind_String() {
	for _, k := range []sdk.ErrorKind{
		sdk.KindUnknown, sdk.KindInvalid, sdk.KindAuth, sdk.KindNotFound,
		sdk.KindRateLimited, sdk.KindRetryable, sdk.KindPermanent, sdk.ErrorKind(99),
	} {
		fmt.Println(int(k), k.String())
	}
	// Output:
	// 0 unknown
	// 1 invalid
	// 2 auth
	// 3 not_found
	// 4 rate_limited
	// 5 retryable
	// 6 permanent
	// 99 kind(99)
}

func ExampleParseErrorKind() {
	// The stable names round-trip, e.g. through a recorded test fixture.
	fmt.Println(sdk.ParseErrorKind("rate_limited") == sdk.KindRateLimited)
	fmt.Println(sdk.ParseErrorKind(sdk.KindNotFound.String()))
	fmt.Println(sdk.ParseErrorKind("teapot"))
	// Output:
	// true
	// not_found
	// unknown
}

func ExampleInvalid() {
	// The input is wrong: the host answers 400 to a webhook and does not
	// retry an action.
	err := sdk.Invalid("amount must be positive, got %d", -5)
	fmt.Println(err)
	// Output: invalid: amount must be positive, got -5
}

func ExampleAuth() {
	// Credentials or a signature are wrong. For a webhook the host answers 401
	// and tells the sender nothing more.
	err := sdk.Auth("CRM rejected the API key (%d)", 401)
	fmt.Println(err, err.Retryable())
	// Output: auth: CRM rejected the API key (401) false
}

func ExampleNotFound() {
	// The provider has no such object, e.g. a contact deleted in the CRM.
	err := sdk.NotFound("contact %s", "c_42")
	fmt.Println(sdk.KindOf(err) == sdk.KindNotFound, err)
	// Output: true not_found: contact c_42
}

func ExampleRetryable() {
	// A transient failure: network trouble, a 5xx. The host retries with
	// backoff; RetryAfter may be set when the provider suggested a wait.
	err := sdk.Retryable("CRM answered %d", 503)
	err.RetryAfter = 5 * time.Second
	fmt.Println(err, err.Retryable(), err.RetryAfter)
	// Output: retryable: CRM answered 503 true 5s
}

func ExamplePermanent() {
	// Retrying cannot help, and the input was not the problem: a connection's
	// configuration the connector cannot read, an account closed at the
	// provider. The wrapped error stays reachable with errors.Is.
	err := sdk.Permanent("reading config: %v", fs.ErrNotExist)
	fmt.Println(err.Retryable(), errors.Is(err, fs.ErrNotExist))
	// Output: false true
}

func ExampleRateLimited() {
	// The provider answered 429 with Retry-After: 30. The host waits that long
	// before the next attempt instead of its usual backoff.
	err := sdk.RateLimited(30*time.Second, "CRM rate limit reached")
	var e *sdk.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.RetryAfter, e.Retryable())
	}
	// Output: rate_limited 30s true
}

func ExampleKindOf() {
	// KindOf finds the *Error anywhere in the chain, so wrapping with context
	// keeps the kind. Errors without one are KindUnknown (the host retries
	// them); errors.As reaches the other fields.
	err := fmt.Errorf("creating contact: %w", sdk.RateLimited(time.Minute, "429 from CRM"))
	fmt.Println(sdk.KindOf(err))
	var e *sdk.Error
	if errors.As(err, &e) {
		fmt.Println(e.RetryAfter)
	}
	fmt.Println(sdk.KindOf(errors.New("connection reset by peer")))
	fmt.Println(sdk.KindOf(nil))
	// Output:
	// rate_limited
	// 1m0s
	// unknown
	// unknown
}
