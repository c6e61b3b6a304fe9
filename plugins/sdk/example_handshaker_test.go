package sdk_test

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/url"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// metaStyle answers the GET a Meta-style provider sends when a user saves the
// webhook URL: hub.mode=subscribe, the verify token the user typed into both
// consoles, and a challenge to echo back.
type metaStyle struct{}

var _ sdk.Handshaker = metaStyle{}

func (metaStyle) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name: "metastyle", Version: "1.0.0", DisplayName: "Meta-style",
		Config: []sdk.ConfigField{{
			Name: "verify_token", Type: sdk.FieldString, Required: true, Secret: true,
			Description: "Any string; paste the same into the provider's webhook settings",
		}},
		Webhooks: true,
	}
}

func (metaStyle) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	var cfg struct {
		VerifyToken string `json:"verify_token"`
	}
	if err := conn.Config.Decode(&cfg); err != nil {
		return sdk.HTTPResponse{}, sdk.Permanent("reading config: %v", err)
	}
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		return sdk.HTTPResponse{}, sdk.Invalid("parsing query: %v", err)
	}
	// Constant-time comparison: the token is a shared secret.
	if q.Get("hub.mode") != "subscribe" || cfg.VerifyToken == "" ||
		subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(cfg.VerifyToken)) != 1 {
		return sdk.HTTPResponse{}, sdk.Auth("verify token does not match")
	}
	return sdk.HTTPResponse{
		Headers: map[string]string{"Content-Type": "text/plain"},
		Body:    []byte(q.Get("hub.challenge")),
	}, nil
}

// A Handshaker answers the provider's GET that verifies the webhook URL. The
// host sends the response back as is; Status 0 means 200.
func ExampleHandshaker() {
	conn := sdk.Connection{ID: "conn_1", Config: sdk.Config(`{"verify_token":"blue-falcon"}`)}
	var h sdk.Handshaker = metaStyle{}

	res, err := h.Handshake(context.Background(), conn, sdk.WebhookRequest{
		Method: "GET",
		Query:  "hub.mode=subscribe&hub.verify_token=blue-falcon&hub.challenge=1158201444",
	})
	fmt.Println(res.Status, string(res.Body), err)

	_, err = h.Handshake(context.Background(), conn, sdk.WebhookRequest{
		Method: "GET",
		Query:  "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
	})
	fmt.Println(sdk.KindOf(err))
	// Output:
	// 0 1158201444 <nil>
	// auth
}
