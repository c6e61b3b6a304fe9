package ordernotify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const phone = "+393331234567"

var ref1 = OrderRef{TenantID: "ten_1", ConnectionID: "con_shop", OrderID: "5001"}

func testSettings() Settings {
	s := DefaultSettings()
	s.Enabled = true
	s.ChannelConnectionID = "con_wa"
	return s
}

type harness struct {
	env      *testsuite.TestWorkflowEnvironment
	store    *memStore
	msgr     *fakeMessenger
	settings Settings
	window   fakeWindow
	acts     *Activities
}

// newHarness sets up a time-skipping test environment running the real
// activities on in-memory fakes of their dependencies.
func newHarness(t *testing.T, st Settings) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	h := &harness{env: s.NewTestWorkflowEnvironment(), store: newMemStore(), settings: st,
		window: fakeWindow{open: map[string]bool{}}}
	h.env.SetStartTime(t0)
	h.msgr = newFakeMessenger(h.env.Now)
	h.register(t)
	return h
}

func (h *harness) register(t *testing.T) {
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: WorkflowID(ref1.TenantID, ref1.ConnectionID, ref1.OrderID)})
	h.acts = &Activities{Store: h.store, Settings: fixedSettings{s: h.settings, found: true}, Messenger: h.msgr,
		Window: h.window, Now: h.env.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	Register(h.env, h.acts)
}

// at delivers events d after the start.
func (h *harness) at(d time.Duration, evs ...OrderEvent) {
	h.env.RegisterDelayedCallback(func() {
		for _, ev := range evs {
			h.env.SignalWorkflow(SignalOrderEvent, ev)
		}
	}, d)
}

// atOnce delivers events d after the start in one workflow task.
func (h *harness) atOnce(d time.Duration, evs ...OrderEvent) {
	h.env.RegisterDelayedCallback(func() {
		for i, ev := range evs {
			if i < len(evs)-1 {
				h.env.SignalWorkflowSkippingWorkflowTask(SignalOrderEvent, ev)
			} else {
				h.env.SignalWorkflow(SignalOrderEvent, ev)
			}
		}
	}, d)
}

// restart gives the harness a new test environment starting at start, with
// the same store and messenger: a later run of the same order's workflow.
func (h *harness) restart(t *testing.T, start time.Time) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	h.env = s.NewTestWorkflowEnvironment()
	h.env.SetStartTime(start)
	h.msgr.clock = h.env.Now
	h.register(t)
}

// run starts the workflow with the first events already signalled (as
// signal-with-start does) and runs it to completion.
func (h *harness) run(t *testing.T, first ...OrderEvent) {
	t.Helper()
	h.at(0, first...)
	h.env.ExecuteWorkflow(WorkflowType, WorkflowInput{OrderRef: ref1})
	if !h.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
}

// evSeq numbers test events; tests run in parallel.
var evSeq atomic.Int64

func event(typ string, payload any) OrderEvent {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return OrderEvent{EventID: evSeq.Add(1), Type: typ, OccurredAt: t0, Payload: b}
}

// order is the test order at minute m of its life.
func order(m int, mutate ...func(*commerce.Order)) commerce.Order {
	o := commerce.Order{ID: ref1.OrderID, Name: "#1001",
		Contact:  commerce.Contact{Phone: phone, FirstName: "Maria", Country: "IT"},
		Currency: "EUR", Total: "49.90", FinancialStatus: commerce.FinancialPending,
		LineItems: []commerce.LineItem{{Title: "Blue mug", Quantity: 2, Price: "19.95"}, {Title: "Tea", Quantity: 1, Price: "9.99"}},
		StatusURL: "https://shop.example/orders/abc",
		CreatedAt: t0, UpdatedAt: t0.Add(time.Duration(m) * time.Minute)}
	for _, f := range mutate {
		f(&o)
	}
	return o
}

func isPaid(o *commerce.Order) { o.FinancialStatus = commerce.FinancialPaid }

func withFulfillment(f commerce.Fulfillment) func(*commerce.Order) {
	return func(o *commerce.Order) {
		o.Fulfillments = append(o.Fulfillments, f)
		o.FulfillmentStatus = "fulfilled"
	}
}

func cancelled(o *commerce.Order) {
	at := o.UpdatedAt
	o.CancelledAt, o.CancelReason = &at, "customer"
}

func refunded(o *commerce.Order) {
	o.FinancialStatus, o.RefundedAmount = commerce.FinancialRefunded, o.Total
}

