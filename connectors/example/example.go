// Package example is a minimal, complete Ponte connector to copy when writing
// your own. It shows every part a real connector has:
//
//   - a manifest with a secret configuration field (signing_secret), the
//     events it emits and the actions it offers with JSON Schemas;
//   - a webhook handler that verifies an HMAC-SHA256 signature in the
//     X-Example-Signature header (hex) over the raw body, and normalizes the
//     delivery into events with stable dedupe keys;
//   - a handshake that echoes a "challenge" query parameter, the way Meta and
//     others verify a webhook URL;
//   - actions: "echo" returns its parameters (no I/O; the host's round-trip
//     benchmark uses it), "fail" returns the typed error it is asked for (to
//     test how errors cross the plugin boundary), "last_delivery" reads what
//     the webhook handler stored in the host's per-connection state,
//     "test_event" emits an event through the host;
//   - polling (poll.go): a connection with a feed_url is polled by the host
//     every [DefaultPollInterval]; the connector fetches the orders changed
//     since its cursor from an HTTP JSON feed and returns them as events with
//     stable dedupe keys, for systems that cannot send webhooks.
//
// The binary is built from cmd/ponte-connector-example, whose main is one
// line: sdk.Serve(example.New).
//
// The webhook body this connector understands is:
//
//	{"id": "evt_123", "type": "order.created", "occurred_at": "2026-01-02T15:04:05Z",
//	 "data": {"order_id": "ord_9", ...}}
package example

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Name is the connector's name; the binary is ponte-connector-<Name>.
const Name = "example"

// SignatureHeader carries the hex HMAC-SHA256 of the raw body under the
// connection's signing secret.
const SignatureHeader = "X-Example-Signature"

// stateLastDelivery is the host state key under which the webhook handler
// records the last verified delivery.
const stateLastDelivery = "last_delivery"

// Connector is the example connector. It holds no per-connection state in
// memory: everything about a connection comes with each call or lives in the
// host's state, so the host can restart the plugin at any time.
type Connector struct {
	host       sdk.Host
	httpClient *http.Client
}

// The capabilities the connector has, checked by the compiler.
var (
	_ sdk.Connector      = (*Connector)(nil)
	_ sdk.WebhookHandler = (*Connector)(nil)
	_ sdk.Handshaker     = (*Connector)(nil)
	_ sdk.ActionInvoker  = (*Connector)(nil)
	_ sdk.Poller         = (*Connector)(nil)
)

// New builds the connector; it is the sdk.Factory handed to sdk.Serve.
func New(host sdk.Host) (sdk.Connector, error) {
	return &Connector{host: host, httpClient: newHTTPClient()}, nil
}

