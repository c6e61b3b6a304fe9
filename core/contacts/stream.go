package contacts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/pgnotify"
)

// InboxEvent is a notification on [NotifyChannel].
type InboxEvent struct {
	TenantID       string `json:"tenant_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id,omitempty"`
	// Kind is "message" for a new message, "status" for a status change,
	// "signal" for a contact's presence or typing (linked devices),
	// "resync" when the hub lost notifications (after reconnecting to the
	// database) and clients should reload what they show.
	Kind string `json:"kind"`
	// Status is the new status of a "status" event, when the notifier sent it.
	Status string `json:"status,omitempty"`
	// Signal is a "signal" event's short-lived notice from a linked device
	// ({kind: presence|chat_state, payload, at}): the contact is online,
	// typing, ...
	Signal json.RawMessage `json:"signal,omitempty"`
	// AssigneeID is the conversation's assignee when the notifier knew it;
	// nil when it did not say (then readers look it up).
	AssigneeID *string `json:"assignee_id,omitempty"`
	// AssigneeKnown reports whether the notification carried assignee_id
	// (possibly null: unassigned).
	AssigneeKnown bool `json:"-"`
}

// Hub listens on [NotifyChannel] over one dedicated connection and fans the
// notifications out to in-process subscribers (the API's event streams), so
// a thousand open streams cost one database connection. It connects when the
// first subscriber arrives and reconnects with backoff; after a reconnect it
// sends every subscriber a "resync" event, because notifications sent while
// it was away are lost (LISTEN/NOTIFY does not queue for absent listeners).
// The listening itself is a [pgnotify.Listener]; Hub adds the inbox's
// payload, the per-tenant filter and the resync event.
type Hub struct {
	l *pgnotify.Listener[InboxEvent]
}

// subscriberBuffer is how many events a slow subscriber may lag behind
// before it is sent a resync instead of every event.
const subscriberBuffer = 256

// NewHub returns a Hub that listens through a connection configured like
// pool's (not one of pool's connections: LISTEN holds it for good).
func NewHub(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	return &Hub{l: pgnotify.New(pool.Config().ConnConfig, NotifyChannel, parseInboxEvent, log)}
}

// Subscribe returns a channel of the tenant's inbox events and a function
// that ends the subscription (and closes the channel). The first subscriber
// starts the listener; Subscribe waits up to the context's deadline (at most
// 5 s) for the LISTEN to be in place, so events notified after it returns
// are not missed. A subscriber that lags behind by more than its buffer
// loses its oldest events and is sent a resync. After Close the channel
// comes back closed.
func (h *Hub) Subscribe(ctx context.Context, tenantID string) (<-chan InboxEvent, func()) {
	return h.l.Subscribe(ctx, pgnotify.Subscription[InboxEvent]{
		Match:  func(ev InboxEvent) bool { return ev.TenantID == tenantID },
		Lost:   func() InboxEvent { return InboxEvent{TenantID: tenantID, Kind: "resync"} },
		Buffer: subscriberBuffer,
	})
}

// Close stops the listener and ends every subscription.
func (h *Hub) Close() { h.l.Close() }

func parseInboxEvent(payload string) (InboxEvent, error) {
	var ev InboxEvent
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		return InboxEvent{}, fmt.Errorf("decoding notification: %w", err)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal([]byte(payload), &keys)
	_, ev.AssigneeKnown = keys["assignee_id"]
	if ev.TenantID == "" || ev.ConversationID == "" || ev.Kind == "" {
		return InboxEvent{}, fmt.Errorf("notification lacks tenant_id, conversation_id or kind")
	}
	return ev, nil
}
