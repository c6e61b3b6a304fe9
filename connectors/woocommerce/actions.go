package woocommerce

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Coupon and paging limits.
const (
	defaultCustomersPage = 50
	maxCustomersPage     = 100
	// codeSuffixLen is how many base32 characters follow the prefix of a
	// generated coupon code: 50 bits, so two calls never meet by chance and
	// a customer cannot guess another's code.
	codeSuffixLen = 10
	maxPrefixLen  = 40
)

var (
	idParam     = regexp.MustCompile(`^[0-9]{1,20}$`)
	prefixParam = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)
)

// Invoke runs one of the actions in the manifest.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	cfg, err := DecodeConfig(call.Connection.Config)
	if err != nil {
		return nil, err
	}
	var out any
	switch call.Action {
	case commerce.ActionGetOrder:
		out, err = c.getOrder(ctx, cfg, call)
	case commerce.ActionGetCheckout:
		out, err = c.getCheckout(ctx, cfg, call)
	case commerce.ActionCreateDiscount:
		out, err = c.createDiscount(ctx, cfg, call)
	case commerce.ActionListCustomers:
		out, err = c.listCustomers(ctx, cfg, call)
	default:
		return nil, sdk.Invalid("unknown action %q", call.Action)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, sdk.Permanent("%s: encoding the result: %v", call.Action, err)
	}
	return b, nil
}

func decodeParams(call sdk.ActionCall, v any) error {
	if err := json.Unmarshal(call.Params, v); err != nil {
		return sdk.Invalid("%s: reading the parameters: %v", call.Action, err)
	}
	return nil
}

func (c *Connector) fetchOrder(ctx context.Context, cfg Config, action, id string) (wooOrder, error) {
	if !idParam.MatchString(id) {
		return wooOrder{}, sdk.Invalid("%s: %q is not a WooCommerce order id", action, id)
	}
	var o wooOrder
	if _, err := c.call(ctx, cfg, action+": fetching order "+id, http.MethodGet, "orders/"+id, nil, nil, &o); err != nil {
		return wooOrder{}, err
	}
	return o, nil
}

func (c *Connector) getOrder(ctx context.Context, cfg Config, call sdk.ActionCall) (commerce.Order, error) {
	var p struct {
		OrderID string `json:"order_id"`
	}
	if err := decodeParams(call, &p); err != nil {
		return commerce.Order{}, err
	}
	o, err := c.fetchOrder(ctx, cfg, call.Action, p.OrderID)
	if err != nil {
		return commerce.Order{}, err
	}
	return normalizer{defaultCountry: cfg.DefaultCountry}.order(o), nil
}

// getCheckout returns an unpaid order as a cart. An order placed since is
// returned with CompletedAt and OrderID, so the caller sees the cart was
// converted; a cancelled or trashed one has no cart any more (its payment
// link does not work) and is NotFound.
func (c *Connector) getCheckout(ctx context.Context, cfg Config, call sdk.ActionCall) (commerce.Checkout, error) {
	var p struct {
		CheckoutID string `json:"checkout_id"`
	}
	if err := decodeParams(call, &p); err != nil {
		return commerce.Checkout{}, err
	}
	o, err := c.fetchOrder(ctx, cfg, call.Action, p.CheckoutID)
	if err != nil {
		return commerce.Checkout{}, err
	}
	if o.Status == statusCancelled || o.Status == statusTrash {
		return commerce.Checkout{}, sdk.NotFound("%s: order %s is %s; its cart can no longer be paid", call.Action, p.CheckoutID, o.Status)
	}
	return normalizer{defaultCountry: cfg.DefaultCountry}.checkout(o), nil
}

// wooCoupon is a coupon as the REST API returns it.
type wooCoupon struct {
	ID             int64   `json:"id"`
	Code           string  `json:"code"`
	Amount         string  `json:"amount"`
	DiscountType   string  `json:"discount_type"`
	DateExpiresGMT wooTime `json:"date_expires_gmt"`
}

// createDiscount creates a single-use percentage coupon. Its code is the
// prefix and 10 characters derived from the connection and the call's
// idempotency key, so a retried call asks for the same code: WooCommerce
// refuses it as woocommerce_rest_coupon_code_already_exists, and the
// coupon made by the first attempt is fetched by code and returned.
func (c *Connector) createDiscount(ctx context.Context, cfg Config, call sdk.ActionCall) (commerce.Discount, error) {
	var p commerce.DiscountParams
	if err := decodeParams(call, &p); err != nil {
		return commerce.Discount{}, err
	}
	if p.Percent <= 0 || p.Percent > 100 {
		return commerce.Discount{}, sdk.Invalid("create_discount: percent %v is not between 1 and 100", p.Percent)
	}
	if p.ValidForSeconds < 0 {
		return commerce.Discount{}, sdk.Invalid("create_discount: valid_for_seconds is negative")
	}
	if len(p.Prefix) > maxPrefixLen || !prefixParam.MatchString(p.Prefix) {
		return commerce.Discount{}, sdk.Invalid("create_discount: prefix must be at most %d letters, digits, - or _", maxPrefixLen)
	}
	email := strings.TrimSpace(p.Email)
	if email == "" && p.CustomerID != "" {
		// WooCommerce restricts coupons by email, not by customer id.
		e, err := c.customerEmail(ctx, cfg, p.CustomerID)
		if err != nil {
			return commerce.Discount{}, err
		}
		email = e
	}
	code := p.Prefix + codeSuffix(call.Connection.ID, call.IdempotencyKey)
	body := map[string]any{
		"code":                 code,
		"discount_type":        "percent",
		"amount":               strconv.FormatFloat(p.Percent, 'f', -1, 64),
		"individual_use":       true,
		"usage_limit":          1,
		"usage_limit_per_user": 1,
		"description":          couponDescription(p.Reference),
	}
	if email != "" {
		body["email_restrictions"] = []string{email}
	}
	if p.ValidForSeconds > 0 {
		exp := c.now().UTC().Add(time.Duration(p.ValidForSeconds) * time.Second).Truncate(time.Second)
		body["date_expires_gmt"] = exp.Format(wooTimeLayout)
	}
	var cp wooCoupon
	_, err := c.call(ctx, cfg, "create_discount: creating coupon", http.MethodPost, "coupons", nil, body, &cp)
	if err != nil {
		var e *sdk.Error
		if !errors.As(err, &e) || e.Code != "woocommerce_rest_coupon_code_already_exists" || call.IdempotencyKey == "" {
			return commerce.Discount{}, err
		}
		found, ferr := c.couponByCode(ctx, cfg, code)
		if ferr != nil {
			return commerce.Discount{}, fmt.Errorf("create_discount: the coupon of this idempotency key exists: %w", ferr)
		}
		cp = found
		c.log.InfoContext(ctx, "coupon already created by an earlier attempt; returning it", "connection", call.Connection.ID, "coupon_id", cp.ID)
	}
	return discountFrom(cp), nil
}

