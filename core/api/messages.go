package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
)

// Messages sends and reads messages of the ledger (*messaging.Service
// implements it). Send's typed errors are mapped: *messaging.RefusedError and
// *messaging.FailedError 422 with the reason, *messaging.InvalidError 422 at
// its field; errors wrapping messaging.ErrNotFound 404.
type Messages interface {
	Send(ctx context.Context, req messaging.SendRequest) (messaging.Message, error)
	Get(ctx context.Context, tenantID, id string) (messaging.Message, error)
	// ContactID finds the tenant's contact with a phone (E.164), or
	// messaging.ErrNotFound.
	ContactID(ctx context.Context, tenantID, phone string) (string, error)
}

var _ Messages = (*messaging.Service)(nil)

// messageTemplateBody is a template message as the API takes it.
type messageTemplateBody struct {
	Name       string           `json:"name" minLength:"1" maxLength:"512" example:"order_shipped"`
	Language   string           `json:"language" minLength:"2" maxLength:"15" example:"it"`
	Params     []string         `json:"params,omitempty" maxItems:"100" doc:"The body's {{1}}..{{n}} values, in order. Or give components."`
	Components []map[string]any `json:"components,omitempty" maxItems:"20" doc:"Meta's components array (header, body and button parameters), passed through as is."`
}

type sendMessageInput struct {
	IdempotencyKey string `header:"Idempotency-Key" required:"true" minLength:"1" maxLength:"200" doc:"Required. A repeated request with the same key returns the first request's message and never sends twice."`
	Body           struct {
		ConnectionID string               `json:"connection_id" minLength:"1" maxLength:"100" doc:"The number to send from: a WhatsApp Cloud API or linked-device connection."`
		To           string               `json:"to,omitempty" pattern:"^\\+[1-9][0-9]{6,14}$" example:"+393331234567" doc:"The recipient's phone in E.164. Or give contact_id."`
		ContactID    string               `json:"contact_id,omitempty" maxLength:"100"`
		Kind         string               `json:"kind" enum:"text,media,template,interactive,reaction"`
		Text         string               `json:"text,omitempty" maxLength:"4096" doc:"The body of a text message."`
		PreviewURL   bool                 `json:"preview_url,omitempty" doc:"Render a preview of the first URL in text."`
		Media        *messaging.Media     `json:"media,omitempty" doc:"A media message by link: type image, audio, video, document or sticker."`
		Template     *messageTemplateBody `json:"template,omitempty"`
		Interactive  map[string]any       `json:"interactive,omitempty" doc:"Reply buttons or a list: {type: button|list, header?, body, footer?, buttons | button_text + sections}."`
		ReplyTo      string               `json:"reply_to,omitempty" maxLength:"200" doc:"The WhatsApp id (wamid) of the message to quote."`
		Reaction     *messaging.Reaction  `json:"reaction,omitempty" doc:"For kind reaction (any number; on a Cloud API number only inside the 24-hour window, like free text): the emoji and the WhatsApp id of the message it goes on; an empty emoji removes the reaction."`
		Purpose      string               `json:"purpose,omitempty" enum:"marketing,utility,authentication,service" doc:"Why the message is sent; decides the consent rules. Default service; a template takes its category."`
		AllowDefer   bool                 `json:"allow_defer,omitempty" doc:"Inside quiet hours, defer the message to their end (status deferred) instead of refusing it."`
	}
}

type messageIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The message id (msg_...)."`
}

type ledgerMessageOutput struct {
	Body messaging.Message
}

