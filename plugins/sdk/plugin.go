package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ponte-hub/ponte/plugins/internal/wire"
	pb "github.com/ponte-hub/ponte/plugins/proto/ponte/connector/v1"
)

// connectorPlugin is the plugin side of the go-plugin plugin "connector".
type connectorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	factory Factory
}

var _ plugin.GRPCPlugin = (*connectorPlugin)(nil)

func (p *connectorPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterConnectorServer(s, &connectorServer{factory: p.factory, broker: broker})
	return nil
}

func (p *connectorPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the connector plugin's client side lives in the host, not in the sdk")
}

// connectorServer serves the Connector service: it converts each request to
// SDK types, calls the connector's optional interface for it, and returns
// connector errors inside the response so their kind survives the boundary.
type connectorServer struct {
	pb.UnimplementedConnectorServer
	factory Factory
	broker  *plugin.GRPCBroker

	mu       sync.RWMutex
	conn     Connector
	manifest Manifest
	actions  map[string]bool
	events   map[string]bool
	hostConn *grpc.ClientConn
}

func (s *connectorServer) Init(ctx context.Context, req *pb.InitRequest) (*pb.InitResponse, error) {
	hc, err := s.broker.DialWithOptions(req.GetHostServiceBrokerId(), wire.DialOptions()...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dialing the host service: %v", err)
	}
	host := &hostClient{rpc: pb.NewHostServiceClient(hc)}

	var conn Connector
	err = safely("building the connector", func() error {
		var ferr error
		conn, ferr = s.factory(host)
		return ferr
	})
	if err == nil && conn == nil {
		err = Permanent("the connector factory returned no connector")
	}
	if err != nil {
		_ = hc.Close()
		return &pb.InitResponse{Error: errorToProto(err)}, nil
	}
	var m Manifest
	if err := safely("reading the manifest", func() error { m = conn.Manifest(); return nil }); err != nil {
		_ = hc.Close()
		return &pb.InitResponse{Error: errorToProto(err)}, nil
	}
	actions := make(map[string]bool, len(m.Actions))
	for _, a := range m.Actions {
		actions[a.Name] = true
	}
	events := make(map[string]bool, len(m.Events))
	for _, e := range m.Events {
		events[e.Type] = true
	}

	s.mu.Lock()
	old := s.hostConn
	_, m.Lifecycle = conn.(Lifecycle)
	_, m.Sessions = conn.(SessionHolder)
	s.conn, s.manifest, s.actions, s.events, s.hostConn = conn, m, actions, events, hc
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return &pb.InitResponse{}, nil
}

// connector returns the connector built by Init. Calls before Init are a host
// bug, reported as a gRPC status (a protocol failure), not as a connector
// error.
func (s *connectorServer) connector() (Connector, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.conn == nil {
		return nil, status.Error(codes.FailedPrecondition, "connector not initialized: the host must call Init first")
	}
	return s.conn, nil
}

func (s *connectorServer) GetManifest(ctx context.Context, _ *pb.GetManifestRequest) (*pb.GetManifestResponse, error) {
	if _, err := s.connector(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	m := s.manifest
	s.mu.RUnlock()
	pm, err := manifestToProto(m)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.GetManifestResponse{Manifest: pm}, nil
}

func (s *connectorServer) HandleWebhook(ctx context.Context, req *pb.HandleWebhookRequest) (*pb.HandleWebhookResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	h, ok := c.(WebhookHandler)
	if !ok {
		return &pb.HandleWebhookResponse{Error: errorToProto(NotFound("this connector does not receive webhooks"))}, nil
	}
	var res WebhookResult
	err = safely("handling a webhook", func() error {
		var herr error
		res, herr = h.HandleWebhook(ctx, connectionFromProto(req.GetConnection()), webhookRequestFromProto(req.GetRequest()))
		return herr
	})
	if err == nil {
		err = s.checkEvents(res.Events)
	}
	if err != nil {
		return &pb.HandleWebhookResponse{Error: errorToProto(err)}, nil
	}
	return &pb.HandleWebhookResponse{Events: eventsToProto(res.Events), Response: httpResponseToProto(res.Response)}, nil
}

func (s *connectorServer) Handshake(ctx context.Context, req *pb.HandshakeRequest) (*pb.HandshakeResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	h, ok := c.(Handshaker)
	if !ok {
		return &pb.HandshakeResponse{Error: errorToProto(NotFound("this connector does not answer webhook handshakes"))}, nil
	}
	var res HTTPResponse
	err = safely("answering a handshake", func() error {
		var herr error
		res, herr = h.Handshake(ctx, connectionFromProto(req.GetConnection()), webhookRequestFromProto(req.GetRequest()))
		return herr
	})
	if err != nil {
		return &pb.HandshakeResponse{Error: errorToProto(err)}, nil
	}
	return &pb.HandshakeResponse{Response: httpResponseToProto(&res)}, nil
}

func (s *connectorServer) Invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	inv, ok := c.(ActionInvoker)
	if !ok {
		return &pb.InvokeResponse{Error: errorToProto(Invalid("this connector offers no actions"))}, nil
	}
	s.mu.RLock()
	declared := s.actions[req.GetAction()]
	s.mu.RUnlock()
	if !declared {
		return &pb.InvokeResponse{Error: errorToProto(Invalid("unknown action %q", req.GetAction()))}, nil
	}
	var result json.RawMessage
	err = safely("invoking action "+req.GetAction(), func() error {
		var ierr error
		result, ierr = inv.Invoke(ctx, ActionCall{
			Connection:     connectionFromProto(req.GetConnection()),
			Action:         req.GetAction(),
			Params:         json.RawMessage(req.GetParams()),
			IdempotencyKey: req.GetIdempotencyKey(),
		})
		return ierr
	})
	if err == nil && len(result) > 0 && !json.Valid(result) {
		err = Permanent("connector bug: action %q returned a result that is not valid JSON", req.GetAction())
	}
	if err != nil {
		return &pb.InvokeResponse{Error: errorToProto(err)}, nil
	}
	return &pb.InvokeResponse{Result: result}, nil
}

