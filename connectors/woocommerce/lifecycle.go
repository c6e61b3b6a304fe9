package woocommerce

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// StateWebhooks is the Host state key under which the connector keeps the
// ids of the webhooks it registered for a connection: a JSON object from
// topic to WooCommerce webhook id.
const StateWebhooks = "woocommerce.webhooks"

// Webhook statuses at WooCommerce.
const (
	webhookActive   = "active"
	webhookDisabled = "disabled"
)

// wooWebhook is a webhook as the REST API lists it. The secret is never
// returned, so the connector cannot tell whether a webhook's secret is the
// connection's; Connect therefore sets it on every webhook it keeps.
type wooWebhook struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Topic       string `json:"topic"`
	DeliveryURL string `json:"delivery_url"`
}

// webhookIDs maps a topic to the id of the connection's webhook for it.
type webhookIDs map[string]int64

func (c *Connector) loadWebhookIDs(ctx context.Context, connID string) (webhookIDs, error) {
	b, err := c.host.GetState(ctx, connID, StateWebhooks)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook ids: %w", err)
	}
	ids := webhookIDs{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &ids); err != nil {
			// Unreadable state is rebuilt from the store's list below.
			c.log.WarnContext(ctx, "webhook ids in state are unreadable; rebuilding them", "connection", connID, "error", err)
			return webhookIDs{}, nil
		}
	}
	return ids, nil
}

func (c *Connector) saveWebhookIDs(ctx context.Context, connID string, ids webhookIDs) error {
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	if err := c.host.SetState(ctx, connID, StateWebhooks, b); err != nil {
		return fmt.Errorf("storing the webhook ids: %w", err)
	}
	return nil
}

// listWebhooks reads every webhook of the store, all statuses, all pages.
func (c *Connector) listWebhooks(ctx context.Context, cfg Config) ([]wooWebhook, error) {
	var all []wooWebhook
	for page := 1; ; page++ {
		var batch []wooWebhook
		q := url.Values{"per_page": {"100"}, "page": {strconv.Itoa(page)}, "status": {"all"}}
		res, err := c.call(ctx, cfg, "listing webhooks", http.MethodGet, "webhooks", q, nil, &batch)
		if err != nil {
			return nil, err
		}
		all = append(all, batch...)
		// X-WP-TotalPages says when to stop; some hosts' proxies drop it,
		// and then a page that is not full does.
		if total := res.totalPages(); len(batch) < 100 || (total > 0 && page >= total) {
			return all, nil
		}
	}
}

