// Package ordernotify is the order notifications automation: one durable
// workflow per shop order that tells the customer on WhatsApp that the order
// is confirmed, shipped (with carrier and tracking link), out for delivery,
// delivered, cancelled or refunded, and optionally asks for a review some
// time after the delivery.
//
// The workflow is started or signalled (signal-with-start) by every order.*
// and fulfillment.* event of the order (see [Route]). It derives the order's
// stage from the events' payloads rather than from their types, and sends a
// stage only when it ranks above every stage already handled (see
// [Kind.Rank]), so repeated and out-of-order events send nothing twice and
// nothing stale. What was handled is kept in Postgres (migration 0009) and
// every send carries an idempotency key made of the workflow id and the kind,
// so a second run of the same order's workflow, months later, sends nothing
// the first one sent.
package ordernotify

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// WorkflowType is the order notification workflow's registered type name.
const WorkflowType = "ordernotify"

// SignalOrderEvent is the name of the signal carrying an [OrderEvent].
const SignalOrderEvent = "order-event"

// Activity names; activities are registered under the "ordernotify." prefix.
const (
	ActivityBegin         = "ordernotify.Begin"
	ActivityNotify        = "ordernotify.Notify"
	ActivityRecordFailure = "ordernotify.RecordFailure"
)

// IdleTimeout ends an order's workflow that heard nothing for this long and
// has nothing scheduled: an order still not shipped two months on is not
// going to be, and a late event starts a new run that knows what was sent.
const IdleTimeout = 60 * 24 * time.Hour

// OrderWait is how long a workflow that has heard only of shipments waits
// for an order event before notifying: the order carries the customer's
// phone and name and the order number, and shops send it alongside (Shopify's
// orders/updated with fulfillments/create). After that the notification goes
// out with what is known (or is recorded skipped for want of a phone).
const OrderWait = 5 * time.Minute

// maxEventsPerRun bounds a run's history: after this many events the
// workflow continues as new, carrying its state.
const maxEventsPerRun = 200

// WorkflowID is the id of the workflow of order orderID of the shop
// connection connectionID of tenantID.
func WorkflowID(tenantID, connectionID, orderID string) string {
	return "ordernotify/" + tenantID + "/" + connectionID + "/" + orderID
}

// WorkflowInput starts an order's workflow.
type WorkflowInput struct {
	OrderRef
	// Resume carries the previous run's state across continue-as-new; nil
	// on a fresh start.
	Resume *RunState `json:"resume,omitempty"`
}

// RunState is the workflow's state, carried across continue-as-new.
type RunState struct {
	Facts Facts `json:"facts"`
	// Stage is the highest stage handled for the order.
	Stage Kind `json:"stage,omitempty"`
	// ReviewDue is when the review request is due; nil when none is
	// pending.
	ReviewDue     *time.Time `json:"review_due,omitempty"`
	ReviewHandled bool       `json:"review_handled,omitempty"`
	// AwaitingPayment is set when the confirmation was not due because the
	// shop confirms on payment and the order was not paid: it is asked for
	// again only once the order is.
	AwaitingPayment bool `json:"awaiting_payment,omitempty"`
	// OrderWaitUntil is set while shipments are known but the order is
	// not: until then nothing is sent (see OrderWait).
	OrderWaitUntil *time.Time `json:"order_wait_until,omitempty"`
	LastEventAt    time.Time  `json:"last_event_at"`
}

// Register registers the workflow and its activities on r under their names.
func Register(r worker.Registry, a *Activities) {
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowType})
	r.RegisterActivityWithOptions(a, activity.RegisterOptions{Name: "ordernotify."})
}

// Activity options. Begin and RecordFailure are local database writes that
// must eventually happen: retried without limit. Notify retries transient
// failures (the database, the messaging core waiting out an outage) for a
// day; a notification a day late is news no more, so then it is recorded
// failed with the reason.
var (
	dbOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
	notifyOptions = workflow.ActivityOptions{
		// A send waits its recipient's turn (6 s) and the number's pace.
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Minute,
		},
	}
)

