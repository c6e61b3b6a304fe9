package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// crmActions offers the action create_contact of a small CRM's REST API.
type crmActions struct {
	http *http.Client
}

var _ sdk.ActionInvoker = (*crmActions)(nil)

func (c *crmActions) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name: "tinycrm", Version: "1.0.0", DisplayName: "Tiny CRM",
		Config: []sdk.ConfigField{
			{Name: "base_url", Type: sdk.FieldString, Required: true},
			{Name: "api_key", Type: sdk.FieldString, Required: true, Secret: true},
		},
		Actions: []sdk.Action{{
			Name:   "create_contact",
			Params: json.RawMessage(`{"type":"object","required":["email"],"properties":{"email":{"type":"string"},"name":{"type":"string"}}}`),
		}},
	}
}

func (c *crmActions) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	var cfg struct {
		BaseURL string `json:"base_url"`
		APIKey  string `json:"api_key"`
	}
	if err := call.Connection.Config.Decode(&cfg); err != nil {
		return nil, sdk.Permanent("reading config: %v", err)
	}
	switch call.Action {
	case "create_contact":
		// The host validated Params against the schema; they go to the
		// provider unchanged.
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.BaseURL+"/v1/contacts", bytes.NewReader(call.Params))
		if err != nil {
			return nil, sdk.Permanent("building request: %v", err)
		}
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
		req.Header.Set("Content-Type", "application/json")
		// The key is the same on every retry of this call, so the provider
		// creates the contact once however often the host retries.
		req.Header.Set("Idempotency-Key", call.IdempotencyKey)
		return c.do(req)
	}
	return nil, sdk.Invalid("unknown action %q", call.Action)
}

// do sends req and maps the provider's status codes to error kinds, which
// the host and Temporal's retry policy act on.
func (c *crmActions) do(req *http.Request) (json.RawMessage, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, sdk.Retryable("calling the CRM: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, sdk.Retryable("reading the CRM's answer: %v", err)
	}
	switch {
	case resp.StatusCode < 300:
		return body, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Minute // the CRM's documented window, when it says nothing
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		return nil, sdk.RateLimited(wait, "CRM rate limit reached")
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return nil, sdk.Auth("CRM rejected the API key (%d)", resp.StatusCode)
	case resp.StatusCode == http.StatusNotFound:
		return nil, sdk.NotFound("CRM answered 404")
	case resp.StatusCode >= 500:
		return nil, sdk.Retryable("CRM answered %d", resp.StatusCode)
	default:
		return nil, sdk.Invalid("CRM refused the request (%d)", resp.StatusCode)
	}
}

// An ActionInvoker runs the actions of the manifest. Here the provider
// throttles the first call with 429 and Retry-After: 30; the connector
// returns RateLimited, and the retry with the same idempotency key succeeds.
func ExampleActionInvoker() {
	calls := 0
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"c_42","idempotency_key":%q}`, r.Header.Get("Idempotency-Key"))
	}))
	defer provider.Close()

	var inv sdk.ActionInvoker = &crmActions{http: provider.Client()}
	call := sdk.ActionCall{
		Connection:     sdk.Connection{ID: "conn_1", Config: sdk.Config(`{"base_url":"` + provider.URL + `","api_key":"key_test"}`)},
		Action:         "create_contact",
		Params:         json.RawMessage(`{"email":"ada@example.com","name":"Ada"}`),
		IdempotencyKey: "wf-7f3a/create_contact",
	}

	_, err := inv.Invoke(context.Background(), call)
	var e *sdk.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.RetryAfter)
	}
	result, err := inv.Invoke(context.Background(), call)
	fmt.Println(string(result), err)
	// Output:
	// rate_limited 30s
	// {"id":"c_42","idempotency_key":"wf-7f3a/create_contact"} <nil>
}
