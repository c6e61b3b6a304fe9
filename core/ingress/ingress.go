// Package ingress receives webhooks from external systems: POST (and GET, for
// handshakes) on /hooks/{connection}. The connection's plugin verifies and
// parses each delivery; the events it finds are committed to Postgres, unique
// on (connection, dedupe key), before the provider gets its 2xx. A provider's
// redelivery is a duplicate that stores nothing new, and a rejected delivery
// leaves no trace but a metric and a log line.
//
// The same storage path serves events that plugins push through the host
// service ([Services]).
package ingress

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// ConnectionResolver looks a connection up by id, in any tenant, with its
// decrypted configuration. *store.Store and *store.ConnectionCache implement it.
type ConnectionResolver = store.ConnectionResolver

// Connectors finds the running plugin of a connector. pluginhost.Registry
// implements it.
type Connectors interface {
	Connector(name string) (pluginhost.Client, error)
}

// Defaults of [Config].
const (
	DefaultMaxBodyBytes       = 1 << 20
	DefaultPluginTimeout      = 10 * time.Second
	DefaultConnectionCacheTTL = store.DefaultConnectionCacheTTL
	DefaultPrefix             = "/hooks/"
	// retryAfterSeconds is what a 503 asks the provider to wait: long enough
	// for a crashed plugin to be restarted, short enough not to build a backlog.
	retryAfterSeconds = 5
)

