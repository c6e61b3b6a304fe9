package example

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Polling: the example connector shows how to bring in changes from a system
// that cannot send webhooks, through a feed of orders it fetches over HTTP.
//
// A connection polls when its feed_url is set. The feed is an HTTP JSON
// endpoint:
//
//	GET {feed_url}?updated_since=2026-01-02T15:04:05.123Z&limit=100
//	Authorization: Bearer {feed_token}        (when a token is configured)
//
//	200 {"items": [{"id": "ord_9", "updated_at": "2026-01-02T15:04:05.123Z",
//	                "created_at": "...", ...any other fields}],
//	     "has_more": true}
//
// Items come in ascending updated_at order and have updated_at >=
// updated_since (left out on the first poll, which starts from the feed's
// beginning). Each item becomes one event: "order.created" when the item's
// created_at equals its updated_at, "order.updated" otherwise; its payload is
// the item as the feed sent it, its dedupe key the item's id and updated_at,
// so a change is one event however often it is fetched.
//
// The cursor is the latest updated_at seen. The bound is inclusive on
// purpose: a feed's timestamps are coarse, and an item written in the same
// instant as the cursor, just after the previous poll, would be missed by a
// strict bound. The items at the boundary are fetched again and the host's
// dedupe absorbs them. The one case a timestamp cursor cannot get past is a
// full page whose items all share one updated_at; the connector reports it as
// a Permanent error naming the fix (a larger feed_page_size) rather than
// spinning or skipping items.
//
// Failures map to the SDK's error kinds, which is what the host's poller acts
// on: 429 is RateLimited with the feed's Retry-After, 401 and 403 are Auth,
// 404 and 410 NotFound, 408 and 5xx Retryable, network errors Retryable, a
// body that is not a feed Permanent.

// DefaultPollInterval is how often the host polls example connections (the
// manifest's PollInterval). Operators can override it per connector in the
// host's configuration.
const DefaultPollInterval = time.Minute

// Feed paging limits.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// maxFeedBytes caps one page's body: a feed is trusted no more than a
	// webhook sender.
	maxFeedBytes = 8 << 20
	// defaultRetryAfter is waited after a 429 without a usable Retry-After.
	defaultRetryAfter = time.Minute
)

// feedPage is one page of the feed.
type feedPage struct {
	Items   []json.RawMessage `json:"items"`
	HasMore bool              `json:"has_more"`
}

// feedItem is the part of an item the connector reads; the event payload is
// the whole item.
type feedItem struct {
	ID        string    `json:"id"`
	UpdatedAt time.Time `json:"updated_at"`
	CreatedAt time.Time `json:"created_at"`
}

// Poll fetches one page of the connection's feed after cursor. A connection
// without a feed_url has nothing to poll and returns its cursor unchanged.
func (c *Connector) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	var cfg Config
	if err := conn.Config.Decode(&cfg); err != nil {
		return sdk.PollResult{}, sdk.Permanent("reading the connection config: %v", err)
	}
	if cfg.FeedURL == "" {
		return sdk.PollResult{Cursor: cursor}, nil
	}
	var since time.Time
	if cursor != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, cursor); err != nil {
			return sdk.PollResult{}, sdk.Permanent("the stored cursor %q is not a time: %v", cursor, err)
		}
	}
	limit := cfg.FeedPageSize
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)

	page, err := c.fetchPage(ctx, cfg, since, limit)
	if err != nil {
		return sdk.PollResult{}, err
	}

	latest := since
	events := make([]sdk.Event, 0, len(page.Items))
	for i, raw := range page.Items {
		var it feedItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return sdk.PollResult{}, sdk.Permanent("feed item %d is not an object with id and updated_at: %v", i, err)
		}
		// An item without an id cannot be deduplicated and one without a
		// time cannot move the cursor: refuse the page rather than guess.
		if it.ID == "" || it.UpdatedAt.IsZero() {
			return sdk.PollResult{}, sdk.Permanent("feed item %d has no id or no updated_at", i)
		}
		updated := it.UpdatedAt.UTC()
		typ := "order.updated"
		if it.CreatedAt.Equal(it.UpdatedAt) {
			typ = "order.created"
		}
		events = append(events, sdk.Event{
			DedupeKey:   "feed:" + it.ID + "@" + updated.Format(time.RFC3339Nano),
			Type:        typ,
			OccurredAt:  updated,
			Correlation: map[string]string{"order_id": it.ID},
			Payload:     raw,
		})
		if updated.After(latest) {
			latest = updated
		}
	}

	next := cursor
	if latest.After(since) {
		next = latest.Format(time.RFC3339Nano)
	}
	more := page.HasMore && len(page.Items) > 0
	if more && next == cursor {
		return sdk.PollResult{}, sdk.Permanent(
			"more than %d feed items share updated_at %s, so the cursor cannot move past them; raise feed_page_size", limit, cursor)
	}
	return sdk.PollResult{Events: events, Cursor: next, More: more}, nil
}

// fetchPage requests one page and maps the feed's answer to the SDK's error
// kinds.
func (c *Connector) fetchPage(ctx context.Context, cfg Config, since time.Time, limit int) (feedPage, error) {
	u, err := url.Parse(cfg.FeedURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return feedPage{}, sdk.Invalid("feed_url must be an http or https URL")
	}
	q := u.Query()
	if !since.IsZero() {
		q.Set("updated_since", since.UTC().Format(time.RFC3339Nano))
	}
	q.Set("limit", strconv.Itoa(limit))
	u.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return feedPage{}, sdk.Invalid("building the feed request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if cfg.FeedToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.FeedToken)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return feedPage{}, ctx.Err()
		}
		// The URL may carry credentials in its query; say only what failed.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return feedPage{}, sdk.Retryable("fetching the feed: %v", err)
	}
	defer resp.Body.Close()

	switch s := resp.StatusCode; {
	case s == http.StatusOK:
	case s == http.StatusTooManyRequests:
		return feedPage{}, sdk.RateLimited(retryAfter(resp.Header.Get("Retry-After"), defaultRetryAfter), "the feed answered 429")
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return feedPage{}, sdk.Auth("the feed refused the credentials (%d)", s)
	case s == http.StatusNotFound || s == http.StatusGone:
		return feedPage{}, sdk.NotFound("the feed URL answered %d", s)
	case s == http.StatusRequestTimeout || s >= 500:
		e := sdk.Retryable("the feed answered %d", s)
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), 0)
		return feedPage{}, e
	default:
		return feedPage{}, sdk.Invalid("the feed answered %d", s)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFeedBytes+1))
	if err != nil {
		return feedPage{}, sdk.Retryable("reading the feed: %v", err)
	}
	if len(body) > maxFeedBytes {
		return feedPage{}, sdk.Permanent("a feed page is larger than %d bytes; lower feed_page_size", maxFeedBytes)
	}
	var page feedPage
	if err := json.Unmarshal(body, &page); err != nil {
		return feedPage{}, sdk.Permanent("the feed's answer is not a feed page: %v", err)
	}
	return page, nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); fallback
// when it is missing or unreadable.
func retryAfter(v string, fallback time.Duration) time.Duration {
	if v == "" {
		return fallback
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return fallback
}

// newHTTPClient returns the client feeds are fetched with. The host bounds
// each poll with its own deadline; the timeout here is a backstop for a
// connector used outside the host.
func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Minute}
}
