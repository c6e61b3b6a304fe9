package shopify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Topics are the webhook topics the connector subscribes to, in Shopify's
// REST spelling (as in X-Shopify-Topic) with the GraphQL
// WebhookSubscriptionTopic value that names them in the Admin API.
var Topics = []struct{ Topic, Enum string }{
	{"checkouts/create", "CHECKOUTS_CREATE"},
	{"checkouts/update", "CHECKOUTS_UPDATE"},
	{"checkouts/delete", "CHECKOUTS_DELETE"},
	{"orders/create", "ORDERS_CREATE"},
	{"orders/paid", "ORDERS_PAID"},
	{"orders/updated", "ORDERS_UPDATED"},
	{"orders/cancelled", "ORDERS_CANCELLED"},
	{"orders/fulfilled", "ORDERS_FULFILLED"},
	{"refunds/create", "REFUNDS_CREATE"},
	{"fulfillments/create", "FULFILLMENTS_CREATE"},
	{"fulfillments/update", "FULFILLMENTS_UPDATE"},
	{"customers/create", "CUSTOMERS_CREATE"},
	{"customers/update", "CUSTOMERS_UPDATE"},
	{"app/uninstalled", "APP_UNINSTALLED"},
}

// State keys the connector keeps per connection in the host.
const (
	// stateShop holds the shop's details read on Connect ([ShopInfo]).
	stateShop = "shop"
	// stateSubscriptions holds the ids of the webhook subscriptions Connect
	// created or adopted, by GraphQL topic.
	stateSubscriptions = "subscriptions"
	// stateCheckoutPrefix + token holds a checkout's numeric id, learned from
	// its webhooks: the Admin GraphQL API finds abandoned checkouts by id
	// only, while Ponte knows them by token.
	stateCheckoutPrefix = "checkout:"
)

// ShopInfo is what the connector keeps of the shop: its country reads
// national phone numbers; the rest is for people reading the state.
type ShopInfo struct {
	Name     string `json:"name"`
	Domain   string `json:"domain"`
	Currency string `json:"currency"`
	Timezone string `json:"timezone"`
	Country  string `json:"country"`
}

const shopQuery = `query PonteShop {
  shop {
    name
    myshopifyDomain
    currencyCode
    ianaTimezone
    billingAddress { countryCodeV2 }
  }
}`

const subscriptionsQuery = `query PonteWebhookSubscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes {
      id
      topic
      format
      endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } }
    }
    pageInfo { hasNextPage endCursor }
  }
}`

const subscriptionCreateMutation = `mutation PonteWebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
    userErrors { field message }
  }
}`

const subscriptionUpdateMutation = `mutation PonteWebhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
    userErrors { field message }
  }
}`

const subscriptionDeleteMutation = `mutation PonteWebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}`

// subscription is a webhook subscription as listed by the Admin API.
type subscription struct {
	ID       string `json:"id"`
	Topic    string `json:"topic"`
	Format   string `json:"format"`
	Endpoint struct {
		Typename    string `json:"__typename"`
		CallbackURL string `json:"callbackUrl"`
	} `json:"endpoint"`
}

// Connect checks the credentials by reading the shop (kept in state for
// phone numbers), then makes sure the app has one JSON webhook subscription
// per topic in [Topics] pointing at conn.WebhookURL: it creates the missing
// ones and moves those that point at another address of this connection
// (Ponte's public URL changed). Subscriptions of the app to addresses that
// are not this connection's are left alone. Run twice, it changes nothing
// the second time.
func (c *Connector) Connect(ctx context.Context, conn sdk.Connection) error {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return err
	}
	if conn.WebhookURL == "" {
		return sdk.Invalid("Ponte has no public URL, so Shopify cannot send it webhooks: set PONTE_PUBLIC_URL to the https address at which Shopify reaches Ponte, then connect again")
	}
	if strings.TrimSpace(cfg.ClientSecret) == "" {
		return sdk.Invalid("client_secret is required to verify Shopify's webhooks")
	}
	if err := cfg.validForCalls(); err != nil {
		return err
	}
	log := c.log.With("connection", conn.ID, "tenant", conn.TenantID, "shop", cfg.ShopDomain)

	shop, err := c.readShop(ctx, cfg)
	if err != nil {
		if e, ok := errorsAsSDK(err); ok && e.Kind == sdk.KindAuth {
			return &sdk.Error{Kind: sdk.KindAuth, Code: e.Code, Err: err,
				Message: fmt.Sprintf("Shopify refused the access token for %s: check that the app is installed on the shop and that access_token is its Admin API access token (%s)", cfg.ShopDomain, e.Message)}
		}
		return err
	}
	if err := c.saveState(ctx, conn.ID, stateShop, shop); err != nil {
		return err
	}

	known, err := c.loadSubscriptionIDs(ctx, conn.ID)
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, id := range known {
		ours[id] = true
	}
	existing, err := c.listSubscriptions(ctx, cfg)
	if err != nil {
		return err
	}
	ids := map[string]string{}
	var created, moved int
	for _, t := range Topics {
		var match, movable *subscription
		for i := range existing {
			s := &existing[i]
			if s.Topic != t.Enum {
				continue
			}
			if s.Endpoint.CallbackURL == conn.WebhookURL {
				match = s
				break
			}
			if movable == nil && (ours[s.ID] || samePath(s.Endpoint.CallbackURL, conn.WebhookURL)) {
				movable = s
			}
		}
		switch {
		case match != nil:
			ids[t.Enum] = match.ID
		case movable != nil:
			id, err := c.updateSubscription(ctx, cfg, movable.ID, conn.WebhookURL)
			if err != nil {
				return err
			}
			ids[t.Enum] = id
			moved++
		default:
			id, err := c.createSubscription(ctx, cfg, t.Enum, conn.WebhookURL)
			if err != nil {
				return err
			}
			ids[t.Enum] = id
			created++
		}
		// Save as we go: a Connect that fails half way still knows what it
		// created, so Disconnect can remove it and a retry adopts it.
		if err := c.saveState(ctx, conn.ID, stateSubscriptions, ids); err != nil {
			return err
		}
	}
	log.Info("shopify connected", "shop_name", shop.Name, "country", shop.Country, "subscriptions", len(ids), "created", created, "moved", moved)
	return nil
}

