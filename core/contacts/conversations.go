package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/store"
)

// WindowLength is how long the customer-service window stays open after the
// customer's last message: free-form messages are allowed inside it, a
// template is needed outside.
const WindowLength = 24 * time.Hour

// Conversation is a contact on one number (a channel connection).
type Conversation struct {
	ID           string `json:"id"`
	TenantID     string `json:"-"`
	ContactID    string `json:"contact_id"`
	ConnectionID string `json:"connection_id"`
	// AssigneeID is the user working the conversation, "" for none.
	AssigneeID    string     `json:"assignee_id,omitempty"`
	Status        string     `json:"status"`
	LastInboundAt *time.Time `json:"last_inbound_at,omitempty"`
	LastMessageAt *time.Time `json:"last_message_at,omitempty"`
	UnreadCount   int        `json:"unread_count"`
	NeedsHuman    bool       `json:"needs_human"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Window is the state of a conversation's customer-service window at a time.
type Window struct {
	Open bool
	// OpenUntil is when the window closes (or closed); zero when the customer
	// never wrote.
	OpenUntil time.Time
	// SecondsLeft is the whole seconds until OpenUntil, 0 when closed.
	SecondsLeft int64
}

// WindowAt computes the 24-hour window from the customer's last message:
// open until lastInbound + 24h, exclusive.
func WindowAt(lastInbound *time.Time, now time.Time) Window {
	if lastInbound == nil || lastInbound.IsZero() {
		return Window{}
	}
	until := lastInbound.Add(WindowLength)
	if !now.Before(until) {
		return Window{OpenUntil: until}
	}
	return Window{Open: true, OpenUntil: until, SecondsLeft: int64(until.Sub(now) / time.Second)}
}

// Window is the conversation's window at now.
func (c Conversation) Window(now time.Time) Window { return WindowAt(c.LastInboundAt, now) }

const conversationColumns = `cv.id, cv.tenant_id, cv.contact_id, cv.connection_id, COALESCE(cv.assignee_id, ''), cv.status,
	cv.last_inbound_at, cv.last_message_at, cv.unread_count, cv.needs_human, cv.created_at, cv.updated_at`

func scanConversation(row pgx.Row, extra ...any) (Conversation, error) {
	var c Conversation
	dest := append([]any{&c.ID, &c.TenantID, &c.ContactID, &c.ConnectionID, &c.AssigneeID, &c.Status,
		&c.LastInboundAt, &c.LastMessageAt, &c.UnreadCount, &c.NeedsHuman, &c.CreatedAt, &c.UpdatedAt}, extra...)
	err := row.Scan(dest...)
	return c, err
}

// Conversation returns the conversation of a contact on a channel connection,
// creating it when there is none (an upsert, safe under concurrency). A
// contact that was linked into another yields the surviving contact's
// conversation. store.ErrNotFound when the contact or connection is not the
// tenant's.
func (s *Service) Conversation(ctx context.Context, tenantID, contactID, connectionID string) (Conversation, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx, `
		WITH ct AS (
			SELECT COALESCE(merged_into, id) AS id FROM contacts WHERE tenant_id = $1 AND id = $2
		), conn AS (
			SELECT id FROM connections WHERE tenant_id = $1 AND id = $3
		)
		INSERT INTO conversations AS cv (id, tenant_id, contact_id, connection_id)
		SELECT $4, $1, ct.id, conn.id FROM ct, conn
		ON CONFLICT (tenant_id, contact_id, connection_id) DO UPDATE SET status = cv.status
		RETURNING `+conversationColumns,
		tenantID, contactID, connectionID, store.NewID("cv")))
	if errors.Is(err, pgx.ErrNoRows) {
		return Conversation{}, fmt.Errorf("conversation of contact %s on %s: %w", contactID, connectionID, store.ErrNotFound)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("upserting conversation: %w", err)
	}
	return c, nil
}

// Window returns when the customer-service window of a contact on a channel
// connection closes and whether it is open at now. A contact that never wrote
// on that number has a closed window with a zero openUntil.
func (s *Service) Window(ctx context.Context, tenantID, contactID, connectionID string, now time.Time) (openUntil time.Time, open bool, err error) {
	var last *time.Time
	err = s.pool.QueryRow(ctx, `
		SELECT cv.last_inbound_at FROM conversations cv
		JOIN contacts ct ON ct.tenant_id = cv.tenant_id AND cv.contact_id = COALESCE(ct.merged_into, ct.id)
		WHERE ct.tenant_id = $1 AND ct.id = $2 AND cv.connection_id = $3`,
		tenantID, contactID, connectionID).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading window: %w", err)
	}
	w := WindowAt(last, now)
	return w.OpenUntil, w.Open, nil
}

// IsAssigned reports whether a conversation of the tenant is assigned to
// userID; store.ErrNotFound for a conversation the tenant does not have.
func (s *Service) IsAssigned(ctx context.Context, tenantID, conversationID, userID string) (bool, error) {
	assignee, err := s.ConversationAssignee(ctx, tenantID, conversationID)
	if err != nil {
		return false, err
	}
	return userID != "" && assignee == userID, nil
}

// ConversationAssignee returns the user a conversation of the tenant is
// assigned to ("" for none), or store.ErrNotFound.
func (s *Service) ConversationAssignee(ctx context.Context, tenantID, conversationID string) (string, error) {
	var assignee string
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(assignee_id, '') FROM conversations WHERE tenant_id = $1 AND id = $2`,
		tenantID, conversationID).Scan(&assignee)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("conversation %s: %w", conversationID, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading conversation assignee: %w", err)
	}
	return assignee, nil
}

