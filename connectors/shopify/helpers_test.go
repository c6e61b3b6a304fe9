package shopify

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testDomain       = "ponte-test.myshopify.com"
	testClientSecret = "shpss_client-secret-0123456789"
	testAccessToken  = "shpat_0123456789abcdefdoNotLog"
	testWebhookURL   = "https://ponte.example.com/hooks/conn_test"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConn is a connection to the test shop; apiBase may be empty.
func testConn(t testing.TB, apiBase string, extra map[string]any) sdk.Connection {
	t.Helper()
	cfg := map[string]any{
		"shop_domain":   testDomain,
		"access_token":  testAccessToken,
		"client_secret": testClientSecret,
		"api_version":   DefaultAPIVersion,
	}
	if apiBase != "" {
		cfg["api_base"] = apiBase
	}
	for k, v := range extra {
		cfg[k] = v
	}
	conn := testkit.Connection(t, cfg)
	conn.WebhookURL = testWebhookURL
	return conn
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// signedDelivery is the POST Shopify sends for topic with body.
func signedDelivery(topic string, body []byte, secret string) sdk.WebhookRequest {
	return sdk.WebhookRequest{
		Method: "POST",
		Headers: map[string][]string{
			"Content-Type":           {"application/json"},
			"X-Shopify-Topic":        {topic},
			"X-Shopify-Hmac-Sha256":  {Sign([]byte(secret), body)},
			"X-Shopify-Shop-Domain":  {testDomain},
			"X-Shopify-Api-Version":  {"2025-07"},
			"X-Shopify-Webhook-Id":   {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
			"X-Shopify-Event-Id":     {"98880550-7158-44d4-b7cd-2c97c8a091b5"},
			"X-Shopify-Triggered-At": {"2025-06-16T08:00:27.877041743Z"},
		},
		Body:       body,
		ReceivedAt: time.Date(2025, 6, 16, 8, 0, 28, 0, time.UTC),
	}
}

// shopState stores the shop details Connect would, for a given country.
func shopState(t testing.TB, host *testkit.MemoryHost, connID, country string) {
	t.Helper()
	b, _ := json.Marshal(ShopInfo{Name: "Ponte Test Shop", Domain: testDomain, Currency: "EUR", Timezone: "Europe/Rome", Country: country})
	if err := host.SetState(t.Context(), connID, stateShop, b); err != nil {
		t.Fatal(err)
	}
}
