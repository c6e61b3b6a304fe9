package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// contactChange is one entry of a CRM's "changes since" feed, which numbers
// changes with an increasing sequence.
type contactChange struct {
	Seq       int64     `json:"seq"`
	ContactID string    `json:"contact_id"`
	UpdatedAt time.Time `json:"updated_at"`
}

// crmPoller polls a CRM without webhooks. The cursor is the sequence number of
// the last change returned, so the host resumes exactly there, even after a
// restart.
type crmPoller struct {
	// changes stands for the provider's API call
	// GET /v1/changes?after=<seq>&limit=<n>.
	changes func(ctx context.Context, after int64, limit int) ([]contactChange, error)
}

var _ sdk.Poller = crmPoller{}

const pageSize = 2

func (crmPoller) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name: "tinycrm", Version: "1.0.0", DisplayName: "Tiny CRM",
		Events:       []sdk.EventType{{Type: "contact.updated"}},
		PollInterval: time.Minute,
	}
}

func (p crmPoller) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	var after int64 // an empty cursor is the first poll: start at the beginning
	if cursor != "" {
		var err error
		if after, err = strconv.ParseInt(cursor, 10, 64); err != nil {
			return sdk.PollResult{}, sdk.Permanent("cursor %q is not a sequence number", cursor)
		}
	}
	page, err := p.changes(ctx, after, pageSize)
	if err != nil {
		return sdk.PollResult{}, sdk.Retryable("listing changes after %d: %v", after, err)
	}
	res := sdk.PollResult{Cursor: cursor, More: len(page) == pageSize}
	for _, c := range page {
		payload, err := json.Marshal(c)
		if err != nil {
			return sdk.PollResult{}, sdk.Permanent("encoding change %d: %v", c.Seq, err)
		}
		res.Events = append(res.Events, sdk.Event{
			DedupeKey:   "change-" + strconv.FormatInt(c.Seq, 10),
			Type:        "contact.updated",
			OccurredAt:  c.UpdatedAt,
			Correlation: map[string]string{"contact_id": c.ContactID},
			Payload:     payload,
		})
		res.Cursor = strconv.FormatInt(c.Seq, 10)
	}
	return res, nil
}

// A Poller returns the changes after the cursor and the cursor to start from
// next time. The loop below is what the host does: it stores the events and
// the cursor, and polls again right away while More is true.
func ExamplePoller() {
	t0 := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	feed := []contactChange{{1, "c_1", t0}, {2, "c_2", t0.Add(time.Minute)}, {3, "c_1", t0.Add(2 * time.Minute)}}
	var p sdk.Poller = crmPoller{changes: func(_ context.Context, after int64, limit int) ([]contactChange, error) {
		var out []contactChange
		for _, c := range feed {
			if c.Seq > after && len(out) < limit {
				out = append(out, c)
			}
		}
		return out, nil
	}}

	conn := sdk.Connection{ID: "conn_1"}
	cursor := "" // the host keeps this between polls
	for {
		res, err := p.Poll(context.Background(), conn, cursor)
		if err != nil {
			fmt.Println("poll failed:", sdk.KindOf(err))
			return
		}
		for _, e := range res.Events {
			fmt.Println(e.DedupeKey, e.Correlation["contact_id"])
		}
		cursor = res.Cursor
		fmt.Println("cursor", cursor, "more", res.More)
		if !res.More {
			break
		}
	}
	// Output:
	// change-1 c_1
	// change-2 c_2
	// cursor 2 more true
	// change-3 c_1
	// cursor 3 more false
}
