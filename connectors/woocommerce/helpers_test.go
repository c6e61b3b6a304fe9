package woocommerce

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/woocommerce/fakewoo"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testWebhookSecret = "whsec-0123456789abcdefFEDCBA"
	testConnID        = "conn_woo"
	testWebhookURL    = "https://ponte.example/hooks/conn_woo"
)

// testConfig is a connection config for a fake store at storeURL.
func testConfig(storeURL string) map[string]any {
	return map[string]any{
		"store_url":       storeURL,
		"consumer_key":    fakewoo.DefaultConsumerKey,
		"consumer_secret": fakewoo.DefaultConsumerSecret,
		"webhook_secret":  testWebhookSecret,
	}
}

func connWith(t testing.TB, cfg map[string]any, webhookURL string) sdk.Connection {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Connection{ID: testConnID, TenantID: "tenant_test", Config: sdk.Config(b), WebhookURL: webhookURL}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// factory builds the connector with a quiet logger and, when clock is not
// nil, that clock.
func factory(clock func() time.Time) sdk.Factory {
	return func(h sdk.Host) (sdk.Connector, error) {
		c, err := NewConnector(h, discardLogger(), nil)
		if err != nil {
			return nil, err
		}
		if clock != nil {
			c.now = clock
		}
		return c, nil
	}
}

func startHarness(t testing.TB, clock func() time.Time) *testkit.Harness {
	t.Helper()
	h := testkit.Start(t, factory(clock))
	h.CheckManifest(t)
	return h
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// signed is the POST WooCommerce sends for topic with body, signed with
// secret.
func signed(topic string, body []byte, secret string) sdk.WebhookRequest {
	res, ev, _ := cut(topic)
	return sdk.WebhookRequest{
		Method: http.MethodPost,
		Headers: map[string][]string{
			"Content-Type":             {"application/json"},
			"User-Agent":               {"WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"},
			"X-Wc-Webhook-Source":      {"https://shop.example/"},
			"X-Wc-Webhook-Topic":       {topic},
			"X-Wc-Webhook-Resource":    {res},
			"X-Wc-Webhook-Event":       {ev},
			"X-Wc-Webhook-Signature":   {Sign([]byte(secret), body)},
			"X-Wc-Webhook-Id":          {"41"},
			"X-Wc-Webhook-Delivery-Id": {"36e520ebabc2fa725092ff4a47acedf2"},
		},
		Body:       body,
		ReceivedAt: time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC),
	}
}

func cut(topic string) (string, string, bool) {
	for i := 0; i < len(topic); i++ {
		if topic[i] == '.' {
			return topic[:i], topic[i+1:], true
		}
	}
	return topic, "", false
}

// eventKeys lists events as "type key" strings, for compact comparisons.
func eventKeys(events []sdk.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type + " " + e.DedupeKey
	}
	return out
}

// ingress stands in for Ponte's webhook ingress: it hands each POST to the
// connector through the harness and stores the events in the harness's
// host, answering as the host does (401 for Auth, 400 for Invalid, 200 once
// stored).
type ingress struct {
	url  string
	h    *testkit.Harness
	mu   sync.Mutex
	conn sdk.Connection
	down bool
}

func startIngress(t testing.TB, h *testkit.Harness) *ingress {
	t.Helper()
	in := &ingress{h: h}
	srv := httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(srv.Close)
	in.url = srv.URL + "/hooks/" + testConnID
	return in
}

func (in *ingress) setConn(c sdk.Connection) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.conn = c
}

// setDown makes the ingress answer 503 to everything, as a Ponte that is
// down behind its load balancer would.
func (in *ingress) setDown(down bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.down = down
}

func (in *ingress) serve(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	conn, down := in.conn, in.down
	in.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res, err := in.h.HandleWebhook(r.Context(), conn, sdk.WebhookRequest{Method: r.Method, Headers: r.Header, Body: body, ReceivedAt: time.Now()})
	if err != nil {
		switch k, _ := testkit.ErrorKind(err); k {
		case sdk.KindAuth:
			w.WriteHeader(http.StatusUnauthorized)
		case sdk.KindInvalid:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	if err := in.h.Host.Emit(r.Context(), conn.ID, res.Events...); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}
