// Package commerce is the shared vocabulary of shop connectors: the event
// types, correlation keys and payloads a connector for an online shop emits so
// that Ponte's commerce workflows (abandoned-cart recovery, order
// notifications) work with it unchanged.
//
// A shop connector (Shopify, WooCommerce, or one an agency writes for another
// platform) normalizes the provider's checkouts, orders, fulfillments and
// customers into these types and emits them with these event types and
// correlation keys. The workflows read nothing provider-specific.
//
// Money is carried as decimal strings in the shop's currency ("19.90"), never
// as floats, so totals add up to the cent.
package commerce

import "time"

// Event types of shop connectors. Declare the ones the connector emits in its
// manifest.
const (
	// EventCheckoutCreated, EventCheckoutUpdated and EventCheckoutDeleted
	// carry a [Checkout]: a cart the customer started paying for and has
	// not turned into a paid order. On platforms where an unpaid order is
	// the abandoned cart (WooCommerce's pending, failed and checkout-draft
	// orders), the connector emits those orders as checkouts.
	EventCheckoutCreated = "checkout.created"
	EventCheckoutUpdated = "checkout.updated"
	EventCheckoutDeleted = "checkout.deleted"

	// Order events carry an [Order]. EventOrderCreated is emitted once per
	// order (paid or not); the others when the order changes.
	EventOrderCreated   = "order.created"
	EventOrderUpdated   = "order.updated"
	EventOrderPaid      = "order.paid"
	EventOrderCancelled = "order.cancelled"
	EventOrderFulfilled = "order.fulfilled"
	EventOrderRefunded  = "order.refunded"
	EventOrderDeleted   = "order.deleted"

	// Fulfillment events carry a [Fulfillment]: a shipment of an order, with
	// its tracking details and the carrier's shipment status.
	EventFulfillmentCreated = "fulfillment.created"
	EventFulfillmentUpdated = "fulfillment.updated"

	// Customer events carry a [Customer], with the customer's marketing
	// consent as the shop records it.
	EventCustomerCreated = "customer.created"
	EventCustomerUpdated = "customer.updated"
)

// Correlation keys shop connectors set on their events (sdk.Event
// Correlation). The workflows derive their workflow ids from them.
const (
	// CorrelationCheckout is the checkout's id on checkout events, and on
	// order events the id of the checkout the order came from (when the
	// shop says), which is how an order ends its cart's recovery.
	CorrelationCheckout = "checkout"
	// CorrelationOrder is the order's id on order and fulfillment events.
	CorrelationOrder = "order"
	// CorrelationCustomer is the shop's customer id, when there is one.
	CorrelationCustomer = "customer"
	// CorrelationPhone is the customer's phone in E.164, when known.
	CorrelationPhone = "phone"
)

// Skip reasons a connector gives in [Checkout].PhoneProblem and
// [Order].PhoneProblem when the customer cannot be reached on WhatsApp.
const (
	// PhoneMissing: neither the checkout nor its customer or addresses
	// carry a phone.
	PhoneMissing = "no_phone"
	// PhoneInvalid: a phone was given but is not a valid number, even read
	// with the shop's country (the raw value is in PhoneRaw).
	PhoneInvalid = "invalid_phone"
)

// Customer names and contact details of a checkout or an order.
type Contact struct {
	// Phone is the customer's phone in E.164 ("+393331234567"), normalized
	// with the shop's (or the address's) country when written without an
	// international prefix; empty when there is none or it is invalid.
	Phone string `json:"phone,omitempty"`
	// PhoneRaw is the phone exactly as the shop had it, when it was not
	// usable as given.
	PhoneRaw string `json:"phone_raw,omitempty"`
	// PhoneProblem says why Phone is empty: [PhoneMissing] or
	// [PhoneInvalid].
	PhoneProblem string `json:"phone_problem,omitempty"`
	Email        string `json:"email,omitempty"`
	FirstName    string `json:"first_name,omitempty"`
	LastName     string `json:"last_name,omitempty"`
	// CustomerID is the shop's customer id; empty for guests.
	CustomerID string `json:"customer_id,omitempty"`
	// Country is the ISO 3166 alpha-2 country of the billing or shipping
	// address (or the shop's), used to read national phone numbers.
	Country string `json:"country,omitempty"`
	// Locale is the customer's language when the shop knows it ("it",
	// "en-US"), to choose a template language.
	Locale string `json:"locale,omitempty"`
}

