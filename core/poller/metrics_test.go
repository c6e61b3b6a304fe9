package poller

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Polled("example", OutcomeOK, 5, 3, 20*time.Millisecond)
	m.Polled("example", OutcomeOK, 1, 0, 10*time.Millisecond)
	m.Polled("example", OutcomeRateLimited, 0, 0, time.Millisecond)
	m.Polled("example", OutcomeBusy, 0, 0, time.Millisecond)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			name := f.GetName()
			for _, l := range metric.GetLabel() {
				name += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case metric.GetCounter() != nil:
				got[name] = metric.GetCounter().GetValue()
			case metric.GetHistogram() != nil:
				got[name+" count"] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"ponte_poller_polls_total connector=example outcome=ok":           2,
		"ponte_poller_polls_total connector=example outcome=rate_limited": 1,
		"ponte_poller_polls_total connector=example outcome=busy":         1,
		"ponte_poller_events_total connector=example result=found":        6,
		"ponte_poller_events_total connector=example result=inserted":     3,
		// Busy attempts did no work and stay out of the latency histogram.
		"ponte_poller_poll_duration_seconds connector=example count": 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if _, err := NewPrometheusMetrics(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}
