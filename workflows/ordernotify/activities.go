package ordernotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ponte-hub/ponte/core/messaging"
)

// Messenger sends WhatsApp messages; *messaging.Service implements it.
type Messenger interface {
	Send(ctx context.Context, req messaging.SendRequest) (messaging.Message, error)
}

// WindowChecker says whether a customer's 24-hour customer-service window
// is open on a number; [DirectoryWindow] implements it on the messaging
// core's directory.
type WindowChecker interface {
	WindowOpen(ctx context.Context, tenantID, channelConnectionID, phone string, now time.Time) (bool, error)
}

// SettingsLoader loads a shop connection's order notification settings;
// found is false when the connection has none. [AutomationSettings]
// implements it on core/automations.
type SettingsLoader interface {
	Load(ctx context.Context, tenantID, connectionID string) (s Settings, found bool, err error)
}

// Store keeps the orders and their notifications; *DB implements it.
type Store interface {
	// Begin records the order's workflow (creating the order's row when
	// new) and returns what was already handled for the order, by this
	// run's predecessors too.
	Begin(ctx context.Context, ref OrderRef, workflowID string) (Progress, error)
	// Notification returns the order's notification of kind, if any.
	Notification(ctx context.Context, ref OrderRef, kind Kind) (Notification, bool, error)
	// Claim stores n unless the order already has a notification of its
	// kind, and returns the stored one (n, or the earlier). A final status
	// raises the order's stage.
	Claim(ctx context.Context, n Notification) (Notification, error)
	// Settle updates a notification still in status sending to n's status,
	// reason, message id and mode, raising the order's stage when final.
	Settle(ctx context.Context, n Notification) (Notification, error)
}

