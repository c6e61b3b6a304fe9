// Package server assembles the Ponte host: store, plugin host, webhook ingress,
// dispatcher, Temporal worker and REST API, and runs them until the context
// ends. `ponte serve` is a thin wrapper around Run.
package server

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// Role is one part of the host that a process can run. A single process runs
// all of them by default; behind a load balancer they can be split.
type Role string

// Roles a process can run.
const (
	// RoleAPI serves the REST API, its docs and the OpenAPI document.
	RoleAPI Role = "api"
	// RoleIngress serves provider webhooks at /hooks/{connection}.
	RoleIngress Role = "ingress"
	// RoleWorker runs the Temporal worker and the event dispatcher.
	RoleWorker Role = "worker"
)

// AllRoles lists every role, the default.
var AllRoles = []Role{RoleAPI, RoleIngress, RoleWorker}

// Config is everything `ponte serve` needs, read from the environment by
// ConfigFromEnv.
type Config struct {
	// DatabaseURL is the Postgres connection URL (DATABASE_URL).
	DatabaseURL string
	// TemporalAddress is the Temporal frontend host:port (TEMPORAL_ADDRESS).
	TemporalAddress string
	// TemporalNamespace is the Temporal namespace (TEMPORAL_NAMESPACE, "default").
	TemporalNamespace string
	// MasterKey is the raw PONTE_MASTER_KEY value (base64 or hex of 32 bytes)
	// that seals connection secrets.
	MasterKey string
	// PluginDir holds the connector plugin binaries (PONTE_PLUGIN_DIR).
	PluginDir string
	// HTTPAddr is where the HTTP server listens (PONTE_HTTP_ADDR).
	HTTPAddr string
	// PublicURL is the externally reachable base URL, used in the webhook URLs
	// shown to users (PONTE_PUBLIC_URL; defaults to http://HTTPAddr).
	PublicURL string
	// TaskQueue is the Temporal task queue of Ponte's workflows
	// (PONTE_TASK_QUEUE, "ponte"). Deployments sharing one Temporal namespace
	// give each Ponte installation its own.
	TaskQueue string
	// Roles are the parts this process runs (PONTE_ROLES, comma separated).
	Roles []Role
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// PaymentLinkChat configures the WhatsApp messages of payment links
	// created with a chat: the approved utility template used outside the
	// 24-hour window (PONTE_PAYMENT_LINK_TEMPLATE, _LANGUAGE) and the
	// confirmation text (PONTE_PAYMENT_LINK_PAID_TEXT).
	PaymentLinkChat paymentlink.ChatConfig
	// MessageUnknownAfter is how long a send whose outcome is unknown (the
	// process died between the provider call and recording its answer) waits
	// for a status webhook carrying its ledger id before it is marked
	// unknown (PONTE_MESSAGE_UNKNOWN_AFTER, a Go duration; default 10m).
	MessageUnknownAfter time.Duration
	// IngressBusyAbove is the moving average of webhook answer times above
	// which the worker on the same node gives way to ingress, applying
	// stored events more slowly until answers are quick again
	// (PONTE_INGRESS_BUSY_ABOVE, a Go duration; default
	// ingress.DefaultBusyAbove). Lower favours the providers' answer times,
	// higher how soon contacts and workflows see the events.
	IngressBusyAbove time.Duration
	// PprofAddr, when set (PONTE_PPROF_ADDR, e.g. 127.0.0.1:6060), serves Go's
	// profiler there, on a listener of its own so it is never exposed with the API.
	PprofAddr string
	// LogLevel is debug, info, warn or error (PONTE_LOG_LEVEL).
	LogLevel string
	// WorkflowCacheSize is how many workflows the Temporal worker keeps in
	// memory between their tasks (PONTE_WORKFLOW_CACHE_SIZE; default
	// DefaultWorkflowCacheSize). A workflow out of the cache is rebuilt from
	// its history when its next task comes; carts and orders wait hours
	// between tasks, so caching them all costs memory and saves little.
	WorkflowCacheSize int
	// NodeURL is where other nodes reach this one for actions of sessions it
	// holds (PONTE_NODE_URL; default http://HTTPAddr). Every node of an
	// installation must reach every other at its NodeURL.
	NodeURL string
	// Sessions configures the linked-device session leases and cleanup
	// (PONTE_SESSION_LEASE_TTL, PONTE_SESSION_CLEANUP_AFTER,
	// PONTE_SESSION_PHONE_AWAY_WARNING; Go durations).
	Sessions SessionsConfig
}

// SessionsConfig tunes the session leases; zero values take the
// core/sessions defaults.
type SessionsConfig struct {
	// LeaseTTL is how long a node's lease on a session lasts unrenewed: a
	// dead node's sessions move after at most about this long.
	LeaseTTL time.Duration
	// CleanupAfter is how long a session may stay disconnected or logged
	// out before it is cleaned up (7 days).
	CleanupAfter time.Duration
	// PhoneAwayWarning is how long the account's phone may stay unseen
	// before a warning (12 days; WhatsApp logs devices out after 14).
	PhoneAwayWarning time.Duration
}