// Config is a connection's configuration.
type Config struct {
	// SigningSecret signs webhook deliveries.
	SigningSecret string `json:"signing_secret"`
	// FeedURL, when set, is the order feed the host polls (see poll.go).
	FeedURL string `json:"feed_url"`
	// FeedToken, when set, is sent as a bearer token to the feed.
	FeedToken string `json:"feed_token"`
	// FeedPageSize is how many items one poll asks the feed for.
	FeedPageSize int `json:"feed_page_size"`
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		DisplayName:  "Example",
		Description:  "A minimal connector showing webhooks, handshakes, actions, host state and polling.",
		Webhooks:     true,
		PollInterval: DefaultPollInterval,
		Config: []sdk.ConfigField{
			{
				Name:        "signing_secret",
				Type:        sdk.FieldString,
				Description: "The secret the provider signs webhook deliveries with (HMAC-SHA256, hex, in X-Example-Signature).",
				Required:    true,
				Secret:      true,
			},
			{
				Name:        "feed_url",
				Type:        sdk.FieldString,
				Description: "URL of a JSON feed of orders to poll for changes (for systems that cannot send webhooks); leave empty to receive webhooks only.",
				Pattern:     `^https?://[^\s]+$`,
			},
			{
				Name:        "feed_token",
				Type:        sdk.FieldString,
				Description: "Token sent to the feed as 'Authorization: Bearer ...', when the feed needs one.",
				Secret:      true,
			},
			{
				Name:        "feed_page_size",
				Type:        sdk.FieldInteger,
				Description: "How many orders one poll asks the feed for (1 to 1000; 100 when not set).",
			},
		},
		Events: []sdk.EventType{
			{Type: "order.created", Description: "An order was placed."},
			{Type: "order.updated", Description: "An order changed."},
			{Type: "connection.test", Description: "A test event sent with the test_event action."},
		},
		Actions: []sdk.Action{
			{
				Name:        "echo",
				Description: "Returns its parameters unchanged.",
				Params:      json.RawMessage(`{"type":"object"}`),
				Result:      json.RawMessage(`{"type":"object"}`),
			},
			{
				Name:        "fail",
				Description: "Returns the typed error described by its parameters.",
				Params: json.RawMessage(`{
					"type": "object",
					"required": ["kind"],
					"properties": {
						"kind": {"enum": ["unknown", "invalid", "auth", "not_found", "rate_limited", "retryable", "permanent"]},
						"message": {"type": "string"},
						"code": {"type": "string"},
						"retry_after_ms": {"type": "integer", "minimum": 0}
					},
					"additionalProperties": false
				}`),
			},
			{
				Name:        "last_delivery",
				Description: "Returns the id and time of the last verified webhook delivery, or found=false.",
				Params:      json.RawMessage(`{"type":"object","additionalProperties":false}`),
				Result: json.RawMessage(`{
					"type": "object",
					"properties": {
						"found": {"type": "boolean"},
						"id": {"type": "string"},
						"received_at": {"type": "string", "format": "date-time"}
					}
				}`),
			},
			{
				Name:        "test_event",
				Description: "Emits a connection.test event through the host, to check that events from this connection are stored and routed. Calls with the same idempotency key emit one event.",
				Params: json.RawMessage(`{
					"type": "object",
					"properties": {"note": {"type": "string", "maxLength": 200}},
					"additionalProperties": false
				}`),
				Result: json.RawMessage(`{"type":"object","properties":{"dedupe_key":{"type":"string"}}}`),
			},
		},
	}
}

// delivery is the provider's webhook body.
type delivery struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// lastDelivery is what the webhook handler keeps in host state.
type lastDelivery struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
}

// HandleWebhook verifies the signature, then turns the delivery into an event.
// Delivery types the manifest does not declare are acknowledged and ignored,
// so a provider adding event types does not make deliveries fail.
func (c *Connector) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	var cfg Config
	if err := conn.Config.Decode(&cfg); err != nil {
		return sdk.WebhookResult{}, sdk.Permanent("reading the connection config: %v", err)
	}
	// Verify before parsing: nothing about an unauthenticated body is trusted,
	// and the error says nothing of why verification failed.
	if !sdk.VerifyHMACSHA256Hex([]byte(cfg.SigningSecret), req.Body, req.Header(SignatureHeader)) {
		return sdk.WebhookResult{}, sdk.Auth("invalid webhook signature")
	}
	var d delivery
	if err := json.Unmarshal(req.Body, &d); err != nil {
		return sdk.WebhookResult{}, sdk.Invalid("decoding the delivery: %v", err)
	}
	if d.ID == "" {
		return sdk.WebhookResult{}, sdk.Invalid("the delivery has no id")
	}

	// Remember the last verified delivery. Failing to do so must not fail the
	// delivery (the events matter more), so the error is only logged; the next
	// delivery tries again.
	b, _ := json.Marshal(lastDelivery{ID: d.ID, ReceivedAt: req.ReceivedAt.UTC()})
	if err := c.host.SetState(ctx, conn.ID, stateLastDelivery, b); err != nil {
		slog.Warn("recording the last delivery", "connection", conn.ID, "error", err)
	}

	switch d.Type {
	case "order.created", "order.updated":
	default:
		return sdk.WebhookResult{}, nil
	}
	occurred := d.OccurredAt
	if occurred.IsZero() {
		occurred = req.ReceivedAt
	}
	payload := d.Data
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	}
	var ids struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(payload, &ids)
	corr := map[string]string{}
	if ids.OrderID != "" {
		corr["order_id"] = ids.OrderID
	}
	return sdk.WebhookResult{Events: []sdk.Event{{
		// The provider's delivery id is stable across its retries, so it is
		// the dedupe key.
		DedupeKey:   d.ID,
		Type:        d.Type,
		OccurredAt:  occurred.UTC(),
		Correlation: corr,
		Payload:     payload,
	}}}, nil
}

