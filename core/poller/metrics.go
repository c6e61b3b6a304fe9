package poller

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is how one attempt to poll a connection ended. Outcomes are metric
// label values (few and fixed) and are kept in the connection's poll schedule,
// where a change of outcome is what gets logged.
type Outcome string

// Outcomes of a poll attempt.
const (
	// OutcomeOK: the connector answered, its events are stored and the new
	// cursor is saved.
	OutcomeOK Outcome = "ok"
	// OutcomeRateLimited: the connector (its provider) throttled the poll;
	// the next one waits for its retry-after.
	OutcomeRateLimited Outcome = "rate_limited"
	// OutcomeAuth: credentials were refused; retried after a long back-off or
	// as soon as the connection's configuration changes.
	OutcomeAuth Outcome = "auth"
	// OutcomeInvalid: the connector found the configuration or the request
	// wrong (sdk Invalid or NotFound); handled like OutcomeAuth.
	OutcomeInvalid Outcome = "invalid"
	// OutcomePermanent: a failure retrying will not fix; handled like
	// OutcomeAuth.
	OutcomePermanent Outcome = "permanent"
	// OutcomeBadEvents: the connector returned events that fail validation
	// against its manifest (a connector bug); nothing is stored, the cursor
	// stays, handled like OutcomeAuth.
	OutcomeBadEvents Outcome = "bad_events"
	// OutcomeRetryable: a transient failure at the connector or provider;
	// retried with exponential back-off.
	OutcomeRetryable Outcome = "retryable"
	// OutcomeUnavailable: the connector's plugin is not running; retried with
	// exponential back-off.
	OutcomeUnavailable Outcome = "unavailable"
	// OutcomeStoreError: Postgres failed while storing events or the cursor;
	// retried with exponential back-off.
	OutcomeStoreError Outcome = "store_error"
	// OutcomeBusy: another poller (another `ponte serve`) holds the
	// connection's claim; nothing was done.
	OutcomeBusy Outcome = "busy"
	// OutcomeSkipped: once claimed, the connection turned out not to need a
	// poll (another poller just polled it, or it was disabled or deleted).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeCanceled: the poller was stopping; the poll is retried from the
	// stored cursor by whichever poller runs next.
	OutcomeCanceled Outcome = "canceled"
)

// failed reports whether the outcome is a failure of the connection's polling
// (as opposed to success or an attempt that did not happen).
func (o Outcome) failed() bool {
	switch o {
	case OutcomeOK, OutcomeBusy, OutcomeSkipped, OutcomeCanceled, "":
		return false
	}
	return true
}

// needsFix reports whether the outcome is one that waiting alone is unlikely
// to fix: a person has to change the configuration (or the connector).
func (o Outcome) needsFix() bool {
	switch o {
	case OutcomeAuth, OutcomeInvalid, OutcomePermanent, OutcomeBadEvents:
		return true
	}
	return false
}

// Metrics receives the poller's figures. Implementations must be safe for
// concurrent use.
type Metrics interface {
	// Polled is called once per attempt to poll a connection, with the
	// connector's name, how it ended, how many events the connector returned
	// (found) and how many of them were new (inserted), and how long the
	// attempt took (claim, every page, storing).
	Polled(connector string, outcome Outcome, found, inserted int, elapsed time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) Polled(string, Outcome, int, int, time.Duration) {}

// PrometheusMetrics is a [Metrics] backed by Prometheus collectors.
type PrometheusMetrics struct {
	polls    *prometheus.CounterVec
	events   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ Metrics = (*PrometheusMetrics)(nil)

// NewPrometheusMetrics creates the poller's collectors and registers them
// with reg.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ponte_poller_polls_total",
			Help: "Attempts to poll a connection, by connector and outcome.",
		}, []string{"connector", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ponte_poller_events_total",
			Help: "Events returned by polls (found) and those of them that were new (inserted), by connector.",
		}, []string{"connector", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ponte_poller_poll_duration_seconds",
			Help:    "Time to poll a connection: claim, every page, storing events and cursor.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"connector"}),
	}
	for _, c := range []prometheus.Collector{m.polls, m.events, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering poller metrics: %w", err)
		}
	}
	return m, nil
}

// Polled implements [Metrics].
func (m *PrometheusMetrics) Polled(connector string, outcome Outcome, found, inserted int, elapsed time.Duration) {
	m.polls.WithLabelValues(connector, string(outcome)).Inc()
	if found > 0 {
		m.events.WithLabelValues(connector, "found").Add(float64(found))
	}
	if inserted > 0 {
		m.events.WithLabelValues(connector, "inserted").Add(float64(inserted))
	}
	// Attempts that did no work would drown the histogram in near-zero values.
	if outcome != OutcomeBusy && outcome != OutcomeSkipped {
		m.duration.WithLabelValues(connector).Observe(elapsed.Seconds())
	}
}