func fulfillment(m int, shipment string) commerce.Fulfillment {
	return commerce.Fulfillment{ID: "f1", OrderID: ref1.OrderID, Status: "success", ShipmentStatus: shipment,
		TrackingCompany: "BRT", TrackingNumber: "TRK123", TrackingURL: "https://brt.example/t/TRK123",
		UpdatedAt: t0.Add(time.Duration(m) * time.Minute)}
}

func created(m int, mutate ...func(*commerce.Order)) OrderEvent {
	return event(commerce.EventOrderCreated, order(m, mutate...))
}

func updated(m int, mutate ...func(*commerce.Order)) OrderEvent {
	return event(commerce.EventOrderUpdated, order(m, mutate...))
}

func fulfilled(m int, shipment string) OrderEvent {
	return event(commerce.EventFulfillmentUpdated, fulfillment(m, shipment))
}

var (
	confirmationTmpl   = `template:order_confirmation["Maria" "#1001" "49.90 EUR"]`
	shippedTmpl        = `template:order_shipped["Maria" "#1001" "BRT" "https://brt.example/t/TRK123"]`
	outForDeliveryTmpl = `template:order_out_for_delivery["Maria" "#1001" "https://brt.example/t/TRK123"]`
	deliveredTmpl      = `template:order_delivered["Maria" "#1001"]`
	cancelledTmpl      = `template:order_cancelled["Maria" "#1001"]`
	refundedTmpl       = `template:order_refunded["Maria" "#1001" "49.90 EUR"]`
)

func (h *harness) check(t *testing.T, wantSent, wantOutcomes []string) {
	t.Helper()
	if diff := cmp.Diff(wantSent, h.msgr.sent()); diff != "" {
		t.Errorf("messages sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantOutcomes, h.store.outcomes()); diff != "" {
		t.Errorf("notifications recorded (-want +got):\n%s", diff)
	}
}

func TestWorkflowConfirmOnCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, updated(60, isPaid))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent"})
	if got := h.msgr.callTimes(); len(got) != 1 || got[0].After(t0.Add(time.Minute)) {
		t.Errorf("confirmation sent at %v, want at once on create", got)
	}
	// Nothing more happened: the workflow waited out its idle time.
	if got := h.env.Now().Sub(t0); got < IdleTimeout {
		t.Errorf("workflow ended after %s, want the idle timeout %s", got, IdleTimeout)
	}
}

func TestWorkflowConfirmOnPaid(t *testing.T) {
	t.Parallel()
	st := testSettings()
	st.ConfirmOn = ConfirmOnPaid
	h := newHarness(t, st)
	h.at(30*time.Minute, updated(30)) // still unpaid
	h.at(2*time.Hour, event(commerce.EventOrderPaid, order(120, isPaid)))
	h.at(3*time.Hour, updated(180, isPaid))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent"})
	if got := h.msgr.callTimes(); len(got) != 1 || got[0].Before(t0.Add(2*time.Hour)) {
		t.Errorf("confirmation sent at %v, want when paid (2h)", got)
	}
}

func TestWorkflowRepeatedEventsSendOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	c := created(0)
	ship := fulfilled(60, commerce.ShipmentInTransit)
	h.at(time.Minute, c, c)
	h.at(time.Hour, ship, ship)
	h.at(2*time.Hour, ship, c)
	h.run(t, c)
	h.check(t, []string{confirmationTmpl, shippedTmpl}, []string{"confirmation/sent", "shipped/sent"})
}

func TestWorkflowOutOfOrderEvents(t *testing.T) {
	t.Parallel()
	st := testSettings()
	st.ReviewRequest = &ReviewRequest{Message: Message{Template: "order_review", Language: "en"}, After: "72h"}
	h := newHarness(t, st)
	// The carrier's delivered update overtakes the shop's earlier events:
	// a late in-transit update of the same shipment (stamped older, and
	// once without a time at all, so it wins the merge), and a late
	// order.fulfilled, send nothing.
	h.at(time.Hour, fulfilled(90, commerce.ShipmentDelivered))
	h.at(2*time.Hour, fulfilled(30, commerce.ShipmentInTransit))
	h.at(3*time.Hour, event(commerce.EventOrderFulfilled, order(20, isPaid, withFulfillment(fulfillment(20, "")))))
	noTime := fulfillment(0, commerce.ShipmentInTransit)
	noTime.UpdatedAt = time.Time{}
	h.at(4*time.Hour, event(commerce.EventFulfillmentCreated, noTime))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl, deliveredTmpl, `template:order_review[]`},
		[]string{"confirmation/sent", "delivered/sent", "review_request/sent"})
}

