package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ReplyRequest is an agent's reply in a conversation: text, or media with
// Text as its caption.
type ReplyRequest struct {
	TenantID       string
	ConversationID string
	AuthorID       string
	Text           string
	Media          *Media
	// ReplyTo is the ledger id (msg_...) of a message of the conversation
	// being quoted.
	ReplyTo        string
	IdempotencyKey string
}

// Reply sends a reply in a conversation: to its contact, from its number, as
// a service message (free-form, so only inside the 24-hour window). Errors
// are Send's, and an error wrapping ErrNotFound for a conversation or quoted
// message the tenant does not have.
func (s *Service) Reply(ctx context.Context, r ReplyRequest) (Message, error) {
	pool, ok := s.ledger.(*ledger)
	if !ok {
		return Message{}, errors.New("messaging: Reply needs the Postgres ledger")
	}
	var contactID, connectionID string
	err := pool.pool.QueryRow(ctx, `SELECT contact_id, connection_id FROM conversations WHERE tenant_id = $1 AND id = $2`,
		r.TenantID, r.ConversationID).Scan(&contactID, &connectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, fmt.Errorf("conversation %s: %w", r.ConversationID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("reading conversation %s: %w", r.ConversationID, err)
	}
	replyTo := ""
	if r.ReplyTo != "" {
		err := pool.pool.QueryRow(ctx, `SELECT COALESCE(provider_message_id, '') FROM messages
            WHERE tenant_id = $1 AND id = $2 AND conversation_id = $3`, r.TenantID, r.ReplyTo, r.ConversationID).Scan(&replyTo)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && replyTo == "") {
			return Message{}, &InvalidError{Field: "reply_to", Reason: "no message of the conversation with that id was delivered"}
		}
		if err != nil {
			return Message{}, fmt.Errorf("reading quoted message: %w", err)
		}
	}
	req := SendRequest{TenantID: r.TenantID, ConnectionID: connectionID, ContactID: contactID, Kind: KindText,
		Text: r.Text, ReplyTo: replyTo, Purpose: PurposeService, IdempotencyKey: r.IdempotencyKey, AuthorID: r.AuthorID}
	if r.Media != nil {
		m := *r.Media
		if m.Caption == "" && m.Type != "audio" && m.Type != "sticker" {
			m.Caption = r.Text
		}
		req.Kind, req.Text, req.Media = KindMedia, "", &m
	}
	return s.Send(ctx, req)
}

// ContactID returns the id of the tenant's contact with phone (E.164), or an
// error wrapping ErrNotFound.
func (s *Service) ContactID(ctx context.Context, tenantID, phone string) (string, error) {
	pool, ok := s.ledger.(*ledger)
	if !ok {
		return "", errors.New("messaging: ContactID needs the Postgres ledger")
	}
	var id string
	err := pool.pool.QueryRow(ctx, `SELECT id FROM contacts WHERE tenant_id = $1 AND phone = $2`, tenantID, phone).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("contact %s: %w", phone, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading contact: %w", err)
	}
	return id, nil
}
