package fakewoo

import (
	"encoding/json"
	"net/url"
)

// Address is a billing or shipping address as the REST API shows it.
// Shipping addresses have no email; the field is left empty there.
type Address struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Company   string `json:"company"`
	Address1  string `json:"address_1"`
	Address2  string `json:"address_2"`
	City      string `json:"city"`
	State     string `json:"state"`
	Postcode  string `json:"postcode"`
	Country   string `json:"country"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone"`
}

// Meta is a meta_data entry of an order, a line item or a customer. Value
// is any JSON value (the Shipment Tracking extension stores an array of
// objects). DisplayKey and DisplayValue are set on line items' meta.
type Meta struct {
	ID           int64  `json:"id"`
	Key          string `json:"key"`
	Value        any    `json:"value"`
	DisplayKey   string `json:"display_key,omitempty"`
	DisplayValue any    `json:"display_value,omitempty"`
}

// LineItem is a product line of an order. The fake fills Subtotal and
// Total from Price and Quantity when they are empty.
type LineItem struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	ProductID   int64   `json:"product_id"`
	VariationID int64   `json:"variation_id"`
	Quantity    int     `json:"quantity"`
	TaxClass    string  `json:"tax_class"`
	Subtotal    string  `json:"subtotal"`
	SubtotalTax string  `json:"subtotal_tax"`
	Total       string  `json:"total"`
	TotalTax    string  `json:"total_tax"`
	Taxes       []any   `json:"taxes"`
	MetaData    []Meta  `json:"meta_data"`
	SKU         string  `json:"sku"`
	Price       float64 `json:"price"`
	ParentName  *string `json:"parent_name"`
}

// Refund is an entry of an order's refunds; Total is negative ("-5.00").
type Refund struct {
	ID     int64  `json:"id"`
	Reason string `json:"reason"`
	Total  string `json:"total"`
}

// Order is an order as GET /wp-json/wc/v3/orders/{id} returns it (and as
// webhooks carry it). Dates are WooCommerce's "2006-01-02T15:04:05"; the
// fake's site time zone is UTC, so a date and its _gmt twin are equal. The
// fake sets id, number, order_key, payment_url, the dates, totals left
// empty, date_paid when the order reaches processing or completed and
// date_completed when it reaches completed, as WooCommerce does.
type Order struct {
	ID                 int64             `json:"id"`
	ParentID           int64             `json:"parent_id"`
	Status             string            `json:"status"`
	Currency           string            `json:"currency"`
	Version            string            `json:"version"`
	PricesIncludeTax   bool              `json:"prices_include_tax"`
	DateCreated        string            `json:"date_created"`
	DateModified       string            `json:"date_modified"`
	DiscountTotal      string            `json:"discount_total"`
	DiscountTax        string            `json:"discount_tax"`
	ShippingTotal      string            `json:"shipping_total"`
	ShippingTax        string            `json:"shipping_tax"`
	CartTax            string            `json:"cart_tax"`
	Total              string            `json:"total"`
	TotalTax           string            `json:"total_tax"`
	CustomerID         int64             `json:"customer_id"`
	OrderKey           string            `json:"order_key"`
	Billing            Address           `json:"billing"`
	Shipping           Address           `json:"shipping"`
	PaymentMethod      string            `json:"payment_method"`
	PaymentMethodTitle string            `json:"payment_method_title"`
	TransactionID      string            `json:"transaction_id"`
	CustomerIPAddress  string            `json:"customer_ip_address"`
	CustomerUserAgent  string            `json:"customer_user_agent"`
	CreatedVia         string            `json:"created_via"`
	CustomerNote       string            `json:"customer_note"`
	DateCompleted      *string           `json:"date_completed"`
	DatePaid           *string           `json:"date_paid"`
	CartHash           string            `json:"cart_hash"`
	Number             string            `json:"number"`
	MetaData           []Meta            `json:"meta_data"`
	LineItems          []LineItem        `json:"line_items"`
	TaxLines           []json.RawMessage `json:"tax_lines"`
	ShippingLines      []json.RawMessage `json:"shipping_lines"`
	FeeLines           []json.RawMessage `json:"fee_lines"`
	CouponLines        []json.RawMessage `json:"coupon_lines"`
	Refunds            []Refund          `json:"refunds"`
	PaymentURL         string            `json:"payment_url"`
	IsEditable         bool              `json:"is_editable"`
	NeedsPayment       bool              `json:"needs_payment"`
	NeedsProcessing    bool              `json:"needs_processing"`
	DateCreatedGMT     string            `json:"date_created_gmt"`
	DateModifiedGMT    string            `json:"date_modified_gmt"`
	DateCompletedGMT   *string           `json:"date_completed_gmt"`
	DatePaidGMT        *string           `json:"date_paid_gmt"`
	CurrencySymbol     string            `json:"currency_symbol"`
}

