package cartrecovery

import (
	"testing"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// An order counts from when it was placed; an unpaid order that was its own
// cart (WooCommerce) counts from its payment.
func TestOrderInfoTime(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	paid := created.Add(2 * time.Hour)
	occurred := created.Add(3 * time.Hour)
	tests := map[string]struct {
		order commerce.Order
		want  time.Time
	}{
		"shopify order":          {commerce.Order{ID: "1", CheckoutID: "tok", CreatedAt: created, PaidAt: &paid}, created},
		"woocommerce paid order": {commerce.Order{ID: "7", CheckoutID: "7", CreatedAt: created, PaidAt: &paid}, paid},
		"woocommerce, no date":   {commerce.Order{ID: "7", CheckoutID: "7", CreatedAt: created}, occurred},
		"no creation time":       {commerce.Order{ID: "1"}, occurred},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := orderInfo(OrderEvent{Order: tc.order, OccurredAt: occurred}).At
			if !got.Equal(tc.want) {
				t.Errorf("At = %v, want %v", got, tc.want)
			}
		})
	}
}