// ContactAssignedTo reports whether any conversation of one of the tenant's
// contacts is assigned to userID; store.ErrNotFound for a contact the tenant
// does not have.
func (s *Service) ContactAssignedTo(ctx context.Context, tenantID, contactID, userID string) (bool, error) {
	var assigned bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM conversations cv
		               WHERE cv.tenant_id = $1 AND cv.contact_id = COALESCE(ct.merged_into, ct.id) AND cv.assignee_id = NULLIF($3, ''))
		FROM contacts ct WHERE ct.tenant_id = $1 AND ct.id = $2`,
		tenantID, contactID, userID).Scan(&assigned)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("contact %s: %w", contactID, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("checking contact assignment: %w", err)
	}
	return assigned, nil
}

// ContactSummary is what an inbox list shows of a conversation's contact.
type ContactSummary struct {
	ID string `json:"id"`
	// Phone is E.164; "" for a contact known only by its LID.
	Phone string `json:"phone,omitempty"`
	// LID is the contact's hidden-number identity, when known.
	LID  string   `json:"lid,omitempty"`
	Name string   `json:"name,omitempty"`
	WaID string   `json:"wa_id,omitempty"`
	Tags []string `json:"tags"`
}

// InboxItem is a conversation with its contact, as the inbox lists it.
type InboxItem struct {
	Conversation
	Contact ContactSummary
	// AssigneeName is the assigned user's name, "" when unassigned.
	AssigneeName string
}

// ConversationFilter selects conversations. Zero fields do not filter.
type ConversationFilter struct {
	// ConnectionID keeps the conversations on one number.
	ConnectionID string
	// Assignee is a user id, AssigneeNone for unassigned conversations, or ""
	// for any.
	Assignee string
	// Tag keeps conversations whose contact carries the tag.
	Tag string
	// Unread true keeps conversations with unread messages, false those
	// without.
	Unread *bool
	// WindowOpen true keeps conversations whose window is open at Now, false
	// those whose window is closed.
	WindowOpen *bool
	NeedsHuman *bool
	// Now is the time windows are computed at (default time.Now()).
	Now    time.Time
	Cursor string
	Limit  int
}

// AssigneeNone is ConversationFilter.Assignee for unassigned conversations.
const AssigneeNone = "none"

type conversationCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

const inboxSelect = `SELECT ` + conversationColumns + `, COALESCE(ct.phone, ''), COALESCE(ct.lid, ''), COALESCE(ct.name, ''), COALESCE(ct.wa_id, ''), ct.tags,
	COALESCE(u.name, ''), COALESCE(cv.last_message_at, cv.created_at)
	FROM conversations cv JOIN contacts ct ON ct.id = cv.contact_id LEFT JOIN users u ON u.id = cv.assignee_id`

func scanInboxItem(row pgx.Row) (InboxItem, time.Time, error) {
	var it InboxItem
	var at time.Time
	c, err := scanConversation(row, &it.Contact.Phone, &it.Contact.LID, &it.Contact.Name, &it.Contact.WaID, &it.Contact.Tags, &it.AssigneeName, &at)
	if err != nil {
		return InboxItem{}, time.Time{}, err
	}
	it.Conversation = c
	it.Contact.ID = c.ContactID
	if it.Contact.Tags == nil {
		it.Contact.Tags = []string{}
	}
	return it, at, nil
}

// ListConversations returns the tenant's conversations matching f, most
// recent activity first, and the cursor of the next page ("" on the last).
func (s *Service) ListConversations(ctx context.Context, tenantID string, f ConversationFilter) ([]InboxItem, string, error) {
	limit := pageSize(f.Limit)
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	args := []any{tenantID}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	where := []string{"cv.tenant_id = $1"}
	if f.ConnectionID != "" {
		where = append(where, "cv.connection_id = "+arg(f.ConnectionID))
	}
	switch f.Assignee {
	case "":
	case AssigneeNone:
		where = append(where, "cv.assignee_id IS NULL")
	default:
		where = append(where, "cv.assignee_id = "+arg(f.Assignee))
	}
	if f.Tag != "" {
		// ct.tags <> '{}' lets the plan use contacts_tags, which leaves
		// out contacts without tags.
		where = append(where, "ct.tags @> ARRAY["+arg(f.Tag)+"]::text[] AND ct.tags <> '{}'::text[]")
	}
	if f.Unread != nil {
		if *f.Unread {
			where = append(where, "cv.unread_count > 0")
		} else {
			where = append(where, "cv.unread_count = 0")
		}
	}
	if f.WindowOpen != nil {
		cond := "cv.last_inbound_at > " + arg(now.Add(-WindowLength))
		if *f.WindowOpen {
			where = append(where, cond)
		} else {
			where = append(where, "NOT COALESCE("+cond+", false)")
		}
	}
	if f.NeedsHuman != nil {
		where = append(where, "cv.needs_human = "+arg(*f.NeedsHuman))
	}
	if f.Cursor != "" {
		var cur conversationCursor
		if err := decodeCursor(f.Cursor, &cur); err != nil {
			return nil, "", err
		}
		where = append(where, "(COALESCE(cv.last_message_at, cv.created_at), cv.id) < ("+arg(cur.At)+", "+arg(cur.ID)+")")
	}
	q := inboxSelect + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY COALESCE(cv.last_message_at, cv.created_at) DESC, cv.id DESC LIMIT ` + arg(limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing conversations: %w", err)
	}
	defer rows.Close()
	var out []InboxItem
	var lastAt time.Time
	for rows.Next() {
		it, at, err := scanInboxItem(rows)
		if err != nil {
			return nil, "", fmt.Errorf("listing conversations: %w", err)
		}
		if len(out) == limit {
			return out, encodeCursor(conversationCursor{At: lastAt, ID: out[limit-1].ID}), nil
		}
		out = append(out, it)
		lastAt = at
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("listing conversations: %w", err)
	}
	return out, "", nil
}