// Connect makes sure the store has one active webhook per topic
// (order.created, order.updated, order.deleted, customer.created,
// customer.updated) delivering to conn.WebhookURL with the connection's
// webhook secret, and records their ids in Host state.
//
// The connection's webhooks are those whose ids are in state and those
// whose delivery URL is conn.WebhookURL (found again when state was lost).
// Each is updated to the current URL, secret and status active (WooCommerce
// disables a webhook after repeated delivery failures, and the URL or the
// secret may have changed with the configuration); a second one for the
// same topic is deleted, so no delivery comes twice; missing topics are
// created (WooCommerce pings the URL as it does). Running it again changes
// nothing at the store but the PUTs.
func (c *Connector) Connect(ctx context.Context, conn sdk.Connection) error {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return err
	}
	if !webhookSecretPattern.MatchString(cfg.WebhookSecret) {
		return sdk.Invalid("webhook_secret must be 16 to 200 letters, digits or ._~+/=- (WooCommerce would alter other characters)")
	}
	if conn.WebhookURL == "" {
		return sdk.Invalid("Ponte has no public URL for WooCommerce to send webhooks to: set PONTE_PUBLIC_URL to the https address at which this Ponte is reachable, then connect again")
	}
	ids, err := c.loadWebhookIDs(ctx, conn.ID)
	if err != nil {
		return err
	}
	hooks, err := c.listWebhooks(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting %s: %w", cfg.StoreURL, err)
	}

	kept := webhookIDs{}
	var extra []int64
	recorded := map[int64]bool{}
	for _, id := range ids {
		recorded[id] = true
	}
	// Recorded webhooks first, so they win over look-alikes found by URL;
	// then the oldest, so the choice does not depend on the list's order.
	slices.SortFunc(hooks, func(a, b wooWebhook) int {
		switch {
		case recorded[a.ID] && !recorded[b.ID]:
			return -1
		case !recorded[a.ID] && recorded[b.ID]:
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, h := range hooks {
		if !slices.Contains(webhookTopics, h.Topic) || (!recorded[h.ID] && h.DeliveryURL != conn.WebhookURL) {
			continue
		}
		if _, dup := kept[h.Topic]; dup {
			extra = append(extra, h.ID)
			continue
		}
		kept[h.Topic] = h.ID
	}

	for _, id := range extra {
		if err := c.deleteWebhook(ctx, cfg, id); err != nil {
			return fmt.Errorf("connecting %s: removing a duplicate webhook: %w", cfg.StoreURL, err)
		}
	}
	update := map[string]any{"status": webhookActive, "delivery_url": conn.WebhookURL, "secret": cfg.WebhookSecret}
	for _, topic := range webhookTopics {
		id, ok := kept[topic]
		if ok {
			var h wooWebhook
			_, err := c.call(ctx, cfg, "updating webhook "+strconv.FormatInt(id, 10), http.MethodPut, "webhooks/"+strconv.FormatInt(id, 10), nil, update, &h)
			if err == nil {
				continue
			}
			if sdk.KindOf(err) != sdk.KindNotFound {
				return fmt.Errorf("connecting %s: %w", cfg.StoreURL, err)
			}
			// Deleted between the list and the update: create it anew.
		}
		body := map[string]any{
			"name":         fmt.Sprintf("Ponte %s (%s)", topic, conn.ID),
			"topic":        topic,
			"delivery_url": conn.WebhookURL,
			"secret":       cfg.WebhookSecret,
			"status":       webhookActive,
		}
		var h wooWebhook
		if _, err := c.call(ctx, cfg, "creating the "+topic+" webhook", http.MethodPost, "webhooks", nil, body, &h); err != nil {
			// Keep what was created so far, so a retry does not duplicate it.
			if serr := c.saveWebhookIDs(ctx, conn.ID, kept); serr != nil {
				err = errors.Join(err, serr)
			}
			return fmt.Errorf("connecting %s: %w", cfg.StoreURL, err)
		}
		kept[topic] = h.ID
	}
	if err := c.saveWebhookIDs(ctx, conn.ID, kept); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "webhooks registered", "connection", conn.ID, "tenant", conn.TenantID, "webhooks", len(kept), "duplicates_removed", len(extra))
	return nil
}

// Disconnect deletes the connection's webhooks (force=true: webhooks
// cannot be trashed) and forgets their ids. A webhook already gone is fine.
func (c *Connector) Disconnect(ctx context.Context, conn sdk.Connection) error {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return err
	}
	ids, err := c.loadWebhookIDs(ctx, conn.ID)
	if err != nil {
		return err
	}
	doomed := map[int64]bool{}
	for _, id := range ids {
		doomed[id] = true
	}
	if conn.WebhookURL != "" {
		// Also the ones found by URL, registered before state was lost.
		hooks, err := c.listWebhooks(ctx, cfg)
		if err != nil {
			return fmt.Errorf("disconnecting %s: %w", cfg.StoreURL, err)
		}
		for _, h := range hooks {
			if h.DeliveryURL == conn.WebhookURL && slices.Contains(webhookTopics, h.Topic) {
				doomed[h.ID] = true
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(doomed)) {
		if err := c.deleteWebhook(ctx, cfg, id); err != nil {
			return fmt.Errorf("disconnecting %s: %w", cfg.StoreURL, err)
		}
	}
	if err := c.saveWebhookIDs(ctx, conn.ID, webhookIDs{}); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "webhooks removed", "connection", conn.ID, "tenant", conn.TenantID, "webhooks", len(doomed))
	return nil
}

func (c *Connector) deleteWebhook(ctx context.Context, cfg Config, id int64) error {
	sid := strconv.FormatInt(id, 10)
	_, err := c.call(ctx, cfg, "deleting webhook "+sid, http.MethodDelete, "webhooks/"+sid, url.Values{"force": {"true"}}, nil, nil)
	if sdk.KindOf(err) == sdk.KindNotFound {
		return nil
	}
	return err
}

// reactivate sets the connection's webhooks that WooCommerce disabled after
// failed deliveries back to active; the reconciliation poll calls it, so
// deliveries resume without anyone reconnecting. Webhooks a person paused
// are left paused. It returns how many it re-activated.
func (c *Connector) reactivate(ctx context.Context, cfg Config, connID string) (int, error) {
	ids, err := c.loadWebhookIDs(ctx, connID)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	hooks, err := c.listWebhooks(ctx, cfg)
	if err != nil {
		return 0, err
	}
	ours := map[int64]bool{}
	for _, id := range ids {
		ours[id] = true
	}
	n := 0
	for _, h := range hooks {
		if !ours[h.ID] || h.Status != webhookDisabled {
			continue
		}
		sid := strconv.FormatInt(h.ID, 10)
		if _, err := c.call(ctx, cfg, "re-activating webhook "+sid, http.MethodPut, "webhooks/"+sid, nil, map[string]any{"status": webhookActive}, nil); err != nil {
			return n, err
		}
		c.log.WarnContext(ctx, "webhook disabled by WooCommerce after failed deliveries re-activated", "connection", connID, "webhook_id", h.ID, "topic", h.Topic)
		n++
	}
	return n, nil
}
