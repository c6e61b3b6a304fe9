// Package sdk is what a Ponte connector author imports.
//
// A connector is a separate program that the Ponte host starts and talks to over
// gRPC (hashicorp/go-plugin). Authors never see that protocol: they implement the
// plain Go interfaces of this package and hand a constructor to [Serve], so a
// connector's whole main is:
//
//	func main() { sdk.Serve(myconnector.New) }
//
// Every connector implements [Connector] (its manifest). It adds the
// capabilities it has by implementing more interfaces: [WebhookHandler] for
// inbound webhooks, [Lifecycle] for setup at the provider on connect,
// [Handshaker] for providers that verify a webhook URL with a
// GET, [SessionHolder] for long-lived connections (a linked device), [ActionInvoker] for actions the host and workflows call, [Poller] for
// systems without webhooks. Errors that the host must act on are [*Error] values
// made with [Invalid], [Auth], [NotFound], [RateLimited], [Retryable] and
// [Permanent]; they cross the process boundary with their kind intact.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ProtocolVersion is the major version of the connector protocol this SDK
// speaks. The host refuses plugins whose version it does not support.
const ProtocolVersion = 1

// Factory builds a connector. It is what a connector package exports (by
// convention New) and hands to [Serve]; Serve calls it once per plugin process,
// after the host has connected. The [Host] passed in reaches the Ponte host's
// services (emitting events, per-connection state) from inside the plugin;
// keep it in the connector. A Factory should be cheap and make no network
// calls: per-connection work belongs in the calls that carry a [Connection].
// Tests call the Factory themselves with an in-memory Host.
type Factory func(host Host) (Connector, error)

// Connector is what every connector implements: a description of itself.
// Capabilities are added by also implementing [WebhookHandler], [Handshaker],
// [ActionInvoker] or [Poller].
type Connector interface {
	// Manifest describes the connector. It is read once when the plugin starts.
	Manifest() Manifest
}

// WebhookHandler verifies and parses an inbound webhook delivery.
//
// It returns the normalized events found in the delivery (possibly none, for a
// ping), or an *Error: Auth for a bad or missing signature (the host answers 401
// and says nothing of why), Invalid for a body it cannot parse (400).
//
// Verify the signature over the raw req.Body before trusting anything in it
// (see [VerifyHMACSHA256Hex]), and give every event the provider's own event
// id (or another value stable across redeliveries) as DedupeKey: providers
// deliver at least once, and the host stores one event per connection and
// DedupeKey. Other kinds the host answers as follows: NotFound 404,
// RateLimited 429 with Retry-After, anything else 500 (so the provider
// retries). The Message of an Invalid or NotFound error is sent to the
// provider, so it must not carry secrets.
type WebhookHandler interface {
	// HandleWebhook is called for every POST to the connection's webhook URL
	// (a GET goes to [Handshaker]). The host stores the returned events in one
	// transaction and answers 200 only after they are committed.
	HandleWebhook(ctx context.Context, conn Connection, req WebhookRequest) (WebhookResult, error)
}

// Handshaker answers the GET a provider sends to verify a webhook URL (for
// example Meta's hub.challenge). Connectors of providers that never send such
// a GET do not implement it.
type Handshaker interface {
	// Handshake is called for a GET to the connection's webhook URL; the host
	// sends the returned response to the provider as is. Return an Auth error
	// when the request does not prove it comes from the provider (a wrong
	// verify token), so the host answers 401.
	Handshake(ctx context.Context, conn Connection, req WebhookRequest) (HTTPResponse, error)
}

// ActionInvoker runs the actions the connector declares in its manifest.
//
// The call carries an idempotency key that stays the same when the host or a
// workflow retries the same logical call; pass it to the provider where the
// provider supports one.
//
// Map the provider's failures to error kinds, because the host and Temporal's
// retry policy act on them: a 429 to [RateLimited] with the provider's
// Retry-After, 5xx and network errors to [Retryable], 401/403 to [Auth], 404
// to [NotFound], a refused request to [Invalid].
type ActionInvoker interface {
	// Invoke runs call.Action with call.Params (already validated against the
	// action's Params schema) and returns its result as JSON (an object,
	// ideally matching the action's Result schema). The host only sends
	// actions declared in the manifest.
	Invoke(ctx context.Context, call ActionCall) (json.RawMessage, error)
}

