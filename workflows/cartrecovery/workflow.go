package cartrecovery

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/workflows/internal/connerr"
)

// Activity names, under the "cartrecovery." prefix so they cannot collide
// with another workflow's activities on the same worker.
const (
	ActivityRecordCheckout = "cartrecovery.RecordCheckout"
	ActivityLoadSettings   = "cartrecovery.LoadSettings"
	ActivityPrepare        = "cartrecovery.Prepare"
	ActivityCreateDiscount = "cartrecovery.CreateDiscount"
	ActivitySend           = "cartrecovery.Send"
	ActivityRecordStep     = "cartrecovery.RecordStep"
	ActivityEnd            = "cartrecovery.End"
	ActivityApplyOrder     = "cartrecovery.ApplyOrder"
	ActivityHandleReply    = "cartrecovery.HandleReply"
)

// Register registers the workflow and its activities on r under their names.
func Register(r worker.Registry, a *Activities) {
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	r.RegisterActivityWithOptions(a, activity.RegisterOptions{Name: "cartrecovery."})
}

// Bounds that keep a cart's history small whatever its customer and shop do.
const (
	// MaxQuietRetries is how often a step refused for quiet hours (the
	// template is marketing but the step did not ask for marketing consent,
	// so only the send saw the quiet hours) is deferred and tried again
	// before it is recorded skipped.
	MaxQuietRetries = 3
	// maxSignalsPerRun is how many signals and due timers one run handles
	// before it continues as new: a shop that updates a checkout every few
	// seconds for days must not grow one history without bound.
	maxSignalsPerRun = 500
	// maxSeen is how many recent event ids are remembered to drop
	// redeliveries; older redeliveries are caught by the UpdatedAt check.
	maxSeen = 100
	// replySettle is how long a reply waits before the workflow reads the
	// customer's consent (see onReply).
	replySettle = 5 * time.Second
	// quietRetryFallback is the wait after a quiet-hours refusal that did
	// not say when they end (a replayed refusal).
	quietRetryFallback = 30 * time.Minute
)

// Error types of application errors the activities return. Invalid, auth,
// not found and permanent are never retried.
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

// Activity options. Recording is a local database write that must happen
// eventually, so it retries without limit. Preparing and sending retry for an
// hour, after which the step is recorded failed with the reason (a step an
// hour late is still useful; one a day late is not the message configured).
// A discount is tried a bounded number of times: the message goes without
// it (fallback template or skipped) rather than waiting on a shop that is
// down.
var (
	recordOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{ErrTypeInvalid},
		},
	}
	prepareOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
	// Creating a discount is tried DiscountAttempts times.
	discountOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			MaximumAttempts: DiscountAttempts, NonRetryableErrorTypes: nonRetryable,
		},
	}
	// A send waits its recipient's turn (6 s) and the number's pace, hence
	// the start-to-close.
	sendOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
)

// DiscountAttempts is how many times creating a step's discount is tried
// (with backoff from 2 s) before the step goes on without a code.
const DiscountAttempts = 4

// WorkflowInput starts a cart's workflow. Resume carries the progress of the
// previous run when the workflow continued as new.
type WorkflowInput struct {
	CartRef
	Resume *Progress `json:"resume,omitempty"`
}

// Progress is where a cart's sequence stands; it is the workflow's state,
// carried across continue-as-new.
type Progress struct {
	// Started is set once a checkout was recorded.
	Started bool `json:"started"`
	// NextStep is the index of the next step.
	NextStep int `json:"next_step"`
	// Base is when the wait for NextStep started (the last checkout update
	// or the previous step, whichever is later); Delay is NextStep's delay
	// as last read.
	Base  time.Time `json:"base"`
	Delay Duration  `json:"delay"`
	// DeferUntil holds NextStep back until quiet hours end.
	DeferUntil time.Time `json:"defer_until,omitempty"`
	// Attempt counts NextStep's sends refused for quiet hours; each retry
	// needs a new idempotency key, since a refusal is final for its key.
	Attempt int `json:"attempt,omitempty"`
	// Code is the discount code created for NextStep; CodeError says why
	// creating it failed (then it is not tried again for this step).
	Code      string `json:"code,omitempty"`
	CodeError string `json:"code_error,omitempty"`
	// LastUpdatedAt is the newest Checkout.UpdatedAt accepted.
	LastUpdatedAt time.Time `json:"last_updated_at"`
	// Seen are the most recent event ids handled.
	Seen []int64 `json:"seen,omitempty"`
	// Sent counts the messages sent.
	Sent int `json:"sent"`
}

