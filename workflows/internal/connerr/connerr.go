// Package connerr turns the errors of connector calls into the errors
// workflow activities return, so every workflow's retry policies read the
// same error types.
package connerr

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Application error types of retryable connector failures. Non-retryable
// ones carry the sdk error kind's name ("invalid", "auth", "not_found",
// "permanent") as their type.
const (
	TypeRateLimited = "rate_limited"
	TypeRetryable   = "retryable"
	TypeUnavailable = "unavailable"
)

// ActivityError turns a connector call's error into the error an activity
// returns, so Temporal's retry policy acts on the sdk error kind: invalid,
// auth, not found and permanent are not retried; rate limited is retried
// after the provider's retry-after; the rest are retried with backoff. A
// plugin that is restarting or not installed is retried too.
func ActivityError(err error) error {
	if err == nil {
		return nil
	}
	var serr *sdk.Error
	if errors.As(err, &serr) {
		msg := serr.Error()
		switch serr.Kind {
		case sdk.KindInvalid, sdk.KindAuth, sdk.KindNotFound, sdk.KindPermanent:
			return temporal.NewNonRetryableApplicationError(msg, serr.Kind.String(), err)
		case sdk.KindRateLimited:
			return temporal.NewApplicationErrorWithOptions(msg, TypeRateLimited,
				temporal.ApplicationErrorOptions{NextRetryDelay: serr.RetryAfter, Cause: err})
		default:
			return temporal.NewApplicationErrorWithOptions(msg, TypeRetryable,
				temporal.ApplicationErrorOptions{NextRetryDelay: serr.RetryAfter, Cause: err})
		}
	}
	if errors.Is(err, pluginhost.ErrUnavailable) || errors.Is(err, pluginhost.ErrUnknownConnector) {
		return temporal.NewApplicationErrorWithOptions(err.Error(), TypeUnavailable,
			temporal.ApplicationErrorOptions{Cause: err})
	}
	return err
}
