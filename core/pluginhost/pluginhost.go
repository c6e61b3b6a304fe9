// Package pluginhost runs connector plugins for the Ponte host: it discovers
// plugin binaries, starts them with hashicorp/go-plugin, negotiates the protocol
// version, supervises them (health checks, restart with backoff after a crash)
// and gives the rest of the host a plain Go view of each one.
package pluginhost

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// ErrUnknownConnector is returned for a connector name no plugin provides.
var ErrUnknownConnector = errors.New("unknown connector")

// ErrUnavailable is returned while a connector's plugin is not running (crashed
// and not yet restarted, or failing its health checks). Callers answering a
// provider turn it into a 503 so the provider retries.
var ErrUnavailable = errors.New("connector plugin unavailable")

// Client is a running connector as the host uses it. Errors the connector
// returned arrive as *sdk.Error with their kind intact; a transport failure
// (plugin died mid-call) arrives wrapped with ErrUnavailable.
type Client interface {
	Manifest() sdk.Manifest
	HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error)
	Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error)
	// Invoke validates the call's parameters (see ValidateParams) and runs
	// the action.
	Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error)
	// ValidateParams checks parameters against the action's schema as Invoke
	// does, without running it: an Invalid *sdk.Error naming each failing
	// location, or nil.
	ValidateParams(action string, params json.RawMessage) error
	Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error)
	// Connect and Disconnect run the connector's sdk.Lifecycle (a no-op for
	// connectors without one).
	Connect(ctx context.Context, conn sdk.Connection) error
	Disconnect(ctx context.Context, conn sdk.Connection) error
	// OpenSession and CloseSession run the connector's sdk.SessionHolder.
	// Sessions live in the plugin process: after a plugin restart (see
	// Options.OnStart) none is open.
	OpenSession(ctx context.Context, conn sdk.Connection) error
	CloseSession(ctx context.Context, connectionID string) error
}

// Registry is the set of installed connectors.
type Registry interface {
	// Connector returns the client for the named connector, ErrUnknownConnector
	// or ErrUnavailable.
	Connector(name string) (Client, error)
	// Manifests lists the installed connectors' manifests, sorted by name.
	Manifests() []sdk.Manifest
	// Status reports each plugin's state for /readyz.
	Status() []PluginStatus
}

// PluginStatus is one plugin's state as the supervisor sees it.
type PluginStatus struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Path     string `json:"path"`
	Running  bool   `json:"running"`
	Restarts int    `json:"restarts"`
	PID      int    `json:"pid,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Services are the host services plugins call back into through the go-plugin
// broker. connector is the name of the calling plugin, so an implementation can
// refuse a plugin touching another connector's connections.
type Services interface {
	Emit(ctx context.Context, connector, connectionID string, events []sdk.Event) error
	GetState(ctx context.Context, connector, connectionID, key string) ([]byte, error)
	SetState(ctx context.Context, connector, connectionID, key string, value []byte) error
	// UpdateSession and Signal serve sdk.Host's methods of the same names
	// for session connectors.
	UpdateSession(ctx context.Context, connector, connectionID string, update sdk.SessionUpdate) error
	Signal(ctx context.Context, connector, connectionID string, signal sdk.Signal) error
}
