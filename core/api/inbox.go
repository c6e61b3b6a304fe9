package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/store"
)

// Inbox is the contacts and conversations service behind the inbox and
// contacts API (*contacts.Service implements it). Errors wrapping
// store.ErrNotFound answer 404, *store.ValidationError 422,
// store.ErrInvalidCursor 400.
type Inbox interface {
	// ConversationAssignee returns the user a conversation of the tenant is
	// assigned to ("" for none), or store.ErrNotFound.
	ConversationAssignee(ctx context.Context, tenantID, conversationID string) (string, error)
	// ContactAssignedTo reports whether any conversation of the contact is
	// assigned to userID; store.ErrNotFound for a contact the tenant does not
	// have.
	ContactAssignedTo(ctx context.Context, tenantID, contactID, userID string) (bool, error)

	ListConversations(ctx context.Context, tenantID string, f contacts.ConversationFilter) ([]contacts.InboxItem, string, error)
	GetConversation(ctx context.Context, tenantID, id string) (contacts.InboxItem, error)
	ListMessages(ctx context.Context, tenantID, conversationID, cursor string, limit int) ([]contacts.Message, string, error)
	MarkRead(ctx context.Context, tenantID, conversationID string) error
	// Assign assigns to userID, or unassigns when it is "".
	Assign(ctx context.Context, tenantID, conversationID, userID string) error
	AddNote(ctx context.Context, tenantID, conversationID, authorID, body string) (contacts.Note, error)
	ListNotes(ctx context.Context, tenantID, conversationID string) ([]contacts.Note, error)

	ListContacts(ctx context.Context, tenantID string, f contacts.ContactFilter) ([]contacts.Contact, string, error)
	GetContact(ctx context.Context, tenantID, id string) (contacts.Contact, error)
	UpdateContact(ctx context.Context, tenantID, id string, u contacts.ContactUpdate) (contacts.Contact, error)
	AddTag(ctx context.Context, tenantID, contactID, tag string) (contacts.Contact, error)
	RemoveTag(ctx context.Context, tenantID, contactID, tag string) (contacts.Contact, error)
	Link(ctx context.Context, tenantID, fromID, intoID, byUserID string) (contacts.Contact, error)
}

var _ Inbox = (*contacts.Service)(nil)

// InboxStream delivers a tenant's inbox notifications (*contacts.Hub
// implements it). The returned function ends the subscription and closes the
// channel.
type InboxStream interface {
	Subscribe(ctx context.Context, tenantID string) (<-chan contacts.InboxEvent, func())
}

var _ InboxStream = (*contacts.Hub)(nil)

// SendReply is an agent's reply in a conversation.
type SendReply struct {
	TenantID       string
	ConversationID string
	// AuthorID is the user replying, "" for a service key.
	AuthorID string
	// Text is the message body, or the caption of Media.
	Text string
	// Media, when set, sends a media message by link.
	Media *ReplyMedia
	// ReplyTo is the id of a message of the conversation being quoted.
	ReplyTo string
	// IdempotencyKey makes a retried request send once. Always set: the
	// caller's Idempotency-Key header scoped to the conversation, or a fresh
	// random key when the caller sent none.
	IdempotencyKey string
}

// ReplyMedia is a media attachment by link.
type ReplyMedia struct {
	Type     string `json:"type" enum:"image,audio,video,document,sticker"`
	Link     string `json:"link" format:"uri" maxLength:"2000"`
	Filename string `json:"filename,omitempty" maxLength:"240"`
}

