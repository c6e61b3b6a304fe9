package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
)

// waNumber is the business number an end-to-end messaging test sends from:
// its identity at the fake Graph API and the secrets of its connection.
type waNumber struct {
	PhoneNumberID string
	WABAID        string
	AccessToken   string
	AppSecret     string
	VerifyToken   string
}

var testNumber = waNumber{
	PhoneNumberID: "106540352242922",
	WABAID:        "102290129340398",
	AccessToken:   "EAAGe2e-access-token",
	AppSecret:     "e2e-app-secret",
	VerifyToken:   "e2e-verify-token",
}

// connectCloudAPI registers the number at the fake (at the 1,000 msg/s tier)
// and creates a Cloud API connection pointed at it, the config shaped as the
// connector's manifest declares it.
func (in *installation) connectCloudAPI(fake *fakegraph.Server, n waNumber) (id, webhookURL string) {
	in.t.Helper()
	fake.AddNumber(fakegraph.Number{PhoneNumberID: n.PhoneNumberID, WABAID: n.WABAID, AccessToken: n.AccessToken, Tier: 1000})
	var conn struct {
		ID         string `json:"id"`
		WebhookURL string `json:"webhook_url"`
	}
	status := in.call("POST", "/v1/connections", map[string]any{
		"connector": "cloudapi",
		"name":      "whatsapp",
		"config": map[string]any{
			"phone_number_id": n.PhoneNumberID,
			"waba_id":         n.WABAID,
			"access_token":    n.AccessToken,
			"app_secret":      n.AppSecret,
			"verify_token":    n.VerifyToken,
			"throughput_tier": 1000,
			"api_base":        fake.URL(),
		},
	}, &conn)
	if status != http.StatusCreated && status != http.StatusOK {
		in.t.Fatalf("creating the cloudapi connection: status %d\n%s", status, in.logs())
	}
	if conn.ID == "" || conn.WebhookURL == "" {
		in.t.Fatalf("created connection without id or webhook_url: %+v", conn)
	}
	return conn.ID, conn.WebhookURL
}

// do makes an authenticated API call without failing the test on a
// transport error, and returns the status and the raw answer.
func (in *installation) do(client *http.Client, method, path string, body any, headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.url(path), rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+in.apiKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, raw, nil
}

// mustDo is do that fails the test on a transport error.
func (in *installation) mustDo(method, path string, body any, headers ...string) (int, []byte) {
	in.t.Helper()
	status, raw, err := in.do(http.DefaultClient, method, path, body, headers...)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, raw
}

// refusalReason reads the machine-readable reason of a refused send's
// problem+json answer.
func refusalReason(t testing.TB, raw []byte) string {
	t.Helper()
	var p struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("decoding problem %s: %v", raw, err)
	}
	return p.Reason
}

// eventually polls cond every 100 ms until it holds, and fails the test with
// what() when within passes first.
func eventually(t testing.TB, within time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inboundText is a Meta-shaped inbound text message webhook for the number,
// as the fake (and Meta) sends it, and its X-Hub-Signature-256 header.
func inboundText(n waNumber, fromDigits, wamid, text string, at time.Time) ([]byte, string) {
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id": n.WABAID,
			"changes": []any{map[string]any{
				"field": "messages",
				"value": map[string]any{
					"messaging_product": "whatsapp",
					"metadata":          map[string]string{"display_phone_number": "15550000000", "phone_number_id": n.PhoneNumberID},
					"contacts":          []any{map[string]any{"profile": map[string]string{"name": "Customer"}, "wa_id": fromDigits}},
					"messages": []any{map[string]any{
						"from": fromDigits, "id": wamid, "timestamp": strconv.FormatInt(at.Unix(), 10),
						"type": "text", "text": map[string]string{"body": text},
					}},
				},
			}},
		}},
	})
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, []byte(n.AppSecret))
	m.Write(body)
	return body, "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// openPool opens a small pool on the installation's database, for asserting
// on the ledger directly.
func (in *installation) openPool() *pgxpool.Pool {
	in.t.Helper()
	pool, err := pgxpool.New(context.Background(), in.dbURL)
	if err != nil {
		in.t.Fatalf("opening a pool on %s: %v", in.dbURL, err)
	}
	in.t.Cleanup(pool.Close)
	return pool
}

// pendingEvents counts stored events the dispatcher has not applied yet.
func pendingEvents(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM event_dispatch WHERE dispatched_at IS NULL`).Scan(&n); err != nil {
		t.Fatalf("counting undispatched events: %v", err)
	}
	return n
}

func describeSent(sent []fakegraph.SentMessage) string {
	var b bytes.Buffer
	for _, m := range sent {
		fmt.Fprintf(&b, "\n  to=%s type=%s template=%s ledger=%s body=%q", m.To, m.Type, m.Template, m.LedgerID, m.Body)
	}
	return b.String()
}
