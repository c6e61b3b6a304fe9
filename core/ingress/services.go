package ingress

import (
	"context"
	"errors"
	"strings"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// MaxStateBytes is the largest value a connector may keep under one state key.
const MaxStateBytes = store.MaxStateValueSize

// ReservedStatePrefix starts the state keys the host keeps for itself on a
// connection (the poller's cursor and schedule). Plugins can neither read nor
// write them, so a connector cannot move its own cursor behind the host's back.
const ReservedStatePrefix = "ponte."

// StateStore keeps per-connection state; *store.Store implements it.
type StateStore interface {
	GetState(ctx context.Context, connectionID, key string) ([]byte, error)
	SetState(ctx context.Context, connectionID, key string, value []byte) error
	DeleteState(ctx context.Context, connectionID, key string) error
}

// Services is the host side of the plugin host service: what a plugin calls
// to push events (a linked-device session, a poller) and to keep small
// per-connection state. Every call is checked against the calling connector,
// so one plugin cannot write events or read state of another connector's
// connections.
type Services struct {
	conns      ConnectionResolver
	connectors Connectors
	sink       EventSink
	state      StateStore
	sessions   SessionGate
}

// SessionGate is the session side of the host services: the node's lease
// holder (core/sessions). Reports of a session connector are accepted only
// for sessions this node holds.
type SessionGate interface {
	// CheckHeld returns nil when this node holds connectionID's session now,
	// else an *sdk.Error with code sdk.CodeSessionNotHeld.
	CheckHeld(ctx context.Context, connectionID string) error
	// UpdateSession records a session report (held sessions only).
	UpdateSession(ctx context.Context, conn store.Connection, update sdk.SessionUpdate) error
	// Signal relays a signal to live listeners (held sessions only).
	Signal(ctx context.Context, conn store.Connection, signal sdk.Signal) error
}

// SetSessions sets the session gate. Like SetConnectors it breaks a cycle
// (the lease holder needs the plugin host, which needs these services); call
// it before any plugin runs. Without one, session reports are refused.
func (s *Services) SetSessions(g SessionGate) { s.sessions = g }

var _ pluginhost.Services = (*Services)(nil)

// NewServices returns the host services. Events go through sink (the same
// Committer ingress uses); state lives in the store's connection_state.
// connectors may be nil until the plugin host exists (see [Services.SetConnectors]).
func NewServices(conns ConnectionResolver, connectors Connectors, sink EventSink, state StateStore) *Services {
	return &Services{conns: conns, connectors: connectors, sink: sink, state: state}
}

// SetConnectors sets the registry used to read manifests. The plugin host
// needs the Services to start plugins and the Services need the plugin host
// to validate events; this breaks the cycle. Call it before any plugin runs.
func (s *Services) SetConnectors(c Connectors) { s.connectors = c }

// owned returns the connection if it exists and belongs to connector.
// Another connector's connection is reported exactly like a missing one.
func (s *Services) owned(ctx context.Context, connector, connectionID string) (store.Connection, error) {
	conn, _, err := s.conns.ResolvedConnection(ctx, connectionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && conn.Connector != connector) {
		return store.Connection{}, sdk.NotFound("connection %s not found", connectionID)
	}
	if err != nil {
		return store.Connection{}, sdk.Retryable("resolving connection %s: %v", connectionID, err)
	}
	return conn, nil
}

// Emit stores events a plugin pushes, exactly as if they had arrived in a
// webhook: validated against the connector's manifest, deduplicated, durable
// when Emit returns.
func (s *Services) Emit(ctx context.Context, connector, connectionID string, events []sdk.Event) error {
	conn, err := s.owned(ctx, connector, connectionID)
	if err != nil {
		return err
	}
	if conn.Status != "active" {
		return sdk.Permanent("connection %s is %s", connectionID, conn.Status)
	}
	if s.connectors == nil {
		return sdk.Retryable("host is starting")
	}
	client, err := s.connectors.Connector(connector)
	if err != nil {
		return sdk.Retryable("reading the %s manifest: %v", connector, err)
	}
	if err := ValidateEvents(client.Manifest(), events); err != nil {
		return sdk.Invalid("emitting events: %v", err)
	}
	if client.Manifest().Sessions {
		// A node that lost the session's lease must not add to it. Events
		// are deduplicated, so a stale node repeating what the new holder
		// also stores changes nothing; this stops it adding anything else.
		if s.sessions == nil {
			return sdk.Permanent("this host holds no sessions")
		}
		if err := s.sessions.CheckHeld(ctx, connectionID); err != nil {
			return err
		}
	}
	if _, err := s.sink.Commit(ctx, conn.TenantID, conn.ID, events); err != nil {
		return &sdk.Error{Kind: sdk.KindRetryable, Message: "storing emitted events failed", Err: err}
	}
	return nil
}

// GetState reads a value a connector stored; a missing key is nil, nil.
func (s *Services) GetState(ctx context.Context, connector, connectionID, key string) ([]byte, error) {
	if err := checkPluginStateKey(key); err != nil {
		return nil, err
	}
	if _, err := s.owned(ctx, connector, connectionID); err != nil {
		return nil, err
	}
	v, err := s.state.GetState(ctx, connectionID, key)
	if err != nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Message: "reading connection state failed", Err: err}
	}
	return v, nil
}

// SetState stores a value of at most [MaxStateBytes] under key. A nil value
// deletes the key.
func (s *Services) SetState(ctx context.Context, connector, connectionID, key string, value []byte) error {
	if err := checkPluginStateKey(key); err != nil {
		return err
	}
	if len(value) > MaxStateBytes {
		return sdk.Invalid("state value is %d bytes, the limit is %d", len(value), MaxStateBytes)
	}
	if _, err := s.owned(ctx, connector, connectionID); err != nil {
		return err
	}
	var err error
	if value == nil {
		err = s.state.DeleteState(ctx, connectionID, key)
	} else {
		err = s.state.SetState(ctx, connectionID, key, value)
	}
	if errors.Is(err, store.ErrNotFound) {
		return sdk.NotFound("connection %s not found", connectionID)
	}
	if err != nil {
		return &sdk.Error{Kind: sdk.KindRetryable, Message: "writing connection state failed", Err: err}
	}
	return nil
}

// checkPluginStateKey refuses keys a plugin may not use: malformed ones and
// the host's own.
func checkPluginStateKey(key string) error {
	if key == "" || len(key) > 200 || !storableText(key) {
		return sdk.Invalid("state key must be 1 to 200 bytes of UTF-8 text")
	}
	if strings.HasPrefix(key, ReservedStatePrefix) {
		return sdk.Invalid("state keys starting with %q are reserved for the host", ReservedStatePrefix)
	}
	return nil
}

// UpdateSession records a report of a session the calling connector holds.
func (s *Services) UpdateSession(ctx context.Context, connector, connectionID string, u sdk.SessionUpdate) error {
	conn, err := s.owned(ctx, connector, connectionID)
	if err != nil {
		return err
	}
	if s.sessions == nil {
		return sdk.Permanent("this host holds no sessions")
	}
	return s.sessions.UpdateSession(ctx, conn, u)
}

// Signal relays a signal of a session the calling connector holds.
func (s *Services) Signal(ctx context.Context, connector, connectionID string, sig sdk.Signal) error {
	conn, err := s.owned(ctx, connector, connectionID)
	if err != nil {
		return err
	}
	if s.sessions == nil {
		return sdk.Permanent("this host holds no sessions")
	}
	return s.sessions.Signal(ctx, conn, sig)
}
