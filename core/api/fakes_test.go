package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// fakeRegistry serves fixed manifests: stripe (payments, with secrets) and
// ical (no payment links).
type fakeRegistry struct{}

var stripeManifest = sdk.Manifest{
	Name: "stripe", Version: "1.0.0", DisplayName: "Stripe", Webhooks: true,
	Config: []sdk.ConfigField{
		{Name: "api_key", Type: sdk.FieldString, Required: true, Secret: true, Pattern: `^sk_(test|live)_`},
		{Name: "webhook_secret", Type: sdk.FieldString, Required: true, Secret: true},
		{Name: "mode", Type: sdk.FieldString, Enum: []string{"test", "live"}, Default: "test"},
	},
	Events:  []sdk.EventType{{Type: "checkout.session.completed"}},
	Actions: []sdk.Action{{Name: "create_payment_link", Params: []byte(`{"type":"object"}`)}},
}

var icalManifest = sdk.Manifest{
	Name: "ical", Version: "0.1.0", DisplayName: "iCalendar",
	Config: []sdk.ConfigField{{Name: "url", Type: sdk.FieldString, Required: true}},
}

// shopsimManifest is a connector that sets connections up at its provider
// (sdk.Lifecycle), served by shopsim.
var shopsimManifest = sdk.Manifest{
	Name: "shopsim", Version: "1.0.0", DisplayName: "Shop simulator", Webhooks: true, Lifecycle: true,
	Events: []sdk.EventType{{Type: "checkout.created"}, {Type: "checkout.updated"}, {Type: "order.created"}},
	Config: []sdk.ConfigField{
		{Name: "shop", Type: sdk.FieldString, Required: true},
		{Name: "token", Type: sdk.FieldString, Required: true, Secret: true},
	},
}

// shopsim is the client of the shopsim connector: it records Connect and
// Disconnect calls and refuses a Connect whose token is "bad" (sdk.Auth) or
// "busy" (sdk.RateLimited).
var shopsim = &lifecycleRecorder{}

type lifecycleRecorder struct {
	pluginhost.Client
	mu    sync.Mutex
	calls []string // "connect <id> <webhook url> <token>" / "disconnect <id>"
}

func (r *lifecycleRecorder) Manifest() sdk.Manifest { return shopsimManifest }

func (r *lifecycleRecorder) Connect(_ context.Context, conn sdk.Connection) error {
	var cfg struct{ Token string }
	if err := conn.Config.Decode(&cfg); err != nil {
		return err
	}
	r.mu.Lock()
	r.calls = append(r.calls, "connect "+conn.ID+" "+conn.WebhookURL+" "+cfg.Token)
	r.mu.Unlock()
	switch cfg.Token {
	case "bad":
		return sdk.Auth("invalid API access token")
	case "busy":
		return sdk.RateLimited(7*time.Second, "throttled")
	}
	return nil
}

func (r *lifecycleRecorder) Disconnect(_ context.Context, conn sdk.Connection) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "disconnect "+conn.ID)
	return nil
}

func (r *lifecycleRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (fakeRegistry) Connector(name string) (pluginhost.Client, error) {
	if name == shopsimManifest.Name {
		return shopsim, nil
	}
	return nil, pluginhost.ErrUnavailable
}

func (fakeRegistry) Manifests() []sdk.Manifest {
	return []sdk.Manifest{icalManifest, shopsimManifest, stripeManifest}
}

func (fakeRegistry) Status() []pluginhost.PluginStatus {
	return []pluginhost.PluginStatus{{Name: "stripe", Version: "1.0.0", Running: true}, {Name: "ical", Version: "0.1.0", Running: false}}
}

// fakePaymentLinks keeps links in memory, scoped by tenant like the real
// service, and records the requests it got.
type fakePaymentLinks struct {
	mu    sync.Mutex
	links []paymentlink.Link
	calls []paymentlink.CreateRequest
	// err, when set, is returned by Create.
	err error
}

func (f *fakePaymentLinks) Create(_ context.Context, tenantID string, req paymentlink.CreateRequest) (paymentlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	if f.err != nil {
		return paymentlink.Link{}, f.err
	}
	amount := req.Amount
	l := paymentlink.Link{
		ID: fmt.Sprintf("pl_%d", len(f.links)+1), TenantID: tenantID, ConnectionID: req.ConnectionID,
		Status: paymentlink.StatusCreating, Currency: req.Currency, ProductName: req.ProductName, PriceID: req.PriceID,
		Quantity: req.Quantity, Metadata: req.Metadata, WorkflowID: "paymentlink/x", ExpiresAt: time.Now().Add(24 * time.Hour),
	}
	if amount != 0 {
		l.Amount = &amount
	}
	f.links = append(f.links, l)
	return l, nil
}

func (f *fakePaymentLinks) Get(_ context.Context, tenantID, id string) (paymentlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if l.ID == id && l.TenantID == tenantID {
			return l, nil
		}
	}
	return paymentlink.Link{}, fmt.Errorf("reading payment link: %w", store.ErrNotFound)
}

func (f *fakePaymentLinks) List(_ context.Context, tenantID, cursor string, limit int) ([]paymentlink.Link, string, error) {
	if cursor == "boom" {
		panic("fake payment links: asked to panic")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil {
			return nil, "", store.ErrInvalidCursor
		}
		start = n
	}
	var mine []paymentlink.Link
	for _, l := range f.links {
		if l.TenantID == tenantID {
			mine = append(mine, l)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].ID < mine[j].ID })
	if start > len(mine) {
		start = len(mine)
	}
	end := min(start+limit, len(mine))
	next := ""
	if end < len(mine) {
		next = strconv.Itoa(end)
	}
	return mine[start:end], next, nil
}

func (f *fakePaymentLinks) createCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// fakeHooks stands in for the webhook ingress.
type fakeHooks struct{}

func (fakeHooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "hook %s %s", r.Method, r.URL.Path)
}

// syncBuffer is a log sink the tests read after the requests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func paymentlinkRequest(connID string) paymentlink.CreateRequest {
	return paymentlink.CreateRequest{ConnectionID: connID, Amount: 100, Currency: "eur", ProductName: "Fixture", Quantity: 1}
}
