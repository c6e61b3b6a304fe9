// Package invoke runs connector actions on behalf of a tenant: it checks that
// the connection is the tenant's and active and that the connector declares
// the action, and the plugin host checks the parameters against the action's
// JSON Schema (pluginhost.Client), before the call reaches the plugin.
//
// Checking in the host means a workflow or an API caller gets an sdk.Invalid
// error with a precise message without a round trip to the plugin, and a
// connector never sees parameters its manifest does not allow.
package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Connections resolves a connection with its decrypted configuration.
// *store.Store and *store.ConnectionCache implement it.
type Connections = store.ConnectionResolver

// Connectors finds the running plugin of a connector. pluginhost.Registry
// implements it.
type Connectors interface {
	Connector(name string) (pluginhost.Client, error)
}

// Call is one action invocation asked for by a tenant.
type Call struct {
	// TenantID is the tenant the call runs for; the connection must be its own.
	TenantID string
	// ConnectionID is the connection whose connector runs the action.
	ConnectionID string
	// Action is the action's name as the connector's manifest declares it.
	Action string
	// Params are the action's parameters as a JSON object (null or empty means {}).
	Params json.RawMessage
	// IdempotencyKey is passed to the connector unchanged; it must stay the
	// same when the same logical call is retried.
	IdempotencyKey string
}

// Invoker runs connector actions for tenants. It is safe for concurrent use.
type Invoker struct {
	conns      Connections
	connectors Connectors

	owners    SessionOwners // nil: every call runs locally
	forwarder *Forwarder
}

// New returns an Invoker resolving connections with conns and plugins with
// connectors.
//
// Resolved connections are reused for store.DefaultConnectionCacheTTL (unless
// conns is already a *store.ConnectionCache): a campaign invokes the same
// connection a thousand times a second, and reading and decrypting its
// configuration on every call cost a database round trip per message. The
// price, the same as webhook ingress pays, is that a connection disabled or
// reconfigured is seen by calls up to that long later.
func New(conns Connections, connectors Connectors) *Invoker {
	if _, cached := conns.(*store.ConnectionCache); !cached {
		conns = store.NewConnectionCache(conns, store.DefaultConnectionCacheTTL)
	}
	return &Invoker{conns: conns, connectors: connectors}
}

// Invoke checks the call and runs it through the connector's plugin.
//
// Errors keep their type so callers can decide: *sdk.Error (KindNotFound for a
// connection that does not exist or is another tenant's, KindInvalid for a
// disabled connection, an undeclared action or parameters that fail the
// schema, and whatever kind the connector returned), or an error wrapping
// pluginhost.ErrUnavailable or pluginhost.ErrUnknownConnector when the plugin
// cannot be reached.
func (inv *Invoker) Invoke(ctx context.Context, call Call) (json.RawMessage, error) {
	p, err := inv.prepare(ctx, call)
	if err != nil {
		return nil, err
	}
	if out, forwarded, err := inv.routed(ctx, call, p); forwarded {
		if err != nil {
			return nil, fmt.Errorf("invoking %s action %s on connection %s: %w", p.connector, call.Action, call.ConnectionID, err)
		}
		return out, nil
	}
	return inv.run(ctx, call, p)
}

// run calls the local plugin.
func (inv *Invoker) run(ctx context.Context, call Call, p prepared) (json.RawMessage, error) {
	out, err := p.client.Invoke(ctx, sdk.ActionCall{
		Connection:     p.conn,
		Action:         call.Action,
		Params:         p.params,
		IdempotencyKey: call.IdempotencyKey,
	})
	if err != nil {
		return nil, fmt.Errorf("invoking %s action %s on connection %s: %w", p.connector, call.Action, call.ConnectionID, err)
	}
	return out, nil
}

// Validate runs every check Invoke runs (connection, action, parameters)
// without calling the connector, so a caller can refuse a request up front.
func (inv *Invoker) Validate(ctx context.Context, call Call) error {
	p, err := inv.prepare(ctx, call)
	if err != nil {
		return err
	}
	return p.client.ValidateParams(call.Action, p.params)
}

// prepared is a call that passed every check.
type prepared struct {
	conn      sdk.Connection
	connector string
	client    pluginhost.Client
	params    json.RawMessage
}

func (inv *Invoker) prepare(ctx context.Context, call Call) (prepared, error) {
	if call.TenantID == "" || call.ConnectionID == "" {
		return prepared{}, sdk.Invalid("a tenant and a connection are required")
	}
	conn, cfg, err := inv.conns.ResolvedConnection(ctx, call.ConnectionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && conn.TenantID != call.TenantID) {
		// Another tenant's connection looks exactly like a missing one.
		return prepared{}, &sdk.Error{Kind: sdk.KindNotFound,
			Message: fmt.Sprintf("connection %s not found", call.ConnectionID), Err: store.ErrNotFound}
	}
	if err != nil {
		return prepared{}, fmt.Errorf("resolving connection %s: %w", call.ConnectionID, err)
	}
	if conn.Status != "active" {
		return prepared{}, sdk.Invalid("connection %s is %s", call.ConnectionID, conn.Status)
	}
	client, err := inv.connectors.Connector(conn.Connector)
	if err != nil {
		return prepared{}, fmt.Errorf("finding connector %s: %w", conn.Connector, err)
	}
	manifest := client.Manifest()
	var action *sdk.Action
	for i := range manifest.Actions {
		if manifest.Actions[i].Name == call.Action {
			action = &manifest.Actions[i]
			break
		}
	}
	if action == nil {
		return prepared{}, sdk.Invalid("connector %s has no action %q", conn.Connector, call.Action)
	}
	params := call.Params
	if len(bytes.TrimSpace(params)) == 0 || bytes.Equal(bytes.TrimSpace(params), []byte("null")) {
		params = json.RawMessage("{}")
	}
	// The parameters are checked against the action's schema by the client,
	// in Invoke or ValidateParams: once per call.
	return prepared{
		conn:      sdk.Connection{ID: conn.ID, TenantID: conn.TenantID, Config: cfg},
		connector: conn.Connector,
		client:    client,
		params:    params,
	}, nil
}
