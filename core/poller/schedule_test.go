package poller

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestDue(t *testing.T) {
	t.Parallel()
	updated := now.Add(-time.Hour)
	tests := map[string]struct {
		s         schedule
		updatedAt time.Time
		want      bool
	}{
		"never polled":                     {s: schedule{}, updatedAt: updated, want: true},
		"due in the past":                  {s: schedule{NextDue: now.Add(-time.Second), ConfigAt: updated}, updatedAt: updated, want: true},
		"due exactly now":                  {s: schedule{NextDue: now, ConfigAt: updated}, updatedAt: updated, want: true},
		"due later":                        {s: schedule{NextDue: now.Add(time.Second), LastOutcome: OutcomeOK, ConfigAt: updated}, updatedAt: updated, want: false},
		"beyond the horizon":               {s: schedule{NextDue: now.Add(49 * time.Hour), ConfigAt: updated}, updatedAt: updated, want: true},
		"auth failure, config unchanged":   {s: schedule{NextDue: now.Add(time.Hour), LastOutcome: OutcomeAuth, Failures: 1, ConfigAt: updated}, updatedAt: updated, want: false},
		"auth failure, config changed":     {s: schedule{NextDue: now.Add(time.Hour), LastOutcome: OutcomeAuth, Failures: 1, ConfigAt: updated}, updatedAt: updated.Add(time.Second), want: true},
		"bad events, config changed":       {s: schedule{NextDue: now.Add(time.Hour), LastOutcome: OutcomeBadEvents, Failures: 1, ConfigAt: updated}, updatedAt: updated.Add(time.Second), want: true},
		"rate limited, config changed":     {s: schedule{NextDue: now.Add(time.Minute), LastOutcome: OutcomeRateLimited, Failures: 1, ConfigAt: updated}, updatedAt: updated.Add(time.Second), want: false},
		"retryable failure, config change": {s: schedule{NextDue: now.Add(time.Minute), LastOutcome: OutcomeRetryable, Failures: 1, ConfigAt: updated}, updatedAt: updated.Add(time.Second), want: false},
		"ok, config changed":               {s: schedule{NextDue: now.Add(time.Minute), LastOutcome: OutcomeOK, ConfigAt: updated}, updatedAt: updated.Add(time.Second), want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := due(tc.s, tc.updatedAt, now, 48*time.Hour); got != tc.want {
				t.Errorf("due = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecodeSchedule(t *testing.T) {
	t.Parallel()
	s := schedule{NextDue: now, LastAttempt: now.Add(-time.Minute), Failures: 2, LastOutcome: OutcomeAuth, LastError: "auth: no", ConfigAt: now.Add(-time.Hour)}
	b, err := marshalSchedule(s)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		in   []byte
		want schedule
	}{
		"round trip": {in: b, want: s},
		"absent":     {in: nil, want: schedule{}},
		"empty":      {in: []byte{}, want: schedule{}},
		"garbage":    {in: []byte("not json"), want: schedule{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, decodeSchedule(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	type out struct {
		Outcome    Outcome
		RetryAfter time.Duration
	}
	retryable := sdk.Retryable("upstream 502")
	retryable.RetryAfter = 3 * time.Second
	tests := map[string]struct {
		err  error
		want out
	}{
		"rate limited":           {sdk.RateLimited(90*time.Second, "slow down"), out{OutcomeRateLimited, 90 * time.Second}},
		"rate limited, wrapped":  {fmt.Errorf("polling: %w", sdk.RateLimited(time.Second, "x")), out{OutcomeRateLimited, time.Second}},
		"auth":                   {sdk.Auth("bad token"), out{OutcomeAuth, 0}},
		"invalid":                {sdk.Invalid("bad url"), out{OutcomeInvalid, 0}},
		"not found":              {sdk.NotFound("no feed"), out{OutcomeInvalid, 0}},
		"permanent":              {sdk.Permanent("stuck"), out{OutcomePermanent, 0}},
		"retryable":              {sdk.Retryable("502"), out{OutcomeRetryable, 0}},
		"retryable, retry-after": {retryable, out{OutcomeRetryable, 3 * time.Second}},
		"unknown kind":           {&sdk.Error{Message: "?"}, out{OutcomeRetryable, 0}},
		"plugin unavailable":     {fmt.Errorf("%w: connector example", pluginhost.ErrUnavailable), out{OutcomeUnavailable, 0}},
		"plugin uninstalled":     {fmt.Errorf("%w: %q", pluginhost.ErrUnknownConnector, "example"), out{OutcomeUnavailable, 0}},
		"untyped":                {errors.New("boom"), out{OutcomeRetryable, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, ra := classify(tc.err)
			if diff := cmp.Diff(tc.want, out{o, ra}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		failures int
		want     time.Duration
	}{
		"first":  {1, 15 * time.Minute},
		"second": {2, 30 * time.Minute},
		"third":  {3, time.Hour},
		"capped": {10, 6 * time.Hour},
		"huge":   {1 << 20, 6 * time.Hour}, // never overflows
		"zero":   {0, 15 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := backoff(15*time.Minute, 6*time.Hour, tc.failures); got != tc.want {
				t.Errorf("backoff = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	b := backoffs{Retry: 5 * time.Second, MaxRetry: 15 * time.Minute, Fix: 15 * time.Minute, MaxFix: 6 * time.Hour, MaxRetryAfter: 24 * time.Hour}
	noJitter := func(d time.Duration) time.Duration { return d }
	started := now.Add(-2 * time.Second)
	tests := map[string]struct {
		outcome    Outcome
		failures   int
		retryAfter time.Duration
		interval   time.Duration
		more       bool
		want       time.Time
	}{
		"ok: an interval after the start":           {outcome: OutcomeOK, interval: time.Minute, want: started.Add(time.Minute)},
		"ok, slower than the interval: now":         {outcome: OutcomeOK, interval: time.Second, want: now},
		"ok with more left: now":                    {outcome: OutcomeOK, interval: time.Hour, more: true, want: now},
		"rate limited: the retry-after":             {outcome: OutcomeRateLimited, failures: 1, retryAfter: 90 * time.Second, interval: time.Second, want: now.Add(90 * time.Second)},
		"rate limited: retry-after capped":          {outcome: OutcomeRateLimited, failures: 1, retryAfter: 1000 * time.Hour, want: now.Add(24 * time.Hour)},
		"rate limited without retry-after":          {outcome: OutcomeRateLimited, failures: 2, want: now.Add(10 * time.Second)},
		"auth: long":                                {outcome: OutcomeAuth, failures: 1, interval: time.Second, want: now.Add(15 * time.Minute)},
		"auth again: longer":                        {outcome: OutcomeAuth, failures: 3, want: now.Add(time.Hour)},
		"bad events: long":                          {outcome: OutcomeBadEvents, failures: 1, want: now.Add(15 * time.Minute)},
		"retryable: short":                          {outcome: OutcomeRetryable, failures: 1, want: now.Add(5 * time.Second)},
		"retryable: doubling":                       {outcome: OutcomeRetryable, failures: 4, want: now.Add(40 * time.Second)},
		"retryable: capped":                         {outcome: OutcomeRetryable, failures: 40, want: now.Add(15 * time.Minute)},
		"retryable with a longer retry-after":       {outcome: OutcomeRetryable, failures: 1, retryAfter: time.Minute, want: now.Add(time.Minute)},
		"retryable with a shorter retry-after":      {outcome: OutcomeRetryable, failures: 4, retryAfter: time.Second, want: now.Add(40 * time.Second)},
		"unavailable: short":                        {outcome: OutcomeUnavailable, failures: 1, want: now.Add(5 * time.Second)},
		"store error: short":                        {outcome: OutcomeStoreError, failures: 2, want: now.Add(10 * time.Second)},
		"never sooner than now for a tiny interval": {outcome: OutcomeOK, interval: time.Nanosecond, want: now},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := nextDue(b, noJitter, tc.outcome, tc.failures, tc.retryAfter, tc.interval, tc.more, started, now)
			if !got.Equal(tc.want) {
				t.Errorf("nextDue = %v, want %v (%v from now)", got, tc.want, got.Sub(now))
			}
		})
	}
}

func TestJitterNeverShortens(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, 1, time.Second, time.Hour} {
		for range 200 {
			got := defaultJitter(d)
			if got < d || got > d+d/5 {
				t.Fatalf("defaultJitter(%v) = %v, want within [d, 1.2d]", d, got)
			}
		}
	}
}

func TestInterval(t *testing.T) {
	t.Parallel()
	p := New(Config{Intervals: map[string]time.Duration{"cal": 250 * time.Millisecond, "feed": 0}})
	tests := map[string]struct {
		m    sdk.Manifest
		want time.Duration
	}{
		"no polling":                  {sdk.Manifest{Name: "stripe"}, 0},
		"no polling despite override": {sdk.Manifest{Name: "cal-off", PollInterval: 0}, 0},
		"manifest interval":           {sdk.Manifest{Name: "other", PollInterval: 5 * time.Minute}, 5 * time.Minute},
		"raised to the minimum":       {sdk.Manifest{Name: "other", PollInterval: time.Millisecond}, DefaultMinInterval},
		"operator override":           {sdk.Manifest{Name: "cal", PollInterval: time.Hour}, 250 * time.Millisecond},
		"zero override is ignored":    {sdk.Manifest{Name: "feed", PollInterval: time.Hour}, time.Hour},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := p.interval(tc.m); got != tc.want {
				t.Errorf("interval = %v, want %v", got, tc.want)
			}
		})
	}
}
