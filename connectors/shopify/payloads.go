package shopify

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The types below read the REST-shaped JSON Shopify sends in webhooks (the
// same resources as the REST Admin API). Only the fields the connector uses
// are declared.

// restID reads Shopify's numeric ids, which are sent as JSON numbers larger
// than a float64 holds exactly, as strings; it also accepts a string.
type restID string

func (r *restID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*r = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = restID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*r = restID(n.String())
	return nil
}

// restTime reads Shopify's timestamps, tolerating null and "".
type restTime struct{ time.Time }

func (t *restTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

func (t restTime) ptr() *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.UTC()
	return &v
}

// restMoney reads a decimal amount sent as a string ("19.90") or, by some
// apps' payloads, as a number, keeping its digits exactly.
type restMoney string

func (m *restMoney) UnmarshalJSON(b []byte) error {
	var r restID
	if err := r.UnmarshalJSON(b); err != nil {
		return err
	}
	*m = restMoney(r)
	return nil
}

type restMoneySet struct {
	ShopMoney struct {
		Amount       restMoney `json:"amount"`
		CurrencyCode string    `json:"currency_code"`
	} `json:"shop_money"`
	PresentmentMoney struct {
		Amount       restMoney `json:"amount"`
		CurrencyCode string    `json:"currency_code"`
	} `json:"presentment_money"`
}

type restAddress struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Phone       string `json:"phone"`
	CountryCode string `json:"country_code"`
}

type restConsent struct {
	State                string   `json:"state"`
	OptInLevel           string   `json:"opt_in_level"`
	ConsentUpdatedAt     restTime `json:"consent_updated_at"`
	ConsentCollectedFrom string   `json:"consent_collected_from"`
}

type restCustomer struct {
	ID                  restID       `json:"id"`
	Email               string       `json:"email"`
	FirstName           string       `json:"first_name"`
	LastName            string       `json:"last_name"`
	Phone               string       `json:"phone"`
	Tags                string       `json:"tags"`
	CreatedAt           restTime     `json:"created_at"`
	UpdatedAt           restTime     `json:"updated_at"`
	SMSMarketingConsent *restConsent `json:"sms_marketing_consent"`
	DefaultAddress      *restAddress `json:"default_address"`
}

type restLineItem struct {
	Title        string        `json:"title"`
	Name         string        `json:"name"`
	VariantTitle string        `json:"variant_title"`
	SKU          string        `json:"sku"`
	ProductID    restID        `json:"product_id"`
	VariantID    restID        `json:"variant_id"`
	Quantity     int           `json:"quantity"`
	Price        restMoney     `json:"price"`
	PriceSet     *restMoneySet `json:"price_set"`
}

type restCheckout struct {
	ID                       restID         `json:"id"`
	Token                    string         `json:"token"`
	Email                    string         `json:"email"`
	Phone                    string         `json:"phone"`
	SMSMarketingPhone        string         `json:"sms_marketing_phone"`
	BuyerAcceptsSMSMarketing bool           `json:"buyer_accepts_sms_marketing"`
	CustomerLocale           string         `json:"customer_locale"`
	Currency                 string         `json:"currency"`
	PresentmentCurrency      string         `json:"presentment_currency"`
	SubtotalPrice            restMoney      `json:"subtotal_price"`
	TotalPrice               restMoney      `json:"total_price"`
	LineItems                []restLineItem `json:"line_items"`
	AbandonedCheckoutURL     string         `json:"abandoned_checkout_url"`
	CreatedAt                restTime       `json:"created_at"`
	UpdatedAt                restTime       `json:"updated_at"`
	CompletedAt              restTime       `json:"completed_at"`
	BillingAddress           *restAddress   `json:"billing_address"`
	ShippingAddress          *restAddress   `json:"shipping_address"`
	Customer                 *restCustomer  `json:"customer"`
	OrderID                  restID         `json:"order_id"`
}

type restTransaction struct {
	Amount   restMoney `json:"amount"`
	Currency string    `json:"currency"`
	Kind     string    `json:"kind"`
	Status   string    `json:"status"`
}

type restRefund struct {
	ID           restID            `json:"id"`
	OrderID      restID            `json:"order_id"`
	CreatedAt    restTime          `json:"created_at"`
	ProcessedAt  restTime          `json:"processed_at"`
	Transactions []restTransaction `json:"transactions"`
}

type restFulfillment struct {
	ID              restID       `json:"id"`
	OrderID         restID       `json:"order_id"`
	Status          string       `json:"status"`
	ShipmentStatus  string       `json:"shipment_status"`
	TrackingCompany string       `json:"tracking_company"`
	TrackingNumber  string       `json:"tracking_number"`
	TrackingNumbers []string     `json:"tracking_numbers"`
	TrackingURL     string       `json:"tracking_url"`
	TrackingURLs    []string     `json:"tracking_urls"`
	Email           string       `json:"email"`
	Destination     *restAddress `json:"destination"`
	CreatedAt       restTime     `json:"created_at"`
	UpdatedAt       restTime     `json:"updated_at"`
}

type restOrder struct {
	ID                  restID            `json:"id"`
	Name                string            `json:"name"`
	CheckoutToken       string            `json:"checkout_token"`
	Email               string            `json:"email"`
	Phone               string            `json:"phone"`
	CustomerLocale      string            `json:"customer_locale"`
	Currency            string            `json:"currency"`
	PresentmentCurrency string            `json:"presentment_currency"`
	TotalPrice          restMoney         `json:"total_price"`
	TotalPriceSet       *restMoneySet     `json:"total_price_set"`
	LineItems           []restLineItem    `json:"line_items"`
	FinancialStatus     string            `json:"financial_status"`
	FulfillmentStatus   string            `json:"fulfillment_status"`
	OrderStatusURL      string            `json:"order_status_url"`
	Fulfillments        []restFulfillment `json:"fulfillments"`
	Refunds             []restRefund      `json:"refunds"`
	CreatedAt           restTime          `json:"created_at"`
	UpdatedAt           restTime          `json:"updated_at"`
	ProcessedAt         restTime          `json:"processed_at"`
	CancelledAt         restTime          `json:"cancelled_at"`
	CancelReason        string            `json:"cancel_reason"`
	BillingAddress      *restAddress      `json:"billing_address"`
	ShippingAddress     *restAddress      `json:"shipping_address"`
	Customer            *restCustomer     `json:"customer"`
}

// sumMoney adds decimal strings exactly, in hundredths (or the finest
// precision among them, for currencies with three decimals), returning ""
// when there is nothing to add or an amount does not parse.
func sumMoney(amounts ...string) string {
	decimals := 0
	var vals []string
	for _, a := range amounts {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		vals = append(vals, a)
		if i := strings.IndexByte(a, '.'); i >= 0 {
			decimals = max(decimals, len(a)-i-1)
		}
	}
	if len(vals) == 0 {
		return ""
	}
	decimals = max(decimals, 2)
	var total int64
	for _, a := range vals {
		neg := strings.HasPrefix(a, "-")
		a = strings.TrimPrefix(a, "-")
		whole, frac, _ := strings.Cut(a, ".")
		frac += strings.Repeat("0", decimals-len(frac))
		n, err := strconv.ParseInt(whole+frac, 10, 64)
		if err != nil {
			return ""
		}
		if neg {
			n = -n
		}
		total += n
	}
	sign := ""
	if total < 0 {
		sign, total = "-", -total
	}
	s := strconv.FormatInt(total, 10)
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	return sign + s[:len(s)-decimals] + "." + s[len(s)-decimals:]
}
