package poller

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// schedule is a connection's polling schedule, kept as JSON in its
// connection_state under [ScheduleKey]. Keeping it in Postgres rather than in
// each process's memory makes the interval hold across the cluster (two
// `ponte serve` processes do not each poll every interval) and across
// restarts (a restart neither polls everything at once nor forgets a
// back-off).
type schedule struct {
	// NextDue is when the connection should be polled next.
	NextDue time.Time `json:"next_due"`
	// LastAttempt is when the last poll started.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastSuccess is when a poll last succeeded.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Failures counts consecutive failed polls; it drives the back-off.
	Failures int `json:"failures,omitempty"`
	// LastOutcome is the outcome of the last poll; a change of it is logged.
	LastOutcome Outcome `json:"last_outcome,omitempty"`
	// LastError is the last failure's message, for operators (connector
	// messages carry no secrets by the SDK's contract); cut to maxErrorLen.
	LastError string `json:"last_error,omitempty"`
	// ConfigAt is the connection's updated_at when it was last polled. A
	// connection that failed for want of a fix is retried at once when it
	// changes. Both sides of the comparison come from Postgres, so clock skew
	// between processes cannot make it fire forever.
	ConfigAt time.Time `json:"config_at,omitzero"`
}

const maxErrorLen = 500

// decodeSchedule reads a stored schedule. A value that does not decode (an
// older format, or a plugin that wrote over the host's key) counts as none:
// the connection is polled now and the schedule rewritten.
func decodeSchedule(b []byte) schedule {
	var s schedule
	if len(b) == 0 || json.Unmarshal(b, &s) != nil {
		return schedule{}
	}
	return s
}

// due reports whether a connection with schedule s, whose configuration was
// last changed at updatedAt, should be polled at now. horizon bounds how far
// ahead a stored NextDue may lie; beyond it (a clock jump, a hand-edited row)
// the schedule is not trusted.
func due(s schedule, updatedAt, now time.Time, horizon time.Duration) bool {
	switch {
	case s.NextDue.IsZero(): // never polled: new connections are polled at once
		return true
	case !s.NextDue.After(now):
		return true
	case s.NextDue.Sub(now) > horizon:
		return true
	case s.LastOutcome.needsFix() && !updatedAt.Equal(s.ConfigAt):
		// Someone changed the connection since it failed: probably the fix.
		return true
	}
	return false
}

// classify maps a poll error to its outcome and the retry-after the
// connector asked for, if any. It decides on typed errors only, never on
// messages.
func classify(err error) (Outcome, time.Duration) {
	var se *sdk.Error
	if errors.As(err, &se) {
		switch se.Kind {
		case sdk.KindRateLimited:
			return OutcomeRateLimited, se.RetryAfter
		case sdk.KindAuth:
			return OutcomeAuth, 0
		case sdk.KindInvalid, sdk.KindNotFound:
			return OutcomeInvalid, 0
		case sdk.KindPermanent:
			return OutcomePermanent, 0
		default: // KindRetryable, KindUnknown
			return OutcomeRetryable, se.RetryAfter
		}
	}
	if errors.Is(err, pluginhost.ErrUnavailable) || errors.Is(err, pluginhost.ErrUnknownConnector) {
		return OutcomeUnavailable, 0
	}
	return OutcomeRetryable, 0
}

// backoff is base doubled for each failure after the first, capped at limit.
func backoff(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// jitter spreads d over [d, d*1.2) so that connections failing together
// (a provider outage) are not retried in lockstep. It never shortens d: a
// retry-after is a floor.
type jitterFunc func(d time.Duration) time.Duration

func defaultJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// backoffs are the waits after failures.
type backoffs struct {
	// Retry is the first wait after a transient failure, doubling up to
	// MaxRetry.
	Retry, MaxRetry time.Duration
	// Fix is the first wait after a failure that needs a fix (auth, invalid,
	// permanent, bad events), doubling up to MaxFix.
	Fix, MaxFix time.Duration
	// MaxRetryAfter caps a connector's retry-after.
	MaxRetryAfter time.Duration
}

// nextDue is when to poll again after an attempt that started at started and
// ended at now with outcome, after failures consecutive failures (this one
// included), for a connector polled every interval. more says the connector
// had more to fetch when the page limit stopped the attempt.
func nextDue(b backoffs, jitter jitterFunc, outcome Outcome, failures int, retryAfter, interval time.Duration, more bool, started, now time.Time) time.Time {
	switch {
	case outcome == OutcomeOK && more:
		return now // drain the rest on the next tick, after other connections had their turn
	case outcome == OutcomeOK:
		// Keep the phase: an interval from the start of this poll, not its
		// end, so a slow provider does not stretch the interval; a poll that
		// took longer than the interval is due at once, but not sooner.
		return later(started.Add(interval), now)
	case outcome == OutcomeRateLimited && retryAfter > 0:
		return now.Add(jitter(min(retryAfter, b.MaxRetryAfter)))
	case outcome.needsFix():
		return now.Add(jitter(backoff(b.Fix, b.MaxFix, failures)))
	default: // retryable, unavailable, store errors, rate limited without a retry-after
		wait := backoff(b.Retry, b.MaxRetry, failures)
		if retryAfter > wait {
			wait = min(retryAfter, b.MaxRetryAfter)
		}
		return now.Add(jitter(wait))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func marshalSchedule(s schedule) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding the poll schedule: %w", err)
	}
	return b, nil
}
