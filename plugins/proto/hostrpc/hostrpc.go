// Package hostrpc is the host's side of the Ponte connector protocol
// (ponte.connector.v1 over hashicorp/go-plugin): the go-plugin plugin
// definition the host dispenses, a Go client for a connector plugin that speaks
// SDK types, and the HostService the host serves back to the plugin through
// the go-plugin broker.
//
// core/pluginhost (real plugin processes) and plugins/testkit (in-process
// plugins) build on it. Connector authors never import it.
package hostrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ponte-hub/ponte/plugins/internal/wire"
	pb "github.com/ponte-hub/ponte/plugins/proto/ponte/connector/v1"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// PluginName is the name of the connector plugin in go-plugin's plugin set.
const PluginName = wire.PluginName

// MaxMessageSize bounds one gRPC message in either direction.
const MaxMessageSize = wire.MaxMessageSize

// LogLevelEnv is the environment variable through which the host tells a
// plugin the lowest log level to send ("debug", "info", "warn", "error").
const LogLevelEnv = wire.LogLevelEnv

// Handshake is the go-plugin handshake of Ponte connector plugins. The
// protocol version is negotiated through VersionedPlugins, so it is left zero.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		MagicCookieKey:   sdk.MagicCookieKey,
		MagicCookieValue: sdk.MagicCookieValue,
	}
}

// VersionedPlugins is the set of protocol versions this host speaks, for
// go-plugin's ClientConfig.VersionedPlugins.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		sdk.ProtocolVersion: {PluginName: &Plugin{}},
	}
}

// DialOptions are the gRPC dial options the host uses for plugin connections.
func DialOptions() []grpc.DialOption {
	return wire.DialOptions()
}

// Plugin is the host side of the go-plugin plugin "connector". Dispensing it
// gives a *Client that must be initialised with [Client.Init].
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer is not used: the host never serves a connector.
func (*Plugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("hostrpc.Plugin is the host side only; connectors are served by plugins/sdk")
}

// GRPCClient returns a *Client for the plugin behind conn.
func (*Plugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{rpc: pb.NewConnectorClient(conn), broker: broker}, nil
}

// TransportError is a failure of the gRPC call itself: the request did not
// reach the connector or its answer did not reach the host (the plugin died,
// hung or is not initialised). It is never an error the connector returned.
type TransportError struct {
	// Op is the call that failed, e.g. "Invoke".
	Op string
	// Err is the gRPC error.
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("calling connector %s: %v", e.Op, e.Err) }

// Unwrap returns the gRPC error.
func (e *TransportError) Unwrap() error { return e.Err }

// Client calls one connector plugin. Errors the connector returned on purpose
// come back as *sdk.Error with their kind; transport failures as
// *TransportError.
type Client struct {
	rpc    pb.ConnectorClient
	broker *plugin.GRPCBroker
}