// Workflow follows one checkout: it waits for the customer to stay away for
// each step's delay, then sends the step's template, and ends at once on an
// order, a deleted or completed checkout, a reply or an opt-out, or after the
// last step. Checkout, order and reply events arrive as signals, at least
// once each; ids already seen and checkouts older than one already seen are
// ignored.
func Workflow(ctx workflow.Context, in WorkflowInput) (Result, error) {
	r := &run{ctx: ctx, ref: in.CartRef, p: in.Resume}
	if r.p == nil {
		r.p = &Progress{}
	}
	return r.loop()
}

// run is one run of a cart's workflow.
type run struct {
	ctx workflow.Context
	ref CartRef
	p   *Progress

	checkouts, orders, replies workflow.ReceiveChannel
}

// outcome is what handling an event or a due step decided: end the workflow
// (end set), restart the wait (reset), or nothing.
type outcome struct {
	end   *Result
	reset bool
}

func (r *run) loop() (Result, error) {
	ctx := r.ctx
	r.checkouts = workflow.GetSignalChannel(ctx, SignalCheckout)
	r.orders = workflow.GetSignalChannel(ctx, SignalOrder)
	r.replies = workflow.GetSignalChannel(ctx, SignalReply)

	var (
		timer       workflow.Future
		timerDue    time.Time
		cancelTimer = func() {}
		handled     int
	)
	for {
		if r.p.Started {
			if due := r.due(); timer == nil || !due.Equal(timerDue) {
				cancelTimer()
				tctx, cancel := workflow.WithCancel(ctx)
				timer, timerDue, cancelTimer = workflow.NewTimer(tctx, max(due.Sub(workflow.Now(ctx)), 0)), due, cancel
			}
		}
		var (
			o     outcome
			err   error
			fired bool
		)
		sel := workflow.NewSelector(ctx)
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) { fired = true })
		}
		r.addReceivers(sel, &o, &err)
		sel.Select(ctx)
		handled++ // timers too: a cart deferred night after night still continues as new
		if fired {
			timer = nil
			o, err = r.stepDue()
		}
		if err != nil {
			return Result{}, err
		}
		if o.end != nil {
			cancelTimer()
			return r.finish(*o.end)
		}
		if handled >= maxSignalsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// Signals still buffered would be lost with this run: handle
			// them first.
			o, err := r.drain()
			if err != nil {
				return Result{}, err
			}
			if o.end != nil {
				return r.finish(*o.end)
			}
			return Result{}, workflow.NewContinueAsNewError(ctx, WorkflowName, WorkflowInput{CartRef: r.ref, Resume: r.p})
		}
	}
}

// addReceivers adds the three signal channels to sel; the handler's outcome
// and error land in o and err.
func (r *run) addReceivers(sel workflow.Selector, o *outcome, err *error) {
	sel.AddReceive(r.checkouts, func(c workflow.ReceiveChannel, _ bool) {
		var ev CheckoutEvent
		c.Receive(r.ctx, &ev)
		*o, *err = r.onCheckout(ev)
	})
	sel.AddReceive(r.orders, func(c workflow.ReceiveChannel, _ bool) {
		var ev OrderEvent
		c.Receive(r.ctx, &ev)
		*o, *err = r.onOrder(ev)
	})
	sel.AddReceive(r.replies, func(c workflow.ReceiveChannel, _ bool) {
		var ev ReplyEvent
		c.Receive(r.ctx, &ev)
		*o, *err = r.onReply(ev)
	})
}