// MessageBody is a message of the ledger as the API shows it.
type MessageBody struct {
	ID             string          `json:"id" doc:"The ledger id (msg_...)."`
	ConversationID string          `json:"conversation_id"`
	ContactID      string          `json:"contact_id"`
	ConnectionID   string          `json:"connection_id"`
	Direction      string          `json:"direction" enum:"in,out"`
	Kind           string          `json:"kind" doc:"text, image, audio, video, document, sticker, location, contacts, interactive, button, reaction, template, unsupported, ..."`
	Content        json.RawMessage `json:"content" doc:"The normalized message body."`
	Status         string          `json:"status"`
	StatusReason   string          `json:"status_reason,omitempty"`
	ErrorCode      string          `json:"error_code,omitempty"`
	// ProviderMessageID is WhatsApp's message id (wamid).
	ProviderMessageID string     `json:"provider_message_id,omitempty"`
	AuthorID          string     `json:"author_id,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
	DeliveredAt       *time.Time `json:"delivered_at,omitempty"`
	ReadAt            *time.Time `json:"read_at,omitempty"`
	FailedAt          *time.Time `json:"failed_at,omitempty"`
}

func messageBody(m contacts.Message) MessageBody {
	return MessageBody{ID: m.ID, ConversationID: m.ConversationID, ContactID: m.ContactID, ConnectionID: m.ConnectionID,
		Direction: m.Direction, Kind: m.Kind, Content: publicContent(m.Content), Status: m.Status, StatusReason: m.StatusReason,
		ErrorCode: m.ErrorCode, ProviderMessageID: m.ProviderMessageID, AuthorID: m.AuthorID, CreatedAt: m.CreatedAt,
		SentAt: m.SentAt, DeliveredAt: m.DeliveredAt, ReadAt: m.ReadAt, FailedAt: m.FailedAt}
}

// Sender sends agents' replies (implemented by the messaging service). Errors
// that implement Refusal (consent, window, ...) answer 422 with the reason;
// store.ErrNotFound 404; *store.ValidationError 422.
type Sender interface {
	Send(ctx context.Context, r SendReply) (MessageBody, error)
}

// Refusal is implemented by errors of a send refused before any provider
// call (e.g. *messaging.RefusedError): outside the 24-hour window, opted out,
// excluded, ... RefusalReason is machine readable ("outside_window", ...).
type Refusal interface {
	error
	RefusalReason() string
}

// ConversationBody is a conversation as the inbox shows it.
type ConversationBody struct {
	ID           string             `json:"id"`
	ConnectionID string             `json:"connection_id" doc:"The channel connection (the business number)."`
	Contact      ContactSummaryBody `json:"contact"`
	Assignee     *AssigneeBody      `json:"assignee" doc:"The agent working the conversation; null when unassigned."`
	Status       string             `json:"status" enum:"open,closed"`
	Window       WindowBody         `json:"window"`
	UnreadCount  int                `json:"unread_count"`
	NeedsHuman   bool               `json:"needs_human"`
	// LastInboundAt is the customer's last message, which opened the window.
	LastInboundAt *time.Time `json:"last_inbound_at,omitempty"`
	LastMessageAt *time.Time `json:"last_message_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// ContactSummaryBody is the contact of a conversation.
type ContactSummaryBody struct {
	ID    string   `json:"id"`
	Phone string   `json:"phone,omitempty" example:"+393331234567" doc:"E.164; absent for a contact known only by its LID."`
	LID   string   `json:"lid,omitempty" example:"123456789012345@lid" doc:"WhatsApp's hidden-number identity, when known."`
	Name  string   `json:"name,omitempty"`
	WaID  string   `json:"wa_id,omitempty"`
	Tags  []string `json:"tags"`
}

// AssigneeBody is the agent a conversation is assigned to.
type AssigneeBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// WindowBody is the 24-hour customer-service window: free-form replies are
// possible while it is open; outside it only templates.
type WindowBody struct {
	Open        bool       `json:"open"`
	OpenUntil   *time.Time `json:"open_until" doc:"When the window closes (or closed); null when the customer never wrote."`
	SecondsLeft int64      `json:"seconds_left"`
}

func conversationBody(it contacts.InboxItem, now time.Time) ConversationBody {
	w := it.Window(now)
	b := ConversationBody{
		ID: it.ID, ConnectionID: it.ConnectionID,
		Contact: ContactSummaryBody{ID: it.Contact.ID, Phone: it.Contact.Phone, LID: it.Contact.LID, Name: it.Contact.Name, WaID: it.Contact.WaID, Tags: it.Contact.Tags},
		Status:  it.Status, Window: WindowBody{Open: w.Open, SecondsLeft: w.SecondsLeft}, UnreadCount: it.UnreadCount,
		NeedsHuman: it.NeedsHuman, LastInboundAt: it.LastInboundAt, LastMessageAt: it.LastMessageAt,
		CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,
	}
	if !w.OpenUntil.IsZero() {
		until := w.OpenUntil
		b.Window.OpenUntil = &until
	}
	if it.AssigneeID != "" {
		b.Assignee = &AssigneeBody{ID: it.AssigneeID, Name: it.AssigneeName}
	}
	return b
}

type listConversationsInput struct {
	ConnectionID string `query:"connection_id" maxLength:"100" doc:"Only conversations on this channel connection (number)."`
	Assignee     string `query:"assignee" maxLength:"100" doc:"A user id, \"me\" (the user of the API key) or \"none\" (unassigned)."`
	Tag          string `query:"tag" maxLength:"64" doc:"Only conversations whose contact carries this tag."`
	Unread       string `query:"unread" enum:"true,false" doc:"true: only conversations with unread messages; false: only those without."`
	WindowOpen   string `query:"window_open" enum:"true,false" doc:"true: only conversations whose 24-hour window is open; false: closed."`
	NeedsHuman   string `query:"needs_human" enum:"true,false"`
	Cursor       string `query:"cursor" maxLength:"500"`
	Limit        int    `query:"limit" minimum:"0" maximum:"200" doc:"Page size (default 50)."`
}

type conversationList struct {
	Body struct {
		Data       []ConversationBody `json:"data"`
		NextCursor string             `json:"next_cursor"`
	}
}

type conversationIDInput struct {
	ID string `path:"id" maxLength:"100"`
}

type conversationOutput struct {
	Body ConversationBody
}

type listMessagesInput struct {
	ID     string `path:"id" maxLength:"100"`
	Cursor string `query:"cursor" maxLength:"500"`
	Limit  int    `query:"limit" minimum:"0" maximum:"200" doc:"Page size (default 50)."`
}

type messageList struct {
	Body struct {
		Data       []MessageBody `json:"data" doc:"Newest first."`
		NextCursor string        `json:"next_cursor" doc:"The cursor of the next, older page."`
	}
}

type assignInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		UserID *string `json:"user_id" maxLength:"100" doc:"The agent to assign; null to unassign." required:"true" nullable:"true"`
	}
}