// GetConversation returns one of the tenant's conversations with its
// contact, or store.ErrNotFound.
func (s *Service) GetConversation(ctx context.Context, tenantID, id string) (InboxItem, error) {
	it, _, err := scanInboxItem(s.pool.QueryRow(ctx, inboxSelect+` WHERE cv.tenant_id = $1 AND cv.id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return InboxItem{}, fmt.Errorf("conversation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return InboxItem{}, fmt.Errorf("reading conversation: %w", err)
	}
	return it, nil
}

// MarkRead sets a conversation's unread count to zero.
func (s *Service) MarkRead(ctx context.Context, tenantID, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE conversations SET unread_count = 0, updated_at = now() WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("marking conversation read: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("conversation %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Assign assigns a conversation to a user of the tenant, or unassigns it
// when userID is "". A user that is not the tenant's or is disabled is a
// *store.ValidationError on "user_id"; a conversation the tenant does not
// have is store.ErrNotFound.
func (s *Service) Assign(ctx context.Context, tenantID, conversationID, userID string) error {
	var convFound, userOK bool
	err := s.pool.QueryRow(ctx, `
		WITH u AS (
			SELECT id FROM users WHERE tenant_id = $1 AND id = NULLIF($3, '') AND disabled_at IS NULL
		), upd AS (
			UPDATE conversations SET assignee_id = (SELECT id FROM u), updated_at = now()
			WHERE tenant_id = $1 AND id = $2 AND ($3 = '' OR EXISTS (SELECT 1 FROM u))
			RETURNING id
		)
		SELECT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND id = $2),
		       $3 = '' OR EXISTS (SELECT 1 FROM u)`,
		tenantID, conversationID, userID).Scan(&convFound, &userOK)
	if err != nil {
		return fmt.Errorf("assigning conversation: %w", err)
	}
	if !convFound {
		return fmt.Errorf("conversation %s: %w", conversationID, store.ErrNotFound)
	}
	if !userOK {
		return &store.ValidationError{Problems: []store.FieldProblem{{Field: "user_id", Message: "not an active user of this tenant"}}}
	}
	return nil
}

// SetNeedsHuman sets or clears a conversation's needs-human flag.
func (s *Service) SetNeedsHuman(ctx context.Context, tenantID, conversationID string, needs bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE conversations SET needs_human = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2`,
		tenantID, conversationID, needs)
	if err != nil {
		return fmt.Errorf("flagging conversation: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("conversation %s: %w", conversationID, store.ErrNotFound)
	}
	return nil
}

// Message is a row of the message ledger, inbound or outbound.
type Message struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	ContactID      string `json:"contact_id"`
	ConnectionID   string `json:"connection_id"`
	// Direction is "in" or "out".
	Direction string `json:"direction"`
	// Kind is text, image, ..., reaction, template, ...
	Kind string `json:"kind"`
	// Content is the normalized message body.
	Content           json.RawMessage `json:"content"`
	Status            string          `json:"status"`
	StatusReason      string          `json:"status_reason,omitempty"`
	ErrorCode         string          `json:"error_code,omitempty"`
	ProviderMessageID string          `json:"provider_message_id,omitempty"`
	AuthorID          string          `json:"author_id,omitempty"`
	CreatedAt         time.Time       `json:"created_at"`
	SentAt            *time.Time      `json:"sent_at,omitempty"`
	DeliveredAt       *time.Time      `json:"delivered_at,omitempty"`
	ReadAt            *time.Time      `json:"read_at,omitempty"`
	FailedAt          *time.Time      `json:"failed_at,omitempty"`
}

type messageCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListMessages returns the messages of one of the tenant's conversations,
// newest first, and the cursor of the next (older) page. store.ErrNotFound
// for a conversation the tenant does not have.
func (s *Service) ListMessages(ctx context.Context, tenantID, conversationID, cursor string, limit int) ([]Message, string, error) {
	limit = pageSize(limit)
	if _, err := s.ConversationAssignee(ctx, tenantID, conversationID); err != nil {
		return nil, "", err
	}
	args := []any{tenantID, conversationID}
	cond := ""
	if cursor != "" {
		var cur messageCursor
		if err := decodeCursor(cursor, &cur); err != nil {
			return nil, "", err
		}
		args = append(args, cur.At, cur.ID)
		cond = " AND (created_at, id) < ($3, $4)"
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, `
		SELECT id, conversation_id, contact_id, connection_id, direction, kind, content, status,
		       COALESCE(status_reason, ''), COALESCE(error_code, ''), COALESCE(provider_message_id, ''), COALESCE(author_id, ''),
		       created_at, sent_at, delivered_at, read_at, failed_at
		FROM messages WHERE tenant_id = $1 AND conversation_id = $2`+cond+`
		ORDER BY created_at DESC, id DESC LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing messages: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		err := r.Scan(&m.ID, &m.ConversationID, &m.ContactID, &m.ConnectionID, &m.Direction, &m.Kind, &m.Content, &m.Status,
			&m.StatusReason, &m.ErrorCode, &m.ProviderMessageID, &m.AuthorID, &m.CreatedAt, &m.SentAt, &m.DeliveredAt, &m.ReadAt, &m.FailedAt)
		return m, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing messages: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(messageCursor{At: last.CreatedAt, ID: last.ID})
	}
	return out, next, nil
}

// Note is an internal note on a conversation, never sent to the contact.
type Note struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	AuthorID       string    `json:"author_id,omitempty"`
	Body           string    `json:"body"`
	CreatedAt      time.Time `json:"created_at"`
}

// MaxNoteRunes bounds a note's length.
const MaxNoteRunes = 10000

// AddNote adds a note to one of the tenant's conversations. authorID is the
// user writing it ("" for a service key).
func (s *Service) AddNote(ctx context.Context, tenantID, conversationID, authorID, body string) (Note, error) {
	body = strings.TrimSpace(body)
	if body == "" || utf8.RuneCountInString(body) > MaxNoteRunes {
		return Note{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: "body", Message: fmt.Sprintf("must be 1-%d characters", MaxNoteRunes)}}}
	}
	n := Note{ID: store.NewID("note"), ConversationID: conversationID, AuthorID: authorID, Body: body}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO notes (id, tenant_id, conversation_id, author_id, body)
		SELECT $1, $2, cv.id, NULLIF($4, ''), $5 FROM conversations cv WHERE cv.tenant_id = $2 AND cv.id = $3
		RETURNING created_at`, n.ID, tenantID, conversationID, authorID, body).Scan(&n.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Note{}, fmt.Errorf("conversation %s: %w", conversationID, store.ErrNotFound)
	}
	if err != nil {
		return Note{}, fmt.Errorf("adding note: %w", err)
	}
	return n, nil
}

// ListNotes returns the notes of one of the tenant's conversations, oldest
// first. store.ErrNotFound for a conversation the tenant does not have.
func (s *Service) ListNotes(ctx context.Context, tenantID, conversationID string) ([]Note, error) {
	if _, err := s.ConversationAssignee(ctx, tenantID, conversationID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, conversation_id, COALESCE(author_id, ''), body, created_at FROM notes
		WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id`, tenantID, conversationID)
	if err != nil {
		return nil, fmt.Errorf("listing notes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Note, error) {
		var n Note
		return n, r.Scan(&n.ID, &n.ConversationID, &n.AuthorID, &n.Body, &n.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("listing notes: %w", err)
	}
	return out, nil
}