// Customer is a customer as GET /wp-json/wc/v3/customers/{id} returns it.
type Customer struct {
	ID               int64   `json:"id"`
	DateCreated      string  `json:"date_created"`
	DateCreatedGMT   string  `json:"date_created_gmt"`
	DateModified     string  `json:"date_modified"`
	DateModifiedGMT  string  `json:"date_modified_gmt"`
	Email            string  `json:"email"`
	FirstName        string  `json:"first_name"`
	LastName         string  `json:"last_name"`
	Role             string  `json:"role"`
	Username         string  `json:"username"`
	Billing          Address `json:"billing"`
	Shipping         Address `json:"shipping"`
	IsPayingCustomer bool    `json:"is_paying_customer"`
	AvatarURL        string  `json:"avatar_url"`
	MetaData         []Meta  `json:"meta_data"`
}

// Coupon is a coupon as the REST API returns it.
type Coupon struct {
	ID                        int64    `json:"id"`
	Code                      string   `json:"code"`
	Amount                    string   `json:"amount"`
	Status                    string   `json:"status"`
	DateCreated               string   `json:"date_created"`
	DateCreatedGMT            string   `json:"date_created_gmt"`
	DateModified              string   `json:"date_modified"`
	DateModifiedGMT           string   `json:"date_modified_gmt"`
	DiscountType              string   `json:"discount_type"`
	Description               string   `json:"description"`
	DateExpires               *string  `json:"date_expires"`
	DateExpiresGMT            *string  `json:"date_expires_gmt"`
	UsageCount                int      `json:"usage_count"`
	IndividualUse             bool     `json:"individual_use"`
	ProductIDs                []int64  `json:"product_ids"`
	ExcludedProductIDs        []int64  `json:"excluded_product_ids"`
	UsageLimit                *int     `json:"usage_limit"`
	UsageLimitPerUser         *int     `json:"usage_limit_per_user"`
	LimitUsageToXItems        *int     `json:"limit_usage_to_x_items"`
	FreeShipping              bool     `json:"free_shipping"`
	ProductCategories         []int64  `json:"product_categories"`
	ExcludedProductCategories []int64  `json:"excluded_product_categories"`
	ExcludeSaleItems          bool     `json:"exclude_sale_items"`
	MinimumAmount             string   `json:"minimum_amount"`
	MaximumAmount             string   `json:"maximum_amount"`
	EmailRestrictions         []string `json:"email_restrictions"`
	UsedBy                    []string `json:"used_by"`
	MetaData                  []Meta   `json:"meta_data"`
}

// Webhook is a webhook as the fake keeps it. Secret and FailureCount are
// not part of the REST answer (WooCommerce never returns a secret); they
// are here for tests to assert on.
type Webhook struct {
	ID              int64    `json:"id"`
	Name            string   `json:"name"`
	Status          string   `json:"status"`
	Topic           string   `json:"topic"`
	Resource        string   `json:"resource"`
	Event           string   `json:"event"`
	Hooks           []string `json:"hooks"`
	DeliveryURL     string   `json:"delivery_url"`
	DateCreated     string   `json:"date_created"`
	DateCreatedGMT  string   `json:"date_created_gmt"`
	DateModified    string   `json:"date_modified"`
	DateModifiedGMT string   `json:"date_modified_gmt"`
	Secret          string   `json:"-"`
	FailureCount    int      `json:"-"`
}

// Delivery is one POST the fake made (or meant to make) to a delivery URL.
type Delivery struct {
	WebhookID int64
	// DeliveryID is X-WC-Webhook-Delivery-ID; empty for a ping.
	DeliveryID string
	// Ping is true for the webhook_id=N ping sent when a webhook is created.
	Ping bool
	// Topic is the webhook's topic (also for a ping).
	Topic string
	URL   string
	Body  []byte
	// Status is the receiver's HTTP status; 0 when it could not be reached
	// or the delivery was dropped.
	Status int
	// Dropped is set for deliveries lost on purpose ([Server.DropDeliveries]).
	Dropped bool
	// Err describes a transport failure.
	Err string
}

// Request is one REST request the fake received.
type Request struct {
	Method string
	// Route is the path after /wp-json/wc/v3/, e.g. "orders/42".
	Route string
	Query url.Values
}