// Handshake echoes the challenge query parameter. A request without one is
// refused as Invalid.
func (c *Connector) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		return sdk.HTTPResponse{}, sdk.Invalid("parsing the query: %v", err)
	}
	challenge := q.Get("challenge")
	if challenge == "" {
		return sdk.HTTPResponse{}, sdk.Invalid("no challenge in the handshake")
	}
	return sdk.HTTPResponse{
		Status:  200,
		Headers: map[string]string{"Content-Type": "text/plain"},
		Body:    []byte(challenge),
	}, nil
}

// Invoke runs an action.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	switch call.Action {
	case "echo":
		if len(call.Params) == 0 {
			return json.RawMessage(`{}`), nil
		}
		return call.Params, nil
	case "fail":
		return nil, failure(call.Params)
	case "last_delivery":
		return c.lastDelivery(ctx, call.Connection)
	case "test_event":
		return c.testEvent(ctx, call)
	}
	// The sdk refuses undeclared actions before they get here.
	return nil, sdk.Invalid("unknown action %q", call.Action)
}

// failure builds the error the "fail" action was asked for.
func failure(params json.RawMessage) error {
	var p struct {
		Kind         string `json:"kind"`
		Message      string `json:"message"`
		Code         string `json:"code"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return sdk.Invalid("decoding parameters: %v", err)
	}
	msg := p.Message
	if msg == "" {
		msg = "failing as asked"
	}
	return &sdk.Error{
		Kind:       sdk.ParseErrorKind(p.Kind),
		Message:    msg,
		Code:       p.Code,
		RetryAfter: time.Duration(p.RetryAfterMS) * time.Millisecond,
	}
}

func (c *Connector) lastDelivery(ctx context.Context, conn sdk.Connection) (json.RawMessage, error) {
	b, err := c.host.GetState(ctx, conn.ID, stateLastDelivery)
	if err != nil {
		return nil, fmt.Errorf("reading the last delivery: %w", err)
	}
	if b == nil {
		return json.RawMessage(`{"found":false}`), nil
	}
	var d lastDelivery
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, sdk.Permanent("decoding the stored last delivery: %v", err)
	}
	return json.Marshal(struct {
		Found      bool      `json:"found"`
		ID         string    `json:"id"`
		ReceivedAt time.Time `json:"received_at"`
	}{true, d.ID, d.ReceivedAt})
}

// testEvent emits a connection.test event through the host. The idempotency
// key is the dedupe key, so a retried call does not store a second event.
func (c *Connector) testEvent(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if call.IdempotencyKey == "" {
		return nil, sdk.Invalid("test_event needs an idempotency key")
	}
	var p struct {
		Note string `json:"note"`
	}
	if len(call.Params) > 0 {
		if err := json.Unmarshal(call.Params, &p); err != nil {
			return nil, sdk.Invalid("decoding parameters: %v", err)
		}
	}
	payload, _ := json.Marshal(map[string]string{"note": p.Note})
	key := "test:" + call.IdempotencyKey
	err := c.host.Emit(ctx, call.Connection.ID, sdk.Event{
		DedupeKey:  key,
		Type:       "connection.test",
		OccurredAt: time.Now().UTC(),
		Payload:    payload,
	})
	if err != nil {
		return nil, fmt.Errorf("emitting the test event: %w", err)
	}
	return json.Marshal(map[string]string{"dedupe_key": key})
}
