package sdk

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind says what a caller should do about an error. It crosses the plugin
// boundary unchanged, so the host and Temporal's retry policies decide on it,
// never on error strings. Connectors set it through the constructors
// ([Invalid], [Auth], [NotFound], [RateLimited], [Retryable], [Permanent]) and
// read it with [KindOf].
type ErrorKind int

// Error kinds. Each says what the host does: it retries KindUnknown,
// KindRetryable and KindRateLimited (the latter after RetryAfter) and gives
// up on the others.
const (
	// KindUnknown is an error without a kind; the host treats it as retryable.
	KindUnknown ErrorKind = iota
	// KindInvalid: the input is wrong; retrying the same call cannot succeed.
	KindInvalid
	// KindAuth: credentials or a signature are missing or wrong.
	KindAuth
	// KindNotFound: the thing asked for does not exist at the provider.
	KindNotFound
	// KindRateLimited: the provider throttled the call; retry after RetryAfter.
	KindRateLimited
	// KindRetryable: a transient failure (network, 5xx); retrying may succeed.
	KindRetryable
	// KindPermanent: a failure that retrying will not fix, for any other reason.
	KindPermanent
)

var kindNames = map[ErrorKind]string{
	KindUnknown:     "unknown",
	KindInvalid:     "invalid",
	KindAuth:        "auth",
	KindNotFound:    "not_found",
	KindRateLimited: "rate_limited",
	KindRetryable:   "retryable",
	KindPermanent:   "permanent",
}

// String returns the kind's stable name, e.g. "rate_limited".
func (k ErrorKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseErrorKind returns the kind named s (as returned by String), or
// KindUnknown for a name it does not know. It is for reading kinds stored as
// text, such as recorded test fixtures.
func ParseErrorKind(s string) ErrorKind {
	for k, name := range kindNames {
		if name == s {
			return k
		}
	}
	return KindUnknown
}

// Error is an error with a kind the host can act on. Return one from any
// connector method where the host must decide what to do (retry, wait, answer
// 401, give up); a plain error reaches the host as KindUnknown. Build it with
// the constructors ([Invalid], [Auth], ...), which format like fmt.Sprintf and
// keep the first error among their arguments as Err, or as a literal when
// Code or RetryAfter must be set. Wrapping it (fmt.Errorf with %w) keeps the
// kind: the SDK finds the first *Error in the chain.
type Error struct {
	// Kind says what the caller should do.
	Kind ErrorKind
	// Message describes the error for people. It must not carry secrets.
	Message string
	// Code is the provider's own error code, when there is one (e.g. "130429").
	Code string
	// RetryAfter is how long to wait before retrying, for KindRateLimited (and
	// optionally KindRetryable).
	RetryAfter time.Duration
	// Err is the underlying error, kept in this process only: it does not
	// cross to the host, but errors.Is and errors.As see it inside the plugin.
	Err error
}

// Error returns the message, prefixed with the kind and, when set, the
// provider's code: "rate_limited (130429): too many requests". Without a
// Message it uses the text of Err.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s): %s", e.Kind, e.Code, msg)
	}
	return fmt.Sprintf("%s: %s", e.Kind, msg)
}

// Unwrap returns the underlying error (Err), so errors.Is and errors.As look
// through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether retrying the same call may succeed: true for
// KindRetryable, KindRateLimited and KindUnknown, false for the others.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindRetryable, KindUnknown:
		return true
	}
	return false
}

func newError(kind ErrorKind, format string, args []any) *Error {
	e := &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.Err = err
			break
		}
	}
	return e
}

// Invalid returns an error saying the input is wrong (a webhook body that does
// not parse, parameters the provider refuses); retrying the same call cannot
// succeed. The host answers a webhook with 400 and the message.
func Invalid(format string, args ...any) *Error { return newError(KindInvalid, format, args) }

// Auth returns an error saying credentials or a signature are wrong: a webhook
// whose signature does not verify (the host answers 401 and says nothing of
// why), or an API key the provider rejects.
func Auth(format string, args ...any) *Error { return newError(KindAuth, format, args) }

// NotFound returns an error saying the thing asked for does not exist at the
// provider (a 404 from its API).
func NotFound(format string, args ...any) *Error { return newError(KindNotFound, format, args) }

// Retryable returns an error saying a retry may succeed: a network failure, a
// timeout, a 5xx from the provider. The host retries with backoff; set
// RetryAfter on the result when the provider suggested a wait.
func Retryable(format string, args ...any) *Error { return newError(KindRetryable, format, args) }

// Permanent returns an error saying a retry will not succeed, when the input
// is not the problem: a configuration the connector cannot use, an account
// closed at the provider, a bug.
func Permanent(format string, args ...any) *Error { return newError(KindPermanent, format, args) }

// RateLimited returns an error saying the provider throttled the call and the
// caller should wait retryAfter before trying again. Pass the provider's own
// figure (a 429's Retry-After header) where it gives one.
func RateLimited(retryAfter time.Duration, format string, args ...any) *Error {
	e := newError(KindRateLimited, format, args)
	e.RetryAfter = retryAfter
	return e
}

// KindOf returns the kind of err: the Kind of the first *Error in its chain, or
// KindUnknown (also for nil). Use errors.As to reach the other fields, such as
// RetryAfter.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}