// localDB runs the short database activities (Begin, RecordFailure) as local
// activities, inside the workflow task that needs them. With Notify local
// too, an order's first event costs the Temporal server one workflow task
// instead of three tasks and two activities: on the 2-core reference
// machine that is 45 orders/s confirmed instead of 27, the server's CPU being
// the limit.
func localDB(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: dbOptions.StartToCloseTimeout,
		RetryPolicy:         dbOptions.RetryPolicy,
		// A local activity's schedule-to-close defaults to its
		// start-to-close, which would end the retries after one attempt's
		// time; a database outage may last longer.
		ScheduleToCloseTimeout: 7 * 24 * time.Hour,
	})
}

// Workflow drives the notifications of one order until the last possible
// one was handled (the review request, or the delivery when none is
// configured; the cancellation; the refund), the order was deleted, or
// nothing happened for IdleTimeout.
func Workflow(ctx workflow.Context, in WorkflowInput) error {
	r := &run{ctx: ctx, ref: in.OrderRef, id: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if in.Resume != nil {
		r.st = *in.Resume
	} else {
		var p Progress
		err := workflow.ExecuteLocalActivity(localDB(ctx), ActivityBegin, in.OrderRef, r.id).Get(ctx, &p)
		if err != nil {
			return fmt.Errorf("recording order %s: %w", in.OrderID, err)
		}
		r.st.Stage = p.Stage
		r.st.ReviewHandled = slices.Contains(p.Handled, KindReviewRequest)
		r.st.LastEventAt = workflow.Now(ctx)
	}
	return r.loop()
}

type run struct {
	ctx workflow.Context
	ref OrderRef
	id  string
	st  RunState
}

func (r *run) loop() error {
	ctx := r.ctx
	events := workflow.GetSignalChannel(ctx, SignalOrderEvent)
	var (
		processed   int
		idle        workflow.Future
		review      workflow.Future
		orderWait   workflow.Future
		idleExpired bool
	)
	for {
		if idleExpired || r.finished() {
			// Events that arrived meanwhile would be lost with the run;
			// take them in (a refund right after a cancellation).
			if !r.drain(events, &processed) {
				return nil
			}
			if err := r.evaluate(); err != nil {
				return err
			}
			idleExpired = false
			continue
		}
		if processed >= maxEventsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if r.drain(events, &processed) {
				if err := r.evaluate(); err != nil {
					return err
				}
				continue
			}
			st := r.st
			return workflow.NewContinueAsNewError(ctx, WorkflowType, WorkflowInput{OrderRef: r.ref, Resume: &st})
		}
		if idle == nil {
			wait := r.st.LastEventAt.Add(IdleTimeout).Sub(workflow.Now(ctx))
			idle = workflow.NewTimer(ctx, max(wait, time.Second))
		}
		if review == nil && r.st.ReviewDue != nil {
			review = workflow.NewTimer(ctx, max(r.st.ReviewDue.Sub(workflow.Now(ctx)), 0))
		}
		if orderWait == nil && r.st.OrderWaitUntil != nil && r.st.Facts.Order == nil && workflow.Now(ctx).Before(*r.st.OrderWaitUntil) {
			orderWait = workflow.NewTimer(ctx, max(r.st.OrderWaitUntil.Sub(workflow.Now(ctx)), 0))
		}
		var err error
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(events, func(c workflow.ReceiveChannel, _ bool) {
			var ev OrderEvent
			c.Receive(ctx, &ev)
			r.apply(ev)
			processed++
			r.drain(events, &processed)
			err = r.evaluate()
		})
		sel.AddFuture(idle, func(workflow.Future) {
			idle = nil
			if workflow.Now(ctx).Before(r.st.LastEventAt.Add(IdleTimeout)) || r.st.ReviewDue != nil {
				return // an event came meanwhile, or a review is still to ask: wait on
			}
			workflow.GetLogger(ctx).Info("order idle; ending its workflow", "order", r.ref.OrderID)
			idleExpired = true
		})
		if orderWait != nil {
			sel.AddFuture(orderWait, func(workflow.Future) {
				orderWait = nil
				err = r.evaluate()
			})
		}
		if review != nil {
			sel.AddFuture(review, func(workflow.Future) {
				review = nil
				err = r.sendReview()
			})
		}
		sel.Select(ctx)
		if err != nil {
			return err
		}
	}
}

// drain applies every event already queued and reports whether there was
// any.
func (r *run) drain(events workflow.ReceiveChannel, processed *int) bool {
	got := false
	for {
		var ev OrderEvent
		if !events.ReceiveAsync(&ev) {
			return got
		}
		r.apply(ev)
		*processed++
		got = true
	}
}

