package paymentlink

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/workflows/internal/connerr"
)

// WorkflowName is the payment link workflow's registered type name.
const WorkflowName = "paymentlink"

// Activity names. Activities are registered under the "paymentlink." prefix so
// they cannot collide with another workflow's activities on the same worker.
const (
	ActivityCreateLink     = "paymentlink.CreateLink"
	ActivityDeactivateLink = "paymentlink.DeactivateLink"
	ActivityRecord         = "paymentlink.Record"
)

// WorkflowID is the id of the workflow that drives link linkID of tenantID.
// The tenant is part of it, so an event carrying a link id of another tenant
// (through forged provider metadata) finds no workflow.
func WorkflowID(tenantID, linkID string) string {
	return "paymentlink/" + tenantID + "/" + linkID
}

// WorkflowInput starts a payment link workflow. The link's details stay in its
// payment_links row; the history carries only what the workflow decides on.
type WorkflowInput struct {
	TenantID  string    `json:"tenant_id"`
	LinkID    string    `json:"link_id"`
	ExpiresAt time.Time `json:"expires_at"`
	// Chat says the link goes to a WhatsApp chat: sent once created, and the
	// payment confirmed there.
	Chat bool `json:"chat,omitempty"`
}

// LinkRef names a payment link for activities.
type LinkRef struct {
	TenantID string `json:"tenant_id"`
	LinkID   string `json:"link_id"`
}

// Created is what CreateLink reports.
type Created struct {
	URL        string `json:"url"`
	ProviderID string `json:"provider_id"`
}

