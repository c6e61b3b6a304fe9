// Package testkit tests a Ponte connector the way the host will run it: the
// connector is served in-process by the real plugin code of plugins/sdk and
// called through the real gRPC boundary (go-plugin's test connection), so
// conversions, error kinds and host callbacks behave exactly as in production,
// without building a binary.
//
// A connector's test starts a [Harness], calls the connector through it and
// looks at what the connector emitted or stored in the in-memory [MemoryHost]:
//
//	func TestWebhook(t *testing.T) {
//		h := testkit.Start(t, myconnector.New)
//		h.CheckManifest(t)
//		conn := testkit.Connection(t, map[string]any{"signing_secret": "s3cret"})
//		res, err := h.ReplayWebhook(t, conn, "testdata/order_created.json")
//		...
//	}
//
// Recorded webhook deliveries are replayed from fixture files (see [Fixture]).
package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/ponte-hub/ponte/plugins/internal/wire"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Harness runs one connector in-process behind the real protocol. Its methods
// are those of the host's client for a connector (core/pluginhost.Client):
// connector errors arrive as *sdk.Error with their kind, parameters are
// validated against the action's schema before the call, as the host does.
type Harness struct {
	// Host is the in-memory host the connector's factory received: it records
	// emitted events and stored state.
	Host *MemoryHost

	factory  sdk.Factory
	client   *hostrpc.Client
	manifest sdk.Manifest
	params   *hostrpc.ParamValidator
	timeout  time.Duration
}

// Option configures [Start].
type Option func(*options)

type options struct {
	host    *MemoryHost
	timeout time.Duration
}

// WithHost makes the connector use host instead of a new empty [MemoryHost],
// for example one with state already stored.
func WithHost(host *MemoryHost) Option { return func(o *options) { o.host = host } }

// WithCallTimeout bounds each call the harness makes (default 10s), so a hung
// connector fails the test instead of hanging it.
func WithCallTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Start serves the connector built by factory in-process and connects to it
// through go-plugin's gRPC test connection. The connector's factory runs in
// Start, with the harness's [MemoryHost]; a factory error, or a manifest the
// host would refuse to load, fails the test. Everything is stopped when the
// test ends.
func Start(t testing.TB, factory sdk.Factory, opts ...Option) *Harness {
	t.Helper()
	o := options{timeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.host == nil {
		o.host = NewMemoryHost()
	}

	ps := map[string]plugin.Plugin{
		hostrpc.PluginName: &inProcessPlugin{server: wire.ServerPlugin(factory)},
	}
	rpcClient, rpcServer := plugin.TestPluginGRPCConn(t, false, ps)
	t.Cleanup(func() {
		// Stop the server first: closing the client first would make it ask
		// the server to stop itself, racing with this Stop.
		rpcServer.Stop()
		_ = rpcClient.Close()
	})
	raw, err := rpcClient.Dispense(hostrpc.PluginName)
	if err != nil {
		t.Fatalf("testkit: dispensing the connector: %v", err)
	}
	client := raw.(*hostrpc.Client)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := client.Init(ctx, o.host); err != nil {
		t.Fatalf("testkit: starting the connector: %v", err)
	}
	m, version, err := client.Manifest(ctx)
	if err != nil {
		t.Fatalf("testkit: reading the manifest: %v", err)
	}
	if version != sdk.ProtocolVersion {
		t.Fatalf("testkit: the connector says protocol version %d, the sdk speaks %d", version, sdk.ProtocolVersion)
	}
	params, err := hostrpc.NewParamValidator(m)
	if err != nil {
		t.Fatalf("testkit: the host would refuse this manifest: %v", err)
	}
	o.host.setManifest(m)
	return &Harness{Host: o.host, factory: factory, client: client, manifest: m, params: params, timeout: o.timeout}
}

// inProcessPlugin joins the plugin side (from plugins/sdk) and the host side
// (from hostrpc) of the connector plugin, as go-plugin's test connection needs
// one value for both ends.
type inProcessPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server plugin.GRPCPlugin
}

func (p *inProcessPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	return p.server.GRPCServer(b, s)
}

func (p *inProcessPlugin) GRPCClient(ctx context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return (&hostrpc.Plugin{}).GRPCClient(ctx, b, c)
}

// Manifest returns the manifest the connector sent over the protocol.
func (h *Harness) Manifest() sdk.Manifest { return h.manifest }

func (h *Harness) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, h.timeout)
}

// HandleWebhook sends a webhook delivery to the connector.
func (h *Harness) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	if req.ReceivedAt.IsZero() {
		req.ReceivedAt = time.Now()
	}
	return h.client.HandleWebhook(ctx, conn, req)
}

// Handshake sends a webhook verification GET to the connector.
func (h *Harness) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	if req.Method == "" {
		req.Method = "GET"
	}
	return h.client.Handshake(ctx, conn, req)
}

// Invoke runs an action after validating its parameters against the schema
// in the manifest, as the host does: invalid parameters return an Invalid
// *sdk.Error without reaching the connector.
func (h *Harness) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if err := h.params.Validate(call.Action, call.Params); err != nil {
		return nil, err
	}
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.Invoke(ctx, call)
}

// Poll asks the connector for changes since cursor.
func (h *Harness) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.Poll(ctx, conn, cursor)
}

// Connect runs the connector's sdk.Lifecycle Connect for conn (nil for a
// connector without one).
func (h *Harness) Connect(ctx context.Context, conn sdk.Connection) error {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.Connect(ctx, conn)
}

// Disconnect runs the connector's sdk.Lifecycle Disconnect for conn.
func (h *Harness) Disconnect(ctx context.Context, conn sdk.Connection) error {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.Disconnect(ctx, conn)
}

// OpenSession runs the connector's sdk.SessionHolder OpenSession for conn.
func (h *Harness) OpenSession(ctx context.Context, conn sdk.Connection) error {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.OpenSession(ctx, conn)
}

// CloseSession runs the connector's sdk.SessionHolder CloseSession.
func (h *Harness) CloseSession(ctx context.Context, connectionID string) error {
	ctx, cancel := h.ctx(ctx)
	defer cancel()
	return h.client.CloseSession(ctx, connectionID)
}

// Connection returns a connection with the given configuration (encoded as
// JSON), a fixed test id "conn_test" and tenant "tenant_test".
func Connection(t testing.TB, config any) sdk.Connection {
	t.Helper()
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatalf("testkit: encoding connection config: %v", err)
	}
	return sdk.Connection{ID: "conn_test", TenantID: "tenant_test", Config: sdk.Config(b)}
}

// ErrorKind returns the kind of err as the host would see it, and whether err
// is an *sdk.Error at all (false for nil and for transport failures).
func ErrorKind(err error) (sdk.ErrorKind, bool) {
	var e *sdk.Error
	if errors.As(err, &e) {
		return e.Kind, true
	}
	return sdk.KindUnknown, false
}

// RequireKind fails the test unless err is an *sdk.Error of the given kind.
func RequireKind(t testing.TB, err error, kind sdk.ErrorKind) *sdk.Error {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *sdk.Error of kind %s, got %v", kind, describe(err))
	}
	if e.Kind != kind {
		t.Fatalf("want an *sdk.Error of kind %s, got kind %s: %v", kind, e.Kind, e)
	}
	return e
}

func describe(err error) string {
	if err == nil {
		return "no error"
	}
	return fmt.Sprintf("%T: %v", err, err)
}
