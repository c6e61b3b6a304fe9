package woocommerce

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Reconciliation: WooCommerce sends each webhook once and never retries a
// failed delivery, so an order change can be missed for good (Ponte down,
// a network blip, a webhook WooCommerce disabled). The poll lists the orders
// modified since its cursor and emits the events their states produce
// (orderEvents), with the same dedupe keys a webhook for that state gives,
// so what the webhooks already brought is not stored twice.
//
// The query is GET /orders?modified_after=<T-1s>&dates_are_gmt=true
// &orderby=modified&order=asc&per_page=100&page=<p>. WooCommerce's
// modified_after is exclusive and its dates have whole seconds, so asking
// after T-1s includes the orders modified in second T: an order changed in
// the same second as the last one seen, just after the previous poll, is not
// missed; the ones seen already come again and the host's dedupe absorbs
// them. The cursor is {after: T, page: p}: after a full page, T moves to the
// page's latest date_modified_gmt and p back to 1, unless every order on the
// page was modified in second T (more than 100 orders changed within one
// second), in which case p advances instead, so the poll neither spins nor
// skips. A page that is not full ends the pass.
//
// modified_after came in WooCommerce 5.8; a store that ignores it (it
// answers orders modified before the bound) stops the poll with a Permanent
// error rather than replaying its history as new events.
//
// Limits, inherent to a modified-date cursor: a deleted order is not listed
// (only the order.deleted webhook reports it), and an order modified again
// while a pass pages through the orders of one second can shift another of
// that second past the page boundary.

// StateReconcile is the Host state key of the connection's last complete
// reconciliation pass (JSON {"last_pass": RFC 3339 time}).
const StateReconcile = "woocommerce.reconcile"

// pollPageSize is WooCommerce's largest per_page.
const pollPageSize = 100

// pollCursor is the poll's position, stored by the host as JSON.
type pollCursor struct {
	// After is a date_modified_gmt ("2006-01-02T15:04:05"); orders modified
	// in that second or later are listed.
	After string `json:"after"`
	// Page is the page of that query to fetch, 1 unless a whole page shared
	// one modification second.
	Page int `json:"page,omitempty"`
	// More is set while a pass is under way (the previous poll returned a
	// full page), so the reconcile_minutes wait does not cut it short.
	More bool `json:"more,omitempty"`
}

type reconcileState struct {
	LastPass time.Time `json:"last_pass"`
}