// Record is a change to a payment link's row, applied only while the row's
// status is one of From (which makes a replayed activity a no-op).
type Record struct {
	LinkRef
	From       []Status   `json:"from"`
	To         Status     `json:"to,omitempty"` // empty: status unchanged
	PaidAt     *time.Time `json:"paid_at,omitempty"`
	AmountPaid *int64     `json:"amount_paid,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// Register registers the workflow and its activities on w under their names.
func Register(w worker.Registry, acts *Activities) {
	w.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{Name: "paymentlink."})
}

// Error types of the application errors activities return, from the
// connector's sdk error kinds. The first four are never retried.
const (
	ErrTypeInvalid     = "invalid"
	ErrTypeAuth        = "auth"
	ErrTypeNotFound    = "not_found"
	ErrTypePermanent   = "permanent"
	ErrTypeRateLimited = connerr.TypeRateLimited
	ErrTypeRetryable   = connerr.TypeRetryable
	ErrTypeUnavailable = connerr.TypeUnavailable
)

var nonRetryable = []string{ErrTypeInvalid, ErrTypeAuth, ErrTypeNotFound, ErrTypePermanent}

// Activity options. Creating retries for an hour: a customer waiting in chat
// for a link is better told it failed than left waiting longer. Deactivating
// retries for a day; after that the link is recorded expired anyway, with the
// reason, and a late payment is still recorded (see Apply). Recording retries
// without limit: it is a local database write that must eventually happen.
var (
	createOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
	deactivateOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
	recordOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
)

// Workflow drives one payment link: it creates the link at the provider,
// waits for a payment or the expiry time, and records the outcome in the
// payment_links row. Payment events arrive as [SignalPaymentEvent] signals
// from the dispatcher, at least once each; ids already seen are ignored.
//
// It returns the link's final status.
func Workflow(ctx workflow.Context, in WorkflowInput) (Status, error) {
	log := workflow.GetLogger(ctx)
	ref := LinkRef{TenantID: in.TenantID, LinkID: in.LinkID}
	record := func(r Record) error {
		r.LinkRef = ref
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), ActivityRecord, r).Get(ctx, nil)
	}

	var created Created
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, createOptions), ActivityCreateLink, ref).Get(ctx, &created)
	if err != nil {
		reason := failureReason(err)
		log.Warn("creating payment link failed", "link", in.LinkID, "reason", reason)
		if err := record(Record{From: []Status{StatusCreating}, To: StatusFailed, LastError: reason}); err != nil {
			return StatusCreating, fmt.Errorf("recording failure of link %s: %w", in.LinkID, err)
		}
		return StatusFailed, nil
	}

	// The chat steps are new: GetVersion keeps histories recorded before them
	// replaying as they ran (and only links with a chat ask at all).
	chat := in.Chat && workflow.GetVersion(ctx, chatVersion, workflow.DefaultVersion, 1) >= 1
	if chat {
		if err := chatStep(ctx, ActivitySendLink, ref, StatusOpen, record); err != nil {
			return StatusOpen, fmt.Errorf("recording chat failure of link %s: %w", in.LinkID, err)
		}
	}

	status := StatusOpen
	seen := map[int64]bool{}
	events := workflow.GetSignalChannel(ctx, SignalPaymentEvent)
	// apply handles one event in the current status; it is used while open
	// and, after the link closed, for events that were already queued.
	apply := func(ev PaymentEvent) error {
		if seen[ev.EventID] {
			log.Debug("duplicate payment event ignored", "link", in.LinkID, "event", ev.EventID)
			return nil
		}
		seen[ev.EventID] = true
		t := Apply(status, ev)
		if t.Ignored() {
			log.Info("payment event ignored", "link", in.LinkID, "event", ev.EventID, "type", ev.Type, "reason", t.Reason)
			return nil
		}
		r := Record{From: []Status{status}, To: t.To, PaidAt: t.PaidAt, AmountPaid: t.AmountPaid, LastError: t.LastError}
		if err := record(r); err != nil {
			return fmt.Errorf("recording event %d on link %s: %w", ev.EventID, in.LinkID, err)
		}
		if t.To != "" {
			status = t.To
		}
		return nil
	}

	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimer(timerCtx, max(in.ExpiresAt.Sub(workflow.Now(ctx)), 0))
	for status == StatusOpen {
		var applyErr error
		expired := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { expired = true })
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) {
			var ev PaymentEvent
			c.Receive(ctx, &ev)
			applyErr = apply(ev)
		})
		sel.Select(ctx)
		if applyErr != nil {
			return status, applyErr
		}
		if !expired {
			continue
		}
		note := ""
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, deactivateOptions), ActivityDeactivateLink, ref).Get(ctx, nil)
		if err != nil {
			// The link may still take payments at the provider. It is
			// recorded expired all the same (that is Ponte's promise to the
			// merchant) with the reason; a payment that still arrives is
			// recorded as paid by Apply.
			note = "expired, but deactivating the link at the provider failed: " + failureReason(err)
			log.Warn("deactivating payment link failed", "link", in.LinkID, "reason", note)
		}
		if err := record(Record{From: []Status{StatusOpen}, To: StatusExpired, LastError: note}); err != nil {
			return status, fmt.Errorf("recording expiry of link %s: %w", in.LinkID, err)
		}
		status = StatusExpired
	}
	cancelTimer()

	// Signals that arrived while the last step ran would be lost when the
	// workflow completes; apply them now (a refund right after the payment, a
	// payment racing the expiry). Events arriving after completion are applied
	// by the dispatcher to the row directly (see ApplyToClosed).
	for {
		var ev PaymentEvent
		if !events.ReceiveAsync(&ev) {
			break
		}
		if err := apply(ev); err != nil {
			return status, err
		}
	}
	if chat && status == StatusPaid {
		if err := chatStep(ctx, ActivitySendPaid, ref, StatusPaid, record); err != nil {
			return status, fmt.Errorf("recording chat failure of link %s: %w", in.LinkID, err)
		}
	}
	return status, nil
}

// failureReason is the text recorded for a failed activity: the application
// error's message when there is one, without Temporal's wrapping.
func failureReason(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out: " + timeoutErr.Error()
	}
	return err.Error()
}

// Transition is what one payment event does to a link in a given status.
type Transition struct {
	// To is the new status, or empty when the status stays.
	To         Status
	PaidAt     *time.Time
	AmountPaid *int64
	// LastError records a failed payment attempt without changing status.
	LastError string
	// Reason says why an event changes nothing.
	Reason string
}

// Ignored reports whether the transition changes nothing.
func (t Transition) Ignored() bool { return t.To == "" && t.LastError == "" }

// payment is the part of a payments connector's event payload the workflow
// reads (the Stripe connector's Payment).
type payment struct {
	PaymentStatus  string `json:"payment_status"`
	Amount         *int64 `json:"amount"`
	AmountReceived *int64 `json:"amount_received"`
	AmountRefunded *int64 `json:"amount_refunded"`
	Refunded       bool   `json:"refunded"`
	FailureCode    string `json:"failure_code"`
	DeclineCode    string `json:"decline_code"`
	FailureMessage string `json:"failure_message"`
}

// Payment event types the workflow acts on (Stripe's names, which the Stripe
// connector keeps).
const (
	EventCheckoutSessionCompleted = "checkout.session.completed"
	EventCheckoutSessionExpired   = "checkout.session.expired"
	EventPaymentIntentSucceeded   = "payment_intent.succeeded"
	EventPaymentIntentFailed      = "payment_intent.payment_failed"
	EventChargeRefunded           = "charge.refunded"
)

// Apply decides what event ev does to a link in status current. It is pure, so
// the workflow (deterministically) and the dispatcher (for links whose
// workflow has completed) apply the same rules:
//
//   - a completed paid checkout or a succeeded payment intent makes an open
//     link paid; also an expired one, because money that arrived is a fact
//     (a checkout session opened before the link was deactivated can still be
//     completed) and the merchant must see it. A second payment event for a
//     paid link (Stripe sends both the session and the intent) changes nothing.
//   - a failed payment attempt on an open link is recorded as last_error; the
//     customer may try again.
//   - an expired checkout session changes nothing: the link opens new ones.
//   - a full refund of a paid link makes it refunded; a partial one changes
//     nothing.
func Apply(current Status, ev PaymentEvent) Transition {
	var p payment
	if len(ev.Payload) > 0 {
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return Transition{Reason: "payload unreadable: " + err.Error()}
		}
	}
	switch ev.Type {
	case EventCheckoutSessionCompleted, EventPaymentIntentSucceeded:
		if ev.Type == EventCheckoutSessionCompleted && p.PaymentStatus != "paid" {
			return Transition{Reason: fmt.Sprintf("checkout completed with payment_status %q; waiting for the payment", p.PaymentStatus)}
		}
		switch current {
		case StatusCreating, StatusOpen, StatusExpired:
			at := ev.OccurredAt
			amount := p.AmountReceived
			if amount == nil {
				amount = p.Amount
			}
			return Transition{To: StatusPaid, PaidAt: &at, AmountPaid: amount}
		case StatusPaid, StatusRefunded:
			return Transition{Reason: "link already paid"}
		default:
			return Transition{Reason: fmt.Sprintf("payment for a link that is %s", current)}
		}
	case EventPaymentIntentFailed:
		if current != StatusOpen {
			return Transition{Reason: fmt.Sprintf("failed attempt on a link that is %s", current)}
		}
		msg := p.FailureMessage
		if code := firstNonEmpty(p.DeclineCode, p.FailureCode); code != "" {
			msg = code + ": " + msg
		}
		return Transition{LastError: "payment attempt failed: " + firstNonEmpty(msg, "no reason given")}
	case EventCheckoutSessionExpired:
		return Transition{Reason: "a checkout session expired; the link stays usable"}
	case EventChargeRefunded:
		if current != StatusPaid {
			return Transition{Reason: fmt.Sprintf("refund for a link that is %s", current)}
		}
		if !p.Refunded {
			return Transition{Reason: "partial refund"}
		}
		return Transition{To: StatusRefunded}
	}
	return Transition{Reason: fmt.Sprintf("event type %q does not concern payment links", ev.Type)}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