func TestWorkflowStartedLate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	// First heard of through an update of an order already shipped.
	h.at(time.Hour, fulfilled(120, commerce.ShipmentOutForDelivery))
	h.at(5*time.Hour, fulfilled(300, commerce.ShipmentDelivered))
	h.run(t, updated(60, isPaid, withFulfillment(fulfillment(50, commerce.ShipmentInTransit))))
	h.check(t, []string{shippedTmpl, outForDeliveryTmpl, deliveredTmpl},
		[]string{"shipped/sent", "out_for_delivery/sent", "delivered/sent"})
}

func TestWorkflowWaitsForTheOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	// The shipment is heard of first; the order (with the customer's
	// phone and the order number) a minute later.
	h.at(time.Minute, updated(60, isPaid))
	h.run(t, fulfilled(30, commerce.ShipmentInTransit))
	h.check(t, []string{shippedTmpl}, []string{"shipped/sent"})
	if got := h.msgr.callTimes(); len(got) != 1 || got[0].Before(t0.Add(time.Minute)) {
		t.Errorf("shipped sent at %v, want once the order arrived", got)
	}
}

func TestWorkflowOrderNeverComes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		contact *commerce.Contact
		sent    []string
		outcome []string
	}{
		"fulfillment with the customer": {&commerce.Contact{Phone: phone, FirstName: "Maria"},
			[]string{`template:order_shipped["Maria" "-" "BRT" "https://brt.example/t/TRK123"]`}, []string{"shipped/sent"}},
		"nothing about the customer": {nil, nil, []string{"shipped/skipped/no_phone"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, testSettings())
			f := fulfillment(30, commerce.ShipmentInTransit)
			f.Contact = tc.contact
			h.run(t, event(commerce.EventFulfillmentCreated, f))
			h.check(t, tc.sent, tc.outcome)
			if got := h.store.outcomes(); len(got) == 1 && tc.sent != nil {
				if at := h.msgr.callTimes()[0]; at.Before(t0.Add(OrderWait)) {
					t.Errorf("sent at %v, before the order wait ended", at)
				}
			}
		})
	}
}

func TestWorkflowCancelled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, event(commerce.EventOrderCancelled, order(60, cancelled)))
	// After the cancellation nothing but a refund is news, and the workflow
	// has ended: a stale update reaches no one.
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl, cancelledTmpl}, []string{"confirmation/sent", "cancelled/sent"})
	if got := h.env.Now().Sub(t0); got > 2*time.Hour {
		t.Errorf("workflow ended after %s, want right after the cancellation", got)
	}
}

func TestWorkflowCancelledAndRefundedAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	// Heard of together (one workflow task): only the current stage, the
	// refund, goes out; the cancellation is older news.
	h.atOnce(time.Hour, event(commerce.EventOrderCancelled, order(60, cancelled)), fulfilled(70, commerce.ShipmentInTransit),
		event(commerce.EventOrderRefunded, order(80, cancelled, refunded)))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl, refundedTmpl}, []string{"confirmation/sent", "refunded/sent"})
}

// After a cancellation nothing but the refund is news. The workflow ended
// with the cancellation; later events start a second run, which knows.
func TestWorkflowNothingButRefundAfterCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, event(commerce.EventOrderCancelled, order(60, cancelled)))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl, cancelledTmpl}, []string{"confirmation/sent", "cancelled/sent"})

	// Each later event starts a run of its own (signal-with-start), which
	// ends as soon as it has taken its event in.
	h.restart(t, t0.Add(2*time.Hour))
	h.run(t, updated(125, cancelled), fulfilled(130, commerce.ShipmentInTransit))
	h.restart(t, t0.Add(3*time.Hour))
	h.run(t, fulfilled(190, commerce.ShipmentDelivered))
	h.check(t, []string{confirmationTmpl, cancelledTmpl}, []string{"confirmation/sent", "cancelled/sent"})
	h.restart(t, t0.Add(4*time.Hour))
	h.run(t, event(commerce.EventOrderRefunded, order(200, cancelled, refunded)))
	if got := h.env.Now().Sub(t0.Add(4 * time.Hour)); got > time.Minute {
		t.Errorf("the refund's run lasted %s, want it to end at once", got)
	}
	h.check(t, []string{confirmationTmpl, cancelledTmpl, refundedTmpl},
		[]string{"confirmation/sent", "cancelled/sent", "refunded/sent"})
}

