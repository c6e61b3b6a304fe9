package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v76/webhook"
)

// stripeEventTypes are the Stripe events `admin stripe-event` can make: the
// ones the Stripe connector normalizes.
var stripeEventTypes = []string{
	"checkout.session.completed",
	"checkout.session.expired",
	"payment_intent.succeeded",
	"payment_intent.payment_failed",
	"charge.refunded",
}

// stripeMetadataPaymentLink is the metadata key under which Ponte puts its
// payment link id on Stripe objects (connectors/stripe.MetadataPaymentLink;
// repeated so the CLI does not link the connector in).
const stripeMetadataPaymentLink = "ponte_payment_link"

// stripeEventOptions describe the event to make.
type stripeEventOptions struct {
	secret, eventType, paymentLink, stripePaymentLink, currency string
	amount                                                      int64
	at                                                          time.Time
}

// signedStripeEvent is what `admin stripe-event` prints.
type signedStripeEvent struct {
	EventID string `json:"event_id"`
	// Signature is the Stripe-Signature header value.
	Signature string `json:"signature"`
	// Payload is the exact request body the signature covers.
	Payload string `json:"payload"`
}

func newStripeEventCmd() *cobra.Command {
	var o stripeEventOptions
	cmd := &cobra.Command{
		Use:   "stripe-event --secret whsec_... --type TYPE --payment-link pl_... --amount N --currency eur",
		Short: "Make a Stripe webhook event signed like Stripe signs it, for testing a connection",
		Long: "Print a JSON object with a test Stripe event (payload) and its Stripe-Signature header value\n" +
			"(signature), signed with the connection's webhook secret the way Stripe does (t=...,v1=...).\n" +
			"The event's object carries the Ponte payment link id in its metadata, as the objects of\n" +
			"links Ponte creates do. Send it with:\n" +
			"  curl $PONTE/hooks/$CONN -H \"Stripe-Signature: $(jq -r .signature e.json)\" \\\n" +
			"       -H 'Content-Type: application/json' --data-binary \"$(jq -r .payload e.json)\"\n" +
			"Types: " + strings.Join(stripeEventTypes, ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.at = time.Now()
			ev, err := makeStripeEvent(o)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ev)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.secret, "secret", "", "the connection's webhook signing secret (whsec_...)")
	f.StringVar(&o.eventType, "type", "checkout.session.completed", "the event type")
	f.StringVar(&o.paymentLink, "payment-link", "", "the Ponte payment link id (pl_...) put in the object's metadata")
	f.StringVar(&o.stripePaymentLink, "stripe-payment-link", "", "the Stripe payment link (plink_...) a checkout session came from")
	f.Int64Var(&o.amount, "amount", 0, "the amount in the currency's minor unit (cents)")
	f.StringVar(&o.currency, "currency", "eur", "the ISO 4217 currency code")
	_ = cmd.MarkFlagRequired("secret")
	return cmd
}

// makeStripeEvent builds and signs a test event with stripe-go's own
// signing helper, so the signature is exactly what Stripe would send.
func makeStripeEvent(o stripeEventOptions) (signedStripeEvent, error) {
	if !slices.Contains(stripeEventTypes, o.eventType) {
		return signedStripeEvent{}, fmt.Errorf("unknown event type %q (want one of %s)", o.eventType, strings.Join(stripeEventTypes, ", "))
	}
	if o.secret == "" {
		return signedStripeEvent{}, fmt.Errorf("a webhook secret is required")
	}
	if o.amount < 0 {
		return signedStripeEvent{}, fmt.Errorf("amount %d is negative", o.amount)
	}
	currency := strings.ToLower(o.currency)
	metadata := map[string]string{}
	if o.paymentLink != "" {
		metadata[stripeMetadataPaymentLink] = o.paymentLink
	}
	pi, charge := "pi_test_"+randomHex(12), "ch_test_"+randomHex(12)
	var object map[string]any
	switch o.eventType {
	case "checkout.session.completed", "checkout.session.expired":
		status, paymentStatus := "complete", "paid"
		if o.eventType == "checkout.session.expired" {
			status, paymentStatus = "expired", "unpaid"
		}
		object = map[string]any{
			"id": "cs_test_" + randomHex(16), "object": "checkout.session", "livemode": false,
			"status": status, "payment_status": paymentStatus, "mode": "payment",
			"amount_total": o.amount, "currency": currency, "metadata": metadata,
		}
		if status == "complete" {
			object["payment_intent"] = pi
		}
		if o.stripePaymentLink != "" {
			object["payment_link"] = o.stripePaymentLink
		}
	case "payment_intent.succeeded":
		object = map[string]any{
			"id": pi, "object": "payment_intent", "livemode": false, "status": "succeeded",
			"amount": o.amount, "amount_received": o.amount, "currency": currency,
			"latest_charge": charge, "metadata": metadata,
		}
	case "payment_intent.payment_failed":
		object = map[string]any{
			"id": pi, "object": "payment_intent", "livemode": false, "status": "requires_payment_method",
			"amount": o.amount, "amount_received": 0, "currency": currency, "metadata": metadata,
			"last_payment_error": map[string]any{
				"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
				"message": "Your card was declined.",
			},
		}
	case "charge.refunded":
		object = map[string]any{
			"id": charge, "object": "charge", "livemode": false, "status": "succeeded", "paid": true,
			"amount": o.amount, "amount_refunded": o.amount, "refunded": true, "currency": currency,
			"payment_intent": pi, "metadata": metadata,
		}
	}
	eventID := "evt_test_" + randomHex(16)
	payload, err := json.Marshal(map[string]any{
		"id":               eventID,
		"object":           "event",
		"api_version":      "2023-10-16",
		"created":          o.at.Unix(),
		"livemode":         false,
		"pending_webhooks": 1,
		"type":             o.eventType,
		"data":             map[string]any{"object": object},
	})
	if err != nil {
		return signedStripeEvent{}, fmt.Errorf("encoding the event: %w", err)
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: o.secret, Timestamp: o.at})
	return signedStripeEvent{EventID: eventID, Signature: signed.Header, Payload: string(payload)}, nil
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return hex.EncodeToString(b)
}
