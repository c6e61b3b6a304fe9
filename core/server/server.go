package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	temporallog "go.temporal.io/sdk/log"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/poller"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/sessions"
	"github.com/ponte-hub/ponte/core/sms"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
	ponteworker "github.com/ponte-hub/ponte/core/worker"
	"github.com/ponte-hub/ponte/workflows/cartrecovery"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// Version is the running Ponte version, set at build time with
// -ldflags "-X github.com/ponte-hub/ponte/core/server.Version=...".
var Version = "dev"

// NewLogger returns the process logger: JSON on stderr at the configured level.
func NewLogger(level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}

// Run starts every part of the host the configuration's roles ask for and
// serves until ctx ends, then shuts down gracefully: HTTP first (no new
// webhooks), then the worker and dispatcher, then the plugins and the pools.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := NewLogger(cfg.LogLevel)
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		// The live heap is tens of MB; at thousands of webhooks per second the
		// default GOGC=100 spends a fifth of the CPU collecting it. 200 halves
		// that for a few MB more.
		debug.SetGCPercent(200)
	}

	masterKey, err := secrets.ParseMasterKey(cfg.MasterKey)
	if err != nil {
		return fmt.Errorf("reading PONTE_MASTER_KEY: %w", err)
	}
	if err := store.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, masterKey)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()

	temporal, err := client.Dial(client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    temporallog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		return fmt.Errorf("connecting to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer temporal.Close()

	metrics := prometheus.NewRegistry()
	ingressMetrics, err := ingress.NewPrometheusMetrics(metrics)
	if err != nil {
		return fmt.Errorf("registering ingress metrics: %w", err)
	}

	pollerMetrics, err := poller.NewPrometheusMetrics(metrics)
	if err != nil {
		return fmt.Errorf("registering poller metrics: %w", err)
	}

	committer := ingress.NewCommitter(st.Pool(), ingress.CommitterConfig{Metrics: ingressMetrics, Logger: log})
	defer committer.Close()
	services := ingress.NewServices(st, nil, committer, st)
	// The session manager needs the plugin host, which needs to tell it of
	// plugin restarts (a restarted plugin holds no sessions): it is pointed
	// at once both exist. A first start before that is no loss, since the
	// manager's first scan opens every session it takes.
	var sessionMgr atomic.Pointer[sessions.Manager]
	plugins, err := pluginhost.New(ctx, pluginhost.Options{
		Dir:       cfg.PluginDir,
		Services:  services,
		Logger:    log.With("component", "pluginhost"),
		PluginEnv: pluginEnv(cfg),
		OnStart: func(connector string) {
			if m := sessionMgr.Load(); m != nil {
				m.OnPluginStart(connector)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("starting connector plugins from %s: %w", cfg.PluginDir, err)
	}
	defer plugins.Close()
	services.SetConnectors(plugins)
	sessionsMgr, err := sessions.New(sessions.Config{
		Pool: st.Pool(), Plugins: plugins, Connections: st, NodeURL: cfg.NodeURL,
		LeaseTTL: cfg.Sessions.LeaseTTL, CleanupAfter: cfg.Sessions.CleanupAfter, PhoneAwayWarning: cfg.Sessions.PhoneAwayWarning,
		Logger: log.With("component", "sessions"),
	})
	if err != nil {
		return fmt.Errorf("creating the session manager: %w", err)
	}
	services.SetSessions(sessionsMgr)
	sessionMgr.Store(sessionsMgr)

	invoker := invoke.New(st, plugins)
	internalKey := invoke.DeriveInternalKey(masterKey)
	invoker.RouteSessions(sessionOwners{sessionsMgr}, invoke.NewForwarder(internalKey))
	links := paymentlink.NewService(paymentlink.NewDB(st.Pool()), temporal, cfg.TaskQueue, invoker)
	msg, err := newMessaging(st, invoker, log)
	if err != nil {
		return err
	}
	defer msg.close()

	var wg sync.WaitGroup
	runCtx, stopBackground := context.WithCancel(ctx)
	defer func() {
		stopBackground()
		wg.Wait()
	}()
	background := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				log.Error(name+" stopped", "err", err)
			}
		}()
	}

	// On a node that answers webhooks, the dispatcher gives way to them when
	// they are answered slowly: stored events can wait, providers cannot.
	var pressure *ingress.Pressure
	var yield func() bool
	if cfg.Has(RoleIngress) {
		pressure = ingress.NewPressure(cfg.IngressBusyAbove)
		yield = pressure.Busy
	}

	if cfg.Has(RoleWorker) {
		ponteworker.SetCacheSize(cfg.WorkflowCacheSize)
		deps := ponteworker.Deps{
			Pool: st.Pool(), TaskQueue: cfg.TaskQueue, Invoker: invoker,
			Messenger: msg.messages, Contacts: msg.contacts, Consent: msg.consent,
			PaymentLinkChat: cfg.PaymentLinkChat, Logger: log.With("component", "workflows"),
		}
		w := ponteworker.New(temporal, cfg.TaskQueue, deps)
		if err := w.Start(); err != nil {
			return fmt.Errorf("starting the Temporal worker: %w", err)
		}
		defer w.Stop()
		d, err := dispatch.New(dispatch.Config{
			Pool: st.Pool(),
			// Order matters for an inbound message: the contact and its
			// conversation exist before consent reads a STOP from it, and
			// the STOP is recorded before the workflows hear the reply.
			Router: dispatch.Routes{
				msg.contacts.Route(),
				msg.contacts.ShopRoute(),
				consent.Route(msg.consent),
				consent.ShopRoute(msg.consent),
				// After consent: a STOP that is also a reply to a cart
				// message is an opt-out before it reaches the cart.
				ponteworker.Router(deps),
				messaging.Route(st.Pool()),
				revokedRoute(st, log),
				templates.Route(msg.templates),
			},
			Temporal: temporal,
			Yield:    yield,
			Logger:   log.With("component", "dispatch"),
		})
		if err != nil {
			return fmt.Errorf("creating the dispatcher: %w", err)
		}
		background("dispatcher", d.Run)
		background("message reconciler", (&messaging.Reconciler{Pool: st.Pool(), After: cfg.MessageUnknownAfter, Logger: log}).Run)
		background("deferred message scheduler", (&messaging.Scheduler{Service: msg.messages, Pool: st.Pool(), Logger: log}).Run)
		background("sms status callbacks", sms.NewDeliverer(st.Pool(), sms.DelivererOptions{Logger: log.With("component", "sms")}).Run)
	}

	// Every node holds linked-device sessions (they are inbound events and
	// the actions that need them), whatever its roles.
	background("sessions", sessionsMgr.Run)

	if cfg.Has(RoleIngress) {
		// Polling brings events in for systems without webhooks; a
		// cluster-wide claim per connection makes it safe on every node.
		pl := poller.New(poller.Config{
			Store: st, Connectors: plugins, Sink: committer, Pool: st.Pool(),
			Logger: log, Metrics: pollerMetrics,
		})
		background("poller", pl.Run)
	}

	var hooks http.Handler
	if cfg.Has(RoleIngress) {
		hooks, err = ingress.NewHandler(ingress.Config{
			Connections: st,
			Connectors:  plugins,
			Sink:        committer,
			Metrics:     ingressMetrics,
			Pressure:    pressure,
			Logger:      log.With("component", "ingress"),
		})
		if err != nil {
			return fmt.Errorf("creating the webhook ingress: %w", err)
		}
	}

	numberStore := numbers.NewStore(st.Pool(), st, automationsReleaser{automations.NewStore(st.Pool())})
	numberWatcher := numbers.NewWatcher(st.Pool(), log.With("component", "numbers"))
	defer numberWatcher.Close()
	smsService, err := sms.New(st.Pool(), msg.messages, sms.Options{Logger: log.With("component", "sms")})
	if err != nil {
		return fmt.Errorf("creating the SMS endpoint: %w", err)
	}

	handler, err := api.New(api.Deps{
		Store:        st,
		Connectors:   plugins,
		PaymentLinks: paymentLinksAPI{links},
		Hooks:        hooks,
		Internal:     invoke.InternalHandler(invoker, internalKey, log.With("component", "internal")),
		Ready:        readiness(st, temporal, plugins),
		PublicURL:    cfg.PublicURL,
		Logger:       log,
		Metrics:      metrics,
		Version:      Version,
		Inbox:        msg.contacts,
		Sender:       api.MessagingSender{Service: msg.messages},
		InboxStream:  msg.hub,
		Consent:      msg.consent,
		Templates:    msg.templates,
		Messages:     msg.messages,

		Automations:         automations.NewStore(st.Pool()),
		CartRecoveryReports: cartrecovery.NewDB(st.Pool()),
		Numbers:             api.NumbersDeps{Store: numberStore, Invoker: invoker, Watcher: numberWatcher, Sessions: sessionsMgr},
		SMS:                 smsService,
	})
	if err != nil {
		return fmt.Errorf("building the HTTP API: %w", err)
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	var root http.Handler = handler
	if !cfg.Has(RoleAPI) {
		root = withoutAPI(handler)
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("ponte serving", "addr", ln.Addr().String(), "public_url", cfg.PublicURL,
		"roles", rolesString(cfg.Roles), "version", Version, "plugins", len(plugins.Manifests()))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
	}
	log.Info("ponte shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("HTTP shutdown did not finish cleanly", "err", err)
	}
	return nil
}

// servePprof serves Go's profiler on addr until the returned function is called.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for pprof on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof serving", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// readiness checks what a request needs: the database, Temporal and every
// installed plugin running.
func readiness(st *store.Store, temporal client.Client, plugins pluginhost.Registry) func(context.Context) map[string]error {
	return func(ctx context.Context) map[string]error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		checks := map[string]error{"database": st.Ping(ctx)}
		if _, err := temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			checks["temporal"] = err
		} else {
			checks["temporal"] = nil
		}
		for _, p := range plugins.Status() {
			var err error
			if !p.Running {
				err = fmt.Errorf("plugin not running: %s", p.Error)
			}
			checks["plugin:"+p.Name] = err
		}
		return checks
	}
}

// paymentLinksAPI adapts the payment link service to the API's interface.
type paymentLinksAPI struct{ *paymentlink.Service }

func (p paymentLinksAPI) List(ctx context.Context, tenantID, cursor string, limit int) ([]paymentlink.Link, string, error) {
	return p.Service.List(ctx, tenantID, paymentlink.ListQuery{Cursor: cursor, Limit: limit})
}

// withoutAPI serves only what a process without the api role offers: webhooks
// (when it has the ingress role), health, readiness and metrics. Everything
// else is a problem+json 404, so a load balancer misrouting API calls to an
// ingress-only node is visible at once.
func withoutAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/hooks/") || p == invoke.InternalPath || p == "/healthz" || p == "/readyz" || p == "/metrics" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"type":"about:blank","title":"Not Found","status":404,"detail":"this node does not run the api role"}`)
	})
}

func rolesString(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}
