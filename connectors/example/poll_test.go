package example_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/example"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// item is one order in a test feed.
type item struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// feed is an order feed as the example connector expects one: items with
// updated_at >= updated_since, oldest first, at most limit, has_more.
type feed struct {
	mu       sync.Mutex
	items    []item
	token    string
	requests []string // the raw query of each request
}

func (f *feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.RawQuery)
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var since time.Time
	if s := r.URL.Query().Get("updated_since"); s != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			http.Error(w, "bad updated_since", http.StatusBadRequest)
			return
		}
	}
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		http.Error(w, "bad limit", http.StatusBadRequest)
		return
	}
	sorted := slices.Clone(f.items)
	slices.SortStableFunc(sorted, func(a, b item) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	var page []item
	more := false
	for _, it := range sorted {
		if it.UpdatedAt.Before(since) {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, it)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": nonNilItems(page), "has_more": more})
}

func nonNilItems(s []item) []item {
	if s == nil {
		return []item{}
	}
	return s
}

func feedConn(t *testing.T, url string, extra map[string]any) sdk.Connection {
	cfg := map[string]any{"signing_secret": "s3cret", "feed_url": url}
	for k, v := range extra {
		cfg[k] = v
	}
	return testkit.Connection(t, cfg)
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestPollWalksTheFeedWithItsCursor(t *testing.T) {
	t.Parallel()
	f := &feed{token: "tok", items: []item{
		{ID: "ord_1", Status: "new", CreatedAt: t0, UpdatedAt: t0},
		{ID: "ord_2", Status: "new", CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)},
		{ID: "ord_1", Status: "paid", CreatedAt: t0, UpdatedAt: t0.Add(2 * time.Second)},
		{ID: "ord_3", Status: "new", CreatedAt: t0.Add(3 * time.Second), UpdatedAt: t0.Add(3 * time.Second)},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	h := testkit.Start(t, example.New)
	c := feedConn(t, srv.URL+"/orders?shop=7", map[string]any{"feed_token": "tok", "feed_page_size": 2})

	type page struct {
		Keys   []string
		Types  []string
		Cursor string
		More   bool
	}
	var got []page
	cursor := ""
	for range 10 {
		res, err := h.Poll(t.Context(), c, cursor)
		if err != nil {
			t.Fatalf("Poll(%q): %v", cursor, err)
		}
		p := page{Cursor: res.Cursor, More: res.More}
		for _, ev := range res.Events {
			p.Keys = append(p.Keys, ev.DedupeKey)
			p.Types = append(p.Types, ev.Type)
			if ev.Correlation["order_id"] == "" || !ev.OccurredAt.After(t0.Add(-time.Nanosecond)) {
				t.Errorf("event %s: correlation %v, occurred at %v", ev.DedupeKey, ev.Correlation, ev.OccurredAt)
			}
		}
		got = append(got, p)
		cursor = res.Cursor
		if !res.More {
			break
		}
	}
	want := []page{
		{
			Keys:   []string{"feed:ord_1@2026-03-01T09:00:00Z", "feed:ord_2@2026-03-01T09:00:01Z"},
			Types:  []string{"order.created", "order.created"},
			Cursor: "2026-03-01T09:00:01Z", More: true,
		},
		{
			// The item at the cursor comes again (inclusive bound); its dedupe
			// key is the same, so the host stores it once.
			Keys:   []string{"feed:ord_2@2026-03-01T09:00:01Z", "feed:ord_1@2026-03-01T09:00:02Z"},
			Types:  []string{"order.created", "order.updated"},
			Cursor: "2026-03-01T09:00:02Z", More: true,
		},
		{
			Keys:   []string{"feed:ord_1@2026-03-01T09:00:02Z", "feed:ord_3@2026-03-01T09:00:03Z"},
			Types:  []string{"order.updated", "order.created"},
			Cursor: "2026-03-01T09:00:03Z", More: false,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	wantQueries := []string{
		"limit=2&shop=7",
		"limit=2&shop=7&updated_since=2026-03-01T09%3A00%3A01Z",
		"limit=2&shop=7&updated_since=2026-03-01T09%3A00%3A02Z",
	}
	if diff := cmp.Diff(wantQueries, f.requests); diff != "" {
		t.Errorf("feed requests (-want +got):\n%s", diff)
	}

	// Nothing new: the last item comes again, the cursor stays.
	res, err := h.Poll(t.Context(), c, cursor)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cursor != cursor || res.More || len(res.Events) != 1 {
		t.Errorf("idle poll: got cursor %q more %v events %d", res.Cursor, res.More, len(res.Events))
	}
}

func TestPollPayloadIsTheFeedItem(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":"ord_5","updated_at":"2026-03-01T09:00:00.5Z","total":{"amount":1299,"currency":"EUR"}}]}`)
	}))
	t.Cleanup(srv.Close)
	h := testkit.Start(t, example.New)
	res, err := h.Poll(t.Context(), feedConn(t, srv.URL, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.Event{{
		DedupeKey:   "feed:ord_5@2026-03-01T09:00:00.5Z",
		Type:        "order.updated",
		OccurredAt:  t0.Add(500 * time.Millisecond),
		Correlation: map[string]string{"order_id": "ord_5"},
		Payload:     json.RawMessage(`{"id":"ord_5","updated_at":"2026-03-01T09:00:00.5Z","total":{"amount":1299,"currency":"EUR"}}`),
	}}
	if diff := cmp.Diff(want, res.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if res.Cursor != "2026-03-01T09:00:00.5Z" || res.More {
		t.Errorf("got cursor %q, more %v", res.Cursor, res.More)
	}
}

func TestPollWithoutFeedDoesNothing(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	res, err := h.Poll(t.Context(), conn(t), "2026-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sdk.PollResult{Cursor: "2026-01-01T00:00:00Z"}, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPollErrors checks that every way a feed can fail reaches the host as
// the error kind the host's poller acts on.
func TestPollErrors(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, example.New)
	tests := map[string]struct {
		status     int
		header     map[string]string
		body       string
		cursor     string
		pageSize   int
		kind       sdk.ErrorKind
		retryAfter time.Duration
	}{
		"429 with Retry-After":     {status: 429, header: map[string]string{"Retry-After": "7"}, kind: sdk.KindRateLimited, retryAfter: 7 * time.Second},
		"429 without Retry-After":  {status: 429, kind: sdk.KindRateLimited, retryAfter: time.Minute},
		"429 unreadable header":    {status: 429, header: map[string]string{"Retry-After": "soon"}, kind: sdk.KindRateLimited, retryAfter: time.Minute},
		"401":                      {status: 401, kind: sdk.KindAuth},
		"403":                      {status: 403, kind: sdk.KindAuth},
		"404":                      {status: 404, kind: sdk.KindNotFound},
		"410":                      {status: 410, kind: sdk.KindNotFound},
		"400":                      {status: 400, kind: sdk.KindInvalid},
		"500":                      {status: 500, kind: sdk.KindRetryable},
		"503 with Retry-After":     {status: 503, header: map[string]string{"Retry-After": "3"}, kind: sdk.KindRetryable, retryAfter: 3 * time.Second},
		"408":                      {status: 408, kind: sdk.KindRetryable},
		"not JSON":                 {status: 200, body: `<html>maintenance</html>`, kind: sdk.KindPermanent},
		"item without id":          {status: 200, body: `{"items":[{"updated_at":"2026-03-01T09:00:00Z"}]}`, kind: sdk.KindPermanent},
		"item without time":        {status: 200, body: `{"items":[{"id":"ord_1"}]}`, kind: sdk.KindPermanent},
		"item not an object":       {status: 200, body: `{"items":[42]}`, kind: sdk.KindPermanent},
		"unreadable cursor":        {status: 200, body: `{"items":[]}`, cursor: "yesterday", kind: sdk.KindPermanent},
		"full page at the cursor":  {status: 200, body: `{"items":[{"id":"a","updated_at":"2026-03-01T09:00:00Z"},{"id":"b","updated_at":"2026-03-01T09:00:00Z"}],"has_more":true}`, cursor: "2026-03-01T09:00:00Z", pageSize: 2, kind: sdk.KindPermanent},
		"full first page one time": {status: 200, body: `{"items":[{"id":"a","updated_at":"2026-03-01T09:00:00Z"}],"has_more":true}`, pageSize: 1, kind: -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			extra := map[string]any{}
			if tc.pageSize > 0 {
				extra["feed_page_size"] = tc.pageSize
			}
			_, err := h.Poll(t.Context(), feedConn(t, srv.URL, extra), tc.cursor)
			if tc.kind < 0 {
				// Control case: a full first page moves the cursor from
				// nothing to its time, so it is not stuck.
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			e := testkit.RequireKind(t, err, tc.kind)
			if e.RetryAfter != tc.retryAfter {
				t.Errorf("retry after: got %v, want %v", e.RetryAfter, tc.retryAfter)
			}
		})
	}
}

func TestPollUnreachableFeedIsRetryable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	h := testkit.Start(t, example.New)
	_, err := h.Poll(t.Context(), feedConn(t, url, nil), "")
	testkit.RequireKind(t, err, sdk.KindRetryable)
}

func TestPollSendsNoTokenWhenNoneIsSet(t *testing.T) {
	t.Parallel()
	f := &feed{token: "needed"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	h := testkit.Start(t, example.New)
	_, err := h.Poll(t.Context(), feedConn(t, srv.URL, nil), "")
	testkit.RequireKind(t, err, sdk.KindAuth)
}
