// Command ponte-connector-future is a plugin built for a protocol major
// version the host does not speak (sdk.ProtocolVersion+1). The host tests
// start it to check that it is refused with a clear error.
package main

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

type futurePlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (futurePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (futurePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("plugin side only")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			MagicCookieKey:   sdk.MagicCookieKey,
			MagicCookieValue: sdk.MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{
			sdk.ProtocolVersion + 1: {"connector": futurePlugin{}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