// Disconnect deletes the webhook subscriptions Connect made: those whose ids
// it stored and any other of the app's subscriptions pointing at
// conn.WebhookURL. Subscriptions already gone are fine. A token Shopify no
// longer accepts (the app was uninstalled, which removes its subscriptions
// anyway) is reported as Auth.
func (c *Connector) Disconnect(ctx context.Context, conn sdk.Connection) error {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return err
	}
	if err := cfg.validForCalls(); err != nil {
		return err
	}
	known, err := c.loadSubscriptionIDs(ctx, conn.ID)
	if err != nil {
		return err
	}
	doomed := map[string]bool{}
	for _, id := range known {
		doomed[id] = true
	}
	existing, err := c.listSubscriptions(ctx, cfg)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, s := range existing {
		present[s.ID] = true
		if conn.WebhookURL != "" && s.Endpoint.CallbackURL == conn.WebhookURL {
			doomed[s.ID] = true
		}
	}
	deleted := 0
	for id := range doomed {
		if !present[id] {
			continue
		}
		if err := c.deleteSubscription(ctx, cfg, id); err != nil {
			return err
		}
		deleted++
	}
	if err := c.host.SetState(ctx, conn.ID, stateSubscriptions, []byte("{}")); err != nil {
		return sdk.Retryable("forgetting the webhook subscriptions: %v", err)
	}
	c.log.Info("shopify disconnected", "connection", conn.ID, "tenant", conn.TenantID, "shop", cfg.ShopDomain, "deleted", deleted)
	return nil
}

// samePath reports whether two URLs have the same path: the same connection
// at another public address of Ponte.
func samePath(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Path != "" && ua.Path == ub.Path
}

func (c *Connector) readShop(ctx context.Context, cfg Config) (ShopInfo, error) {
	var data struct {
		Shop struct {
			Name            string `json:"name"`
			MyshopifyDomain string `json:"myshopifyDomain"`
			CurrencyCode    string `json:"currencyCode"`
			IanaTimezone    string `json:"ianaTimezone"`
			BillingAddress  *struct {
				CountryCodeV2 string `json:"countryCodeV2"`
			} `json:"billingAddress"`
		} `json:"shop"`
	}
	if err := c.graphql(ctx, cfg, "reading the shop", shopQuery, nil, &data); err != nil {
		return ShopInfo{}, err
	}
	s := ShopInfo{Name: data.Shop.Name, Domain: data.Shop.MyshopifyDomain, Currency: data.Shop.CurrencyCode, Timezone: data.Shop.IanaTimezone}
	if data.Shop.BillingAddress != nil {
		s.Country = data.Shop.BillingAddress.CountryCodeV2
	}
	return s, nil
}