// Activities are the order notification workflow's activities.
type Activities struct {
	Store    Store
	Settings SettingsLoader
	// Messenger sends the notifications; nil records them failed.
	Messenger Messenger
	// Window is asked only for messages with a FreeText while
	// FreeTextInWindow is set; nil treats every window as closed.
	Window WindowChecker
	// Now is the clock for window checks; nil means time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// OrderRef names an order of a shop connection.
type OrderRef struct {
	TenantID     string `json:"tenant_id"`
	ConnectionID string `json:"connection_id"`
	OrderID      string `json:"order_id"`
}

// Progress is what was handled for an order before a run started.
type Progress struct {
	// Stage is the highest stage handled (sent, skipped, refused or failed),
	// "" for none.
	Stage Kind `json:"stage,omitempty"`
	// Handled are the kinds with a final notification row.
	Handled []Kind `json:"handled,omitempty"`
}

// NotifyRequest asks for one notification of an order.
type NotifyRequest struct {
	OrderRef
	// WorkflowID is the order's workflow id, the stem of the messages'
	// idempotency keys.
	WorkflowID string  `json:"workflow_id"`
	Kind       Kind    `json:"kind"`
	Details    Details `json:"details"`
}

// Outcome is what came of a NotifyRequest.
type Outcome struct {
	// NotDue says the notification is not due yet (a confirmation on
	// payment for an order not paid); nothing was recorded.
	NotDue bool               `json:"not_due,omitempty"`
	Status NotificationStatus `json:"status,omitempty"`
	Reason string             `json:"reason,omitempty"`
	// MessageID is the messaging ledger's row, when one was written.
	MessageID string `json:"message_id,omitempty"`
	// ReviewAfter is, for the delivered notification, how long after the
	// delivery the review request is due; 0 when none is configured.
	ReviewAfter time.Duration `json:"review_after,omitempty"`
}

// Failure records that a notification could not be handled within its
// retry budget.
type Failure struct {
	OrderRef
	Kind   Kind   `json:"kind"`
	Reason string `json:"reason"`
}

// Skip reasons recorded on skipped notifications, besides the commerce
// package's phone problems (no_phone, invalid_phone).
const (
	ReasonDisabled       = "disabled"        // order notifications are off for the shop
	ReasonNotConfigured  = "not_configured"  // no message for the kind
	ReasonNoMessenger    = "no_messenger"    // the worker has no messaging service
	ReasonOutcomeUnknown = "outcome_unknown" // sent, but the provider call's outcome is not known yet
)

func (a *Activities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Begin records the order's workflow and returns what was handled before.
func (a *Activities) Begin(ctx context.Context, ref OrderRef, workflowID string) (Progress, error) {
	p, err := a.Store.Begin(ctx, ref, workflowID)
	if err != nil {
		return Progress{}, fmt.Errorf("recording order %s: %w", ref.OrderID, err)
	}
	return p, nil
}

// Notify handles one notification: it reads the shop's settings now (so a
// change applies to notifications not yet due), decides whether and how to
// send, records the decision before any send, sends, and records the
// outcome. A notification already recorded for the order is not sent again:
// its outcome is returned. Refusals and definite failures are recorded and
// returned as outcomes, not errors; only transient errors are returned, for
// Temporal to retry, and the retry finds the recorded decision and repeats
// the same send under the same idempotency key, which the messaging core
// answers from its ledger without a second provider call.
func (a *Activities) Notify(ctx context.Context, req NotifyRequest) (Outcome, error) {
	st, found, err := a.Settings.Load(ctx, req.TenantID, req.ConnectionID)
	if err != nil {
		return Outcome{}, fmt.Errorf("loading order notification settings: %w", err)
	}
	var out Outcome
	if req.Kind == KindDelivered && found {
		out.ReviewAfter = st.reviewDelay()
	}
	n, ok, err := a.Store.Notification(ctx, req.OrderRef, req.Kind)
	if err != nil {
		return Outcome{}, err
	}
	if !ok {
		var notDue bool
		n, notDue, err = a.decide(ctx, req, st, found)
		if err != nil {
			return Outcome{}, err
		}
		if notDue {
			return Outcome{NotDue: true}, nil
		}
		if n, err = a.Store.Claim(ctx, n); err != nil {
			return Outcome{}, err
		}
	}
	if n.Status == StatusSending {
		if n, err = a.send(ctx, req, n); err != nil {
			return Outcome{}, err
		}
	}
	out.Status, out.Reason, out.MessageID = n.Status, n.Reason, n.MessageID
	a.logger().InfoContext(ctx, "ordernotify: notification handled", "tenant", req.TenantID, "connection", req.ConnectionID,
		"order", req.OrderID, "kind", req.Kind, "status", n.Status, "reason", n.Reason, "message", n.MessageID)
	return out, nil
}

// decide makes the notification's row: skipped with a reason, or sending
// with the content to send. notDue is set for a confirmation waiting for the
// payment.
func (a *Activities) decide(ctx context.Context, req NotifyRequest, st Settings, found bool) (n Notification, notDue bool, err error) {
	d := req.Details
	n = Notification{OrderRef: req.OrderRef, Kind: req.Kind, ChannelConnectionID: st.ChannelConnectionID, To: d.Phone}
	skip := func(reason string) (Notification, bool, error) {
		n.Status, n.Reason = StatusSkipped, reason
		return n, false, nil
	}
	msg := st.message(req.Kind)
	switch {
	case !found || !st.Enabled:
		return skip(ReasonDisabled)
	case msg == nil:
		return skip(ReasonNotConfigured)
	case req.Kind == KindConfirmation && st.ConfirmOn == ConfirmOnPaid && !d.Paid:
		return Notification{}, true, nil
	case d.Phone == "":
		return skip(d.PhoneProblem)
	case a.Messenger == nil:
		n.Status, n.Reason = StatusFailed, ReasonNoMessenger
		return n, false, nil
	}
	vals := values(d, st)
	tmpl, err := renderTemplate(msg, vals)
	if err != nil {
		return Notification{}, false, err
	}
	n.Status, n.Mode, n.Content = StatusSending, ModeTemplate, Content{Template: tmpl}
	if msg.FreeText != "" {
		// Kept with the template too: a linked-device number, which
		// cannot send templates, sends it instead.
		n.Content.Text = renderText(msg.FreeText, vals)
	}
	// Bound to any number (no channel): the template goes through whichever
	// Cloud API number the messaging core picks; the window is per number.
	if st.FreeTextInWindow && msg.FreeText != "" && a.Window != nil && st.ChannelConnectionID != "" {
		open, err := a.Window.WindowOpen(ctx, req.TenantID, st.ChannelConnectionID, d.Phone, a.now())
		if err != nil {
			// The template goes anywhere the free text could: use it
			// rather than hold the notification up.
			a.logger().WarnContext(ctx, "ordernotify: checking the 24-hour window failed; sending the template",
				"tenant", req.TenantID, "order", req.OrderID, "kind", req.Kind, "error", err)
		}
		if err == nil && open {
			n.Mode = ModeText
		}
	}
	return n, false, nil
}

// send sends a claimed notification as its row says and settles the row.
// Free text refused because the window closed in the meantime falls back to
// the template, which was never tried (its own idempotency key), so this is
// never a second message.
func (a *Activities) send(ctx context.Context, req NotifyRequest, n Notification) (Notification, error) {
	key := req.WorkflowID + ":" + string(n.Kind)
	sr := messaging.SendRequest{TenantID: n.TenantID, ConnectionID: n.ChannelConnectionID, To: n.To,
		Purpose: messaging.PurposeUtility, AllowDefer: true, Module: messaging.ModuleAutomations}
	if n.Mode == ModeText {
		sr.Kind, sr.Text, sr.IdempotencyKey = messaging.KindText, n.Content.Text, key+":text"
		m, err := a.Messenger.Send(ctx, sr)
		var ref *messaging.RefusedError
		if !errors.As(err, &ref) || ref.Reason != messaging.ReasonOutsideWindow {
			return a.settle(ctx, n, m, err)
		}
		n.Mode = ModeTemplate
		if n, err = a.Store.Settle(ctx, n); err != nil {
			return Notification{}, err
		}
		if n.Status != StatusSending {
			return n, nil
		}
		sr.Text = ""
	}
	sr.Kind, sr.Template, sr.IdempotencyKey = messaging.KindTemplate, n.Content.Template, key
	sr.TextFallback = n.Content.Text
	m, err := a.Messenger.Send(ctx, sr)
	return a.settle(ctx, n, m, err)
}

// settle records a send's outcome. Transient errors are returned unrecorded.
func (a *Activities) settle(ctx context.Context, n Notification, m messaging.Message, err error) (Notification, error) {
	var (
		ref *messaging.RefusedError
		fe  *messaging.FailedError
		ie  *messaging.InvalidError
	)
	switch {
	case err == nil:
		n.Status, n.MessageID = StatusSent, m.ID
		if m.Status == messaging.StatusDeferred || m.Status == messaging.StatusQueued {
			// Handed to the messaging core, which sends it after quiet
			// hours or a rate limit: sent, as far as this order goes.
			n.Reason = string(m.Status)
			if m.StatusReason != "" {
				n.Reason += ": " + m.StatusReason
			}
		}
	case errors.Is(err, messaging.ErrOutcomeUnknown):
		// The ledger settles it from the status webhook; sending again
		// could be a second message.
		n.Status, n.Reason, n.MessageID = StatusSent, ReasonOutcomeUnknown, m.ID
	case errors.As(err, &ref):
		n.Status, n.Reason, n.MessageID = StatusRefused, ref.Reason, ref.MessageID
	case errors.As(err, &fe):
		n.Status, n.Reason, n.MessageID = StatusFailed, fe.Reason, fe.MessageID
		if fe.Code != "" {
			n.Reason += " (" + fe.Code + ")"
		}
	case errors.As(err, &ie):
		n.Status, n.Reason = StatusFailed, "invalid: "+ie.Field+": "+ie.Reason
	default:
		return Notification{}, fmt.Errorf("sending %s notification of order %s: %w", n.Kind, n.OrderID, err)
	}
	if n.Status != StatusSent {
		a.logger().WarnContext(ctx, "ordernotify: notification not sent", "tenant", n.TenantID, "order", n.OrderID,
			"kind", n.Kind, "status", n.Status, "reason", n.Reason, "error", err)
	}
	return a.Store.Settle(ctx, n)
}

// RecordFailure records a notification that could not be handled within its
// retry budget (a messaging or database outage that outlasted it): failed
// with the reason, whether or not a decision was recorded before.
func (a *Activities) RecordFailure(ctx context.Context, f Failure) error {
	n := Notification{OrderRef: f.OrderRef, Kind: f.Kind, Status: StatusFailed, Reason: f.Reason}
	stored, err := a.Store.Claim(ctx, n)
	if err != nil {
		return fmt.Errorf("recording failed %s notification of order %s: %w", f.Kind, f.OrderID, err)
	}
	if stored.Status == StatusSending {
		stored.Status, stored.Reason = StatusFailed, f.Reason
		if _, err := a.Store.Settle(ctx, stored); err != nil {
			return fmt.Errorf("recording failed %s notification of order %s: %w", f.Kind, f.OrderID, err)
		}
	}
	return nil
}