// Poller fetches changes from systems that cannot push webhooks. The host stores
// the returned cursor and passes it back on the next poll. Set
// [Manifest].PollInterval to have the host poll each connection that often.
type Poller interface {
	// Poll returns the changes after cursor (an empty cursor on a
	// connection's first poll; the connector decides where that starts) and
	// the cursor to resume from. Events need stable DedupeKeys, as for
	// webhooks: after a crash the host may poll the same cursor again.
	Poll(ctx context.Context, conn Connection, cursor string) (PollResult, error)
}

// Lifecycle is implemented by connectors that must set something up at the
// provider when a connection is made and tear it down when it goes: webhook
// subscriptions registered through the provider's API (Shopify,
// WooCommerce), a long-lived session.
//
// The host calls Connect when a connection is created, when its
// configuration changes and when it is enabled again, and Disconnect when it
// is disabled or deleted. Both must be idempotent: Connect on a connection
// that is already set up makes sure everything is there (creating what is
// missing, fixing what points elsewhere) and Disconnect on one that is not
// succeeds. Keep the provider's ids of what was created (subscription ids)
// in [Host] state.
//
// A Connect error stops the change the user asked for: the host answers the
// API call with it (Auth: the provider refused the credentials; Invalid: the
// configuration is wrong; Retryable: try again later), and a new connection
// is not kept. A Disconnect error is reported and logged, but a deletion
// goes ahead, since a provider that refuses the credentials cannot be
// cleaned up anyway.
type Lifecycle interface {
	// Connect sets the connection up at the provider; conn.WebhookURL is
	// where the provider must send webhooks.
	Connect(ctx context.Context, conn Connection) error
	// Disconnect removes what Connect set up.
	Disconnect(ctx context.Context, conn Connection) error
}

// EventConnectionRevoked is the event type a connector emits when the
// provider says the connection no longer works and will not until the user
// acts (Shopify's app/uninstalled, a revoked token). The host disables the
// connection, records the event's payload "reason" on it, and calls no more
// actions or polls for it. Declare it in the manifest like any other event.
const EventConnectionRevoked = "connection.revoked"

// Host is the Ponte host as a plugin sees it. Calls go back to the host process
// through the plugin broker. A connector receives its Host from its [Factory]
// and uses it for work the host does not ask for: events the connector finds
// on its own (a long-lived stream, a background job) and small values kept
// per connection (a resume token, a provider's subscription id). Values that
// must survive a plugin restart belong here, not in the connector's memory.
// In tests, use an in-memory Host (plugins/testkit provides MemoryHost).
type Host interface {
	// Emit hands events to the host, which stores them durably (deduplicated on
	// the connection and each event's DedupeKey) before it returns.
	Emit(ctx context.Context, connectionID string, events ...Event) error
	// GetState reads a small value the connector stored for a connection.
	// A missing key returns nil and no error.
	GetState(ctx context.Context, connectionID, key string) ([]byte, error)
	// SetState stores a small value (at most [MaxStateSize] bytes) for a
	// connection; larger values are refused with an Invalid error.
	SetState(ctx context.Context, connectionID, key string, value []byte) error
	// UpdateSession reports the state of a session a [SessionHolder] holds
	// for the connection. The host records it on the connection (the
	// latest report wins), keeps every change of State as an event, and
	// relays pairing codes to whoever is pairing the account.
	UpdateSession(ctx context.Context, connectionID string, update SessionUpdate) error
	// Signal relays a short-lived notice of a session to live listeners
	// without storing it (see [Signal]).
	Signal(ctx context.Context, connectionID string, signal Signal) error
}