// NoteBody is an internal note.
type NoteBody struct {
	ID        string    `json:"id"`
	AuthorID  string    `json:"author_id,omitempty"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

func noteBody(n contacts.Note) NoteBody {
	return NoteBody{ID: n.ID, AuthorID: n.AuthorID, Body: n.Body, CreatedAt: n.CreatedAt}
}

type addNoteInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		Body string `json:"body" minLength:"1" maxLength:"10000"`
	}
}

type noteOutput struct {
	Body NoteBody
}

type noteList struct {
	Body struct {
		Data []NoteBody `json:"data" doc:"Oldest first."`
	}
}

type replyInput struct {
	ID             string `path:"id" maxLength:"100"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"200" doc:"Makes a retried request send once. Strongly recommended: without it, a retry sends again."`
	Body           struct {
		Text    string      `json:"text,omitempty" maxLength:"4096" doc:"The message, or the caption of media."`
		Media   *ReplyMedia `json:"media,omitempty"`
		ReplyTo string      `json:"reply_to,omitempty" maxLength:"100" doc:"Id of a message of the conversation to quote."`
	}
}

type messageOutput struct {
	Body MessageBody
}

func parseBool(s string) *bool {
	switch s {
	case "true":
		v := true
		return &v
	case "false":
		v := false
		return &v
	}
	return nil
}

func (s *server) registerInbox() {
	if s.deps.Inbox == nil {
		return
	}
	inbox := s.deps.Inbox
	all := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly}
	actors := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator}

	op := allowRoles(operation("list-conversations", http.MethodGet, "/v1/conversations", "List conversations", tagInbox, store.ScopeRead), all...)
	op.Description = "Most recent activity first. Operators see only the conversations assigned to them."
	op.Errors = append(op.Errors, http.StatusBadRequest, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *listConversationsInput) (*conversationList, error) {
		p := principal(ctx)
		f := contacts.ConversationFilter{ConnectionID: in.ConnectionID, Assignee: in.Assignee, Tag: in.Tag,
			Unread: parseBool(in.Unread), WindowOpen: parseBool(in.WindowOpen), NeedsHuman: parseBool(in.NeedsHuman),
			Cursor: in.Cursor, Limit: in.Limit, Now: time.Now()}
		if f.Assignee == "me" {
			if p.UserID == "" {
				return nil, huma.Error422UnprocessableEntity("assignee=me needs a user's API key", &huma.ErrorDetail{Location: "query.assignee", Message: "this API key belongs to no user", Value: in.Assignee})
			}
			f.Assignee = p.UserID
		}
		out := &conversationList{}
		out.Body.Data = []ConversationBody{}
		if p.Role == store.RoleOperator {
			if f.Assignee != "" && f.Assignee != p.UserID {
				return out, nil // operators see nothing assigned elsewhere
			}
			f.Assignee = p.UserID
		}
		items, next, err := inbox.ListConversations(ctx, p.TenantID, f)
		if err != nil {
			return nil, s.storeError(ctx, "listing conversations", "conversation not found", err)
		}
		for _, it := range items {
			out.Body.Data = append(out.Body.Data, conversationBody(it, f.Now))
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = allowRoles(operation("get-conversation", http.MethodGet, "/v1/conversations/{id}", "Get a conversation", tagInbox, store.ScopeRead), all...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *conversationIDInput) (*conversationOutput, error) {
		if err := s.requireConversationAccess(ctx, in.ID, false); err != nil {
			return nil, err
		}
		return s.conversation(ctx, in.ID)
	})

	op = allowRoles(operation("list-conversation-messages", http.MethodGet, "/v1/conversations/{id}/messages", "List a conversation's messages", tagInbox, store.ScopeRead), all...)
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listMessagesInput) (*messageList, error) {
		if err := s.requireConversationAccess(ctx, in.ID, false); err != nil {
			return nil, err
		}
		msgs, next, err := inbox.ListMessages(ctx, tenant(ctx), in.ID, in.Cursor, in.Limit)
		if err != nil {
			return nil, s.storeError(ctx, "listing messages", "conversation not found", err)
		}
		out := &messageList{}
		out.Body.Data = make([]MessageBody, len(msgs))
		for i, m := range msgs {
			out.Body.Data[i] = messageBody(m)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = allowRoles(operation("reply-in-conversation", http.MethodPost, "/v1/conversations/{id}/messages", "Reply in a conversation", tagInbox, store.ScopeWrite), actors...)
	op.Description = "Sends text or media to the conversation's contact on the conversation's number. Free-form replies are possible only while the 24-hour window is open; a refused send answers 422 with the reason in `reason`."
	op.DefaultStatus = http.StatusCreated
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusConflict, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *replyInput) (*messageOutput, error) {
		if err := s.requireConversationAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		if in.Body.Text == "" && in.Body.Media == nil {
			return nil, invalid("the reply is empty", store.FieldProblem{Field: "text", Message: "text or media is required"})
		}
		if s.deps.Sender == nil {
			return nil, s.internal(ctx, "replying", errors.New("api: Deps.Sender is not configured"))
		}
		p := principal(ctx)
		key := in.IdempotencyKey
		if key == "" {
			key = "reply:" + newRequestID()
		} else {
			// Scoped to the conversation so two conversations' keys never
			// collide in the ledger's tenant-wide unique index.
			key = "reply:" + in.ID + ":" + key
		}
		m, err := s.deps.Sender.Send(ctx, SendReply{TenantID: p.TenantID, ConversationID: in.ID, AuthorID: p.UserID,
			Text: in.Body.Text, Media: in.Body.Media, ReplyTo: in.Body.ReplyTo, IdempotencyKey: key})
		if err != nil {
			return nil, s.sendError(ctx, err)
		}
		return &messageOutput{Body: m}, nil
	})

	op = allowRoles(operation("mark-conversation-read", http.MethodPost, "/v1/conversations/{id}/read", "Mark a conversation read", tagInbox, store.ScopeWrite), actors...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *conversationIDInput) (*conversationOutput, error) {
		if err := s.requireConversationAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		if err := inbox.MarkRead(ctx, tenant(ctx), in.ID); err != nil {
			return nil, s.storeError(ctx, "marking conversation read", "conversation not found", err)
		}
		return s.conversation(ctx, in.ID)
	})

	op = operation("assign-conversation", http.MethodPost, "/v1/conversations/{id}/assign", "Assign a conversation", tagInbox, store.ScopeWrite)
	op.Description = "Assigns the conversation to an active agent of the tenant, or unassigns it with `null`. Admins and managers only."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *assignInput) (*conversationOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin, store.RoleManager); err != nil {
			return nil, err
		}
		if err := s.requireConversationAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		userID := ""
		if in.Body.UserID != nil {
			userID = *in.Body.UserID
			if userID == "" {
				return nil, invalid("the assignee is invalid", store.FieldProblem{Field: "user_id", Message: "a user id, or null to unassign"})
			}
		}
		if err := inbox.Assign(ctx, tenant(ctx), in.ID, userID); err != nil {
			return nil, s.storeError(ctx, "assigning conversation", "conversation not found", err)
		}
		return s.conversation(ctx, in.ID)
	})

	op = allowRoles(operation("add-conversation-note", http.MethodPost, "/v1/conversations/{id}/notes", "Add an internal note", tagInbox, store.ScopeWrite), actors...)
	op.DefaultStatus = http.StatusCreated
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *addNoteInput) (*noteOutput, error) {
		if err := s.requireConversationAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		n, err := inbox.AddNote(ctx, tenant(ctx), in.ID, principal(ctx).UserID, in.Body.Body)
		if err != nil {
			return nil, s.storeError(ctx, "adding note", "conversation not found", err)
		}
		return &noteOutput{Body: noteBody(n)}, nil
	})

	op = allowRoles(operation("list-conversation-notes", http.MethodGet, "/v1/conversations/{id}/notes", "List internal notes", tagInbox, store.ScopeRead), all...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *conversationIDInput) (*noteList, error) {
		if err := s.requireConversationAccess(ctx, in.ID, false); err != nil {
			return nil, err
		}
		notes, err := inbox.ListNotes(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "listing notes", "conversation not found", err)
		}
		out := &noteList{}
		out.Body.Data = make([]NoteBody, len(notes))
		for i, n := range notes {
			out.Body.Data[i] = noteBody(n)
		}
		return out, nil
	})

	s.registerStream(all)
}

func (s *server) conversation(ctx context.Context, id string) (*conversationOutput, error) {
	it, err := s.deps.Inbox.GetConversation(ctx, tenant(ctx), id)
	if err != nil {
		return nil, s.storeError(ctx, "reading conversation", "conversation not found", err)
	}
	return &conversationOutput{Body: conversationBody(it, time.Now())}, nil
}

// refusalProblem is the 422 of a refused send: RFC 9457 extension member
// "reason" carries the machine-readable reason.
type refusalProblem struct {
	huma.ErrorModel
	Reason string `json:"reason"`
}

func (s *server) sendError(ctx context.Context, err error) error {
	var r Refusal
	if errors.As(err, &r) {
		return &refusalProblem{
			ErrorModel: huma.ErrorModel{Status: http.StatusUnprocessableEntity, Title: http.StatusText(http.StatusUnprocessableEntity),
				Detail: fmt.Sprintf("the message was not sent: %s", r.RefusalReason())},
			Reason: r.RefusalReason(),
		}
	}
	var ve *store.ValidationError
	if errors.As(err, &ve) || errors.Is(err, store.ErrNotFound) {
		return s.storeError(ctx, "replying", "conversation not found", err)
	}
	if isUnavailable(err) {
		return unavailable("the channel connector is restarting; retry shortly", 5)
	}
	return s.internal(ctx, "replying", err)
}
