package contacts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
type Hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	started bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	// ready is closed once the first LISTEN is in place.
	ready chan struct{}
}

type subscription struct {
	tenantID string
	ch       chan InboxEvent
}

// subscriberBuffer is how many events a slow subscriber may lag behind
// before it is sent a resync instead of every event.
const subscriberBuffer = 256

// NewHub returns a Hub that listens through a connection configured like
// pool's (not one of pool's connections: LISTEN holds it for good).
func NewHub(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{pool: pool, log: log, subs: map[*subscription]struct{}{}, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), ready: make(chan struct{})}
}

// Subscribe returns a channel of the tenant's inbox events and a function
// that ends the subscription (and closes the channel). The first subscriber
// starts the listener; Subscribe waits up to the context's deadline (at most
// 5 s) for the LISTEN to be in place, so events notified after it returns
// are not missed.
func (h *Hub) Subscribe(ctx context.Context, tenantID string) (<-chan InboxEvent, func()) {
	sub := &subscription{tenantID: tenantID, ch: make(chan InboxEvent, subscriberBuffer)}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	if !h.started {
		h.started = true
		go h.run()
	}
	h.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-h.ready:
	case <-wait.Done():
	}
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			if _, ok := h.subs[sub]; ok {
				delete(h.subs, sub)
				close(sub.ch)
			}
			h.mu.Unlock()
		})
	}
}

// Close stops the listener and ends every subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	started := h.started
	h.started = true // no new listener after Close
	h.mu.Unlock()
	h.cancel()
	if started {
		<-h.done
	}
	h.mu.Lock()
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub.ch)
	}
	h.mu.Unlock()
}

func (h *Hub) run() {
	defer close(h.done)
	backoff := 100 * time.Millisecond
	listened := false // a LISTEN was in place before: a reconnect loses events
	for h.ctx.Err() == nil {
		err := h.listenOnce(&listened)
		if h.ctx.Err() != nil {
			return
		}
		h.log.Warn("inbox stream: listening for notifications failed; reconnecting", slog.Any("error", err), slog.Duration("retry_in", backoff))
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (h *Hub) listenOnce(listened *bool) error {
	conn, err := pgx.ConnectConfig(h.ctx, h.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(h.ctx))
	if _, err := conn.Exec(h.ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("listening on %s: %w", NotifyChannel, err)
	}
	if *listened {
		h.broadcastResync()
	} else {
		close(h.ready)
		*listened = true
	}
	for {
		n, err := conn.WaitForNotification(h.ctx)
		if err != nil {
			return fmt.Errorf("waiting for notification: %w", err)
		}
		ev, err := parseInboxEvent(n.Payload)
		if err != nil {
			h.log.Warn("inbox stream: ignoring malformed notification", slog.Any("error", err))
			continue
		}
		h.publish(ev)
	}
}

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

func (h *Hub) publish(ev InboxEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.tenantID != ev.TenantID {
			continue
		}
		h.deliver(sub, ev)
	}
}

func (h *Hub) broadcastResync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		h.deliver(sub, InboxEvent{TenantID: sub.tenantID, Kind: "resync"})
	}
}

// deliver never blocks the listener: a subscriber whose buffer is full
// loses the event, and gets a resync instead once there is room.
func (h *Hub) deliver(sub *subscription, ev InboxEvent) {
	select {
	case sub.ch <- ev:
	default:
		// Drop the oldest to make room for a resync, so the client knows.
		select {
		case <-sub.ch:
		default:
		}
		select {
		case sub.ch <- InboxEvent{TenantID: sub.tenantID, Kind: "resync"}:
		default:
		}
	}
}