// Manifest describes a connector to the host and to Ponte's users. Return it
// from [Connector].Manifest; the host reads it once per plugin start, uses
// Config to validate and encrypt connections' configuration and Actions to
// validate parameters, and shows it in its API.
type Manifest struct {
	// Name is the connector's stable identifier, e.g. "stripe": lower-case
	// snake case, since the binary is named ponte-connector-<name>.
	Name string `json:"name"`
	// Version is the connector's own version, e.g. "1.2.0".
	Version string `json:"version"`
	// DisplayName is shown to users, e.g. "Stripe".
	DisplayName string `json:"display_name"`
	// Description says in a sentence what the connector connects.
	Description string `json:"description,omitempty"`
	// Config lists the fields a connection of this connector is configured with.
	Config []ConfigField `json:"config"`
	// Events lists the event types the connector emits.
	Events []EventType `json:"events"`
	// Actions lists the actions the connector offers.
	Actions []Action `json:"actions"`
	// Webhooks is true when the connector receives webhooks.
	Webhooks bool `json:"webhooks"`
	// PollInterval, when non-zero, asks the host to call Poll this often.
	PollInterval time.Duration `json:"poll_interval,omitempty"`
	// Lifecycle tells the host to call Connect and Disconnect for this
	// connector's connections. [Serve] sets it to whether the connector
	// implements [Lifecycle]; the value a connector returns is ignored.
	Lifecycle bool `json:"lifecycle"`
	// Sessions tells the host to hold each connection's session through
	// [SessionHolder]. [Serve] sets it to whether the connector implements
	// SessionHolder; the value a connector returns is ignored.
	Sessions bool `json:"sessions"`
}

// FieldType is the JSON type of a configuration field ([ConfigField].Type).
// The host validates a connection's configuration against it, so the
// connector can decode each field into the matching Go type with
// [Config.Decode].
type FieldType string

// Configuration field types: FieldString decodes into a string, FieldInteger
// into an integer type, FieldBoolean into a bool.
const (
	FieldString  FieldType = "string"
	FieldInteger FieldType = "integer"
	FieldBoolean FieldType = "boolean"
)

// ConfigField describes one configuration field of a connection, listed in
// [Manifest].Config. Mark every credential (API key, signing secret, token)
// Secret.
type ConfigField struct {
	// Name is the key of the field in the configuration object.
	Name string `json:"name"`
	// Type is the JSON type of the value.
	Type FieldType `json:"type"`
	// Description tells the user what to paste here and where to find it.
	Description string `json:"description,omitempty"`
	// Required fields must be present and non-empty.
	Required bool `json:"required,omitempty"`
	// Secret fields are encrypted at rest by the host, never returned by its API
	// and never logged.
	Secret bool `json:"secret,omitempty"`
	// Default is used when the field is absent.
	Default any `json:"default,omitempty"`
	// Enum, when set, lists the allowed values.
	Enum []string `json:"enum,omitempty"`
	// Pattern, when set, is a regular expression a string value must match.
	Pattern string `json:"pattern,omitempty"`
}

// EventType describes an event type a connector emits, listed in
// [Manifest].Events. Events of a type the manifest does not declare are
// refused as a connector bug.
type EventType struct {
	// Type is the event type, e.g. "checkout.session.completed".
	Type string `json:"type"`
	// Description says when the event is emitted.
	Description string `json:"description,omitempty"`
}

// Action describes an action a connector offers, listed in [Manifest].Actions
// and run by the connector's [ActionInvoker].
type Action struct {
	// Name is the action's identifier, e.g. "create_payment_link".
	Name string `json:"name"`
	// Description says what the action does.
	Description string `json:"description,omitempty"`
	// Params is the JSON Schema of the action's parameters. The host validates
	// parameters against it before the call reaches the connector.
	Params json.RawMessage `json:"params"`
	// Result is the JSON Schema of the action's result, for documentation.
	Result json.RawMessage `json:"result,omitempty"`
}

// Connection is one tenant's configured instance of a connector, as the host
// passes it on every call. A connector keeps nothing about a connection that
// it cannot rebuild from this value or from its [Host] state; key anything it
// caches by ID, and log ID and TenantID, never Config.
type Connection struct {
	// ID is the connection's identifier in Ponte.
	ID string
	// TenantID is the tenant that owns the connection.
	TenantID string
	// Config is the connection's configuration as a JSON object, secrets
	// decrypted, validated against the manifest's Config fields and defaults
	// applied.
	Config Config
	// WebhookURL is the URL at which the host receives this connection's
	// webhooks, for [Lifecycle].Connect to register at the provider. Empty
	// when the host has no public URL configured.
	WebhookURL string
}

// Config is a connection's configuration as a JSON object, with the
// [Manifest]'s Config fields as keys. Read it with [Config.Decode].
type Config json.RawMessage

