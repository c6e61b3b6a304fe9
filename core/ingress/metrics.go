package ingress

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is how ingress answered one webhook delivery.
type Outcome string

// Outcomes, one per kind of answer. They are metric label values: few and fixed.
const (
	OutcomeAccepted    Outcome = "accepted"     // 2xx, at least one new event stored (or none in the delivery)
	OutcomeDuplicate   Outcome = "duplicate"    // 2xx, every event was already stored
	OutcomeHandshake   Outcome = "handshake"    // a GET answered by the connector
	OutcomeNotFound    Outcome = "not_found"    // unknown or disabled connection (404)
	OutcomeTooLarge    Outcome = "too_large"    // body over the limit (413)
	OutcomeAuth        Outcome = "auth"         // signature or credentials refused (401)
	OutcomeInvalid     Outcome = "invalid"      // the connector could not parse the delivery (400)
	OutcomeUnavailable Outcome = "unavailable"  // plugin not running or unreachable (503)
	OutcomePluginError Outcome = "plugin_error" // the connector failed or returned bad events (500)
	OutcomeStoreError  Outcome = "store_error"  // the events could not be committed (5xx)
	OutcomeBadMethod   Outcome = "bad_method"   // neither POST nor GET (405)
)

// Metrics receives ingress figures. Implementations must be safe for
// concurrent use and fast: they run on every request.
type Metrics interface {
	// WebhookHandled is called once per delivery with the connector's name
	// ("" when the connection was not found) and the time from receipt to the
	// answer.
	WebhookHandled(connector string, outcome Outcome, elapsed time.Duration)
	// BatchCommitted is called once per group-commit transaction.
	BatchCommitted(requests, events int, elapsed time.Duration, err error)
}

type nopMetrics struct{}

func (nopMetrics) WebhookHandled(string, Outcome, time.Duration) {}
func (nopMetrics) BatchCommitted(int, int, time.Duration, error) {}

// PrometheusMetrics is a [Metrics] backed by Prometheus collectors.
type PrometheusMetrics struct {
	webhooks     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	batches      *prometheus.CounterVec
	batchSize    prometheus.Histogram
	batchLatency prometheus.Histogram
}

// NewPrometheusMetrics creates the ingress collectors and registers them with reg.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ponte_ingress_webhooks_total",
			Help: "Webhook deliveries answered, by connector and outcome.",
		}, []string{"connector", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ponte_ingress_webhook_duration_seconds",
			Help:    "Time from receiving a webhook delivery to answering it, by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ponte_ingress_commit_batches_total",
			Help: "Group-commit transactions, by result (ok or error).",
		}, []string{"result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ponte_ingress_commit_batch_requests",
			Help:    "Requests written per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ponte_ingress_commit_duration_seconds",
			Help:    "Time to write and commit one group-commit transaction.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	for _, c := range []prometheus.Collector{m.webhooks, m.latency, m.batches, m.batchSize, m.batchLatency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering ingress metrics: %w", err)
		}
	}
	return m, nil
}

// WebhookHandled implements [Metrics].
func (m *PrometheusMetrics) WebhookHandled(connector string, outcome Outcome, elapsed time.Duration) {
	m.webhooks.WithLabelValues(connector, string(outcome)).Inc()
	m.latency.WithLabelValues(string(outcome)).Observe(elapsed.Seconds())
}

// BatchCommitted implements [Metrics].
func (m *PrometheusMetrics) BatchCommitted(requests, _ int, elapsed time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.batches.WithLabelValues(result).Inc()
	m.batchSize.Observe(float64(requests))
	m.batchLatency.Observe(elapsed.Seconds())
}
