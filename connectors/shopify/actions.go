package shopify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Invoke runs one of the commerce actions against the shop's Admin GraphQL
// API.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	cfg, err := DecodeConfig(call.Connection.Config)
	if err != nil {
		return nil, err
	}
	var out any
	switch call.Action {
	case commerce.ActionGetCheckout:
		var p struct {
			CheckoutID string `json:"checkout_id"`
		}
		if err := decodeParams(call, &p); err != nil {
			return nil, err
		}
		out, err = c.getCheckout(ctx, call.Connection, cfg, strings.TrimSpace(p.CheckoutID))
	case commerce.ActionGetOrder:
		var p struct {
			OrderID string `json:"order_id"`
		}
		if err := decodeParams(call, &p); err != nil {
			return nil, err
		}
		out, err = c.getOrder(ctx, call.Connection, cfg, strings.TrimSpace(p.OrderID))
	case commerce.ActionCreateDiscount:
		var p commerce.DiscountParams
		if err := decodeParams(call, &p); err != nil {
			return nil, err
		}
		out, err = c.createDiscount(ctx, call, cfg, p)
	case commerce.ActionListCustomers:
		var p struct {
			Cursor string `json:"cursor"`
			Limit  int    `json:"limit"`
		}
		if err := decodeParams(call, &p); err != nil {
			return nil, err
		}
		out, err = c.listCustomers(ctx, call.Connection, cfg, p.Cursor, p.Limit)
	default:
		return nil, sdk.Invalid("the shopify connector has no action %q", call.Action)
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
	if len(call.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(call.Params, v); err != nil {
		return sdk.Invalid("%s: reading the parameters: %v", call.Action, err)
	}
	return nil
}

// GraphQL shapes shared by the queries.
type (
	gqlMoney struct {
		Amount       string `json:"amount"`
		CurrencyCode string `json:"currencyCode"`
	}
	gqlMoneyBag struct {
		ShopMoney        gqlMoney `json:"shopMoney"`
		PresentmentMoney gqlMoney `json:"presentmentMoney"`
	}
	gqlAddress struct {
		FirstName     string `json:"firstName"`
		LastName      string `json:"lastName"`
		Phone         string `json:"phone"`
		CountryCodeV2 string `json:"countryCodeV2"`
	}
	gqlConsent struct {
		MarketingState       string   `json:"marketingState"`
		MarketingOptInLevel  string   `json:"marketingOptInLevel"`
		ConsentUpdatedAt     restTime `json:"consentUpdatedAt"`
		ConsentCollectedFrom string   `json:"consentCollectedFrom"`
	}
	gqlCustomer struct {
		ID                  string      `json:"id"`
		FirstName           string      `json:"firstName"`
		LastName            string      `json:"lastName"`
		Email               string      `json:"email"`
		Phone               string      `json:"phone"`
		Locale              string      `json:"locale"`
		Tags                []string    `json:"tags"`
		CreatedAt           restTime    `json:"createdAt"`
		UpdatedAt           restTime    `json:"updatedAt"`
		SMSMarketingConsent *gqlConsent `json:"smsMarketingConsent"`
		DefaultAddress      *gqlAddress `json:"defaultAddress"`
	}
	gqlLineItem struct {
		Title                string       `json:"title"`
		VariantTitle         string       `json:"variantTitle"`
		SKU                  string       `json:"sku"`
		Quantity             int          `json:"quantity"`
		OriginalUnitPriceSet *gqlMoneyBag `json:"originalUnitPriceSet"`
		Product              *struct {
			ID string `json:"id"`
		} `json:"product"`
		Variant *struct {
			ID string `json:"id"`
		} `json:"variant"`
	}
)

const customerFields = `id firstName lastName email phone locale
      smsMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt consentCollectedFrom }`

const lineItemFields = `lineItems(first: 100) {
      nodes { title variantTitle sku quantity originalUnitPriceSet { presentmentMoney { amount currencyCode } } product { id } variant { id } }
    }`

const checkoutQuery = `query PonteAbandonedCheckout($id: ID!) {
  node(id: $id) {
    ... on AbandonedCheckout {
      id
      abandonedCheckoutUrl
      createdAt
      updatedAt
      completedAt
      subtotalPriceSet { presentmentMoney { amount currencyCode } }
      totalPriceSet { presentmentMoney { amount currencyCode } }
      customer { ` + customerFields + ` }
      billingAddress { firstName lastName phone countryCodeV2 }
      shippingAddress { firstName lastName phone countryCodeV2 }
      ` + lineItemFields + `
    }
  }
}`

type gqlCheckout struct {
	ID                   string       `json:"id"`
	AbandonedCheckoutURL string       `json:"abandonedCheckoutUrl"`
	CreatedAt            restTime     `json:"createdAt"`
	UpdatedAt            restTime     `json:"updatedAt"`
	CompletedAt          restTime     `json:"completedAt"`
	SubtotalPriceSet     gqlMoneyBag  `json:"subtotalPriceSet"`
	TotalPriceSet        gqlMoneyBag  `json:"totalPriceSet"`
	Customer             *gqlCustomer `json:"customer"`
	BillingAddress       *gqlAddress  `json:"billingAddress"`
	ShippingAddress      *gqlAddress  `json:"shippingAddress"`
	LineItems            struct {
		Nodes []gqlLineItem `json:"nodes"`
	} `json:"lineItems"`
}

// getCheckout fetches an abandoned checkout. Ponte knows checkouts by token
// (what orders carry as checkout_token), but the Admin GraphQL API finds
// them by numeric id only; the token's id was remembered when its webhooks
// arrived. A numeric id or an AbandonedCheckout gid is accepted as well.
func (c *Connector) getCheckout(ctx context.Context, conn sdk.Connection, cfg Config, id string) (commerce.Checkout, error) {
	if id == "" {
		return commerce.Checkout{}, sdk.Invalid("get_checkout: checkout_id is required")
	}
	token := ""
	numeric := legacyID(id)
	if _, err := strconv.ParseUint(numeric, 10, 64); err != nil {
		token = id
		b, err := c.host.GetState(ctx, conn.ID, stateCheckoutPrefix+token)
		if err != nil {
			return commerce.Checkout{}, sdk.Retryable("get_checkout: reading the checkout's id: %v", err)
		}
		if len(b) == 0 {
			return commerce.Checkout{}, sdk.NotFound("get_checkout: no webhook of this connection named checkout %s; Shopify's API finds checkouts by numeric id only", token)
		}
		numeric = string(b)
	} else if b, err := c.host.GetState(ctx, conn.ID, stateCheckoutIDPrefix+numeric); err == nil && len(b) > 0 {
		token = string(b)
	}
	g, err := gid("AbandonedCheckout", numeric)
	if err != nil {
		return commerce.Checkout{}, sdk.Invalid("get_checkout: %v", err)
	}
	var data struct {
		Node *gqlCheckout `json:"node"`
	}
	op := "fetching abandoned checkout " + id
	if err := c.graphql(ctx, cfg, op, checkoutQuery, map[string]any{"id": g}, &data); err != nil {
		return commerce.Checkout{}, err
	}
	if data.Node == nil || data.Node.ID == "" {
		return commerce.Checkout{}, sdk.NotFound("%s: Shopify has no such abandoned checkout", op)
	}
	pc := phoneContext{defaultCountry: cfg.DefaultCountry, shopCountry: c.shopInfo(ctx, conn.ID).Country}
	co := checkoutFromGraphQL(*data.Node, pc)
	if token != "" {
		co.ID = token
	}
	return co, nil
}

func checkoutFromGraphQL(g gqlCheckout, pc phoneContext) commerce.Checkout {
	co := commerce.Checkout{
		ID:          legacyID(g.ID),
		Currency:    g.TotalPriceSet.PresentmentMoney.CurrencyCode,
		Subtotal:    g.SubtotalPriceSet.PresentmentMoney.Amount,
		Total:       g.TotalPriceSet.PresentmentMoney.Amount,
		LineItems:   lineItemsFromGraphQL(g.LineItems.Nodes),
		RecoveryURL: g.AbandonedCheckoutURL,
		CreatedAt:   g.CreatedAt.UTC(),
		UpdatedAt:   g.UpdatedAt.UTC(),
		CompletedAt: g.CompletedAt.ptr(),
	}
	var cands []phoneCandidate
	if cu := g.Customer; cu != nil {
		co.CustomerID = legacyID(cu.ID)
		co.Email, co.FirstName, co.LastName, co.Locale = cu.Email, cu.FirstName, cu.LastName, cu.Locale
		cands = append(cands, phoneCandidate{raw: cu.Phone})
		co.MarketingConsent = consentFromGraphQL(cu.SMSMarketingConsent)
	}
	addContactAddresses(&co.Contact, &cands, g.ShippingAddress, g.BillingAddress)
	applyPhone(&co.Contact, pc, cands...)
	if co.Country == "" {
		co.Country = firstNonEmpty(pc.defaultCountry, pc.shopCountry)
	}
	return co
}

// addContactAddresses adds the phones of addresses as candidates and takes
// the first address's country (and names, when the contact has none) into
// the contact; phones without an address are read with that country.
func addContactAddresses(ct *commerce.Contact, cands *[]phoneCandidate, addrs ...*gqlAddress) {
	for _, a := range addrs {
		if a == nil {
			continue
		}
		*cands = append(*cands, phoneCandidate{raw: a.Phone, country: a.CountryCodeV2})
		ct.Country = firstNonEmpty(ct.Country, a.CountryCodeV2)
		if ct.FirstName == "" && ct.LastName == "" {
			ct.FirstName, ct.LastName = a.FirstName, a.LastName
		}
	}
	for i := range *cands {
		if (*cands)[i].country == "" {
			(*cands)[i].country = ct.Country
		}
	}
}

func lineItemsFromGraphQL(items []gqlLineItem) []commerce.LineItem {
	out := make([]commerce.LineItem, 0, len(items))
	for _, li := range items {
		item := commerce.LineItem{Title: li.Title, VariantTitle: li.VariantTitle, SKU: li.SKU, Quantity: li.Quantity}
		if li.OriginalUnitPriceSet != nil {
			item.Price = li.OriginalUnitPriceSet.PresentmentMoney.Amount
		}
		if li.Product != nil {
			item.ProductID = legacyID(li.Product.ID)
		}
		if li.Variant != nil {
			item.VariantID = legacyID(li.Variant.ID)
		}
		out = append(out, item)
	}
	return out
}

func consentFromGraphQL(c *gqlConsent) *commerce.MarketingConsent {
	if c == nil || c.MarketingState == "" {
		return nil
	}
	return &commerce.MarketingConsent{
		State:      normalizeConsentState(c.MarketingState),
		OptInLevel: strings.ToLower(c.MarketingOptInLevel),
		UpdatedAt:  c.ConsentUpdatedAt.ptr(),
		Source:     strings.ToLower(c.ConsentCollectedFrom),
	}
}

const orderQuery = `query PonteOrder($id: ID!) {
  order(id: $id) {
    id
    name
    email
    phone
    customerLocale
    createdAt
    updatedAt
    cancelledAt
    cancelReason
    displayFinancialStatus
    displayFulfillmentStatus
    statusPageUrl
    totalPriceSet { presentmentMoney { amount currencyCode } }
    totalRefundedSet { presentmentMoney { amount currencyCode } }
    customer { ` + customerFields + ` }
    billingAddress { firstName lastName phone countryCodeV2 }
    shippingAddress { firstName lastName phone countryCodeV2 }
    ` + lineItemFields + `
    fulfillments(first: 20) { id status displayStatus updatedAt trackingInfo(first: 5) { company number url } }
  }
}`

type gqlOrder struct {
	ID                       string       `json:"id"`
	Name                     string       `json:"name"`
	Email                    string       `json:"email"`
	Phone                    string       `json:"phone"`
	CustomerLocale           string       `json:"customerLocale"`
	CreatedAt                restTime     `json:"createdAt"`
	UpdatedAt                restTime     `json:"updatedAt"`
	CancelledAt              restTime     `json:"cancelledAt"`
	CancelReason             string       `json:"cancelReason"`
	DisplayFinancialStatus   string       `json:"displayFinancialStatus"`
	DisplayFulfillmentStatus string       `json:"displayFulfillmentStatus"`
	StatusPageURL            string       `json:"statusPageUrl"`
	TotalPriceSet            gqlMoneyBag  `json:"totalPriceSet"`
	TotalRefundedSet         *gqlMoneyBag `json:"totalRefundedSet"`
	Customer                 *gqlCustomer `json:"customer"`
	BillingAddress           *gqlAddress  `json:"billingAddress"`
	ShippingAddress          *gqlAddress  `json:"shippingAddress"`
	LineItems                struct {
		Nodes []gqlLineItem `json:"nodes"`
	} `json:"lineItems"`
	Fulfillments []struct {
		ID            string   `json:"id"`
		Status        string   `json:"status"`
		DisplayStatus string   `json:"displayStatus"`
		UpdatedAt     restTime `json:"updatedAt"`
		TrackingInfo  []struct {
			Company string `json:"company"`
			Number  string `json:"number"`
			URL     string `json:"url"`
		} `json:"trackingInfo"`
	} `json:"fulfillments"`
}

func (c *Connector) getOrder(ctx context.Context, conn sdk.Connection, cfg Config, id string) (commerce.Order, error) {
	g, err := gid("Order", id)
	if err != nil {
		return commerce.Order{}, sdk.Invalid("get_order: %v", err)
	}
	var data struct {
		Order *gqlOrder `json:"order"`
	}
	op := "fetching order " + id
	if err := c.graphql(ctx, cfg, op, orderQuery, map[string]any{"id": g}, &data); err != nil {
		return commerce.Order{}, err
	}
	if data.Order == nil {
		return commerce.Order{}, sdk.NotFound("%s: Shopify has no such order", op)
	}
	pc := phoneContext{defaultCountry: cfg.DefaultCountry, shopCountry: c.shopInfo(ctx, conn.ID).Country}
	return orderFromGraphQL(*data.Order, pc), nil
}

func orderFromGraphQL(g gqlOrder, pc phoneContext) commerce.Order {
	o := commerce.Order{
		ID:                legacyID(g.ID),
		Name:              g.Name,
		Currency:          g.TotalPriceSet.PresentmentMoney.CurrencyCode,
		Total:             g.TotalPriceSet.PresentmentMoney.Amount,
		LineItems:         lineItemsFromGraphQL(g.LineItems.Nodes),
		FinancialStatus:   financialStatus(g.DisplayFinancialStatus),
		FulfillmentStatus: fulfillmentStatus(g.DisplayFulfillmentStatus),
		StatusURL:         g.StatusPageURL,
		CreatedAt:         g.CreatedAt.UTC(),
		UpdatedAt:         g.UpdatedAt.UTC(),
		CancelledAt:       g.CancelledAt.ptr(),
		CancelReason:      strings.ToLower(g.CancelReason),
	}
	if r := g.TotalRefundedSet; r != nil && r.PresentmentMoney.Amount != "" && sumMoney(r.PresentmentMoney.Amount) != "0.00" {
		o.RefundedAmount = r.PresentmentMoney.Amount
	}
	o.Email, o.Locale = g.Email, g.CustomerLocale
	cands := []phoneCandidate{{raw: g.Phone}}
	if cu := g.Customer; cu != nil {
		o.CustomerID = legacyID(cu.ID)
		o.Email = firstNonEmpty(o.Email, cu.Email)
		o.FirstName, o.LastName = cu.FirstName, cu.LastName
		cands = append(cands, phoneCandidate{raw: cu.Phone})
	}
	addContactAddresses(&o.Contact, &cands, g.ShippingAddress, g.BillingAddress)
	applyPhone(&o.Contact, pc, cands...)
	if o.Country == "" {
		o.Country = firstNonEmpty(pc.defaultCountry, pc.shopCountry)
	}
	for _, f := range g.Fulfillments {
		ff := commerce.Fulfillment{
			ID:             legacyID(f.ID),
			OrderID:        o.ID,
			Status:         strings.ToLower(f.Status),
			ShipmentStatus: shipmentStatus(f.DisplayStatus),
			UpdatedAt:      f.UpdatedAt.UTC(),
		}
		if len(f.TrackingInfo) > 0 {
			ff.TrackingCompany, ff.TrackingNumber, ff.TrackingURL = f.TrackingInfo[0].Company, f.TrackingInfo[0].Number, f.TrackingInfo[0].URL
		}
		o.Fulfillments = append(o.Fulfillments, ff)
	}
	return o
}

const discountFields = `id
    codeDiscount {
      ... on DiscountCodeBasic {
        title
        startsAt
        endsAt
        codes(first: 1) { nodes { code } }
        customerGets { value { ... on DiscountPercentage { percentage } } }
      }
    }`

const discountCreateMutation = `mutation PonteDiscountCodeBasicCreate($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { ` + discountFields + ` }
    userErrors { field code message }
  }
}`

const discountByCodeQuery = `query PonteDiscountByCode($code: String!) {
  codeDiscountNodeByCode(code: $code) { ` + discountFields + ` }
}`

type gqlDiscountNode struct {
	ID           string `json:"id"`
	CodeDiscount struct {
		Title    string   `json:"title"`
		StartsAt restTime `json:"startsAt"`
		EndsAt   restTime `json:"endsAt"`
		Codes    struct {
			Nodes []struct {
				Code string `json:"code"`
			} `json:"nodes"`
		} `json:"codes"`
		CustomerGets struct {
			Value struct {
				Percentage *float64 `json:"percentage"`
			} `json:"value"`
		} `json:"customerGets"`
	} `json:"codeDiscount"`
}

func (g gqlDiscountNode) discount(fallbackCode string) commerce.Discount {
	d := commerce.Discount{Code: fallbackCode, ID: legacyID(g.ID), ExpiresAt: g.CodeDiscount.EndsAt.ptr()}
	if n := g.CodeDiscount.Codes.Nodes; len(n) > 0 && n[0].Code != "" {
		d.Code = n[0].Code
	}
	if p := g.CodeDiscount.CustomerGets.Value.Percentage; p != nil {
		// Shopify holds percentages as fractions (0.15 for 15%).
		d.Percent = math.Round(*p*100*100) / 100
	}
	return d
}

// createDiscount creates a single-use code. The code is derived from the
// call's idempotency key, so a retry of the same logical call asks for the
// same code; Shopify refuses a code that exists (userError TAKEN), and the
// connector then returns the existing one instead of making a second.
func (c *Connector) createDiscount(ctx context.Context, call sdk.ActionCall, cfg Config, p commerce.DiscountParams) (commerce.Discount, error) {
	if p.Percent <= 0 || p.Percent > 100 {
		return commerce.Discount{}, sdk.Invalid("create_discount: percent %v is not between 0 (excluded) and 100", p.Percent)
	}
	if p.ValidForSeconds < 0 {
		return commerce.Discount{}, sdk.Invalid("create_discount: valid_for_seconds %d is negative", p.ValidForSeconds)
	}
	code, err := discountCode(call.Connection.ID, call.IdempotencyKey, p.Prefix)
	if err != nil {
		return commerce.Discount{}, err
	}
	now := c.now().UTC().Truncate(time.Second)
	title := "Ponte " + code
	if p.Reference != "" {
		title = fmt.Sprintf("Ponte %s (%s)", code, truncate(p.Reference, 100))
	}
	input := map[string]any{
		"title":                  title,
		"code":                   code,
		"startsAt":               now.Format(time.RFC3339),
		"usageLimit":             1,
		"appliesOncePerCustomer": true,
		"customerGets": map[string]any{
			"value": map[string]any{"percentage": p.Percent / 100},
			"items": map[string]any{"all": true},
		},
	}
	if p.ValidForSeconds > 0 {
		input["endsAt"] = now.Add(time.Duration(p.ValidForSeconds) * time.Second).Format(time.RFC3339)
	}
	if p.CustomerID != "" {
		g, err := gid("Customer", p.CustomerID)
		if err != nil {
			return commerce.Discount{}, sdk.Invalid("create_discount: customer_id: %v", err)
		}
		// context is the buyer selection since 2025-04 (customerSelection
		// is its deprecated predecessor).
		input["context"] = map[string]any{"customers": map[string]any{"add": []string{g}}}
	} else {
		input["context"] = map[string]any{"all": "ALL"}
	}

	op := "creating discount code " + code
	var data struct {
		Create struct {
			Node       *gqlDiscountNode `json:"codeDiscountNode"`
			UserErrors []userError      `json:"userErrors"`
		} `json:"discountCodeBasicCreate"`
	}
	if err := c.graphql(ctx, cfg, op, discountCreateMutation, map[string]any{"basicCodeDiscount": input}, &data); err != nil {
		return commerce.Discount{}, err
	}
	for _, ue := range data.Create.UserErrors {
		if ue.Code == "TAKEN" && call.IdempotencyKey != "" {
			// The code of this idempotency key exists: the same call ran
			// before and its answer was lost.
			return c.discountByCode(ctx, cfg, code)
		}
	}
	if err := userErrorsError(op, data.Create.UserErrors); err != nil {
		return commerce.Discount{}, err
	}
	if data.Create.Node == nil {
		return commerce.Discount{}, sdk.Retryable("%s: Shopify answered without the discount", op)
	}
	c.log.Info("shopify discount created", "connection", call.Connection.ID, "tenant", call.Connection.TenantID, "discount_id", legacyID(data.Create.Node.ID))
	return data.Create.Node.discount(code), nil
}

func (c *Connector) discountByCode(ctx context.Context, cfg Config, code string) (commerce.Discount, error) {
	op := "looking up discount code " + code
	var data struct {
		Node *gqlDiscountNode `json:"codeDiscountNodeByCode"`
	}
	if err := c.graphql(ctx, cfg, op, discountByCodeQuery, map[string]any{"code": code}, &data); err != nil {
		return commerce.Discount{}, err
	}
	if data.Node == nil {
		// TAKEN but not found: a code of another discount type, or one
		// deleted in between; either way not ours to return.
		return commerce.Discount{}, sdk.Permanent("%s: Shopify says the code is taken but has no code discount with it", op)
	}
	return data.Node.discount(code), nil
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// discountCode derives the code: the prefix (upper case, letters, digits,
// - and _ kept) and 10 characters (50 bits) of a hash of the connection and
// the idempotency key, or random ones when there is no key.
func discountCode(connID, idemKey, prefix string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(prefix) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 40 {
		return "", sdk.Invalid("create_discount: prefix %q is longer than 40 characters", prefix)
	}
	var sum []byte
	if idemKey != "" {
		h := sha256.Sum256([]byte("ponte-shopify-discount\x00" + connID + "\x00" + idemKey))
		sum = h[:]
	} else {
		sum = make([]byte, 16)
		if _, err := rand.Read(sum); err != nil {
			return "", sdk.Retryable("create_discount: generating a code: %v", err)
		}
	}
	b.WriteString(codeEncoding.EncodeToString(sum)[:10])
	return b.String(), nil
}

const customersQuery = `query PonteCustomers($first: Int!, $after: String) {
  customers(first: $first, after: $after, sortKey: ID) {
    nodes {
      ` + customerFields + `
      tags
      createdAt
      updatedAt
      defaultAddress { firstName lastName phone countryCodeV2 }
    }
    pageInfo { hasNextPage endCursor }
  }
}`

// Page sizes of list_customers: Shopify's connection maximum is 250.
const (
	defaultCustomerPage = 50
	maxCustomerPage     = 250
)

func (c *Connector) listCustomers(ctx context.Context, conn sdk.Connection, cfg Config, cursor string, limit int) (commerce.CustomerPage, error) {
	if limit <= 0 {
		limit = defaultCustomerPage
	}
	limit = min(limit, maxCustomerPage)
	vars := map[string]any{"first": limit, "after": nil}
	if cursor != "" {
		vars["after"] = cursor
	}
	var data struct {
		Customers struct {
			Nodes    []gqlCustomer `json:"nodes"`
			PageInfo pageInfo      `json:"pageInfo"`
		} `json:"customers"`
	}
	if err := c.graphql(ctx, cfg, "listing customers", customersQuery, vars, &data); err != nil {
		return commerce.CustomerPage{}, err
	}
	pc := phoneContext{defaultCountry: cfg.DefaultCountry, shopCountry: c.shopInfo(ctx, conn.ID).Country}
	page := commerce.CustomerPage{Customers: make([]commerce.Customer, 0, len(data.Customers.Nodes))}
	for _, g := range data.Customers.Nodes {
		cu := commerce.Customer{
			ID:               legacyID(g.ID),
			MarketingConsent: consentFromGraphQL(g.SMSMarketingConsent),
			Tags:             g.Tags,
			CreatedAt:        g.CreatedAt.UTC(),
			UpdatedAt:        g.UpdatedAt.UTC(),
		}
		cu.CustomerID = cu.ID
		cu.Email, cu.FirstName, cu.LastName, cu.Locale = g.Email, g.FirstName, g.LastName, g.Locale
		cands := []phoneCandidate{{raw: g.Phone}}
		addContactAddresses(&cu.Contact, &cands, g.DefaultAddress)
		applyPhone(&cu.Contact, pc, cands...)
		page.Customers = append(page.Customers, cu)
	}
	if data.Customers.PageInfo.HasNextPage {
		page.NextCursor = data.Customers.PageInfo.EndCursor
	}
	return page, nil
}