// LineItem is one product line of a checkout or an order.
type LineItem struct {
	Title        string `json:"title"`
	VariantTitle string `json:"variant_title,omitempty"`
	SKU          string `json:"sku,omitempty"`
	ProductID    string `json:"product_id,omitempty"`
	VariantID    string `json:"variant_id,omitempty"`
	Quantity     int    `json:"quantity"`
	// Price is the unit price, a decimal string in the checkout's currency.
	Price string `json:"price"`
}

// Checkout is a cart the customer started checking out and has not paid:
// the payload of the checkout.* events and of the fetch-checkout actions.
type Checkout struct {
	// ID is the checkout's stable id at the shop (Shopify's checkout token,
	// WooCommerce's order id); the CorrelationCheckout of its events.
	ID string `json:"id"`
	Contact
	Currency string `json:"currency"`
	// Subtotal and Total are decimal strings in Currency.
	Subtotal  string     `json:"subtotal,omitempty"`
	Total     string     `json:"total"`
	LineItems []LineItem `json:"line_items"`
	// RecoveryURL takes the customer back to this cart to pay: Shopify's
	// abandoned_checkout_url, WooCommerce's payment_url.
	RecoveryURL string `json:"recovery_url"`
	// MarketingConsent is the customer's marketing consent for the phone
	// channel as the shop records it, when it does.
	MarketingConsent *MarketingConsent `json:"marketing_consent,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	// UpdatedAt is the checkout's last change at the shop; events with an
	// older UpdatedAt than one already seen are stale.
	UpdatedAt time.Time `json:"updated_at"`
	// CompletedAt is set when the checkout became an order.
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// OrderID is the order the checkout became, when it did.
	OrderID string `json:"order_id,omitempty"`
}

// Financial statuses of an [Order], normalized.
const (
	FinancialPending           = "pending"
	FinancialAuthorized        = "authorized"
	FinancialPaid              = "paid"
	FinancialPartiallyRefunded = "partially_refunded"
	FinancialRefunded          = "refunded"
	FinancialVoided            = "voided"
	FinancialFailed            = "failed"
)

// Order is an order at the shop: the payload of the order.* events and of
// the fetch-order actions.
type Order struct {
	ID string `json:"id"`
	// Name is the order's number as the customer sees it ("#1001").
	Name string `json:"name"`
	// CheckoutID is the checkout the order came from, when the shop says
	// (Shopify's checkout_token; WooCommerce's own order id).
	CheckoutID string `json:"checkout_id,omitempty"`
	Contact
	Currency  string     `json:"currency"`
	Total     string     `json:"total"`
	LineItems []LineItem `json:"line_items"`
	// FinancialStatus is one of the Financial... constants.
	FinancialStatus string `json:"financial_status"`
	// FulfillmentStatus is "", "partial" or "fulfilled".
	FulfillmentStatus string `json:"fulfillment_status,omitempty"`
	// StatusURL is the customer's order status page, when the shop has one.
	StatusURL string `json:"status_url,omitempty"`
	// PaymentURL is where an unpaid order can be paid (WooCommerce).
	PaymentURL string `json:"payment_url,omitempty"`
	// Fulfillments are the order's shipments known so far.
	Fulfillments []Fulfillment `json:"fulfillments,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	PaidAt       *time.Time    `json:"paid_at,omitempty"`
	CancelledAt  *time.Time    `json:"cancelled_at,omitempty"`
	// CancelReason is the shop's reason for a cancellation, when given.
	CancelReason string `json:"cancel_reason,omitempty"`
	// RefundedAmount is the total refunded so far, a decimal string; empty
	// when nothing was refunded.
	RefundedAmount string `json:"refunded_amount,omitempty"`
}

// Shipment statuses of a [Fulfillment], normalized from the carrier's
// tracking events as the shop reports them.
const (
	ShipmentLabelPrinted      = "label_printed"
	ShipmentInTransit         = "in_transit"
	ShipmentOutForDelivery    = "out_for_delivery"
	ShipmentDelivered         = "delivered"
	ShipmentFailure           = "failure"
	ShipmentAttemptedDelivery = "attempted_delivery"
	ShipmentReadyForPickup    = "ready_for_pickup"
)