func (r *run) apply(ev OrderEvent) {
	r.st.LastEventAt = workflow.Now(r.ctx)
	if err := r.st.Facts.Apply(ev); err != nil {
		workflow.GetLogger(r.ctx).Warn("order event ignored", "order", r.ref.OrderID, "event", ev.EventID, "reason", err)
	}
}

// finished reports whether nothing more can be sent by this run: the order
// was deleted, cancelled or refunded, the review request was handled, or the
// delivery was and no review is pending.
func (r *run) finished() bool {
	switch {
	case r.st.Facts.Deleted, r.st.Stage.Rank() >= KindCancelled.Rank(), r.st.ReviewHandled:
		return true
	case r.st.Stage == KindDelivered && r.st.ReviewDue == nil:
		return true
	}
	return false
}

// evaluate sends the order's current stage if it ranks above the stages
// handled. Only the current stage: a workflow that starts late, or hears of
// several changes at once, does not send the backlog.
func (r *run) evaluate() error {
	k, ok := r.st.Facts.Stage()
	if !ok || k.Rank() <= r.st.Stage.Rank() {
		return nil
	}
	if r.st.Facts.Order == nil {
		now := workflow.Now(r.ctx)
		if r.st.OrderWaitUntil == nil {
			until := now.Add(OrderWait)
			r.st.OrderWaitUntil = &until
		}
		if now.Before(*r.st.OrderWaitUntil) {
			return nil
		}
	}
	if k == KindConfirmation && r.st.AwaitingPayment && !paid(r.st.Facts.Order) {
		return nil
	}
	out, err := r.notify(k)
	if err != nil {
		return err
	}
	if out.NotDue {
		r.st.AwaitingPayment = true
		return nil
	}
	r.st.Stage = k
	if k == KindDelivered && out.ReviewAfter > 0 && !r.st.ReviewHandled {
		now := workflow.Now(r.ctx)
		at := r.st.Facts.deliveredAt()
		if at.IsZero() || at.After(now) {
			at = now
		}
		due := at.Add(out.ReviewAfter)
		r.st.ReviewDue = &due
	}
	return nil
}

func (r *run) sendReview() error {
	r.st.ReviewDue = nil
	if r.st.Stage != KindDelivered || r.st.ReviewHandled {
		return nil // cancelled or refunded meanwhile
	}
	if _, err := r.notify(KindReviewRequest); err != nil {
		return err
	}
	r.st.ReviewHandled = true
	return nil
}

// notify runs the Notify activity for kind; when its retry budget runs out,
// the notification is recorded failed and the order moves on.
func (r *run) notify(k Kind) (Outcome, error) {
	ctx := r.ctx
	req := NotifyRequest{OrderRef: r.ref, WorkflowID: r.id, Kind: k, Details: r.st.Facts.Details(k)}
	var out Outcome
	// A local activity: the send runs inside the workflow task that
	// decided it, which saves the Temporal server an activity task and a
	// second workflow task per notification, half of its work for an
	// order. A send that waits out the number's pace longer than a
	// workflow task keeps the task alive with heartbeats (the SDK does
	// that), and retries with backoffs over a minute become timers.
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    notifyOptions.StartToCloseTimeout,
		ScheduleToCloseTimeout: notifyOptions.ScheduleToCloseTimeout,
		RetryPolicy:            notifyOptions.RetryPolicy,
	})
	err := workflow.ExecuteLocalActivity(lctx, ActivityNotify, req).Get(ctx, &out)
	if err == nil {
		return out, nil
	}
	reason := "gave up after retries: " + failureReason(err)
	workflow.GetLogger(ctx).Warn("order notification failed", "order", r.ref.OrderID, "kind", k, "reason", reason)
	f := Failure{OrderRef: r.ref, Kind: k, Reason: reason}
	if err := workflow.ExecuteLocalActivity(localDB(ctx), ActivityRecordFailure, f).Get(ctx, nil); err != nil {
		return Outcome{}, fmt.Errorf("recording failed %s notification of order %s: %w", k, r.ref.OrderID, err)
	}
	return Outcome{Status: StatusFailed, Reason: reason}, nil
}

// failureReason is an activity error's message without Temporal's wrapping.
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