// drain handles every buffered signal without blocking, stopping at the
// first that ends the workflow. It reports reset when a checkout update
// restarted the wait.
func (r *run) drain() (outcome, error) {
	var acc outcome
	for {
		var (
			o   outcome
			err error
		)
		sel := workflow.NewSelector(r.ctx)
		r.addReceivers(sel, &o, &err)
		if !sel.HasPending() {
			return acc, nil
		}
		sel.Select(r.ctx)
		if err != nil || o.end != nil {
			return o, err
		}
		acc.reset = acc.reset || o.reset
	}
}

// due is when NextStep is due.
func (r *run) due() time.Time {
	d := r.p.Base.Add(r.p.Delay.D())
	if r.p.DeferUntil.After(d) {
		d = r.p.DeferUntil
	}
	return d
}

// seen reports whether event id was handled already, and remembers it.
func (r *run) seen(id int64) bool {
	if id == 0 {
		return false
	}
	if slices.Contains(r.p.Seen, id) {
		return true
	}
	r.p.Seen = append(r.p.Seen, id)
	if len(r.p.Seen) > maxSeen {
		r.p.Seen = slices.Clone(r.p.Seen[len(r.p.Seen)-maxSeen:])
	}
	return false
}

func (r *run) exec(opts workflow.ActivityOptions, activity string, arg, result any) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(r.ctx, opts), activity, arg).Get(r.ctx, result)
}

// record runs one of the cart's short database activities (recording a
// checkout, a step, an order or the end; loading settings) as a local
// activity: it runs inside the workflow task that needs it, so a checkout
// event costs the Temporal server one workflow task instead of a task, an
// activity and a second task. That is what lets one dev server keep up with a
// shop's checkout rate. Retries are unbounded, as for recordOptions.
func (r *run) record(activity string, arg, result any) error {
	ctx := workflow.WithLocalActivityOptions(r.ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: recordOptions.StartToCloseTimeout,
		RetryPolicy:         recordOptions.RetryPolicy,
		// A local activity's schedule-to-close defaults to its
		// start-to-close, which would end the retries after one attempt's
		// time; a database outage may last longer.
		ScheduleToCloseTimeout: 7 * 24 * time.Hour,
	})
	return workflow.ExecuteLocalActivity(ctx, activity, arg).Get(r.ctx, result)
}

func (r *run) onCheckout(ev CheckoutEvent) (outcome, error) {
	log := workflow.GetLogger(r.ctx)
	if r.seen(ev.EventID) {
		log.Debug("duplicate checkout event ignored", "event", ev.EventID)
		return outcome{}, nil
	}
	co := ev.Checkout
	switch {
	case ev.Type == commerce.EventCheckoutDeleted:
		return r.end(StatusEnded, ReasonCheckoutDeleted, false)
	case co.CompletedAt != nil:
		// The checkout became an order; its order event may follow (and
		// then changes nothing), or may never name the checkout.
		return r.order(OrderInfo{OrderID: co.OrderID, Total: co.Total, Currency: co.Currency, At: *co.CompletedAt})
	case !co.UpdatedAt.IsZero() && !r.p.LastUpdatedAt.IsZero() && !co.UpdatedAt.After(r.p.LastUpdatedAt):
		log.Info("stale checkout update ignored", "event", ev.EventID, "updated_at", co.UpdatedAt, "newest", r.p.LastUpdatedAt)
		return outcome{}, nil
	}
	now := workflow.Now(r.ctx)
	var st CartState
	if err := r.record(ActivityRecordCheckout, CheckoutRecord{CartRef: r.ref, Checkout: co, At: now}, &st); err != nil {
		return outcome{}, fmt.Errorf("recording checkout: %w", err)
	}
	if !st.Status.Open() {
		// The cart's sequence ended in an earlier run (this run was
		// started by a checkout update that came after): it stays ended.
		log.Info("checkout update for a cart whose recovery ended", "status", st.Status, "reason", st.Reason)
		return outcome{end: &Result{Status: st.Status, Reason: st.Reason}}, nil
	}
	if co.UpdatedAt.After(r.p.LastUpdatedAt) {
		r.p.LastUpdatedAt = co.UpdatedAt
	}
	if !r.p.Started {
		var s Settings
		if err := r.record(ActivityLoadSettings, r.ref, &s); err != nil {
			return outcome{}, fmt.Errorf("loading settings: %w", err)
		}
		if !s.Enabled {
			return r.end(StatusEnded, ReasonDisabled, false)
		}
		// A run after a crashed one goes on where the steps recorded stop.
		r.p.Started, r.p.NextStep = true, st.StepsDone
		if r.p.NextStep >= len(s.Steps) {
			return r.end(StatusEnded, ReasonSequenceCompleted, false)
		}
		r.p.Delay = s.Steps[r.p.NextStep].Delay
	}
	// The customer is active: the next step waits its full delay again
	// (past any quiet-hours deferral, which is judged again when due).
	r.p.Base, r.p.DeferUntil = now, time.Time{}
	return outcome{reset: true}, nil
}

