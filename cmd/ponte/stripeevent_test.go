package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	stripeconnector "github.com/ponte-hub/ponte/connectors/stripe"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// The events the command makes must be accepted and read by the real Stripe
// connector, the way a delivery from Stripe would be.
func TestStripeEventIsAcceptedByTheConnector(t *testing.T) {
	t.Parallel()
	const secret = "whsec_cli_test_secret"
	tests := map[string]struct {
		eventType string
		want      map[string]any // fields of the normalized payload
	}{
		"session completed": {"checkout.session.completed", map[string]any{"object": "checkout.session", "status": "complete", "payment_status": "paid", "amount": 4900.0, "currency": "eur", "payment_link": "pl_123"}},
		"session expired":   {"checkout.session.expired", map[string]any{"object": "checkout.session", "status": "expired", "payment_status": "unpaid", "payment_link": "pl_123"}},
		"intent succeeded":  {"payment_intent.succeeded", map[string]any{"object": "payment_intent", "status": "succeeded", "amount_received": 4900.0, "payment_link": "pl_123"}},
		"intent failed":     {"payment_intent.payment_failed", map[string]any{"object": "payment_intent", "failure_code": "card_declined", "payment_link": "pl_123"}},
		"charge refunded":   {"charge.refunded", map[string]any{"object": "charge", "refunded": true, "amount_refunded": 4900.0, "payment_link": "pl_123"}},
	}
	c, err := stripeconnector.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, ok := c.(sdk.WebhookHandler)
	if !ok {
		t.Fatal("the Stripe connector handles no webhooks")
	}
	cfg, _ := json.Marshal(map[string]string{"webhook_secret": secret, "secret_key": "sk_test_123"})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, _, err := ponte(t, "admin", "stripe-event", "--secret", secret, "--type", tc.eventType,
				"--payment-link", "pl_123", "--amount", "4900", "--currency", "EUR")
			if err != nil {
				t.Fatal(err)
			}
			var ev signedStripeEvent
			if err := json.Unmarshal([]byte(out), &ev); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			req := sdk.WebhookRequest{
				Method:     "POST",
				Headers:    map[string][]string{"Stripe-Signature": {ev.Signature}, "Content-Type": {"application/json"}},
				Body:       []byte(ev.Payload),
				ReceivedAt: time.Now(),
			}
			res, err := conn.HandleWebhook(context.Background(), sdk.Connection{ID: "con_1", Config: sdk.Config(cfg)}, req)
			if err != nil {
				t.Fatalf("the connector rejected the event: %v", err)
			}
			if len(res.Events) != 1 {
				t.Fatalf("%d events; want 1", len(res.Events))
			}
			got := res.Events[0]
			if got.Type != tc.eventType || got.DedupeKey != ev.EventID {
				t.Errorf("event %s/%s; want %s/%s", got.Type, got.DedupeKey, tc.eventType, ev.EventID)
			}
			var payload map[string]any
			if err := json.Unmarshal(got.Payload, &payload); err != nil {
				t.Fatal(err)
			}
			picked := map[string]any{}
			for k := range tc.want {
				picked[k] = payload[k]
			}
			if diff := cmp.Diff(tc.want, picked); diff != "" {
				t.Errorf("normalized payload (-want +got):\n%s", diff)
			}

			// The same event under another secret is refused.
			bad, _ := json.Marshal(map[string]string{"webhook_secret": "whsec_other_secret"})
			_, err = conn.HandleWebhook(context.Background(), sdk.Connection{ID: "con_1", Config: sdk.Config(bad)}, req)
			var sdkErr *sdk.Error
			if !errors.As(err, &sdkErr) || sdkErr.Kind != sdk.KindAuth {
				t.Errorf("wrong secret: err = %v; want an auth error", err)
			}
		})
	}
}

func TestStripeEventRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"unknown type":    {[]string{"--secret", "whsec_x", "--type", "invoice.paid"}, "unknown event type"},
		"no secret":       {[]string{"--type", "charge.refunded"}, `"secret" not set`},
		"negative amount": {[]string{"--secret", "whsec_x", "--amount", "-1"}, "negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, _, err := ponte(t, append([]string{"admin", "stripe-event"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v; want %q", err, tc.wantErr)
			}
			if out != "" {
				t.Errorf("printed %q on failure", out)
			}
		})
	}
}
