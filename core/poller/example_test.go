package poller_test

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/poller"
	"github.com/ponte-hub/ponte/core/store"
)

// The poller is wired next to the webhook ingress: the same store, plugin
// host and committer, so polled events are stored and dispatched exactly
// like webhook events.
func ExampleNew() {
	ctx := context.Background()
	var (
		st        *store.Store       // store.Open(...)
		plugins   *pluginhost.Host   // pluginhost.New(...)
		committer *ingress.Committer // ingress.NewCommitter(st.Pool(), ...)
		reg       = prometheus.NewRegistry()
		log       = slog.Default()
	)
	if st == nil {
		return // this example shows the wiring only
	}
	metrics, err := poller.NewPrometheusMetrics(reg)
	if err != nil {
		log.Error("registering poller metrics", "err", err)
		return
	}
	p := poller.New(poller.Config{
		Store:      st,
		Connectors: plugins,
		Sink:       committer,
		Pool:       st.Pool(),
		Logger:     log,
		Metrics:    metrics,
	})
	go func() {
		if err := p.Run(ctx); err != nil {
			log.Error("poller stopped", "err", err)
		}
	}()
}
