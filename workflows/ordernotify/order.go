package ordernotify

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Kind is a notification kind.
type Kind string

// Notification kinds. The order stages (all but the review request) are
// ranked: confirmation < shipped < out for delivery < delivered < cancelled
// < refunded. An order's workflow sends a stage only when it ranks above
// every stage already handled for the order, so an event arriving late never
// brings an older status after a newer one, nothing but the refund follows a
// cancellation, and nothing at all follows a refund.
const (
	KindConfirmation   Kind = "confirmation"
	KindShipped        Kind = "shipped"
	KindOutForDelivery Kind = "out_for_delivery"
	KindDelivered      Kind = "delivered"
	KindCancelled      Kind = "cancelled"
	KindRefunded       Kind = "refunded"
	// KindReviewRequest is not a stage: it follows the delivery after
	// ReviewRequest.After, unless the order is cancelled or refunded first.
	KindReviewRequest Kind = "review_request"
)

// Rank orders the stages; 0 for the review request and unknown kinds.
func (k Kind) Rank() int {
	switch k {
	case KindConfirmation:
		return 1
	case KindShipped:
		return 2
	case KindOutForDelivery:
		return 3
	case KindDelivered:
		return 4
	case KindCancelled:
		return 5
	case KindRefunded:
		return 6
	}
	return 0
}

