package sdk_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// greeter is a connector with one action.
type greeter struct{ host sdk.Host }

func (g *greeter) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name:        "greeter",
		Version:     "1.0.0",
		DisplayName: "Greeter",
		Actions: []sdk.Action{{
			Name:   "greet",
			Params: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`),
		}},
	}
}

func (g *greeter) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	var p struct{ Name string }
	if err := json.Unmarshal(call.Params, &p); err != nil {
		return nil, sdk.Invalid("decoding parameters: %v", err)
	}
	return json.Marshal(map[string]string{"greeting": "hello " + p.Name})
}

// A connector's main hands its constructor to Serve. (Run outside the Ponte
// host, the binary explains that it is a plugin and exits.)
func ExampleServe() {
	newGreeter := func(host sdk.Host) (sdk.Connector, error) { return &greeter{host: host}, nil }
	_ = newGreeter
	// func main() { sdk.Serve(newGreeter) }
}

func ExampleRateLimited() {
	err := sdk.RateLimited(30*time.Second, "provider answered 429")
	var e *sdk.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.RetryAfter, e.Retryable())
	}
	// Output: rate_limited 30s true
}

func ExampleKindOf() {
	err := fmt.Errorf("creating the payment link: %w", sdk.Auth("API key revoked"))
	fmt.Println(sdk.KindOf(err))
	fmt.Println(sdk.KindOf(errors.New("plain")))
	// Output:
	// auth
	// unknown
}

func ExampleVerifyHMACSHA256Hex() {
	secret := []byte("s3cret")
	body := []byte(`{"id":"evt_1"}`)
	header := "sha256=" + hex.EncodeToString(sdk.SignHMACSHA256(secret, body))

	fmt.Println(sdk.VerifyHMACSHA256Hex(secret, body, header))
	fmt.Println(sdk.VerifyHMACSHA256Hex(secret, []byte(`{"id":"evt_2"}`), header))
	// Output:
	// true
	// false
}

func ExampleWebhookRequest_Header() {
	req := sdk.WebhookRequest{Headers: map[string][]string{"X-Signature": {"abc"}}}
	fmt.Println(req.Header("x-signature"))
	// Output: abc
}

func ExampleConfig_Decode() {
	var cfg struct {
		APIKey string `json:"api_key"`
	}
	if err := sdk.Config(`{"api_key":"sk_test"}`).Decode(&cfg); err != nil {
		panic(err)
	}
	fmt.Println(cfg.APIKey)
	// Output: sk_test
}
