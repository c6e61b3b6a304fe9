package woocommerce

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Webhook headers WooCommerce sends with every delivery (WC_Webhook::deliver).
const (
	HeaderSignature  = "X-WC-Webhook-Signature"
	HeaderTopic      = "X-WC-Webhook-Topic"
	HeaderResource   = "X-WC-Webhook-Resource"
	HeaderEvent      = "X-WC-Webhook-Event"
	HeaderSource     = "X-WC-Webhook-Source"
	HeaderWebhookID  = "X-WC-Webhook-ID"
	HeaderDeliveryID = "X-WC-Webhook-Delivery-ID"
)

// pingBody is the body of the ping WooCommerce POSTs to a webhook's delivery
// URL when the webhook is created (WC_Webhook::deliver_ping): a form field,
// unsigned, with none of the X-WC-Webhook headers.
var pingBody = regexp.MustCompile(`^webhook_id=[0-9]+$`)

// Sign returns the X-WC-Webhook-Signature WooCommerce sends for body under
// secret: the base64 of its HMAC-SHA256. Tests and the fake use it.
func Sign(secret, body []byte) string {
	return base64.StdEncoding.EncodeToString(sdk.SignHMACSHA256(secret, body))
}

// HandleWebhook verifies a delivery and returns its normalized events.
//
// A ping (form body webhook_id=N, no signature) gets 200 and no events, so
// WooCommerce records the webhook's URL as working. Anything else must carry
// a valid X-WC-Webhook-Signature (Auth otherwise), and its topic
// (X-WC-Webhook-Topic, or X-WC-Webhook-Resource and -Event) decides how the
// body is read; topics the connector did not subscribe to are answered 200
// with no events, so WooCommerce does not count failures against a webhook
// someone else pointed here.
func (c *Connector) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	sig := strings.TrimSpace(req.Header(HeaderSignature))
	if sig == "" && pingBody.Match(req.Body) {
		c.log.InfoContext(ctx, "webhook ping received", "connection", conn.ID, "tenant", conn.TenantID)
		return sdk.WebhookResult{}, nil
	}
	var cfg Config
	if err := conn.Config.Decode(&cfg); err != nil {
		return sdk.WebhookResult{}, sdk.Permanent("%v", err)
	}
	if cfg.WebhookSecret == "" {
		return sdk.WebhookResult{}, sdk.Auth("the connection has no webhook_secret")
	}
	if sig == "" {
		return sdk.WebhookResult{}, sdk.Auth("missing %s", HeaderSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !sdk.VerifyHMACSHA256([]byte(cfg.WebhookSecret), req.Body, raw) {
		return sdk.WebhookResult{}, sdk.Auth("%s does not match the body", HeaderSignature)
	}

	topic := strings.ToLower(strings.TrimSpace(req.Header(HeaderTopic)))
	if topic == "" {
		if r, e := req.Header(HeaderResource), req.Header(HeaderEvent); r != "" && e != "" {
			topic = strings.ToLower(strings.TrimSpace(r) + "." + strings.TrimSpace(e))
		}
	}
	n := normalizer{defaultCountry: strings.ToUpper(strings.TrimSpace(cfg.DefaultCountry))}
	var events []sdk.Event
	switch topic {
	case "order.created", "order.updated", "order.restored":
		var o wooOrder
		if err := json.Unmarshal(req.Body, &o); err != nil {
			return sdk.WebhookResult{}, sdk.Invalid("%s delivery: the body is not a WooCommerce order: %v", topic, err)
		}
		events, err = n.orderEvents(o)
	case "order.deleted":
		var d struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(req.Body, &d); err != nil || d.ID <= 0 {
			return sdk.WebhookResult{}, sdk.Invalid("order.deleted delivery: the body has no order id")
		}
		events, err = n.deletedEvents(d.ID, req.ReceivedAt.UTC())
	case "customer.created", "customer.updated":
		var cu wooCustomer
		if err := json.Unmarshal(req.Body, &cu); err != nil {
			return sdk.WebhookResult{}, sdk.Invalid("%s delivery: the body is not a WooCommerce customer: %v", topic, err)
		}
		var ev sdk.Event
		ev, err = n.customerEvent(cu, topic == "customer.created")
		events = []sdk.Event{ev}
	default:
		c.log.DebugContext(ctx, "webhook topic ignored", "connection", conn.ID, "topic", topic)
		return sdk.WebhookResult{}, nil
	}
	if err != nil {
		return sdk.WebhookResult{}, err
	}
	c.log.DebugContext(ctx, "webhook received", "connection", conn.ID, "topic", topic,
		"webhook_id", req.Header(HeaderWebhookID), "delivery_id", req.Header(HeaderDeliveryID), "events", len(events))
	return sdk.WebhookResult{Events: events}, nil
}