// Fulfillment is a shipment of an order: the payload of the fulfillment.*
// events.
type Fulfillment struct {
	ID      string `json:"id"`
	OrderID string `json:"order_id"`
	// Status is the fulfillment's own status: "pending", "open", "success",
	// "cancelled", "error" or "failure".
	Status string `json:"status"`
	// ShipmentStatus is the latest carrier status, one of the Shipment...
	// constants, or "" when the shop has none yet.
	ShipmentStatus  string    `json:"shipment_status,omitempty"`
	TrackingCompany string    `json:"tracking_company,omitempty"`
	TrackingNumber  string    `json:"tracking_number,omitempty"`
	TrackingURL     string    `json:"tracking_url,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
	// Contact is the order's customer, when the shop sends it with the
	// fulfillment.
	Contact *Contact `json:"contact,omitempty"`
}

// Marketing consent states, as shops record them.
const (
	ConsentSubscribed    = "subscribed"
	ConsentNotSubscribed = "not_subscribed"
	ConsentUnsubscribed  = "unsubscribed"
	ConsentPending       = "pending"
	ConsentRedacted      = "redacted"
)

// MarketingConsent is the shop's record of a customer's consent to marketing
// on the phone channel (Shopify's smsMarketingConsent): it reaches Ponte's
// consent ledger as evidence with the shop as its source.
type MarketingConsent struct {
	// State is one of the Consent... constants.
	State string `json:"state"`
	// OptInLevel is "single_opt_in", "confirmed_opt_in" or "unknown".
	OptInLevel string `json:"opt_in_level,omitempty"`
	// UpdatedAt is when the consent last changed at the shop.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	// Source is where the shop collected it ("checkout", "admin", ...),
	// when it says.
	Source string `json:"source,omitempty"`
}

// Customer is a shop's customer: the payload of the customer.* events and an
// item of the list-customers actions.
type Customer struct {
	ID string `json:"id"`
	Contact
	// MarketingConsent is the customer's consent to phone marketing, when
	// the shop records it.
	MarketingConsent *MarketingConsent `json:"marketing_consent,omitempty"`
	Tags             []string          `json:"tags,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

// CustomerPage is the result of a list-customers action: one page, and the
// cursor of the next (empty on the last page).
type CustomerPage struct {
	Customers  []Customer `json:"customers"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Discount is the result of a create-discount action: a single-use code
// for one customer.
type Discount struct {
	Code string `json:"code"`
	// Percent is the percentage off.
	Percent float64 `json:"percent"`
	// ExpiresAt is when the code stops working, when it does.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// ID is the shop's id of the discount (price rule, coupon).
	ID string `json:"id,omitempty"`
}

// Actions every shop connector offers with these names and these parameter
// and result shapes, so the commerce workflows can call any of them.
const (
	// ActionGetCheckout: params {"checkout_id": "..."}; result [Checkout].
	ActionGetCheckout = "get_checkout"
	// ActionGetOrder: params {"order_id": "..."}; result [Order].
	ActionGetOrder = "get_order"
	// ActionCreateDiscount: params [DiscountParams]; result [Discount].
	ActionCreateDiscount = "create_discount"
	// ActionListCustomers: params {"cursor": "...", "limit": 50}; result
	// [CustomerPage].
	ActionListCustomers = "list_customers"
)

// DiscountParams are the parameters of [ActionCreateDiscount].
type DiscountParams struct {
	// Percent off, 1 to 100.
	Percent float64 `json:"percent"`
	// ValidFor is how long the code works, in seconds from now; 0 for no
	// expiry.
	ValidForSeconds int64 `json:"valid_for_seconds,omitempty"`
	// CustomerID restricts the code to one customer, when the shop knows
	// them; Email likewise where the shop restricts by email.
	CustomerID string `json:"customer_id,omitempty"`
	Email      string `json:"email,omitempty"`
	// Prefix starts the generated code ("COMEBACK-"); the rest is random.
	Prefix string `json:"prefix,omitempty"`
	// Reference names what the code is for (a checkout id), stored with
	// the discount at the shop where it can be, to find it again.
	Reference string `json:"reference,omitempty"`
}
