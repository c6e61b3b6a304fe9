package testkit

import (
	"bytes"
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Binary is a built connector plugin running as its own process, connected
// the way the Ponte host connects to it. Tests use it to check what only the
// real process shows: the manifest as it crosses the protocol, errors
// across the process boundary, and what the plugin writes to its logs.
type Binary struct {
	// Client is the host's client for the plugin, already initialised.
	Client *hostrpc.Client
	// NegotiatedVersion is the protocol version go-plugin agreed on.
	NegotiatedVersion int

	proc *plugin.Client
	logs *lockedBuffer
}

// StartBinary starts the plugin binary at path (build it with
// deploy/testenv.BuildBinary), connects to it over go-plugin and gRPC as the
// host does, and initialises it with host as its [sdk.Host]. level is the
// lowest log level the plugin sends ("debug", "info", ...); everything it
// logs is kept for [Binary.Logs]. The process is killed when the test ends.
func StartBinary(t testing.TB, path string, host sdk.Host, level string) *Binary {
	t.Helper()
	logs := &lockedBuffer{}
	cmd := exec.Command(path)
	cmd.Env = []string{hostrpc.LogLevelEnv + "=" + level}
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hostrpc.Handshake(),
		VersionedPlugins: hostrpc.VersionedPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  hostrpc.DialOptions(),
		StartTimeout:     30 * time.Second,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.LevelFromString(level)}),
	})
	t.Cleanup(proc.Kill)
	cp, err := proc.Client()
	if err != nil {
		t.Fatalf("testkit: starting the plugin %s: %v", path, err)
	}
	raw, err := cp.Dispense(hostrpc.PluginName)
	if err != nil {
		t.Fatalf("testkit: dispensing the connector: %v", err)
	}
	rpc := raw.(*hostrpc.Client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rpc.Init(ctx, host); err != nil {
		t.Fatalf("testkit: initialising the connector: %v", err)
	}
	return &Binary{Client: rpc, NegotiatedVersion: proc.NegotiatedVersion(), proc: proc, logs: logs}
}

// Logs returns what the plugin logged so far.
func (b *Binary) Logs() string { return b.logs.String() }

// Kill stops the plugin process at once (as a crash would).
func (b *Binary) Kill() { b.proc.Kill() }

// lockedBuffer collects log lines written from go-plugin's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
