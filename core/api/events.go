package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

type listEventsInput struct {
	ConnectionID string    `query:"connection_id" maxLength:"100" doc:"Only events of this connection."`
	Type         string    `query:"type" maxLength:"200" example:"checkout.session.completed" doc:"Only events of this type."`
	Since        time.Time `query:"since" doc:"Only events received at or after this time (RFC 3339)."`
	Until        time.Time `query:"until" doc:"Only events received before this time (RFC 3339)."`
	Cursor       string    `query:"cursor" maxLength:"500" doc:"next_cursor of the previous page."`
	Limit        int       `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type eventList struct {
	Body struct {
		Data       []store.Event `json:"data"`
		NextCursor string        `json:"next_cursor" doc:"Cursor of the next page; empty on the last page."`
	}
}

type eventIDInput struct {
	ID int64 `path:"id" minimum:"1" doc:"The event's id."`
}

type eventOutput struct {
	Body store.Event
}

func (s *server) registerEvents() {
	op := operation("list-events", http.MethodGet, "/v1/events", "List received events", tagEvents, store.ScopeRead)
	op.Description = "Events received from the tenant's connections, newest first, optionally filtered by connection, type and time received."
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listEventsInput) (*eventList, error) {
		if !in.Since.IsZero() && !in.Until.IsZero() && !in.Until.After(in.Since) {
			return nil, huma.Error400BadRequest("until must be after since", &huma.ErrorDetail{Location: "query.until", Message: "must be after since"})
		}
		events, next, err := s.deps.Store.ListEvents(ctx, tenant(ctx), store.EventFilter{
			ConnectionID: in.ConnectionID, Type: in.Type, Since: in.Since, Until: in.Until, Cursor: in.Cursor, Limit: in.Limit,
		})
		if err != nil {
			return nil, s.storeError(ctx, "listing events", "", err)
		}
		out := &eventList{}
		out.Body.Data = events
		if out.Body.Data == nil {
			out.Body.Data = []store.Event{}
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = operation("get-event", http.MethodGet, "/v1/events/{id}", "Get a received event", tagEvents, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *eventIDInput) (*eventOutput, error) {
		e, err := s.deps.Store.GetEvent(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading event", "event not found", err)
		}
		return &eventOutput{Body: e}, nil
	})
}
