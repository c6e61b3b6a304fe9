package sdk

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/ponte-hub/ponte/plugins/internal/wire"
)

// MagicCookieKey and MagicCookieValue are the environment variable and value
// the Ponte host sets when it starts a connector. They tell a connector binary
// that it was started by Ponte (run by hand, it prints that it is a plugin and
// exits). They are a convenience, not a security measure.
const (
	MagicCookieKey   = "PONTE_PLUGIN"
	MagicCookieValue = "60b2b684-7125-440a-886f-002be7e5ab13"
)

func init() {
	wire.ServerPlugin = func(factory any) plugin.GRPCPlugin {
		return &connectorPlugin{factory: factory.(Factory)}
	}
}

// Serve runs the connector built by factory as a Ponte plugin and returns when
// the host stops it. It is the whole body of a connector's main:
//
//	func main() { sdk.Serve(myconnector.New) }
//
// Serve speaks connector protocol [ProtocolVersion] with the host. The factory
// is called once per plugin process, when the host has connected, with a
// [Host] that reaches the host's services.
//
// Serve also sets the default [log/slog] logger: records go to the host, which
// logs them with the connector's name. Log with slog.Default() or the package
// functions (slog.Info, ...); never log secrets or message bodies at info
// level. The host decides the lowest level that is sent.
func Serve(factory Factory) {
	// A connector's heap is small and its work is per request, so the
	// collector's default pace (GOGC=100) spends a large share of the CPU
	// under webhook load; 200 halves that for a few MB more. The host does
	// not pass GOGC to plugins, so this is the connector's default.
	debug.SetGCPercent(200)
	level := parseLevel(os.Getenv(wire.LogLevelEnv))
	// The original stderr is captured here: go-plugin replaces os.Stderr once
	// serving starts, and what reaches the real stderr is parsed by the host as
	// hclog JSON lines.
	stderr := os.Stderr
	slog.SetDefault(slog.New(newHostLogHandler(stderr, level)))

	hlevel := hclog.Info
	if level <= slog.LevelDebug {
		hlevel = hclog.Debug
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  ProtocolVersion,
			MagicCookieKey:   MagicCookieKey,
			MagicCookieValue: MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {wire.PluginName: &connectorPlugin{factory: factory}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, wire.ServerOptions()...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Level:      hlevel,
			Output:     stderr,
			JSONFormat: true,
		}),
	})
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug", "trace":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// newHostLogHandler writes JSON records in the shape go-plugin's host parses
// (hclog's "@level" and "@message"). The time is left out: the host stamps the
// record when it logs it, and a timestamp in another layout would make the
// host treat the whole line as unstructured text.
func newHostLogHandler(w *os.File, level slog.Level) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{}
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.Attr{Key: "@message", Value: a.Value}
			}
			return a
		},
	})
}