func TestWorkflowRefundAfterDelivery(t *testing.T) {
	t.Parallel()
	st := testSettings()
	st.ReviewRequest = &ReviewRequest{Message: Message{Template: "order_review", Language: "en",
		Variables: []string{VarName, VarReviewURL}}, After: "72h", ReviewURL: "https://shop.example/review"}
	h := newHarness(t, st)
	h.at(time.Hour, fulfilled(60, commerce.ShipmentInTransit))
	h.at(24*time.Hour, fulfilled(24*60, commerce.ShipmentDelivered))
	// Refunded before the review request was due: no review request.
	h.at(48*time.Hour, event(commerce.EventOrderRefunded, order(48*60, isPaid, refunded)))
	h.run(t, created(0, isPaid))
	h.check(t, []string{confirmationTmpl, shippedTmpl, deliveredTmpl, refundedTmpl},
		[]string{"confirmation/sent", "shipped/sent", "delivered/sent", "refunded/sent"})
}

func TestWorkflowPartialRefundIsNotRefunded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, updated(60, isPaid, func(o *commerce.Order) {
		o.FinancialStatus, o.RefundedAmount = commerce.FinancialPartiallyRefunded, "9.99"
	}))
	h.run(t, created(0, isPaid))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent"})
}

func TestWorkflowReviewRequest(t *testing.T) {
	t.Parallel()
	st := testSettings()
	st.ReviewRequest = &ReviewRequest{Message: Message{Template: "order_review", Language: "en",
		Variables: []string{VarName}, ButtonURLVariable: VarReviewURL}, After: "72h", ReviewURL: "https://shop.example/review"}
	h := newHarness(t, st)
	delivered := fulfilled(5*60, commerce.ShipmentDelivered)
	h.at(5*time.Hour, delivered)
	h.run(t, created(0, isPaid))
	review := `template:order_review[{"type":"body","parameters":[{"type":"text","text":"Maria"}]},` +
		`{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"https://shop.example/review"}]}]`
	h.check(t, []string{confirmationTmpl, deliveredTmpl, review},
		[]string{"confirmation/sent", "delivered/sent", "review_request/sent"})
	times := h.msgr.callTimes()
	if want := t0.Add(5*time.Hour + 72*time.Hour); len(times) != 3 || times[2].Before(want) || times[2].After(want.Add(time.Minute)) {
		t.Errorf("review request sent at %v, want 72h after the delivery (%v)", times, want)
	}
	// The review request was the last notification: the workflow ended.
	if got := h.env.Now().Sub(t0); got > 78*time.Hour {
		t.Errorf("workflow ended after %s, want right after the review request", got)
	}
}

func TestWorkflowFreeTextInWindow(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		open     bool
		inWindow bool
		want     []string
	}{
		"window open": {open: true, inWindow: true,
			want: []string{"text:Hi Maria, thank you for your order #1001 (49.90 EUR)! We are preparing it and will send you the tracking details soon."}},
		"window closed":          {open: false, inWindow: true, want: []string{confirmationTmpl}},
		"open but not wanted":    {open: true, inWindow: false, want: []string{confirmationTmpl}},
		"open, no free text":     {open: true, inWindow: true, want: []string{confirmationTmpl}},
		"closed during the send": {open: true, inWindow: true, want: []string{confirmationTmpl}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := testSettings()
			st.FreeTextInWindow = tc.inWindow
			if name == "open, no free text" {
				st.Confirmation.FreeText = ""
			}
			h := newHarness(t, st)
			h.window.open[phone] = tc.open
			if name == "closed during the send" {
				// The window check said open, the messaging core (or Meta)
				// says closed: the template goes instead, once.
				h.msgr.refuse["text"] = &messaging.RefusedError{Reason: messaging.ReasonOutsideWindow}
			}
			h.run(t, created(0))
			h.check(t, tc.want, []string{"confirmation/sent"})
		})
	}
}

func TestWorkflowMissingPhone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	noPhone := func(o *commerce.Order) { o.Phone, o.PhoneProblem = "", commerce.PhoneMissing }
	badPhone := func(o *commerce.Order) { o.Phone, o.PhoneRaw, o.PhoneProblem = "", "12", commerce.PhoneInvalid }
	h.at(time.Hour, updated(60, badPhone, withFulfillment(fulfillment(60, commerce.ShipmentInTransit))))
	h.run(t, created(0, noPhone))
	h.check(t, nil, []string{"confirmation/skipped/no_phone", "shipped/skipped/invalid_phone"})
}

func TestWorkflowRefusalRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.msgr.refuse["order_confirmation"] = &messaging.RefusedError{Reason: messaging.ReasonTemplateNotApproved}
	h.msgr.refuse["order_shipped"] = &messaging.FailedError{Reason: messaging.ReasonUndeliverable, Code: "131026"}
	h.at(time.Hour, fulfilled(60, commerce.ShipmentInTransit))
	h.at(2*time.Hour, event(commerce.EventOrderCancelled, order(120, cancelled)))
	h.run(t, created(0))
	h.check(t, []string{cancelledTmpl}, []string{"confirmation/refused/template_not_approved",
		"shipped/failed/undeliverable (131026)", "cancelled/sent"})
	if h.msgr.attempts != 3 {
		t.Errorf("messenger asked %d times, want 3: refusals are not retried", h.msgr.attempts)
	}
}

func TestWorkflowOutcomeUnknownCountsAsSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.msgr.refuse["order_confirmation"] = fmt.Errorf("sending message msg_1: %w: plugin died", messaging.ErrOutcomeUnknown)
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent/outcome_unknown"})
	if h.msgr.attempts != 1 {
		t.Errorf("messenger asked %d times, want 1", h.msgr.attempts)
	}
}

func TestWorkflowTransientFailuresRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.msgr.transient = 2
	// The outage hits the notification's claim, not Begin: in the SDK's
	// test environment a retried Begin (the local activity that opens the
	// workflow) fails at once with a start-to-close timeout when Notify
	// retries too, which the real worker does not do (an outage at Begin
	// is retried there like any local activity).
	h.store.skip, h.store.failNext = 1, 1
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent"})
}

func TestWorkflowGivesUpAfterADay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.msgr.transient = 1 << 30
	h.run(t, created(0))
	out := h.store.outcomes()
	if len(out) != 1 || !strings.HasPrefix(out[0], "confirmation/failed/gave up after retries: ") {
		t.Errorf("notifications %v, want the confirmation failed after its retries", out)
	}
}

func TestWorkflowDisabledAndNotConfigured(t *testing.T) {
	t.Parallel()
	st := testSettings()
	st.Shipped = nil
	h := newHarness(t, st)
	h.at(time.Hour, fulfilled(60, commerce.ShipmentInTransit))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent", "shipped/skipped/not_configured"})

	st.Enabled = false
	h2 := newHarness(t, st)
	h2.run(t, created(0))
	h2.check(t, nil, []string{"confirmation/skipped/disabled"})
}

// A second run of the order's workflow (started by a late event after the
// first ended) sends nothing the first sent, and nothing older.
func TestWorkflowSecondRunSendsNothingTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, fulfilled(60, commerce.ShipmentDelivered))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl, deliveredTmpl}, []string{"confirmation/sent", "delivered/sent"})

	// The shop repeats itself a month later: a run that sends nothing.
	h.restart(t, t0.Add(30*24*time.Hour))
	h.run(t, created(0), fulfilled(60, commerce.ShipmentDelivered), fulfilled(40, commerce.ShipmentOutForDelivery))
	h.check(t, []string{confirmationTmpl, deliveredTmpl}, []string{"confirmation/sent", "delivered/sent"})
	// Then a refund: news, sent by a third run.
	h.restart(t, t0.Add(90*24*time.Hour))
	h.run(t, event(commerce.EventOrderRefunded, order(90*24*60, isPaid, refunded)))
	h.check(t, []string{confirmationTmpl, deliveredTmpl, refundedTmpl},
		[]string{"confirmation/sent", "delivered/sent", "refunded/sent"})
}

func TestWorkflowDeletedOrderEnds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	h.at(time.Hour, event(commerce.EventOrderDeleted, map[string]string{"id": ref1.OrderID}))
	h.at(2*time.Hour, fulfilled(60, commerce.ShipmentInTransit))
	h.run(t, created(0))
	h.check(t, []string{confirmationTmpl}, []string{"confirmation/sent"})
	if got := h.env.Now().Sub(t0); got > 2*time.Hour {
		t.Errorf("workflow ended after %s, want right after the deletion", got)
	}
}

func TestWorkflowContinuesAsNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings())
	var evs []OrderEvent
	for i := range maxEventsPerRun + 5 {
		evs = append(evs, updated(i))
	}
	h.at(time.Minute, evs...)
	h.env.ExecuteWorkflow(WorkflowType, WorkflowInput{OrderRef: ref1})
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new after %d events", err, maxEventsPerRun)
	}
	var in WorkflowInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	if in.Resume == nil || in.Resume.Stage != KindConfirmation || in.OrderRef != ref1 ||
		in.Resume.Facts.Order == nil || in.Resume.Facts.Order.UpdatedAt != t0.Add(time.Duration(maxEventsPerRun+4)*time.Minute) {
		t.Errorf("continued with %+v", in)
	}
}
