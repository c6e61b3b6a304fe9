package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

type requestInfoKey struct{}

// requestInfo travels in the request context so that later layers (the
// authentication middleware) can fill in what the access log reports.
type requestInfo struct {
	id       string
	tenantID string
	keyID    string
}

// RequestID returns the id of the request ctx belongs to, or "". The webhook
// ingress mounted at /hooks can use it in its own logs.
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}

// validRequestID accepts a caller's id when it is short and plain, so it can
// go into logs and headers unescaped.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return hex.EncodeToString(b)
}

// requestID takes the caller's X-Request-Id when it is acceptable, or makes
// one, echoes it, and puts it in the request context.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	c.Header(RequestIDHeader, id)
	ri := &requestInfo{id: id}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestInfoKey{}, ri))
	c.Next()
}

// httpMetrics are the API's Prometheus metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// register registers c, or returns the collector already registered under
// the same description (a second API built on the same registry, as in
// tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	requests, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ponte",
		Name:      "http_requests_total",
		Help:      "HTTP requests answered, by method, route template and status code.",
	}, []string{"method", "route", "status"}))
	if err != nil {
		return nil, err
	}
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ponte",
		Name:      "http_request_duration_seconds",
		Help:      "Time to answer HTTP requests, by method, route template and status code.",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route", "status"}))
	if err != nil {
		return nil, err
	}
	if _, err := register(reg, collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if _, err := register(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration}, nil
}

// routeLabel is the route template ("/v1/connections/:id"), never the raw
// path, so ids do not explode the metrics' cardinality.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// accessLog writes one structured line per request and records the metrics.
// It logs neither bodies nor headers: both can carry keys and secrets.
func (s *server) accessLog(m *httpMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		elapsed := time.Since(start)
		route := routeLabel(c)
		status := c.Writer.Status()
		statusLabel := strconv.Itoa(status)
		m.requests.WithLabelValues(c.Request.Method, route, statusLabel).Inc()
		m.duration.WithLabelValues(c.Request.Method, route, statusLabel).Observe(elapsed.Seconds())

		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case route == "/healthz" || route == "/readyz" || route == "/metrics":
			level = slog.LevelDebug // probes and scrapes would drown the log
		case status < 300 && strings.HasPrefix(route, "/hooks/"):
			// Accepted webhooks come by the thousand per second; the ingress
			// metrics count them, and a line each would cost more than the
			// delivery. Rejections stay at info.
			level = slog.LevelDebug
		}
		if !s.log.Enabled(c.Request.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.Int("bytes", c.Writer.Size()),
			slog.String("remote", c.ClientIP()),
		}
		if ri := infoFrom(c.Request.Context()); ri != nil {
			attrs = append(attrs, slog.String("request_id", ri.id))
			if ri.tenantID != "" {
				attrs = append(attrs, slog.String("tenant", ri.tenantID), slog.String("api_key", ri.keyID))
			}
		}
		s.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	}
}

// recover turns a panic into a logged error and a 500 problem, unless the
// handler chose to abort the connection (http.ErrAbortHandler).
func (s *server) recover(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it this way too
			panic(p)
		}
		s.log.ErrorContext(c.Request.Context(), "panic serving request",
			slog.Any("panic", p), slog.String("request_id", RequestID(c.Request.Context())), slog.String("stack", string(debug.Stack())))
		if !c.Writer.Written() {
			writeProblem(c, http.StatusInternalServerError, "")
		}
		c.Abort()
	}()
	c.Next()
}

func securityHeaders(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Next()
}

// writeProblem answers with an RFC 9457 problem in the same shape huma uses
// for the errors of its operations.
func writeProblem(c *gin.Context, status int, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.JSON(status, &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail})
	c.Abort()
}