// Config configures a [Handler].
type Config struct {
	// Connections resolves the connection named in the path. Required.
	Connections ConnectionResolver
	// Connectors reaches the connection's plugin. Required.
	Connectors Connectors
	// Sink stores the events; normally a *Committer. Required.
	Sink EventSink
	// MaxBodyBytes caps a delivery's body (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// PluginTimeout bounds the plugin's verify-and-parse call (default 10s).
	PluginTimeout time.Duration
	// ConnectionCacheTTL is how long a resolved connection is reused (default
	// 2s; negative disables the cache). At thousands of deliveries per second
	// the lookup and decryption per request would cost more than the insert;
	// the price is that disabling or deleting a connection takes up to the TTL
	// to stop its webhooks. Unknown ids are never cached.
	ConnectionCacheTTL time.Duration
	// Prefix is the path the handler is mounted at (default "/hooks/"); the
	// connection id is the path segment after it.
	Prefix string
	// Metrics receives counts and latencies; nil means none.
	Metrics Metrics
	// Pressure, when set, follows the answer times, for work that gives way
	// to webhooks (the dispatcher's Yield).
	Pressure *Pressure
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Handler is the http.Handler for /hooks/{connection}[/{path}].
type Handler struct {
	conns      ConnectionResolver
	connectors Connectors
	sink       EventSink
	maxBody    int64
	timeout    time.Duration
	prefix     string
	metrics    Metrics
	pressure   *Pressure
	log        *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler with cfg.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Connections == nil || cfg.Connectors == nil || cfg.Sink == nil {
		return nil, errors.New("ingress: Connections, Connectors and Sink are required")
	}
	h := &Handler{
		conns:      cfg.Connections,
		connectors: cfg.Connectors,
		sink:       cfg.Sink,
		maxBody:    cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		timeout:    cmp.Or(cfg.PluginTimeout, DefaultPluginTimeout),
		prefix:     cmp.Or(cfg.Prefix, DefaultPrefix),
		metrics:    cfg.Metrics,
		pressure:   cfg.Pressure,
		log:        cmp.Or(cfg.Logger, slog.Default()),
	}
	if h.metrics == nil {
		h.metrics = nopMetrics{}
	}
	if ttl := cmp.Or(cfg.ConnectionCacheTTL, DefaultConnectionCacheTTL); ttl > 0 {
		h.conns = store.NewConnectionCache(cfg.Connections, ttl)
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	connector, outcome := h.serve(w, r, received)
	took := time.Since(received)
	h.metrics.WebhookHandled(connector, outcome, took)
	h.pressure.observe(took)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, received time.Time) (string, Outcome) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		writeProblem(w, http.StatusMethodNotAllowed, "")
		return "", OutcomeBadMethod
	}
	id, rest, ok := h.parsePath(r.URL.Path)
	if !ok {
		writeProblem(w, http.StatusNotFound, "no such webhook endpoint")
		return "", OutcomeNotFound
	}
	ctx := r.Context()
	conn, cfg, err := h.conns.ResolvedConnection(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && conn.Status != "active":
		// A disabled connection looks like a missing one: the sender learns
		// nothing, and a provider that keeps retrying a 404 soon gives up.
		writeProblem(w, http.StatusNotFound, "no such webhook endpoint")
		return "", OutcomeNotFound
	case err != nil:
		h.log.ErrorContext(ctx, "ingress: resolving connection failed", "connection", id, "error", err)
		unavailable(w)
		return "", OutcomeStoreError
	}

	if r.ContentLength > h.maxBody {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.maxBody))
		return conn.Connector, OutcomeTooLarge
	}
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.maxBody))
			return conn.Connector, OutcomeTooLarge
		}
		// The sender went away mid-body; nobody reads this answer.
		writeProblem(w, http.StatusBadRequest, "reading body failed")
		return conn.Connector, OutcomeInvalid
	}

	client, err := h.connectors.Connector(conn.Connector)
	if err != nil {
		// Unknown connector included: a plugin missing from this node may be
		// back after a deploy, and the provider's retries cost nothing.
		h.log.WarnContext(ctx, "ingress: connector not available", "connection", id, "connector", conn.Connector, "error", err)
		unavailable(w)
		return conn.Connector, OutcomeUnavailable
	}
	sconn := sdk.Connection{ID: conn.ID, TenantID: conn.TenantID, Config: cfg}
	req := sdk.WebhookRequest{
		Method:     r.Method,
		Path:       rest,
		Query:      r.URL.RawQuery,
		Headers:    r.Header,
		Body:       body,
		ReceivedAt: received,
	}
	pctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()

	if r.Method == http.MethodGet {
		resp, err := client.Handshake(pctx, sconn, req)
		if err != nil {
			return conn.Connector, h.pluginFailed(ctx, w, conn, err)
		}
		writeResponse(w, resp)
		return conn.Connector, OutcomeHandshake
	}

	result, err := client.HandleWebhook(pctx, sconn, req)
	if err != nil {
		return conn.Connector, h.pluginFailed(ctx, w, conn, err)
	}
	if err := ValidateEvents(client.Manifest(), result.Events); err != nil {
		// Storing nothing and answering 2xx would lose the delivery for good;
		// a 500 keeps it at the provider, which retries, while the log tells
		// the connector's author what to fix.
		h.log.ErrorContext(ctx, "ingress: connector returned invalid events", "connection", conn.ID, "connector", conn.Connector, "error", err)
		writeProblem(w, http.StatusInternalServerError, "")
		return conn.Connector, OutcomePluginError
	}
	inserted, err := h.sink.Commit(ctx, conn.TenantID, conn.ID, result.Events)
	if err != nil {
		h.log.ErrorContext(ctx, "ingress: storing events failed", "connection", conn.ID, "events", len(result.Events), "error", err)
		if isTransient(err) {
			unavailable(w)
		} else {
			writeProblem(w, http.StatusInternalServerError, "")
		}
		return conn.Connector, OutcomeStoreError
	}
	if result.Response != nil {
		writeResponse(w, *result.Response)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if len(result.Events) > 0 && inserted == 0 {
		return conn.Connector, OutcomeDuplicate
	}
	h.log.DebugContext(ctx, "ingress: webhook stored", "connection", conn.ID, "events", len(result.Events), "new", inserted)
	return conn.Connector, OutcomeAccepted
}

// parsePath splits "/hooks/{id}/rest" into id and "/rest".
func (h *Handler) parsePath(p string) (id, rest string, ok bool) {
	tail, found := strings.CutPrefix(p, h.prefix)
	if !found {
		return "", "", false
	}
	id, rest, _ = strings.Cut(tail, "/")
	if rest != "" || strings.HasSuffix(tail, "/") {
		rest = "/" + rest
	}
	if id == "" {
		return "", "", false
	}
	return id, rest, true
}