// OrderEvent is the signal the dispatcher sends an order's workflow for each
// stored order.* or fulfillment.* event of the order.
type OrderEvent struct {
	// EventID is events.id.
	EventID    int64           `json:"event_id"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// Facts is what the workflow knows of its order, merged from every event
// seen: the newest order snapshot and the newest state of each fulfillment.
// It is carried across continue-as-new.
type Facts struct {
	// Order is the newest order payload seen (by UpdatedAt), nil before the
	// first order event. Its Fulfillments are merged into Fulfillments.
	Order *commerce.Order `json:"order,omitempty"`
	// Fulfillments are the shipments seen, each at its newest, in the order
	// they were first seen.
	Fulfillments []commerce.Fulfillment `json:"fulfillments,omitempty"`
	// Contact is the customer as a fulfillment event gave it, used when no
	// order event has been seen.
	Contact *commerce.Contact `json:"contact,omitempty"`
	// Deleted is set by order.deleted: nothing more is sent.
	Deleted bool `json:"deleted,omitempty"`
}

// Apply merges an event into the facts. A payload that does not decode, or
// an event type the workflow does not read, changes nothing and is returned
// as an error saying so.
func (f *Facts) Apply(ev OrderEvent) error {
	switch {
	case ev.Type == commerce.EventOrderDeleted:
		f.Deleted = true
		return nil
	case strings.HasPrefix(ev.Type, "order."):
		var o commerce.Order
		if err := json.Unmarshal(ev.Payload, &o); err != nil {
			return fmt.Errorf("decoding %s payload: %w", ev.Type, err)
		}
		if f.Order == nil || !o.UpdatedAt.Before(f.Order.UpdatedAt) {
			snapshot := o
			snapshot.Fulfillments = nil
			f.Order = &snapshot
		}
		for _, fl := range o.Fulfillments {
			f.mergeFulfillment(fl)
		}
		return nil
	case strings.HasPrefix(ev.Type, "fulfillment."):
		var fl commerce.Fulfillment
		if err := json.Unmarshal(ev.Payload, &fl); err != nil {
			return fmt.Errorf("decoding %s payload: %w", ev.Type, err)
		}
		if fl.Contact != nil {
			c := *fl.Contact
			f.Contact = &c
		}
		fl.Contact = nil
		f.mergeFulfillment(fl)
		return nil
	}
	return fmt.Errorf("event type %q does not concern order notifications", ev.Type)
}

// mergeFulfillment keeps the newer state of a fulfillment. Fulfillments
// without an id (a shop that reports only order-level shipment data) are
// kept as one.
func (f *Facts) mergeFulfillment(fl commerce.Fulfillment) {
	for i, cur := range f.Fulfillments {
		if cur.ID == fl.ID {
			// Without a time (a shop that keeps none) the latest to
			// arrive is all there is to go by.
			if fl.UpdatedAt.IsZero() || !fl.UpdatedAt.Before(cur.UpdatedAt) {
				f.Fulfillments[i] = fl
			}
			return
		}
	}
	f.Fulfillments = append(f.Fulfillments, fl)
}

// active returns the fulfillments that are shipments in progress or done;
// cancelled and failed ones do not count.
func (f *Facts) active() []commerce.Fulfillment {
	var out []commerce.Fulfillment
	for _, fl := range f.Fulfillments {
		switch fl.Status {
		case "cancelled", "error", "failure":
			continue
		}
		out = append(out, fl)
	}
	return out
}

// Stage derives the order's current stage from the facts (never from event
// types alone, which shops send out of order and repeat): refunded when the
// order is fully refunded, cancelled when it has a cancellation time,
// delivered when every active shipment is delivered and nothing is left to
// ship, out for delivery when a shipment is, shipped when a shipment has
// tracking details or a carrier status or the order is fulfilled, and
// confirmation once the order exists. ok is false when nothing is known yet
// or the order was deleted.
func (f *Facts) Stage() (k Kind, ok bool) {
	if f.Deleted {
		return "", false
	}
	o := f.Order
	if o != nil && fullyRefunded(o) {
		return KindRefunded, true
	}
	if o != nil && o.CancelledAt != nil {
		return KindCancelled, true
	}
	act := f.active()
	if len(act) > 0 && (o == nil || o.FulfillmentStatus != "partial") &&
		!slices.ContainsFunc(act, func(fl commerce.Fulfillment) bool { return fl.ShipmentStatus != commerce.ShipmentDelivered }) {
		return KindDelivered, true
	}
	if slices.ContainsFunc(act, func(fl commerce.Fulfillment) bool { return fl.ShipmentStatus == commerce.ShipmentOutForDelivery }) {
		return KindOutForDelivery, true
	}
	if slices.ContainsFunc(act, shipped) || (o != nil && o.FulfillmentStatus == "fulfilled") {
		return KindShipped, true
	}
	if o != nil {
		return KindConfirmation, true
	}
	return "", false
}

// shipped reports whether a fulfillment says the parcel left: it has
// tracking details, or the carrier reports it moving. A fulfillment created
// without tracking waits for its update (a shop often adds the tracking
// number a moment later), unless the order is fully fulfilled.
func shipped(fl commerce.Fulfillment) bool {
	if fl.TrackingNumber != "" || fl.TrackingURL != "" {
		return true
	}
	switch fl.ShipmentStatus {
	case "", commerce.ShipmentLabelPrinted:
		return false
	}
	return true
}

// fullyRefunded: the shop says refunded, or the refunded amount reaches the
// total. A partial refund (one item returned) is not the order's refund.
func fullyRefunded(o *commerce.Order) bool {
	if o.FinancialStatus == commerce.FinancialRefunded {
		return true
	}
	refunded, ok1 := new(big.Rat).SetString(o.RefundedAmount)
	total, ok2 := new(big.Rat).SetString(o.Total)
	return ok1 && ok2 && refunded.Sign() > 0 && total.Sign() > 0 && refunded.Cmp(total) >= 0
}

// paid reports whether the order is paid (or was, before a refund).
func paid(o *commerce.Order) bool {
	if o == nil {
		return false
	}
	switch o.FinancialStatus {
	case commerce.FinancialPaid, commerce.FinancialPartiallyRefunded, commerce.FinancialRefunded:
		return true
	}
	return o.PaidAt != nil
}

// Details are what a notification says of its order: the values of the
// message variables and the recipient, computed by the workflow from its
// facts when the notification is due.
type Details struct {
	// Phone is the customer's phone in E.164; empty with PhoneProblem
	// saying why.
	Phone        string `json:"phone,omitempty"`
	PhoneProblem string `json:"phone_problem,omitempty"`
	Name         string `json:"name,omitempty"`
	OrderName    string `json:"order_name,omitempty"`
	Total        string `json:"total,omitempty"`
	Items        string `json:"items,omitempty"`
	Carrier      string `json:"carrier,omitempty"`
	TrackingNo   string `json:"tracking_number,omitempty"`
	TrackingURL  string `json:"tracking_url,omitempty"`
	StatusURL    string `json:"status_url,omitempty"`
	// Paid says the order is paid, for ConfirmOnPaid.
	Paid bool `json:"paid,omitempty"`
}

// Details computes the notification details of kind from the facts. The
// shipment named is the first with tracking details for shipped, the first
// out for delivery or delivered for those stages.
func (f *Facts) Details(k Kind) Details {
	var d Details
	c := f.Contact
	if o := f.Order; o != nil {
		c = &o.Contact
		d.OrderName = o.Name
		if o.Total != "" {
			d.Total = strings.TrimSpace(o.Total + " " + o.Currency)
		}
		d.Items = itemsText(o.LineItems)
		d.StatusURL = o.StatusURL
		d.Paid = paid(o)
	}
	if c != nil {
		d.Phone, d.Name = c.Phone, c.FirstName
		if d.Phone == "" {
			d.PhoneProblem = c.PhoneProblem
		}
	}
	if d.Phone == "" && d.PhoneProblem == "" {
		d.PhoneProblem = commerce.PhoneMissing
	}
	act := f.active()
	pick := func(match func(commerce.Fulfillment) bool) (commerce.Fulfillment, bool) {
		i := slices.IndexFunc(act, match)
		if i < 0 {
			return commerce.Fulfillment{}, false
		}
		return act[i], true
	}
	var fl commerce.Fulfillment
	var found bool
	switch k {
	case KindOutForDelivery:
		fl, found = pick(func(x commerce.Fulfillment) bool { return x.ShipmentStatus == commerce.ShipmentOutForDelivery })
	case KindDelivered, KindReviewRequest:
		fl, found = pick(func(x commerce.Fulfillment) bool { return x.ShipmentStatus == commerce.ShipmentDelivered })
	}
	if !found {
		fl, found = pick(func(x commerce.Fulfillment) bool { return x.TrackingNumber != "" || x.TrackingURL != "" })
	}
	if !found && len(act) > 0 {
		fl, found = act[0], true
	}
	if found {
		d.Carrier, d.TrackingNo, d.TrackingURL = fl.TrackingCompany, fl.TrackingNumber, fl.TrackingURL
	}
	return d
}

// deliveredAt is when the shop says the order was delivered: the newest
// delivered shipment's update time, or zero when it does not say.
func (f *Facts) deliveredAt() time.Time {
	var at time.Time
	for _, fl := range f.active() {
		if fl.ShipmentStatus == commerce.ShipmentDelivered && fl.UpdatedAt.After(at) {
			at = fl.UpdatedAt
		}
	}
	return at
}

// maxItemsText bounds the items variable: a template parameter has a length
// limit, and a message listing fifty lines helps nobody.
const maxItemsText = 300

// itemsText lists an order's lines as "2× Blue mug (Large), Tea", cut to
// maxItemsText with the count of lines left out.
func itemsText(items []commerce.LineItem) string {
	var b strings.Builder
	for i, it := range items {
		s := it.Title
		if it.VariantTitle != "" {
			s += " (" + it.VariantTitle + ")"
		}
		if it.Quantity > 1 {
			s = fmt.Sprintf("%d× %s", it.Quantity, s)
		}
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if utf8.RuneCountInString(b.String()+sep+s) > maxItemsText {
			fmt.Fprintf(&b, " and %d more", len(items)-i)
			break
		}
		b.WriteString(sep + s)
	}
	return b.String()
}
