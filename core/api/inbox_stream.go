package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/store"
)

// defaultHeartbeat is how often an idle event stream sends a comment line,
// so proxies and load balancers do not close it for inactivity.
const defaultHeartbeat = 15 * time.Second

// StreamEvent is the data of a server-sent event of GET /v1/stream.
type StreamEvent struct {
	// Kind is "message" (a new inbound message), "status" (an outbound
	// message's status changed), "signal" (the contact is online, typing,
	// ...: linked-device numbers) or "resync" (events may have been missed:
	// reload what you show).
	Kind           string `json:"kind"`
	ConversationID string `json:"conversation_id,omitempty"`
	MessageID      string `json:"message_id,omitempty"`
	Status         string `json:"status,omitempty"`
	// Signal is a signal event's notice: {kind: presence|chat_state,
	// payload: {phone, available, last_seen | state: composing|paused}, at}.
	Signal json.RawMessage `json:"signal,omitempty"`
}

func (s *server) registerStream(roles []string) {
	op := allowRoles(operation("stream-inbox", http.MethodGet, "/v1/stream", "Stream inbox events", tagInbox, store.ScopeRead), roles...)
	op.Description = "Server-sent events (`text/event-stream`) of new messages and status changes in the conversations the key can see " +
		"(operators: those assigned to them). Each event's `event` field is its kind and `data` a JSON `StreamEvent`; a comment " +
		"line is sent every 15 seconds when idle. Events are not replayed: on reconnect, or on a `resync` event, reload the " +
		"conversations you show."
	op.Responses = map[string]*huma.Response{
		"200": {
			Description: "An endless stream of server-sent events.",
			Content: map[string]*huma.MediaType{
				"text/event-stream": {Schema: &huma.Schema{Type: "string", Description: "event: <kind>\\ndata: <StreamEvent JSON>\\n\\n"}},
			},
		},
	}
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		p := principal(ctx)
		return &huma.StreamResponse{Body: func(hctx huma.Context) { s.stream(hctx, p) }}, nil
	})
}

func (s *server) stream(hctx huma.Context, p Principal) {
	ctx := hctx.Context()
	events, cancel := s.deps.InboxStream.Subscribe(ctx, p.TenantID)
	defer cancel()

	w, ok := s.openEventStream(hctx)
	if !ok {
		return
	}
	pumpEvents(ctx, s, w, events, func(ev contacts.InboxEvent) bool {
		if !s.visible(ctx, p, ev) {
			return true
		}
		return w.event(sanitizeEventName(ev.Kind), StreamEvent{Kind: ev.Kind, ConversationID: ev.ConversationID,
			MessageID: ev.MessageID, Status: ev.Status, Signal: ev.Signal})
	})
}

// visible reports whether the principal may see an event: everyone of the
// tenant (the hub already filtered the tenant) but operators, who see only
// their assigned conversations' events, and resyncs.
func (s *server) visible(ctx context.Context, p Principal, ev contacts.InboxEvent) bool {
	if p.Role != store.RoleOperator || ev.Kind == "resync" {
		return true
	}
	if ev.AssigneeKnown {
		return ev.AssigneeID != nil && *ev.AssigneeID == p.UserID
	}
	assignee, err := s.deps.Inbox.ConversationAssignee(ctx, p.TenantID, ev.ConversationID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, context.Canceled) {
			s.log.WarnContext(ctx, "event stream: checking conversation assignee", slog.Any("error", err))
		}
		return false
	}
	return assignee == p.UserID
}

// sanitizeEventName keeps an event name on one line of the stream.
func sanitizeEventName(kind string) string {
	for i := 0; i < len(kind); i++ {
		if c := kind[i]; c == '\n' || c == '\r' {
			return "message"
		}
	}
	return kind
}