// pluginFailed answers a delivery the plugin refused or could not handle.
func (h *Handler) pluginFailed(ctx context.Context, w http.ResponseWriter, conn store.Connection, err error) Outcome {
	if errors.Is(err, pluginhost.ErrUnavailable) {
		h.log.WarnContext(ctx, "ingress: plugin unavailable", "connection", conn.ID, "connector", conn.Connector, "error", err)
		unavailable(w)
		return OutcomeUnavailable
	}
	var serr *sdk.Error
	if !errors.As(err, &serr) {
		// Not a connector's typed answer: the call itself failed (deadline,
		// transport). Treat like a plugin that is down.
		h.log.WarnContext(ctx, "ingress: calling plugin failed", "connection", conn.ID, "connector", conn.Connector, "error", err)
		unavailable(w)
		return OutcomeUnavailable
	}
	switch serr.Kind {
	case sdk.KindAuth:
		// No detail: telling a forger which check failed helps the forger. The
		// reason goes to the log, at a level that does not flood under attack.
		h.log.DebugContext(ctx, "ingress: delivery refused", "connection", conn.ID, "connector", conn.Connector, "error", err)
		writeProblem(w, http.StatusUnauthorized, "")
		return OutcomeAuth
	case sdk.KindInvalid:
		h.log.InfoContext(ctx, "ingress: delivery invalid", "connection", conn.ID, "connector", conn.Connector, "error", err)
		writeProblem(w, http.StatusBadRequest, serr.Message)
		return OutcomeInvalid
	case sdk.KindNotFound:
		writeProblem(w, http.StatusNotFound, serr.Message)
		return OutcomeNotFound
	case sdk.KindRateLimited:
		secs := int(serr.RetryAfter.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeProblem(w, http.StatusTooManyRequests, "")
		return OutcomeUnavailable
	default:
		h.log.ErrorContext(ctx, "ingress: connector failed", "connection", conn.ID, "connector", conn.Connector, "error", err)
		writeProblem(w, http.StatusInternalServerError, "")
		return OutcomePluginError
	}
}

// isTransient reports whether a storage error is about reaching Postgres
// rather than about the rows (which a retry would not fix either way, but a
// 503 with Retry-After slows the provider down while the database is away).
func isTransient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 53: insufficient resources;
		// 57P0x: shutdown / cannot connect now; 40: serialization, deadlock.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "40")
	}
	return true
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most limit bytes of the body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, err
	}
	// A copy: the body outlives the pooled buffer (it goes to the plugin and,
	// through the events, nowhere else, but the copy keeps that reasoning local).
	return bytes.Clone(buf.Bytes()), nil
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	writeProblem(w, http.StatusServiceUnavailable, "")
}

// writeProblem writes an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"about:blank", http.StatusText(status), status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeResponse(w http.ResponseWriter, resp sdk.HTTPResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(cmp.Or(resp.Status, http.StatusOK))
	if len(resp.Body) > 0 {
		_, _ = w.Write(resp.Body)
	}
}

// Limits on what a connector may hand the host, checked by [ValidateEvents].
const (
	maxDedupeKeyBytes = 512
	maxTypeBytes      = 200
)

// ValidateEvents checks the events a connector returned: each has a dedupe key
// and a type the manifest declares, a JSON-object payload and text Postgres
// can store. A failure is the connector's bug; callers answer 500 rather than
// drop events silently.
func ValidateEvents(m sdk.Manifest, events []sdk.Event) error {
	for i, ev := range events {
		if err := validateEvent(m, ev); err != nil {
			return fmt.Errorf("event %d (%.64q): %w", i, ev.DedupeKey, err)
		}
	}
	return nil
}

func validateEvent(m sdk.Manifest, ev sdk.Event) error {
	if ev.DedupeKey == "" {
		return errors.New("empty dedupe key")
	}
	if len(ev.DedupeKey) > maxDedupeKeyBytes {
		return fmt.Errorf("dedupe key longer than %d bytes", maxDedupeKeyBytes)
	}
	if !storableText(ev.DedupeKey) {
		return errors.New("dedupe key is not valid UTF-8 text")
	}
	if ev.Type == "" {
		return errors.New("empty type")
	}
	if len(ev.Type) > maxTypeBytes || !storableText(ev.Type) {
		return errors.New("type is not a short UTF-8 string")
	}
	declared := false
	for _, t := range m.Events {
		if t.Type == ev.Type {
			declared = true
			break
		}
	}
	if !declared {
		return fmt.Errorf("type %q is not declared in the %s manifest", ev.Type, m.Name)
	}
	for k, v := range ev.Correlation {
		if k == "" || !storableText(k) || !storableText(v) {
			return errors.New("correlation keys and values must be non-empty UTF-8 text")
		}
	}
	p := bytes.TrimLeft(ev.Payload, " \t\r\n")
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return errors.New("payload is not a JSON object")
	}
	return nil
}

// storableText reports whether s can go into a Postgres text column: valid
// UTF-8 without NUL.
func storableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