func (r *run) onOrder(ev OrderEvent) (outcome, error) {
	if r.seen(ev.EventID) {
		return outcome{}, nil
	}
	return r.order(orderInfo(ev))
}

// orderInfo is what attribution records of an order event.
func orderInfo(ev OrderEvent) OrderInfo {
	at := ev.Order.CreatedAt
	if ev.Order.CheckoutID != "" && ev.Order.CheckoutID == ev.Order.ID {
		// The cart was this order, unpaid (WooCommerce): it was created
		// when the cart was abandoned, and became a sale when paid.
		at = ev.OccurredAt
		if ev.Order.PaidAt != nil && !ev.Order.PaidAt.IsZero() {
			at = *ev.Order.PaidAt
		}
	}
	if at.IsZero() {
		at = ev.OccurredAt
	}
	return OrderInfo{OrderID: ev.Order.ID, Total: ev.Order.Total, Currency: ev.Order.Currency, At: at}
}

func (r *run) order(info OrderInfo) (outcome, error) {
	if info.At.IsZero() {
		info.At = workflow.Now(r.ctx)
	}
	var st Status
	if err := r.record(ActivityApplyOrder, OrderRecord{CartRef: r.ref, Order: info}, &st); err != nil {
		return outcome{}, fmt.Errorf("recording order %s: %w", info.OrderID, err)
	}
	return outcome{end: &Result{Status: st, Reason: ReasonOrderPlaced, Sent: r.p.Sent}}, nil
}

func (r *run) onReply(ev ReplyEvent) (outcome, error) {
	if r.seen(ev.EventID) {
		return outcome{}, nil
	}
	// The consent engine reads a STOP from the same inbound message in its
	// own delivery, which may run after this one; give it a moment, so a
	// STOP is recorded as an opt-out rather than as a reply. Nothing is sent
	// meanwhile: the sequence waits here.
	if err := workflow.Sleep(r.ctx, replySettle); err != nil {
		return outcome{}, err
	}
	var res ReplyOutcome
	err := r.exec(prepareOptions, ActivityHandleReply, ReplyInput{CartRef: r.ref, Reply: ev}, &res)
	if err != nil {
		// The reply ends the sequence all the same: the customer is
		// talking to the shop, and a template now would talk over them.
		workflow.GetLogger(r.ctx).Warn("handling reply failed; ending the sequence anyway", "reason", failureReason(err))
	}
	if res.OptedOut {
		return r.end(StatusEnded, ReasonOptedOut, true)
	}
	return r.end(StatusEnded, ReasonReplied, false)
}