// Decode unmarshals the configuration into v, typically a pointer to a struct
// whose json tags are the manifest's field names. An empty Config leaves v
// unchanged. A failure means the configuration does not match the struct;
// report it as [Permanent], since retrying cannot help.
func (c Config) Decode(v any) error {
	if len(c) == 0 {
		return json.Unmarshal([]byte("{}"), v)
	}
	if err := json.Unmarshal(c, v); err != nil {
		return fmt.Errorf("decoding connection config: %w", err)
	}
	return nil
}

// WebhookRequest is an inbound HTTP request as the host received it, passed to
// [WebhookHandler] and [Handshaker]. Tests build one by hand or load a
// recorded fixture (plugins/testkit).
type WebhookRequest struct {
	// Method is the HTTP method, "POST" or "GET".
	Method string
	// Path is the request path after /hooks/{connection}, often empty.
	Path string
	// Query is the raw query string.
	Query string
	// Headers holds the request headers with canonical names.
	Headers map[string][]string
	// Body is the raw request body, exactly as received, for signature checks.
	Body []byte
	// ReceivedAt is when the host received the request. Check signed
	// timestamps against it rather than time.Now, so a replayed fixture gives
	// the same answer every time.
	ReceivedAt time.Time
}

// Header returns the first value of the named header, matching the name
// case-insensitively, or "" when the header is absent. Use it for signature
// and event-type headers, whatever spelling the provider uses.
func (r WebhookRequest) Header(name string) string {
	for k, v := range r.Headers {
		if len(v) > 0 && equalFold(k, name) {
			return v[0]
		}
	}
	return ""
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// WebhookResult is what a connector found in a webhook delivery, returned by
// [WebhookHandler].HandleWebhook. A delivery with nothing of interest (a ping,
// an event type the connector ignores) returns a zero WebhookResult, so the
// host answers 200 and the provider stops retrying.
type WebhookResult struct {
	// Events are the normalized events, stored by the host in one transaction.
	Events []Event
	// Response, when set, is sent back to the provider instead of the host's
	// default empty 200 (used by providers that expect a particular body).
	Response *HTTPResponse
}

// HTTPResponse is a response the connector wants sent to the provider: the
// answer of a [Handshaker], or [WebhookResult].Response.
type HTTPResponse struct {
	// Status is the HTTP status code; 0 means 200.
	Status int
	// Headers are added to the response.
	Headers map[string]string
	// Body is the response body.
	Body []byte
}

// Event is a normalized event from an external system, returned in a
// [WebhookResult] or [PollResult] or passed to [Host].Emit. The host stores it
// and routes it to the workflows waiting for it.
type Event struct {
	// DedupeKey identifies the event at its source and stays the same when the
	// provider redelivers it (e.g. Stripe's event id). The host stores one event
	// per connection and DedupeKey.
	DedupeKey string `json:"dedupe_key"`
	// Type is the event type, one of those declared in the manifest.
	Type string `json:"type"`
	// OccurredAt is when the event happened at the source.
	OccurredAt time.Time `json:"occurred_at"`
	// Correlation holds the business keys the event concerns (checkout id, order
	// id, the Ponte payment link id found in metadata, ...). The host derives
	// workflow ids from them. Keys are documented per connector.
	Correlation map[string]string `json:"correlation,omitempty"`
	// Payload is the normalized event body as a JSON object.
	Payload json.RawMessage `json:"payload"`
}

// ActionCall is one invocation of a connector action, passed to
// [ActionInvoker].Invoke.
type ActionCall struct {
	// Connection is the connection the action runs for.
	Connection Connection
	// Action is the action's name, one of those declared in the manifest.
	Action string
	// Params are the action's parameters, already validated against its schema.
	Params json.RawMessage
	// IdempotencyKey is stable across retries of the same logical call. Pass
	// it to the provider (e.g. as an Idempotency-Key header) where the
	// provider supports one, so a retried call does not act twice.
	IdempotencyKey string
}

// PollResult is the outcome of one poll, returned by [Poller].Poll.
type PollResult struct {
	// Events found since the cursor passed in.
	Events []Event
	// Cursor to pass to the next poll. When nothing changed, return the
	// cursor you were given: an empty cursor starts again from the beginning.
	Cursor string
	// More is true when the connector has more to fetch right away (it
	// returned a full page); the host then polls again without waiting.
	More bool
}