func (s *connectorServer) Poll(ctx context.Context, req *pb.PollRequest) (*pb.PollResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	p, ok := c.(Poller)
	if !ok {
		return &pb.PollResponse{Error: errorToProto(Invalid("this connector does not poll"))}, nil
	}
	var res PollResult
	err = safely("polling", func() error {
		var perr error
		res, perr = p.Poll(ctx, connectionFromProto(req.GetConnection()), req.GetCursor())
		return perr
	})
	if err == nil {
		err = s.checkEvents(res.Events)
	}
	if err != nil {
		return &pb.PollResponse{Error: errorToProto(err)}, nil
	}
	return &pb.PollResponse{Events: eventsToProto(res.Events), Cursor: res.Cursor, More: res.More}, nil
}

func (s *connectorServer) Connect(ctx context.Context, req *pb.ConnectRequest) (*pb.ConnectResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	l, ok := c.(Lifecycle)
	if !ok {
		return &pb.ConnectResponse{}, nil
	}
	err = safely("connecting", func() error { return l.Connect(ctx, connectionFromProto(req.GetConnection())) })
	return &pb.ConnectResponse{Error: errorToProto(err)}, nil
}

func (s *connectorServer) Disconnect(ctx context.Context, req *pb.DisconnectRequest) (*pb.DisconnectResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	l, ok := c.(Lifecycle)
	if !ok {
		return &pb.DisconnectResponse{}, nil
	}
	err = safely("disconnecting", func() error { return l.Disconnect(ctx, connectionFromProto(req.GetConnection())) })
	return &pb.DisconnectResponse{Error: errorToProto(err)}, nil
}

func (s *connectorServer) OpenSession(ctx context.Context, req *pb.OpenSessionRequest) (*pb.OpenSessionResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	h, ok := c.(SessionHolder)
	if !ok {
		return &pb.OpenSessionResponse{Error: errorToProto(Invalid("the connector holds no sessions"))}, nil
	}
	err = safely("opening a session", func() error { return h.OpenSession(ctx, connectionFromProto(req.GetConnection())) })
	return &pb.OpenSessionResponse{Error: errorToProto(err)}, nil
}

func (s *connectorServer) CloseSession(ctx context.Context, req *pb.CloseSessionRequest) (*pb.CloseSessionResponse, error) {
	c, err := s.connector()
	if err != nil {
		return nil, err
	}
	h, ok := c.(SessionHolder)
	if !ok {
		return &pb.CloseSessionResponse{}, nil
	}
	err = safely("closing a session", func() error { return h.CloseSession(ctx, req.GetConnectionId()) })
	return &pb.CloseSessionResponse{Error: errorToProto(err)}, nil
}

// checkEvents catches connector bugs before they reach the host's store: an
// event without a dedupe key cannot be deduplicated, an undeclared type cannot
// be routed, and a payload that is not JSON cannot be stored.
func (s *connectorServer) checkEvents(events []Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, e := range events {
		switch {
		case e.DedupeKey == "":
			return Permanent("connector bug: event %d (%s) has no dedupe key", i, e.Type)
		case !s.events[e.Type]:
			return Permanent("connector bug: event %d has type %q, which the manifest does not declare", i, e.Type)
		case len(e.Payload) > 0 && !json.Valid(e.Payload):
			return Permanent("connector bug: event %d (%s) has a payload that is not valid JSON", i, e.Type)
		}
	}
	return nil
}

// safely runs f, turning a panic into a Permanent error so that one bad
// request does not take the plugin process (and every other in-flight call)
// down with it.
func safely(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("connector panicked", "while", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = Permanent("connector panicked while %s", what)
		}
	}()
	return f()
}