// Poll runs one page of the reconciliation pass (see above). A pass starts
// at most every reconcile_minutes: a poll sooner than that after the last
// complete pass returns the cursor it was given and asks the store nothing.
// The first poll of a connection (empty cursor) starts reconcile_minutes
// ago rather than importing the store's history. A pass also re-activates
// the connection's webhooks WooCommerce disabled.
func (c *Connector) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return sdk.PollResult{}, err
	}
	now := c.now().UTC()
	var cur pollCursor
	if cursor != "" {
		if err := json.Unmarshal([]byte(cursor), &cur); err != nil || parseCursorTime(cur.After).IsZero() {
			c.log.WarnContext(ctx, "poll cursor unreadable; starting from one reconcile period ago", "connection", conn.ID, "cursor", cursor)
			cursor, cur = "", pollCursor{}
		}
	}
	if cursor == "" {
		cur = pollCursor{After: now.Add(-cfg.reconcileEvery()).Truncate(time.Second).Format(wooTimeLayout)}
	}
	if cur.Page < 1 {
		cur.Page = 1
	}

	if !cur.More {
		if cursor != "" {
			last, err := c.lastPass(ctx, conn.ID)
			if err != nil {
				return sdk.PollResult{}, err
			}
			if wait := last.Add(cfg.reconcileEvery()); now.Before(wait) {
				return sdk.PollResult{Cursor: cursor}, nil
			}
		}
		// A webhook that failed to re-activate is logged, not fatal: the
		// pass below still catches what it missed.
		if n, err := c.reactivate(ctx, cfg, conn.ID); err != nil {
			c.log.WarnContext(ctx, "checking the connection's webhooks failed", "connection", conn.ID, "error", err)
		} else if n > 0 {
			c.log.InfoContext(ctx, "webhooks re-activated", "connection", conn.ID, "count", n)
		}
	}

	after := parseCursorTime(cur.After)
	q := url.Values{
		"modified_after": {after.Add(-time.Second).Format(wooTimeLayout)},
		"dates_are_gmt":  {"true"},
		"orderby":        {"modified"},
		"order":          {"asc"},
		"per_page":       {strconv.Itoa(pollPageSize)},
		"page":           {strconv.Itoa(cur.Page)},
	}
	var orders []json.RawMessage
	if _, err := c.call(ctx, cfg, "listing orders modified since "+cur.After, http.MethodGet, "orders", q, nil, &orders); err != nil {
		return sdk.PollResult{}, err
	}
	n := normalizer{defaultCountry: cfg.DefaultCountry}
	var events []sdk.Event
	latest := after
	for _, raw := range orders {
		var o wooOrder
		if err := json.Unmarshal(raw, &o); err != nil {
			// One order another plugin mangled must not stop the
			// reconciliation of every order after it.
			c.log.WarnContext(ctx, "skipping an order the connector cannot read", "connection", conn.ID, "error", err)
			continue
		}
		if !o.DateModifiedGMT.IsZero() && o.DateModifiedGMT.Before(after) {
			// modified_after came in WooCommerce 5.8; an older store ignores
			// it and would hand over its whole history as fresh events.
			return sdk.PollResult{}, sdk.Permanent("listing orders modified since %s: the store answered order %d, modified %s, so it ignores modified_after; reconciliation needs WooCommerce 5.8 or later",
				cur.After, o.ID, o.DateModifiedGMT)
		}
		if o.DateModifiedGMT.After(latest) {
			latest = o.DateModifiedGMT.Time
		}
		evs, err := n.orderEvents(o)
		if err != nil {
			c.log.WarnContext(ctx, "skipping an order", "connection", conn.ID, "order", o.ID, "error", err)
			continue
		}
		events = append(events, evs...)
	}

	next := pollCursor{After: latest.Format(wooTimeLayout), Page: 1}
	full := len(orders) >= pollPageSize
	if full {
		next.More = true
		if !latest.After(after) {
			next = pollCursor{After: cur.After, Page: cur.Page + 1, More: true}
		}
	}
	b, err := json.Marshal(next)
	if err != nil {
		return sdk.PollResult{}, sdk.Permanent("encoding the poll cursor: %v", err)
	}
	if !full {
		if err := c.setLastPass(ctx, conn.ID, now); err != nil {
			return sdk.PollResult{}, err
		}
	}
	c.log.DebugContext(ctx, "reconciliation page", "connection", conn.ID, "orders", len(orders), "events", len(events), "more", full)
	return sdk.PollResult{Events: events, Cursor: string(b), More: full}, nil
}

func parseCursorTime(s string) time.Time {
	t, err := time.ParseInLocation(wooTimeLayout, s, time.UTC)
	if err != nil {
		return time.Time{}
	}
	return t
}

func (c *Connector) lastPass(ctx context.Context, connID string) (time.Time, error) {
	b, err := c.host.GetState(ctx, connID, StateReconcile)
	if err != nil {
		return time.Time{}, err
	}
	var s reconcileState
	if len(b) > 0 && json.Unmarshal(b, &s) != nil {
		return time.Time{}, nil // unreadable: reconcile now
	}
	return s.LastPass, nil
}

func (c *Connector) setLastPass(ctx context.Context, connID string, t time.Time) error {
	b, err := json.Marshal(reconcileState{LastPass: t})
	if err != nil {
		return err
	}
	return c.host.SetState(ctx, connID, StateReconcile, b)
}
