package cloudapi

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var update = flag.Bool("update", false, "rewrite the golden files in testdata/webhooks")

// Ids from Meta's documentation examples.
const (
	testPhoneNumberID = "106540352242922"
	testWABAID        = "102290129340398"
	testAppSecret     = "app-secret-0123456789abcdef"
	testVerifyToken   = "verify-me-please"
	testAccessToken   = "EAAGtestTOKENdoNotLog0123456789"
)

// testConfig returns a connection config for the documentation's number;
// apiBase may be empty.
func testConfig(apiBase string) map[string]any {
	cfg := map[string]any{
		"phone_number_id":   testPhoneNumberID,
		"waba_id":           testWABAID,
		"access_token":      testAccessToken,
		"app_secret":        testAppSecret,
		"verify_token":      testVerifyToken,
		"graph_api_version": "v21.0",
		"throughput_tier":   1000,
	}
	if apiBase != "" {
		cfg["api_base"] = apiBase
	}
	return cfg
}

func connWith(t testing.TB, cfg map[string]any) sdk.Connection {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Connection{ID: "conn_cloudapi", TenantID: "tenant_test", Config: sdk.Config(b)}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// signed returns the POST Meta would send with body, signed with secret.
func signed(body []byte, secret string) sdk.WebhookRequest {
	return sdk.WebhookRequest{
		Method: http.MethodPost,
		Headers: map[string][]string{
			"Content-Type":        {"application/json"},
			"X-Hub-Signature-256": {Sign([]byte(secret), body)},
			"User-Agent":          {"facebookexternalua"},
		},
		Body:       body,
		ReceivedAt: time.Date(2025, 6, 16, 10, 0, 0, 0, time.UTC),
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
