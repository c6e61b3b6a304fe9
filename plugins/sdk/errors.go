package sdk

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind says what a caller should do about an error. It crosses the plugin
// boundary unchanged, so the host and Temporal's retry policies decide on it,
// never on error strings.
type ErrorKind int

// Error kinds.
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
// KindUnknown.
func ParseErrorKind(s string) ErrorKind {
	for k, name := range kindNames {
		if name == s {
			return k
		}
	}
	return KindUnknown
}

// Error is an error with a kind the host can act on.
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
	// Err is the underlying error, kept in this process only.
	Err error
}

// Error returns the message, prefixed with the kind.
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

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether retrying the same call may succeed.
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

// Invalid returns an error saying the input is wrong.
func Invalid(format string, args ...any) *Error { return newError(KindInvalid, format, args) }

// Auth returns an error saying credentials or a signature are wrong.
func Auth(format string, args ...any) *Error { return newError(KindAuth, format, args) }

// NotFound returns an error saying the thing asked for does not exist.
func NotFound(format string, args ...any) *Error { return newError(KindNotFound, format, args) }

// Retryable returns an error saying a retry may succeed.
func Retryable(format string, args ...any) *Error { return newError(KindRetryable, format, args) }

// Permanent returns an error saying a retry will not succeed.
func Permanent(format string, args ...any) *Error { return newError(KindPermanent, format, args) }

// RateLimited returns an error saying the provider throttled the call and the
// caller should wait retryAfter before trying again.
func RateLimited(retryAfter time.Duration, format string, args ...any) *Error {
	e := newError(KindRateLimited, format, args)
	e.RetryAfter = retryAfter
	return e
}

// KindOf returns the kind of err: the Kind of the first *Error in its chain, or
// KindUnknown.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}
