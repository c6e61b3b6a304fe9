package paymentlink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
)

// ChatConnector is the connector of the connections a link is sent over.
const ChatConnector = messaging.Connector

// Chat activity names.
const (
	ActivitySendLink = "paymentlink.SendLink"
	ActivitySendPaid = "paymentlink.SendPaid"
)

// Error types of the chat activities; none is retried.
const (
	ErrTypeMessageRefused = "message_refused"
	ErrTypeNoTemplate     = "no_link_template"
	ErrTypeNotConfigured  = "not_configured"
)

// chatVersion guards the chat steps with workflow.GetVersion, so histories
// recorded before them replay unchanged.
const chatVersion = "whatsapp-chat"

// Messenger sends WhatsApp messages; *messaging.Service implements it.
type Messenger interface {
	Send(ctx context.Context, req messaging.SendRequest) (messaging.Message, error)
}

// ChatConfig configures the chat messages of payment links.
type ChatConfig struct {
	// LinkTemplate and LinkTemplateLanguage name an approved utility
	// template whose body's {{1}} is the link's URL, sent when the customer
	// is outside the 24-hour window. Without one, such a link is not sent
	// and the link records why.
	LinkTemplate         string
	LinkTemplateLanguage string
	// PaidText confirms a payment in the chat (default "Payment received,
	// thank you!").
	PaidText string
}

// sendOptions retry transient failures for an hour; a send waits its
// recipient's turn (6 s) and the number's pace, hence the start-to-close.
var sendOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    2 * time.Minute,
	ScheduleToCloseTimeout: time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: append([]string{ErrTypeMessageRefused, ErrTypeNoTemplate, ErrTypeNotConfigured}, nonRetryable...),
	},
}

// chatStep runs a chat activity; a failure is recorded on the link as
// last_error and does not fail the workflow (the link stands without the
// message).
func chatStep(ctx workflow.Context, activity string, ref LinkRef, from Status,
	record func(Record) error) error {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, sendOptions), activity, ref).Get(ctx, nil)
	if err == nil {
		return nil
	}
	reason := failureReason(err)
	workflow.GetLogger(ctx).Warn("chat message not sent", "link", ref.LinkID, "activity", activity, "reason", reason)
	return record(Record{From: []Status{from}, LastError: "WhatsApp message not sent: " + reason})
}

// SendLink sends the link's URL to its chat: free text inside the 24-hour
// window (idempotency key workflow id + ":link"), else the configured utility
// template (key + ":template"). A link without a chat is a no-op.
func (a *Activities) SendLink(ctx context.Context, ref LinkRef) error {
	link, err := a.chatLink(ctx, ref)
	if err != nil || link.To == "" {
		return err
	}
	if link.URL == "" {
		return temporal.NewNonRetryableApplicationError("the link has no URL to send", ErrTypePermanent, nil)
	}
	text := cmp.Or(link.Message, "Here is your payment link:") + "\n" + link.URL
	key := link.WorkflowID + ":link"
	_, err = a.Messenger.Send(ctx, messaging.SendRequest{TenantID: link.TenantID, ConnectionID: link.ChannelConnectionID,
		To: link.To, Kind: messaging.KindText, Text: text, Purpose: messaging.PurposeUtility, IdempotencyKey: key})
	var ref2 *messaging.RefusedError
	if !errors.As(err, &ref2) || ref2.Reason != messaging.ReasonOutsideWindow {
		return sendError(err)
	}
	if a.Chat.LinkTemplate == "" {
		return temporal.NewNonRetryableApplicationError(
			"the customer is outside the 24-hour window and no utility template is configured for payment links",
			ErrTypeNoTemplate, err)
	}
	_, err = a.Messenger.Send(ctx, messaging.SendRequest{TenantID: link.TenantID, ConnectionID: link.ChannelConnectionID,
		To: link.To, Kind: messaging.KindTemplate, Purpose: messaging.PurposeUtility, IdempotencyKey: key + ":template",
		Template: &messaging.Template{Name: a.Chat.LinkTemplate, Language: cmp.Or(a.Chat.LinkTemplateLanguage, "en"),
			Params: []string{link.URL}}})
	return sendError(err)
}

// SendPaid confirms the payment in the link's chat (key workflow id +
// ":paid"). A link without a chat is a no-op.
func (a *Activities) SendPaid(ctx context.Context, ref LinkRef) error {
	link, err := a.chatLink(ctx, ref)
	if err != nil || link.To == "" {
		return err
	}
	_, err = a.Messenger.Send(ctx, messaging.SendRequest{TenantID: link.TenantID, ConnectionID: link.ChannelConnectionID,
		To: link.To, Kind: messaging.KindText, Text: cmp.Or(a.Chat.PaidText, "Payment received, thank you!"),
		Purpose: messaging.PurposeUtility, IdempotencyKey: link.WorkflowID + ":paid"})
	return sendError(err)
}

func (a *Activities) chatLink(ctx context.Context, ref LinkRef) (Link, error) {
	link, err := a.Store.GetLink(ctx, ref.TenantID, ref.LinkID)
	if errors.Is(err, store.ErrNotFound) {
		return Link{}, temporal.NewNonRetryableApplicationError("payment link row not found", ErrTypeNotFound, err)
	}
	if err != nil {
		return Link{}, fmt.Errorf("loading payment link %s: %w", ref.LinkID, err)
	}
	if link.To != "" && a.Messenger == nil {
		return Link{}, temporal.NewNonRetryableApplicationError("no messenger configured for chat messages", ErrTypeNotConfigured, nil)
	}
	return link, nil
}

// sendError turns a messaging error into the activity's: refusals and the
// provider's definite failures are not retried; an unknown outcome is not an
// error (the ledger settles it, and a retry would only find the same row).
func sendError(err error) error {
	var (
		ref *messaging.RefusedError
		fe  *messaging.FailedError
		ie  *messaging.InvalidError
	)
	switch {
	case err == nil, errors.Is(err, messaging.ErrOutcomeUnknown):
		return nil
	case errors.As(err, &ref):
		return temporal.NewNonRetryableApplicationError(ref.Error(), ErrTypeMessageRefused, err)
	case errors.As(err, &fe):
		return temporal.NewNonRetryableApplicationError(fe.Error(), ErrTypeMessageRefused, err)
	case errors.As(err, &ie):
		return temporal.NewNonRetryableApplicationError(ie.Error(), ErrTypeInvalid, err)
	}
	return ActivityError(err)
}
