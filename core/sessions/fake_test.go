package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

const testConnector = "linkeddevice"

// world watches every node's plugin in a test, to catch two nodes running
// one session at once: the property leases exist for.
type world struct {
	mu         sync.Mutex
	openOn     map[string]string // connection → node whose plugin has it open
	violations []string
}

func newWorld() *world { return &world{openOn: map[string]string{}} }

func (w *world) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		t.Error(v)
	}
}

// holder returns the node whose plugin has connectionID open, or "".
func (w *world) holder(connectionID string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.openOn[connectionID]
}

// fakePlugin is one node's plugin process of the session connector.
type fakePlugin struct {
	w    *world
	node string

	mu       sync.Mutex
	down     bool
	failOpen map[string]error
	open     map[string]bool
	opens    map[string]int
	closes   map[string]int
	invokes  []sdk.ActionCall
	failCall error
}

func newFakePlugin(w *world, node string) *fakePlugin {
	return &fakePlugin{w: w, node: node, failOpen: map[string]error{}, open: map[string]bool{},
		opens: map[string]int{}, closes: map[string]int{}}
}

// kill makes the plugin die with its node: its sessions end without a close.
func (f *fakePlugin) kill() {
	f.mu.Lock()
	f.down = true
	ids := make([]string, 0, len(f.open))
	for id := range f.open {
		ids = append(ids, id)
	}
	clear(f.open)
	f.mu.Unlock()
	f.w.mu.Lock()
	for _, id := range ids {
		if f.w.openOn[id] == f.node {
			delete(f.w.openOn, id)
		}
	}
	f.w.mu.Unlock()
}

func (f *fakePlugin) isOpen(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[id]
}

func (f *fakePlugin) counts(id string) (opens, closes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[id], f.closes[id]
}

func (f *fakePlugin) openIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (f *fakePlugin) Connector(name string) (pluginhost.Client, error) {
	if name != testConnector {
		return nil, fmt.Errorf("%w: %s", pluginhost.ErrUnknownConnector, name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, fmt.Errorf("%w: %s is restarting", pluginhost.ErrUnavailable, name)
	}
	return fakeClient{f}, nil
}

func (f *fakePlugin) Manifests() []sdk.Manifest {
	return []sdk.Manifest{
		{Name: "stripe"},
		{Name: testConnector, Sessions: true, Actions: []sdk.Action{{Name: LogoutAction, Params: json.RawMessage(`{"type":"object"}`)}}},
	}
}

type fakeClient struct{ f *fakePlugin }

var _ pluginhost.Client = fakeClient{}

func (c fakeClient) Manifest() sdk.Manifest { return c.f.Manifests()[1] }

func (c fakeClient) HandleWebhook(context.Context, sdk.Connection, sdk.WebhookRequest) (sdk.WebhookResult, error) {
	return sdk.WebhookResult{}, sdk.Permanent("no webhooks")
}

func (c fakeClient) Handshake(context.Context, sdk.Connection, sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	return sdk.HTTPResponse{}, sdk.Permanent("no webhooks")
}

// ValidateParams checks params against the manifest's schemas, as the
// plugin host does.
func (c fakeClient) ValidateParams(action string, params json.RawMessage) error {
	v, err := hostrpc.NewParamValidator(c.Manifest())
	if err != nil {
		return err
	}
	return v.Validate(action, params)
}

func (c fakeClient) Invoke(_ context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if err := c.ValidateParams(call.Action, call.Params); err != nil {
		return nil, err
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.invokes = append(c.f.invokes, call)
	if c.f.failCall != nil {
		return nil, c.f.failCall
	}
	return json.RawMessage(`{}`), nil
}

func (c fakeClient) Poll(context.Context, sdk.Connection, string) (sdk.PollResult, error) {
	return sdk.PollResult{}, sdk.Permanent("no polling")
}

func (c fakeClient) Connect(context.Context, sdk.Connection) error    { return nil }
func (c fakeClient) Disconnect(context.Context, sdk.Connection) error { return nil }

func (c fakeClient) OpenSession(_ context.Context, conn sdk.Connection) error {
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("%w: plugin died", pluginhost.ErrUnavailable)
	}
	if err := f.failOpen[conn.ID]; err != nil {
		return err
	}
	f.opens[conn.ID]++
	f.open[conn.ID] = true
	f.w.mu.Lock()
	if other := f.w.openOn[conn.ID]; other != "" && other != f.node {
		f.w.violations = append(f.w.violations, fmt.Sprintf("session %s opened on %s while open on %s", conn.ID, f.node, other))
	}
	f.w.openOn[conn.ID] = f.node
	f.w.mu.Unlock()
	return nil
}

func (c fakeClient) CloseSession(_ context.Context, connectionID string) error {
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("%w: plugin died", pluginhost.ErrUnavailable)
	}
	f.closes[connectionID]++
	delete(f.open, connectionID)
	f.w.mu.Lock()
	if f.w.openOn[connectionID] == f.node {
		delete(f.w.openOn, connectionID)
	}
	f.w.mu.Unlock()
	return nil
}