// Init serves host to the plugin through the broker and builds the connector
// in the plugin (its factory runs now). It must be called once, before any
// other call.
func (c *Client) Init(ctx context.Context, host sdk.Host) error {
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, wire.ServerOptions()...)...)
		pb.RegisterHostServiceServer(s, &hostServer{host: host})
		return s
	})
	res, err := c.rpc.Init(ctx, &pb.InitRequest{HostServiceBrokerId: id, ProtocolVersion: sdk.ProtocolVersion})
	if err != nil {
		return &TransportError{Op: "Init", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// Manifest reads the connector's manifest and the protocol version the
// connector says it was built for.
func (c *Client) Manifest(ctx context.Context) (sdk.Manifest, int, error) {
	res, err := c.rpc.GetManifest(ctx, &pb.GetManifestRequest{})
	if err != nil {
		return sdk.Manifest{}, 0, &TransportError{Op: "GetManifest", Err: err}
	}
	m, err := ManifestFromProto(res.GetManifest())
	if err != nil {
		return sdk.Manifest{}, 0, fmt.Errorf("reading the manifest: %w", err)
	}
	return m, int(res.GetManifest().GetProtocolVersion()), nil
}

// HandleWebhook lets the connector verify and parse a webhook delivery.
func (c *Client) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	res, err := c.rpc.HandleWebhook(ctx, &pb.HandleWebhookRequest{
		Connection: connectionToProto(conn),
		Request:    webhookRequestToProto(req),
	})
	if err != nil {
		return sdk.WebhookResult{}, &TransportError{Op: "HandleWebhook", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return sdk.WebhookResult{}, e
	}
	return sdk.WebhookResult{
		Events:   EventsFromProto(res.GetEvents()),
		Response: httpResponseFromProto(res.GetResponse()),
	}, nil
}

// Handshake lets the connector answer a provider's webhook verification GET.
func (c *Client) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	res, err := c.rpc.Handshake(ctx, &pb.HandshakeRequest{
		Connection: connectionToProto(conn),
		Request:    webhookRequestToProto(req),
	})
	if err != nil {
		return sdk.HTTPResponse{}, &TransportError{Op: "Handshake", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return sdk.HTTPResponse{}, e
	}
	if r := httpResponseFromProto(res.GetResponse()); r != nil {
		return *r, nil
	}
	return sdk.HTTPResponse{}, nil
}

// Invoke runs an action.
func (c *Client) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	res, err := c.rpc.Invoke(ctx, &pb.InvokeRequest{
		Connection:     connectionToProto(call.Connection),
		Action:         call.Action,
		Params:         call.Params,
		IdempotencyKey: call.IdempotencyKey,
	})
	if err != nil {
		return nil, &TransportError{Op: "Invoke", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return nil, e
	}
	return nilIfEmpty(res.GetResult()), nil
}

// Poll fetches changes since cursor.
func (c *Client) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	res, err := c.rpc.Poll(ctx, &pb.PollRequest{Connection: connectionToProto(conn), Cursor: cursor})
	if err != nil {
		return sdk.PollResult{}, &TransportError{Op: "Poll", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return sdk.PollResult{}, e
	}
	return sdk.PollResult{Events: EventsFromProto(res.GetEvents()), Cursor: res.GetCursor(), More: res.GetMore()}, nil
}

// Connect sets conn up at the provider. A plugin built before the protocol
// had Connect answers Unimplemented, which means it has nothing to set up.
func (c *Client) Connect(ctx context.Context, conn sdk.Connection) error {
	res, err := c.rpc.Connect(ctx, &pb.ConnectRequest{Connection: connectionToProto(conn)})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	if err != nil {
		return &TransportError{Op: "Connect", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// Disconnect removes what Connect set up, with the same compatibility rule.
func (c *Client) Disconnect(ctx context.Context, conn sdk.Connection) error {
	res, err := c.rpc.Disconnect(ctx, &pb.DisconnectRequest{Connection: connectionToProto(conn)})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	if err != nil {
		return &TransportError{Op: "Disconnect", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// OpenSession starts holding conn's session in the plugin.
func (c *Client) OpenSession(ctx context.Context, conn sdk.Connection) error {
	res, err := c.rpc.OpenSession(ctx, &pb.OpenSessionRequest{Connection: connectionToProto(conn)})
	if err != nil {
		return &TransportError{Op: "OpenSession", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// CloseSession stops holding a session in the plugin. A plugin built before
// the protocol had sessions answers Unimplemented: it holds none.
func (c *Client) CloseSession(ctx context.Context, connectionID string) error {
	res, err := c.rpc.CloseSession(ctx, &pb.CloseSessionRequest{ConnectionId: connectionID})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	if err != nil {
		return &TransportError{Op: "CloseSession", Err: err}
	}
	if e := ErrorFromProto(res.GetError()); e != nil {
		return e
	}
	return nil
}

// hostServer serves the HostService to one plugin.
type hostServer struct {
	pb.UnimplementedHostServiceServer
	host sdk.Host
}

func (s *hostServer) Emit(ctx context.Context, req *pb.EmitRequest) (*pb.EmitResponse, error) {
	err := s.host.Emit(ctx, req.GetConnectionId(), EventsFromProto(req.GetEvents())...)
	return &pb.EmitResponse{Error: ErrorToProto(err)}, nil
}

func (s *hostServer) GetState(ctx context.Context, req *pb.GetStateRequest) (*pb.GetStateResponse, error) {
	v, err := s.host.GetState(ctx, req.GetConnectionId(), req.GetKey())
	if err != nil {
		return &pb.GetStateResponse{Error: ErrorToProto(err)}, nil
	}
	return &pb.GetStateResponse{Value: v, Found: v != nil}, nil
}

func (s *hostServer) SetState(ctx context.Context, req *pb.SetStateRequest) (*pb.SetStateResponse, error) {
	if len(req.GetValue()) > sdk.MaxStateSize {
		return &pb.SetStateResponse{Error: ErrorToProto(sdk.Invalid("state value of %d bytes is larger than %d", len(req.GetValue()), sdk.MaxStateSize))}, nil
	}
	err := s.host.SetState(ctx, req.GetConnectionId(), req.GetKey(), req.GetValue())
	return &pb.SetStateResponse{Error: ErrorToProto(err)}, nil
}

func (s *hostServer) UpdateSession(ctx context.Context, req *pb.UpdateSessionRequest) (*pb.UpdateSessionResponse, error) {
	u := sdk.SessionUpdate{
		State:       sdk.SessionState(req.GetState()),
		Reason:      req.GetReason(),
		RetryAt:     timeFromProto(req.GetRetryAt()),
		BannedUntil: timeFromProto(req.GetBannedUntil()),
		QRCode:      req.GetQrCode(),
		QRExpiresAt: timeFromProto(req.GetQrExpiresAt()),
		PairingCode: req.GetPairingCode(),
		PhoneSeenAt: timeFromProto(req.GetPhoneSeenAt()),
	}
	if a := req.GetAccount(); a != nil {
		u.Account = &sdk.SessionAccount{Phone: a.GetPhone(), JID: a.GetJid(), LID: a.GetLid(), PushName: a.GetPushName(), Platform: a.GetPlatform()}
	}
	if err := validateSessionUpdate(u); err != nil {
		return &pb.UpdateSessionResponse{Error: ErrorToProto(err)}, nil
	}
	err := s.host.UpdateSession(ctx, req.GetConnectionId(), u)
	return &pb.UpdateSessionResponse{Error: ErrorToProto(err)}, nil
}

func (s *hostServer) Signal(ctx context.Context, req *pb.SignalRequest) (*pb.SignalResponse, error) {
	sig := sdk.Signal{Kind: req.GetKind(), Payload: nilIfEmpty(req.GetPayload()), At: timeFromProto(req.GetAt())}
	if sig.Kind == "" {
		return &pb.SignalResponse{Error: ErrorToProto(sdk.Invalid("a signal needs a kind"))}, nil
	}
	if len(sig.Payload) > 0 && !json.Valid(sig.Payload) {
		return &pb.SignalResponse{Error: ErrorToProto(sdk.Invalid("signal %s: payload is not JSON", sig.Kind))}, nil
	}
	err := s.host.Signal(ctx, req.GetConnectionId(), sig)
	return &pb.SignalResponse{Error: ErrorToProto(err)}, nil
}