func (s *server) registerMessages() {
	if s.deps.Messages == nil {
		return
	}
	op := allowRoles(operation("send-message", http.MethodPost, "/v1/messages", "Send a message", tagMessages, store.ScopeWrite),
		store.RoleAdmin, store.RoleManager, store.RoleOperator)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Sends text, media, a reaction, a template or an interactive message on a WhatsApp Cloud API number, " +
		"or text, media or a reaction on a linked-device number (paced by the number's own settings), after " +
		"checking consent and exclusions, quiet hours, the 24-hour window (free-form messages only inside it) and the " +
		"template's state, then pacing the send. A refused send answers 422 with the machine-readable `reason` " +
		"(e.g. `outside_window_template_required`, `opted_out`, `quiet_hours`) and is recorded as refused. The answer " +
		"is the ledger row: status `sent` once WhatsApp accepted it (status webhooks then move it to delivered and " +
		"read), `deferred` past quiet hours, `queued` when throttled, `sending` when the provider's answer was lost " +
		"(the status webhook settles it; it is never sent twice). Operators may send only to contacts of conversations " +
		"assigned to them."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *sendMessageInput) (*ledgerMessageOutput, error) {
		if err := s.requireWrite(ctx); err != nil {
			return nil, err
		}
		p := principal(ctx)
		b := &in.Body
		if p.Role == store.RoleOperator {
			contactID := b.ContactID
			if contactID == "" {
				id, err := s.deps.Messages.ContactID(ctx, p.TenantID, b.To)
				if errors.Is(err, messaging.ErrNotFound) {
					return nil, forbidden("operators may message only contacts of conversations assigned to them")
				}
				if err != nil {
					return nil, s.internal(ctx, "resolving recipient", err)
				}
				contactID = id
			}
			if err := s.requireContactAccess(ctx, contactID, true); err != nil {
				return nil, err
			}
		}
		req := messaging.SendRequest{
			TenantID: p.TenantID, ConnectionID: b.ConnectionID, To: b.To, ContactID: b.ContactID,
			Kind: messaging.Kind(b.Kind), Text: b.Text, PreviewURL: b.PreviewURL, Media: b.Media, ReplyTo: b.ReplyTo, Reaction: b.Reaction,
			Purpose: messaging.Purpose(b.Purpose), IdempotencyKey: in.IdempotencyKey, AllowDefer: b.AllowDefer,
			AuthorID: p.UserID,
		}
		if b.Template != nil {
			t := &messaging.Template{Name: b.Template.Name, Language: b.Template.Language, Params: b.Template.Params}
			if len(b.Template.Components) > 0 {
				raw, err := json.Marshal(b.Template.Components)
				if err != nil {
					return nil, invalid("the template is invalid", store.FieldProblem{Field: "template.components", Message: err.Error()})
				}
				t.Components = raw
			}
			req.Template = t
		}
		if b.Interactive != nil {
			raw, err := json.Marshal(b.Interactive)
			if err != nil {
				return nil, invalid("the interactive message is invalid", store.FieldProblem{Field: "interactive", Message: err.Error()})
			}
			req.Interactive = raw
		}
		m, err := s.deps.Messages.Send(ctx, req)
		if err != nil && !(errors.Is(err, messaging.ErrOutcomeUnknown) && m.ID != "") {
			return nil, s.messageError(ctx, "sending message", err)
		}
		// An unknown outcome is still a recorded send (status sending): it
		// is answered like one, and a retry with the key returns the row.
		m.Content = publicContent(m.Content)
		return &ledgerMessageOutput{Body: m}, nil
	})

	op = allowRoles(operation("get-message", http.MethodGet, "/v1/messages/{id}", "Get a message", tagMessages, store.ScopeRead),
		store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly)
	op.Description = "A message of the ledger, inbound or outbound, with its status and timestamps. Operators see only messages of conversations assigned to them."
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *messageIDInput) (*ledgerMessageOutput, error) {
		m, err := s.deps.Messages.Get(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.messageError(ctx, "reading message", err)
		}
		if principal(ctx).Role == store.RoleOperator {
			if err := s.requireConversationAccess(ctx, m.ConversationID, false); err != nil {
				return nil, err
			}
		}
		m.Content = publicContent(m.Content)
		return &ledgerMessageOutput{Body: m}, nil
	})
}

// messageError maps the messaging service's errors.
func (s *server) messageError(ctx context.Context, doing string, err error) error {
	var (
		ref *messaging.RefusedError
		fe  *messaging.FailedError
		ie  *messaging.InvalidError
	)
	switch {
	case errors.As(err, &ref):
		return &refusalProblem{
			ErrorModel: huma.ErrorModel{Status: http.StatusUnprocessableEntity, Title: http.StatusText(http.StatusUnprocessableEntity),
				Detail: "the message was not sent: " + ref.Error()},
			Reason: ref.Reason,
		}
	case errors.As(err, &fe):
		return &refusalProblem{
			ErrorModel: huma.ErrorModel{Status: http.StatusUnprocessableEntity, Title: http.StatusText(http.StatusUnprocessableEntity),
				Detail: "WhatsApp refused the message: " + fe.Error()},
			Reason: fe.Reason,
		}
	case errors.As(err, &ie):
		return invalid("the message is invalid", store.FieldProblem{Field: ie.Field, Message: ie.Reason})
	case errors.Is(err, messaging.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound("message not found")
	case errors.Is(err, context.DeadlineExceeded):
		return unavailable("the message could not be sent in time (its recipient's turn or the provider); retry with the same Idempotency-Key", 5)
	case isUnavailable(err):
		return unavailable("the channel connector is restarting; retry shortly", 5)
	}
	return s.internal(ctx, doing, err)
}

// MessagingSender is the inbox's reply Sender on the messaging service.
type MessagingSender struct{ Service *messaging.Service }

var _ Sender = MessagingSender{}

// Send implements Sender.
func (m MessagingSender) Send(ctx context.Context, r SendReply) (MessageBody, error) {
	req := messaging.ReplyRequest{TenantID: r.TenantID, ConversationID: r.ConversationID, AuthorID: r.AuthorID,
		Text: r.Text, ReplyTo: r.ReplyTo, IdempotencyKey: r.IdempotencyKey}
	if r.Media != nil {
		req.Media = &messaging.Media{Type: r.Media.Type, Link: r.Media.Link, Filename: r.Media.Filename}
	}
	msg, err := m.Service.Reply(ctx, req)
	var ie *messaging.InvalidError
	switch {
	case err == nil, errors.Is(err, messaging.ErrOutcomeUnknown) && msg.ID != "":
	case errors.Is(err, messaging.ErrNotFound):
		return MessageBody{}, errors.Join(err, store.ErrNotFound)
	case errors.As(err, &ie):
		return MessageBody{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: ie.Field, Message: ie.Reason}}}
	default:
		return MessageBody{}, err
	}
	return MessageBody{ID: msg.ID, ConversationID: msg.ConversationID, ContactID: msg.ContactID,
		ConnectionID: msg.ConnectionID, Direction: msg.Direction, Kind: msg.Kind, Content: publicContent(msg.Content),
		Status: string(msg.Status), StatusReason: msg.StatusReason, ErrorCode: msg.ErrorCode,
		ProviderMessageID: msg.ProviderMessageID, AuthorID: msg.AuthorID, CreatedAt: msg.CreatedAt, SentAt: msg.SentAt,
		DeliveredAt: msg.DeliveredAt, ReadAt: msg.ReadAt, FailedAt: msg.FailedAt}, nil
}

// tagMessages groups the message operations in the OpenAPI document.
const tagMessages = "Messages"