func couponDescription(ref string) string {
	if ref == "" {
		return "Created by Ponte"
	}
	return "Created by Ponte for " + ref
}

// codeSuffix derives the code from the idempotency key, or draws one when
// the call has none (then a retry makes a second coupon; the host always
// sends a key).
func codeSuffix(connID, key string) string {
	var sum []byte
	if key != "" {
		h := sha256.Sum256([]byte("ponte-woocommerce-coupon\x00" + connID + "\x00" + key))
		sum = h[:]
	} else {
		sum = make([]byte, 16)
		_, _ = rand.Read(sum)
	}
	// Lower case: WooCommerce compares codes case-insensitively and shows
	// them as stored.
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum))[:codeSuffixLen]
}

func (c *Connector) couponByCode(ctx context.Context, cfg Config, code string) (wooCoupon, error) {
	var list []wooCoupon
	if _, err := c.call(ctx, cfg, "create_discount: finding coupon by code", http.MethodGet, "coupons", url.Values{"code": {code}}, nil, &list); err != nil {
		return wooCoupon{}, err
	}
	for _, cp := range list {
		if strings.EqualFold(cp.Code, code) {
			return cp, nil
		}
	}
	return wooCoupon{}, sdk.Retryable("create_discount: WooCommerce says coupon %q exists but does not list it", code)
}

func (c *Connector) customerEmail(ctx context.Context, cfg Config, id string) (string, error) {
	if !idParam.MatchString(id) {
		return "", sdk.Invalid("create_discount: %q is not a WooCommerce customer id", id)
	}
	var cu wooCustomer
	if _, err := c.call(ctx, cfg, "create_discount: fetching customer "+id, http.MethodGet, "customers/"+id, nil, nil, &cu); err != nil {
		return "", err
	}
	return strings.TrimSpace(cu.Email), nil
}

func discountFrom(cp wooCoupon) commerce.Discount {
	pct, _ := strconv.ParseFloat(cp.Amount, 64)
	d := commerce.Discount{Code: cp.Code, Percent: pct, ID: strconv.FormatInt(cp.ID, 10)}
	if !cp.DateExpiresGMT.IsZero() {
		t := cp.DateExpiresGMT.Time
		d.ExpiresAt = &t
	}
	return d
}

// listCustomers returns one page of customers; the cursor is the page
// number, and the next one is given while X-WP-TotalPages says there are
// more.
func (c *Connector) listCustomers(ctx context.Context, cfg Config, call sdk.ActionCall) (commerce.CustomerPage, error) {
	var p struct {
		Cursor string `json:"cursor"`
		Limit  int    `json:"limit"`
	}
	if err := decodeParams(call, &p); err != nil {
		return commerce.CustomerPage{}, err
	}
	page := 1
	if p.Cursor != "" {
		n, err := strconv.Atoi(p.Cursor)
		if err != nil || n < 1 {
			return commerce.CustomerPage{}, sdk.Invalid("list_customers: cursor %q is not a page number", p.Cursor)
		}
		page = n
	}
	limit := p.Limit
	if limit == 0 {
		limit = defaultCustomersPage
	}
	if limit < 1 || limit > maxCustomersPage {
		return commerce.CustomerPage{}, sdk.Invalid("list_customers: limit %d is not between 1 and %d", limit, maxCustomersPage)
	}
	q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(limit)}, "orderby": {"id"}, "order": {"asc"}}
	var list []wooCustomer
	res, err := c.call(ctx, cfg, "list_customers: listing page "+strconv.Itoa(page), http.MethodGet, "customers", q, nil, &list)
	if err != nil {
		return commerce.CustomerPage{}, err
	}
	n := normalizer{defaultCountry: cfg.DefaultCountry}
	out := commerce.CustomerPage{Customers: make([]commerce.Customer, 0, len(list))}
	for _, cu := range list {
		out.Customers = append(out.Customers, n.customer(cu))
	}
	if page < res.totalPages() {
		out.NextCursor = strconv.Itoa(page + 1)
	}
	return out, nil
}