func (c *Connector) listSubscriptions(ctx context.Context, cfg Config) ([]subscription, error) {
	var all []subscription
	var after any
	for page := 0; page < 50; page++ {
		var data struct {
			WebhookSubscriptions struct {
				Nodes    []subscription `json:"nodes"`
				PageInfo pageInfo       `json:"pageInfo"`
			} `json:"webhookSubscriptions"`
		}
		if err := c.graphql(ctx, cfg, "listing webhook subscriptions", subscriptionsQuery, map[string]any{"after": after}, &data); err != nil {
			return nil, err
		}
		all = append(all, data.WebhookSubscriptions.Nodes...)
		if !data.WebhookSubscriptions.PageInfo.HasNextPage {
			return all, nil
		}
		after = data.WebhookSubscriptions.PageInfo.EndCursor
	}
	return nil, sdk.Permanent("listing webhook subscriptions: more than 5,000 of them")
}

type pageInfo struct {
	HasNextPage bool   `json:"hasNextPage"`
	EndCursor   string `json:"endCursor"`
}

func (c *Connector) createSubscription(ctx context.Context, cfg Config, topic, callback string) (string, error) {
	op := "creating the " + topic + " webhook subscription"
	var data struct {
		Create struct {
			WebhookSubscription *subscription `json:"webhookSubscription"`
			UserErrors          []userError   `json:"userErrors"`
		} `json:"webhookSubscriptionCreate"`
	}
	vars := map[string]any{"topic": topic, "webhookSubscription": map[string]any{"callbackUrl": callback, "format": "JSON"}}
	if err := c.graphql(ctx, cfg, op, subscriptionCreateMutation, vars, &data); err != nil {
		return "", err
	}
	if err := userErrorsError(op, data.Create.UserErrors); err != nil {
		return "", err
	}
	if data.Create.WebhookSubscription == nil {
		return "", sdk.Retryable("%s: Shopify answered without the subscription", op)
	}
	return data.Create.WebhookSubscription.ID, nil
}

func (c *Connector) updateSubscription(ctx context.Context, cfg Config, id, callback string) (string, error) {
	op := "moving webhook subscription " + id
	var data struct {
		Update struct {
			WebhookSubscription *subscription `json:"webhookSubscription"`
			UserErrors          []userError   `json:"userErrors"`
		} `json:"webhookSubscriptionUpdate"`
	}
	vars := map[string]any{"id": id, "webhookSubscription": map[string]any{"callbackUrl": callback, "format": "JSON"}}
	if err := c.graphql(ctx, cfg, op, subscriptionUpdateMutation, vars, &data); err != nil {
		return "", err
	}
	if err := userErrorsError(op, data.Update.UserErrors); err != nil {
		return "", err
	}
	if data.Update.WebhookSubscription == nil {
		return "", sdk.Retryable("%s: Shopify answered without the subscription", op)
	}
	return data.Update.WebhookSubscription.ID, nil
}

func (c *Connector) deleteSubscription(ctx context.Context, cfg Config, id string) error {
	op := "deleting webhook subscription " + id
	var data struct {
		Delete struct {
			DeletedID  *string     `json:"deletedWebhookSubscriptionId"`
			UserErrors []userError `json:"userErrors"`
		} `json:"webhookSubscriptionDelete"`
	}
	if err := c.graphql(ctx, cfg, op, subscriptionDeleteMutation, map[string]any{"id": id}, &data); err != nil {
		return err
	}
	for _, e := range data.Delete.UserErrors {
		// Gone between the listing and the delete: what was wanted.
		if strings.Contains(strings.ToLower(e.Message), "does not exist") {
			return nil
		}
	}
	return userErrorsError(op, data.Delete.UserErrors)
}

func (c *Connector) saveState(ctx context.Context, connID, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return sdk.Permanent("encoding state %s: %v", key, err)
	}
	if err := c.host.SetState(ctx, connID, key, b); err != nil {
		return fmt.Errorf("storing state %s: %w", key, err)
	}
	return nil
}

func (c *Connector) loadSubscriptionIDs(ctx context.Context, connID string) (map[string]string, error) {
	b, err := c.host.GetState(ctx, connID, stateSubscriptions)
	if err != nil {
		return nil, fmt.Errorf("reading the stored webhook subscriptions: %w", err)
	}
	ids := map[string]string{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &ids); err != nil {
			// A corrupt value loses only what adoption by URL finds again.
			c.log.Warn("stored webhook subscriptions unreadable; relying on their URLs", "connection", connID, "error", err)
			return map[string]string{}, nil
		}
	}
	return ids, nil
}

// shopInfo returns the shop details Connect stored, or a zero value.
func (c *Connector) shopInfo(ctx context.Context, connID string) ShopInfo {
	var s ShopInfo
	b, err := c.host.GetState(ctx, connID, stateShop)
	if err != nil || len(b) == 0 {
		if err != nil {
			c.log.Warn("reading the stored shop details", "connection", connID, "error", err)
		}
		return s
	}
	if err := json.Unmarshal(b, &s); err != nil {
		c.log.Warn("stored shop details unreadable", "connection", connID, "error", err)
	}
	return s
}
