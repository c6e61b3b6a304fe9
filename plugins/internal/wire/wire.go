// Package wire holds what the plugin side (plugins/sdk) and the host side
// (plugins/proto/hostrpc, plugins/testkit) of the connector protocol must agree
// on and cannot import from each other without an import cycle.
package wire

import (
	plugin "github.com/hashicorp/go-plugin"
)

// PluginName is the name under which a connector plugin serves the Connector
// service in go-plugin's plugin set.
const PluginName = "connector"

// MaxMessageSize bounds one gRPC message in either direction. Webhook bodies
// and action results travel as single messages; the host limits inbound
// webhook bodies well below this.
const MaxMessageSize = 32 << 20

// ServerPlugin builds the plugin side of the connector plugin for a factory
// (an sdk.Factory, typed any here because this package cannot import the sdk).
// plugins/sdk sets it in its init function; plugins/testkit uses it to serve a
// connector in-process through go-plugin's test connection.
var ServerPlugin func(factory any) plugin.GRPCPlugin

// LogLevelEnv is the environment variable through which the host tells a
// plugin the lowest level worth sending it ("debug", "info", "warn", "error").
const LogLevelEnv = "PONTE_PLUGIN_LOG_LEVEL"