// DefaultWorkflowCacheSize keeps ponte serve under 300 MB with 10,000 open
// cart workflows (the SDK's default, 10,000, took it past 550 MB).
const DefaultWorkflowCacheSize = 1000

// ConfigFromEnv reads the configuration from the environment, with the
// defaults of a local setup.
func ConfigFromEnv() Config {
	cfg := Config{
		DatabaseURL:         os.Getenv("DATABASE_URL"),
		TemporalAddress:     envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace:   envOr("TEMPORAL_NAMESPACE", "default"),
		MasterKey:           os.Getenv("PONTE_MASTER_KEY"),
		PluginDir:           envOr("PONTE_PLUGIN_DIR", "bin/plugins"),
		HTTPAddr:            envOr("PONTE_HTTP_ADDR", "127.0.0.1:8080"),
		PublicURL:           os.Getenv("PONTE_PUBLIC_URL"),
		TaskQueue:           envOr("PONTE_TASK_QUEUE", "ponte"),
		ShutdownTimeout:     15 * time.Second,
		LogLevel:            envOr("PONTE_LOG_LEVEL", "info"),
		PprofAddr:           os.Getenv("PONTE_PPROF_ADDR"),
		MessageUnknownAfter: durationEnv("PONTE_MESSAGE_UNKNOWN_AFTER"),
		IngressBusyAbove:    durationEnv("PONTE_INGRESS_BUSY_ABOVE"),
		NodeURL:             os.Getenv("PONTE_NODE_URL"),
		Sessions: SessionsConfig{
			LeaseTTL:         durationEnv("PONTE_SESSION_LEASE_TTL"),
			CleanupAfter:     durationEnv("PONTE_SESSION_CLEANUP_AFTER"),
			PhoneAwayWarning: durationEnv("PONTE_SESSION_PHONE_AWAY_WARNING"),
		},
		WorkflowCacheSize: intEnv("PONTE_WORKFLOW_CACHE_SIZE", DefaultWorkflowCacheSize),
		PaymentLinkChat: paymentlink.ChatConfig{
			LinkTemplate:         os.Getenv("PONTE_PAYMENT_LINK_TEMPLATE"),
			LinkTemplateLanguage: envOr("PONTE_PAYMENT_LINK_TEMPLATE_LANGUAGE", "en"),
			PaidText:             os.Getenv("PONTE_PAYMENT_LINK_PAID_TEXT"),
		},
	}
	if roles := os.Getenv("PONTE_ROLES"); roles != "" {
		cfg.Roles, _ = ParseRoles(roles) // Validate reports a bad value
		if cfg.Roles == nil {
			cfg.Roles = []Role{Role("invalid:" + roles)}
		}
	}
	return cfg
}

// ParseRoles parses a comma-separated list of roles.
func ParseRoles(s string) ([]Role, error) {
	var roles []Role
	for _, part := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(part))
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (want api, ingress or worker)", r)
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, errors.New("no roles given")
	}
	return roles, nil
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	var problems []string
	if c.DatabaseURL == "" {
		problems = append(problems, "DATABASE_URL is not set")
	}
	if c.MasterKey == "" {
		problems = append(problems, "PONTE_MASTER_KEY is not set (32 random bytes, base64; `ponte dev` generates one)")
	}
	if len(c.Roles) == 0 {
		c.Roles = AllRoles
	}
	for _, r := range c.Roles {
		if !slices.Contains(AllRoles, r) {
			problems = append(problems, fmt.Sprintf("PONTE_ROLES: unknown role %q", strings.TrimPrefix(string(r), "invalid:")))
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.NodeURL == "" {
		c.NodeURL = "http://" + c.HTTPAddr
	}
	c.NodeURL = strings.TrimRight(c.NodeURL, "/")
	for _, key := range []string{"PONTE_MESSAGE_UNKNOWN_AFTER", "PONTE_INGRESS_BUSY_ABOVE", "PONTE_SESSION_LEASE_TTL", "PONTE_SESSION_CLEANUP_AFTER", "PONTE_SESSION_PHONE_AWAY_WARNING"} {
		if v := os.Getenv(key); v != "" {
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				problems = append(problems, key+": want a positive Go duration such as 10m")
			}
		}
	}
	if c.TaskQueue == "" {
		c.TaskQueue = "ponte"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Has reports whether the process runs role r.
func (c Config) Has(r Role) bool { return slices.Contains(c.Roles, r) }

// durationEnv parses a Go duration from the environment; a missing or
// unparsable value is zero (the default), and Validate reports the latter.
func durationEnv(key string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(key))
	return d
}

func intEnv(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
