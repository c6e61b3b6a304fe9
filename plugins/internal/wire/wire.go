// Package wire holds what the plugin side (plugins/sdk) and the host side
// (plugins/proto/hostrpc, plugins/testkit) of the connector protocol must agree
// on and cannot import from each other without an import cycle.
package wire

import (
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// PluginName is the name under which a connector plugin serves the Connector
// service in go-plugin's plugin set.
const PluginName = "connector"

// MaxMessageSize bounds one gRPC message in either direction. Webhook bodies
// and action results travel as single messages; the host limits inbound
// webhook bodies well below this.
const MaxMessageSize = 32 << 20

// flowWindow is the fixed HTTP/2 flow-control window of plugin connections, per
// stream and per connection. Setting it turns off gRPC's bandwidth-delay
// probing, which answers data frames with PING frames: on a local socket there
// is no delay to probe, and the pings cost a write and a wake-up on both sides
// of every call, a measurable share of a 200 µs round trip. A message larger
// than the window still goes through; it waits for window updates as usual.
const flowWindow = 4 << 20

// streamWorkers is how many goroutines serve calls and are kept between
// calls. By default gRPC starts a fresh goroutine for every call, and a
// webhook's parsing is deep enough that each of them grows its stack by
// copying it a few times: under load that was 18% of the Stripe plugin's CPU.
// Kept workers keep their grown stacks. Calls beyond this many at once still
// get a goroutine each, as before.
const streamWorkers = 32

// ServerOptions are the gRPC server options both ends use when serving the
// other (the plugin serving the connector, the host serving host services).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.InitialWindowSize(flowWindow), grpc.InitialConnWindowSize(flowWindow),
		grpc.NumStreamWorkers(streamWorkers),
	}
}

// DialOptions are the gRPC dial options both ends use when calling the other.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithInitialWindowSize(flowWindow), grpc.WithInitialConnWindowSize(flowWindow),
	}
}

// ServerPlugin builds the plugin side of the connector plugin for a factory
// (an sdk.Factory, typed any here because this package cannot import the sdk).
// plugins/sdk sets it in its init function; plugins/testkit uses it to serve a
// connector in-process through go-plugin's test connection.
var ServerPlugin func(factory any) plugin.GRPCPlugin

// LogLevelEnv is the environment variable through which the host tells a
// plugin the lowest level worth sending it ("debug", "info", "warn", "error").
const LogLevelEnv = "PONTE_PLUGIN_LOG_LEVEL"
