package sdk_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// crmWebhooks receives the webhooks of a small CRM. Each delivery is one JSON
// event signed with the hex HMAC-SHA256 of the raw body in
// X-CRM-Signature ("sha256=<hex>").
type crmWebhooks struct{}

var _ sdk.WebhookHandler = crmWebhooks{}

func (crmWebhooks) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name:        "tinycrm",
		Version:     "1.0.0",
		DisplayName: "Tiny CRM",
		Config: []sdk.ConfigField{{
			Name: "webhook_secret", Type: sdk.FieldString, Required: true, Secret: true,
			Description: "Settings > Webhooks > Signing secret",
		}},
		Events:   []sdk.EventType{{Type: "contact.created"}, {Type: "deal.won"}},
		Webhooks: true,
	}
}

// crmDelivery is the provider's webhook body.
type crmDelivery struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"` // Unix seconds
	Data      json.RawMessage `json:"data"`
}

func (crmWebhooks) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	var cfg struct {
		WebhookSecret string `json:"webhook_secret"`
	}
	if err := conn.Config.Decode(&cfg); err != nil {
		return sdk.WebhookResult{}, sdk.Permanent("reading config: %v", err)
	}
	// Verify before parsing: nothing from an unsigned body is trusted. The
	// host answers 401 to Auth and does not tell the caller why.
	if !sdk.VerifyHMACSHA256Hex([]byte(cfg.WebhookSecret), req.Body, req.Header("X-CRM-Signature")) {
		return sdk.WebhookResult{}, sdk.Auth("bad or missing X-CRM-Signature")
	}
	var d crmDelivery
	if err := json.Unmarshal(req.Body, &d); err != nil {
		return sdk.WebhookResult{}, sdk.Invalid("decoding delivery: %v", err)
	}
	switch d.Type {
	case "contact.created", "deal.won":
	default:
		// An event type we do not declare: accept the delivery (so the
		// provider stops retrying) and emit nothing.
		return sdk.WebhookResult{}, nil
	}
	return sdk.WebhookResult{Events: []sdk.Event{{
		// The provider's event id is stable across redeliveries, so a
		// retried delivery is stored once.
		DedupeKey:  d.ID,
		Type:       d.Type,
		OccurredAt: time.Unix(d.CreatedAt, 0).UTC(),
		Payload:    d.Data,
	}}}, nil
}

// A WebhookHandler verifies the signature over the raw body, then turns the
// delivery into events with a dedupe key. Here a signed delivery and a forged
// one go through the handler the way the host would pass them.
func ExampleWebhookHandler() {
	secret := "whsec_test"
	conn := sdk.Connection{ID: "conn_1", Config: sdk.Config(`{"webhook_secret":"` + secret + `"}`)}
	body := []byte(`{"id":"evt_81","type":"deal.won","created_at":1767225600,"data":{"deal_id":"d_7"}}`)
	sig := "sha256=" + hex.EncodeToString(sdk.SignHMACSHA256([]byte(secret), body))

	var h sdk.WebhookHandler = crmWebhooks{}
	res, err := h.HandleWebhook(context.Background(), conn, sdk.WebhookRequest{
		Method:  "POST",
		Headers: map[string][]string{"X-Crm-Signature": {sig}},
		Body:    body,
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, e := range res.Events {
		fmt.Println(e.DedupeKey, e.Type, e.OccurredAt.Format(time.RFC3339), string(e.Payload))
	}

	_, err = h.HandleWebhook(context.Background(), conn, sdk.WebhookRequest{
		Method:  "POST",
		Headers: map[string][]string{"X-Crm-Signature": {"sha256=00"}},
		Body:    body,
	})
	fmt.Println(sdk.KindOf(err))
	// Output:
	// evt_81 deal.won 2026-01-01T00:00:00Z {"deal_id":"d_7"}
	// auth
}