// end records the end of the sequence.
func (r *run) end(status Status, reason string, optedOut bool) (outcome, error) {
	var st Status
	err := r.record(ActivityEnd, EndRecord{CartRef: r.ref, Status: status, Reason: reason,
		OptedOut: optedOut, At: workflow.Now(r.ctx)}, &st)
	if err != nil {
		return outcome{}, fmt.Errorf("recording end (%s): %w", reason, err)
	}
	return outcome{end: &Result{Status: st, Reason: reason, Sent: r.p.Sent}}, nil
}

// finish completes the workflow with res, after applying orders that are
// still buffered: they would otherwise be lost with the run, and attribution
// is exactly what an order arriving at the end must still get.
func (r *run) finish(res Result) (Result, error) {
	for {
		var ev OrderEvent
		if !r.orders.ReceiveAsync(&ev) {
			break
		}
		if r.seen(ev.EventID) {
			continue
		}
		var st Status
		if err := r.record(ActivityApplyOrder, OrderRecord{CartRef: r.ref, Order: orderInfo(ev)}, &st); err != nil {
			return res, fmt.Errorf("recording order %s: %w", ev.Order.ID, err)
		}
	}
	res.Sent = r.p.Sent
	return res, nil
}

// stepDue runs NextStep, whose wait is over.
func (r *run) stepDue() (outcome, error) {
	var s Settings
	if err := r.record(ActivityLoadSettings, r.ref, &s); err != nil {
		return outcome{}, fmt.Errorf("loading settings: %w", err)
	}
	if !s.Enabled {
		return r.end(StatusEnded, ReasonDisabled, false)
	}
	if r.p.NextStep >= len(s.Steps) {
		return r.end(StatusEnded, ReasonSequenceCompleted, false)
	}
	st := s.Steps[r.p.NextStep]
	now := workflow.Now(r.ctx)
	if st.Delay != r.p.Delay {
		// The merchant changed the delay meanwhile: the new one counts.
		r.p.Delay = st.Delay
		if r.due().After(now) {
			return outcome{}, nil
		}
	}
	step := r.p.NextStep + 1 // steps are numbered from 1 in records

	var prep Preparation
	err := r.exec(prepareOptions, ActivityPrepare, PrepareInput{CartRef: r.ref, Step: step,
		RequireMarketingConsent: st.RequireMarketingConsent, At: now}, &prep)
	if err != nil {
		return r.stepDone(s, StepRecord{Status: StepFailed, Reason: "prepare_failed", Detail: failureReason(err)})
	}
	switch prep.Action {
	case ActionSkipCart:
		return r.end(StatusSkipped, prep.Reason, false)
	case ActionEnd:
		return r.end(StatusEnded, prep.Reason, prep.Reason == ReasonOptedOut)
	case ActionDefer:
		// A deferral that does not reach past now (a boundary, a clock
		// apart) must still wait, or the workflow would spin.
		r.p.DeferUntil = prep.DeferUntil
		if !r.p.DeferUntil.After(now.Add(time.Minute)) {
			r.p.DeferUntil = now.Add(quietRetryFallback)
		}
		workflow.GetLogger(r.ctx).Info("step deferred past quiet hours", "step", step, "until", prep.DeferUntil)
		return outcome{}, nil
	case ActionSkipStep:
		return r.stepDone(s, StepRecord{Status: StepSkipped, Reason: prep.Reason, Detail: prep.Detail})
	case ActionSend:
	default:
		return outcome{}, fmt.Errorf("prepare returned unknown action %q", prep.Action)
	}

	// Something may have happened while preparing (an order, the customer
	// back at the checkout): look before spending a discount or a message.
	if o, err := r.drain(); err != nil || o.end != nil || o.reset {
		return o, err
	}
	tmpl, code, note := st.TemplateRef, "", ""
	if st.Discount != nil {
		if r.p.Code == "" && r.p.CodeError == "" {
			var d commerce.Discount
			err := r.exec(discountOptions, ActivityCreateDiscount, DiscountInput{CartRef: r.ref, Step: step, Discount: *st.Discount}, &d)
			if err != nil {
				r.p.CodeError = failureReason(err)
				workflow.GetLogger(r.ctx).Warn("creating the discount failed", "step", step, "reason", r.p.CodeError)
			} else {
				r.p.Code = d.Code
			}
			if o, err := r.drain(); err != nil || o.end != nil || o.reset {
				return o, err
			}
		}
		code = r.p.Code
		if code == "" {
			if st.FallbackTemplate == nil {
				return r.stepDone(s, StepRecord{Status: StepSkipped, Reason: ReasonDiscountFailed, Detail: r.p.CodeError})
			}
			tmpl, note = *st.FallbackTemplate, ReasonDiscountFailed
		}
	}

	var out SendOutcome
	err = r.exec(sendOptions, ActivitySend, SendInput{CartRef: r.ref, Step: step, Attempt: r.p.Attempt,
		ChannelConnectionID: s.ChannelConnectionID, Template: tmpl, Code: code, NameFallback: s.NameFallback}, &out)
	if err != nil {
		return r.stepDone(s, StepRecord{Status: StepFailed, Reason: "send_failed", Detail: failureReason(err), DiscountCode: code})
	}
	detail := out.Detail
	if note != "" {
		detail = fmt.Sprintf("sent fallback template %s without a discount: %s", tmpl.Template, r.p.CodeError)
	}
	switch {
	case out.Sent:
		r.p.Sent++
		return r.stepDone(s, StepRecord{Status: StepSent, Reason: cmp.Or(note, out.Reason), Detail: detail, MessageID: out.MessageID,
			DiscountCode: code, At: out.At})
	case out.Reason == messaging.ReasonQuietHours:
		r.p.Attempt++
		if r.p.Attempt > MaxQuietRetries {
			return r.stepDone(s, StepRecord{Status: StepSkipped, Reason: ReasonQuietHours, Detail: detail, MessageID: out.MessageID, DiscountCode: code})
		}
		until := out.DeferUntil
		if !until.After(now) {
			until = now.Add(quietRetryFallback)
		}
		r.p.DeferUntil = until
		return outcome{}, nil
	case out.Reason == messaging.ReasonOptedOut, out.Reason == messaging.ReasonExcluded, out.Reason == messaging.ReasonMarketingDeclined:
		rec := StepRecord{Status: out.Status, Reason: out.Reason, Detail: detail, MessageID: out.MessageID, DiscountCode: code}
		if err := r.recordStep(step, rec); err != nil {
			return outcome{}, err
		}
		return r.end(StatusEnded, out.Reason, out.Reason == messaging.ReasonOptedOut)
	default:
		return r.stepDone(s, StepRecord{Status: out.Status, Reason: out.Reason, Detail: detail, MessageID: out.MessageID, DiscountCode: code})
	}
}

func (r *run) recordStep(step int, rec StepRecord) error {
	rec.CartRef, rec.Step = r.ref, step
	if rec.At.IsZero() {
		rec.At = workflow.Now(r.ctx)
	}
	if err := r.record(ActivityRecordStep, rec, nil); err != nil {
		return fmt.Errorf("recording step %d: %w", step, err)
	}
	return nil
}

// stepDone records NextStep's outcome and moves on to the next step, or ends
// the sequence after the last.
func (r *run) stepDone(s Settings, rec StepRecord) (outcome, error) {
	if err := r.recordStep(r.p.NextStep+1, rec); err != nil {
		return outcome{}, err
	}
	r.p.NextStep++
	r.p.Base, r.p.DeferUntil, r.p.Attempt, r.p.Code, r.p.CodeError = workflow.Now(r.ctx), time.Time{}, 0, "", ""
	if r.p.NextStep >= len(s.Steps) {
		return r.end(StatusEnded, ReasonSequenceCompleted, false)
	}
	r.p.Delay = s.Steps[r.p.NextStep].Delay
	return outcome{}, nil
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
