package cartrecovery

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// t0 is a Sunday noon (UTC); the tests' quiet hours are 21:00-08:00.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var ref1 = CartRef{TenantID: "ten_1", ConnectionID: "con_shop", CheckoutID: "chk_1"}

// testSettings are the default sequence, enabled, with short template names.
func testSettings() Settings {
	s := DefaultSettings()
	s.Enabled = true
	s.ChannelConnectionID = "con_wa"
	return s
}

// harness runs the workflow in a time-skipping test environment whose
// activities are fakes over a scripted world: tests set what Prepare,
// CreateDiscount and Send answer, and read back what was recorded.
type harness struct {
	env *testsuite.TestWorkflowEnvironment

	mu        sync.Mutex
	settings  Settings
	state     CartState // what RecordCheckout answers
	prepare   func(PrepareInput, time.Time) (Preparation, error)
	discount  func(DiscountInput) (commerce.Discount, error)
	send      func(SendInput, time.Time) (SendOutcome, error)
	optedOut  bool // what HandleReply answers
	checkouts []CheckoutRecord
	prepares  []time.Time
	discounts []time.Time
	sends     []sent
	steps     []StepRecord
	ends      []EndRecord
	orders    []OrderRecord
	replies   []ReplyInput
}

type sent struct {
	In SendInput
	At time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &harness{env: s.NewTestWorkflowEnvironment(), settings: testSettings(), state: CartState{Status: StatusWaiting}}
	h.env.SetStartTime(t0)
	Register(h.env, &Activities{})
	h.env.OnActivity(ActivityRecordCheckout, mock.Anything, mock.Anything).Return(func(_ context.Context, r CheckoutRecord) (CartState, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.checkouts = append(h.checkouts, r)
		return h.state, nil
	})
	h.env.OnActivity(ActivityLoadSettings, mock.Anything, mock.Anything).Return(func(context.Context, CartRef) (Settings, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.settings, nil
	})
	h.env.OnActivity(ActivityPrepare, mock.Anything, mock.Anything).Return(func(_ context.Context, in PrepareInput) (Preparation, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.prepares = append(h.prepares, h.env.Now())
		if h.prepare != nil {
			return h.prepare(in, h.env.Now())
		}
		return Preparation{Action: ActionSend}, nil
	})
	h.env.OnActivity(ActivityCreateDiscount, mock.Anything, mock.Anything).Return(func(_ context.Context, in DiscountInput) (commerce.Discount, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.discounts = append(h.discounts, h.env.Now())
		if h.discount != nil {
			return h.discount(in)
		}
		return commerce.Discount{Code: "COMEBACK-X1", Percent: in.Discount.Percent}, nil
	})
	h.env.OnActivity(ActivitySend, mock.Anything, mock.Anything).Return(func(_ context.Context, in SendInput) (SendOutcome, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sends = append(h.sends, sent{In: in, At: h.env.Now()})
		if h.send != nil {
			return h.send(in, h.env.Now())
		}
		return SendOutcome{Sent: true, Status: StepSent, MessageID: "msg_" + SendKey(in.CartRef, in.Step, in.Attempt)}, nil
	})
	h.env.OnActivity(ActivityRecordStep, mock.Anything, mock.Anything).Return(func(_ context.Context, r StepRecord) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.steps = append(h.steps, r)
		return nil
	})
	h.env.OnActivity(ActivityEnd, mock.Anything, mock.Anything).Return(func(_ context.Context, r EndRecord) (Status, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ends = append(h.ends, r)
		return r.Status, nil
	})
	h.env.OnActivity(ActivityApplyOrder, mock.Anything, mock.Anything).Return(func(_ context.Context, r OrderRecord) (Status, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.orders = append(h.orders, r)
		for _, s := range h.steps {
			if s.Status == StepSent {
				return StatusRecovered, nil
			}
		}
		return StatusConverted, nil
	})
	h.env.OnActivity(ActivityHandleReply, mock.Anything, mock.Anything).Return(func(_ context.Context, in ReplyInput) (ReplyOutcome, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.replies = append(h.replies, in)
		return ReplyOutcome{OptedOut: h.optedOut}, nil
	})
	return h
}

func checkout(id int64, updated time.Time) CheckoutEvent {
	return CheckoutEvent{EventID: id, Type: commerce.EventCheckoutUpdated, OccurredAt: updated, Checkout: commerce.Checkout{
		ID: ref1.CheckoutID, Contact: commerce.Contact{Phone: "+393331234567", FirstName: "Anna"}, Currency: "EUR",
		Total: "49.90", RecoveryURL: "https://shop.example.com/cart/c/chk_1?key=k", UpdatedAt: updated,
		LineItems: []commerce.LineItem{{Title: "Blue mug", Quantity: 2, Price: "24.95"}},
	}}
}

// at signals the workflow d after the start.
func (h *harness) at(d time.Duration, name string, arg any) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(name, arg) }, d)
}

// run starts the workflow with a checkout created at t0 and returns its result.
func (h *harness) run(t *testing.T) Result {
	t.Helper()
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCheckout, checkout(1, t0)) }, 0)
	h.env.ExecuteWorkflow(WorkflowName, WorkflowInput{CartRef: ref1})
	if !h.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res Result
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

func (h *harness) sendTimes() []time.Duration {
	var out []time.Duration
	for _, s := range h.sends {
		out = append(out, s.At.Sub(t0))
	}
	return out
}

// stepSummary is a step record without its bulky fields.
type stepSummary struct {
	Step   int
	Status StepStatus
	Reason string
	Code   string
}

func (h *harness) stepSummaries() []stepSummary {
	var out []stepSummary
	for _, s := range h.steps {
		out = append(out, stepSummary{s.Step, s.Status, s.Reason, s.DiscountCode})
	}
	return out
}

func endReasons(ends []EndRecord) []string {
	var out []string
	for _, e := range ends {
		out = append(out, string(e.Status)+":"+e.Reason)
	}
	return out
}

func TestWorkflowFullSequence(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	start := time.Now()
	res := h.run(t)
	if want := (Result{Status: StatusEnded, Reason: ReasonSequenceCompleted, Sent: 3}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	// 1 h after the checkout, 24 h after that, 48 h after that.
	if diff := cmp.Diff([]time.Duration{time.Hour, 25 * time.Hour, 73 * time.Hour}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
	if real := time.Since(start); real > 5*time.Second {
		t.Errorf("73 h took %s of real time; time skipping is not working", real)
	}
	want := []stepSummary{{1, StepSent, "", ""}, {2, StepSent, "", "COMEBACK-X1"}, {3, StepSent, "", ""}}
	if diff := cmp.Diff(want, h.stepSummaries()); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	s2 := h.sends[1].In
	if s2.Template.Template != "cart_discount" || s2.Code != "COMEBACK-X1" || s2.ChannelConnectionID != "con_wa" || s2.Attempt != 0 {
		t.Errorf("second send %+v", s2)
	}
	if len(h.discounts) != 1 {
		t.Errorf("discount created %d times, want once", len(h.discounts))
	}
	if diff := cmp.Diff([]string{"ended:sequence_completed"}, endReasons(h.ends)); diff != "" {
		t.Errorf("ends (-want +got):\n%s", diff)
	}
	if h.steps[0].MessageID != "msg_cartrecovery/ten_1/con_shop/chk_1:step1" {
		t.Errorf("step 1 message id %q", h.steps[0].MessageID)
	}
}

func TestWorkflowUpdateResetsTimer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:1]
	// The customer comes back 50 minutes in: the reminder waits a full hour
	// from then. A redelivery of that event and an older update arriving
	// late change nothing.
	h.at(50*time.Minute, SignalCheckout, checkout(2, t0.Add(50*time.Minute)))
	h.at(70*time.Minute, SignalCheckout, checkout(2, t0.Add(50*time.Minute)))
	h.at(80*time.Minute, SignalCheckout, checkout(3, t0.Add(10*time.Minute)))
	res := h.run(t)
	if diff := cmp.Diff([]time.Duration{110 * time.Minute}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
	if len(h.checkouts) != 2 {
		t.Errorf("recorded %d checkouts, want 2 (the duplicate and the stale one ignored)", len(h.checkouts))
	}
	if res.Reason != ReasonSequenceCompleted || res.Sent != 1 {
		t.Errorf("result %+v", res)
	}
}

func TestWorkflowUpdateBetweenStepsResetsNextStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:2]
	h.at(5*time.Hour, SignalCheckout, checkout(2, t0.Add(5*time.Hour)))
	h.run(t)
	// Step 2 waits 24 h from the update at 5 h, not from step 1 at 1 h.
	if diff := cmp.Diff([]time.Duration{time.Hour, 29 * time.Hour}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
}

func TestWorkflowPurchaseBetweenSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	order := OrderEvent{EventID: 9, Type: commerce.EventOrderCreated, OccurredAt: t0.Add(3 * time.Hour),
		Order: commerce.Order{ID: "ord_1", CheckoutID: "chk_1", Total: "49.90", Currency: "EUR", CreatedAt: t0.Add(3 * time.Hour)}}
	h.at(3*time.Hour, SignalOrder, order)
	h.at(3*time.Hour+time.Minute, SignalOrder, order) // redelivered after the end: the workflow has completed
	res := h.run(t)
	if want := (Result{Status: StatusRecovered, Reason: ReasonOrderPlaced, Sent: 1}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	want := []OrderRecord{{CartRef: ref1, Order: OrderInfo{OrderID: "ord_1", Total: "49.90", Currency: "EUR", At: t0.Add(3 * time.Hour)}}}
	if diff := cmp.Diff(want, h.orders); diff != "" {
		t.Errorf("orders (-want +got):\n%s", diff)
	}
	if len(h.sends) != 1 || len(h.ends) != 0 {
		t.Errorf("sends %d ends %v", len(h.sends), h.ends)
	}
}

func TestWorkflowOrderBeforeAnyMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.at(30*time.Minute, SignalOrder, OrderEvent{EventID: 9, Type: commerce.EventOrderPaid,
		Order: commerce.Order{ID: "ord_1", Total: "10.00", Currency: "EUR"}, OccurredAt: t0.Add(30 * time.Minute)})
	res := h.run(t)
	if res.Status != StatusConverted || len(h.sends) != 0 {
		t.Errorf("result %+v after %d sends, want converted without sending", res, len(h.sends))
	}
	if h.orders[0].Order.At != t0.Add(30*time.Minute) {
		t.Errorf("order at %s, want the event's time (the order has no created_at)", h.orders[0].Order.At)
	}
}

func TestWorkflowCheckoutEnds(t *testing.T) {
	t.Parallel()
	completedAt := t0.Add(20 * time.Minute)
	tests := map[string]struct {
		ev        CheckoutEvent
		wantEnds  []string
		wantOrder bool
	}{
		"deleted": {CheckoutEvent{EventID: 5, Type: commerce.EventCheckoutDeleted}, []string{"ended:checkout_deleted"}, false},
		"completed": {func() CheckoutEvent {
			ev := checkout(5, completedAt)
			ev.Checkout.CompletedAt, ev.Checkout.OrderID = &completedAt, "ord_7"
			return ev
		}(), nil, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.at(20*time.Minute, SignalCheckout, tc.ev)
			h.run(t)
			if len(h.sends) != 0 {
				t.Errorf("sent %d messages", len(h.sends))
			}
			if diff := cmp.Diff(tc.wantEnds, endReasons(h.ends)); diff != "" {
				t.Errorf("ends (-want +got):\n%s", diff)
			}
			if tc.wantOrder && (len(h.orders) != 1 || h.orders[0].Order.OrderID != "ord_7" || h.orders[0].Order.Total != "49.90") {
				t.Errorf("orders %+v", h.orders)
			}
		})
	}
}

func TestWorkflowReply(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		optedOut bool
		want     string
	}{
		"reply":         {false, "ended:replied"},
		"stop as reply": {true, "ended:opted_out"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.optedOut = tc.optedOut
			reply := ReplyEvent{EventID: 11, ConnectionID: "con_wa", From: "+393331234567", MessageID: "wamid.1", At: t0.Add(2 * time.Hour)}
			h.at(2*time.Hour, SignalReply, reply)
			h.run(t)
			if len(h.sends) != 1 {
				t.Errorf("sent %d messages, want only the first step's", len(h.sends))
			}
			if diff := cmp.Diff([]string{tc.want}, endReasons(h.ends)); diff != "" {
				t.Errorf("ends (-want +got):\n%s", diff)
			}
			if h.ends[0].OptedOut != tc.optedOut {
				t.Errorf("opted_out recorded %v", h.ends[0].OptedOut)
			}
			if len(h.replies) != 1 || h.replies[0].Reply != reply {
				t.Errorf("HandleReply got %+v", h.replies)
			}
		})
	}
}

func TestWorkflowOptOut(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		prepare func(PrepareInput, time.Time) (Preparation, error)
		send    func(SendInput, time.Time) (SendOutcome, error)
		steps   []stepSummary
	}{
		"seen by the consent check": {
			prepare: func(in PrepareInput, _ time.Time) (Preparation, error) {
				if in.Step == 2 {
					return Preparation{Action: ActionEnd, Reason: ReasonOptedOut}, nil
				}
				return Preparation{Action: ActionSend}, nil
			},
			steps: []stepSummary{{1, StepSent, "", ""}},
		},
		"refused by messaging": {
			send: func(in SendInput, _ time.Time) (SendOutcome, error) {
				if in.Step == 2 {
					return SendOutcome{Status: StepSkipped, Reason: messaging.ReasonOptedOut}, nil
				}
				return SendOutcome{Sent: true, Status: StepSent}, nil
			},
			steps: []stepSummary{{1, StepSent, "", ""}, {2, StepSkipped, "opted_out", "COMEBACK-X1"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.prepare, h.send = tc.prepare, tc.send
			res := h.run(t)
			if res.Reason != ReasonOptedOut {
				t.Errorf("result %+v", res)
			}
			if diff := cmp.Diff(tc.steps, h.stepSummaries()); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if len(h.ends) != 1 || !h.ends[0].OptedOut || h.ends[0].Reason != ReasonOptedOut {
				t.Errorf("ends %+v", h.ends)
			}
		})
	}
}

func TestWorkflowNoMarketingConsentSkipsStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps[1].RequireMarketingConsent = true
	h.prepare = func(in PrepareInput, _ time.Time) (Preparation, error) {
		if in.RequireMarketingConsent {
			return Preparation{Action: ActionSkipStep, Reason: "no_marketing_consent"}, nil
		}
		return Preparation{Action: ActionSend}, nil
	}
	h.run(t)
	want := []stepSummary{{1, StepSent, "", ""}, {2, StepSkipped, "no_marketing_consent", ""}, {3, StepSent, "", ""}}
	if diff := cmp.Diff(want, h.stepSummaries()); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if len(h.discounts) != 0 {
		t.Errorf("a discount was created for a skipped step")
	}
	// Step 3 waits 48 h after step 2 was skipped (at 25 h).
	if diff := cmp.Diff([]time.Duration{time.Hour, 73 * time.Hour}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
}

func TestWorkflowQuietHours(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:1]
	h.settings.Steps[0].Delay = Duration(10 * time.Hour) // due at 22:00, inside 21:00-08:00
	morning := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	h.prepare = func(_ PrepareInput, now time.Time) (Preparation, error) {
		if now.Hour() >= 21 || now.Hour() < 8 {
			return Preparation{Action: ActionDefer, Reason: "quiet_hours", DeferUntil: morning}, nil
		}
		return Preparation{Action: ActionSend}, nil
	}
	res := h.run(t)
	if diff := cmp.Diff([]time.Duration{morning.Sub(t0)}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Time{t0.Add(10 * time.Hour), morning}, h.prepares); diff != "" {
		t.Errorf("prepared at (-want +got):\n%s", diff)
	}
	if res.Sent != 1 || h.steps[0].Status != StepSent {
		t.Errorf("result %+v steps %+v", res, h.steps)
	}
}

func TestWorkflowQuietHoursRefusedBySend(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:1]
	h.settings.Steps[0].Delay = Duration(10 * time.Hour)
	morning := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	// The step did not ask for marketing consent, so only messaging (which
	// knows the template is marketing) sees the quiet hours.
	h.send = func(in SendInput, now time.Time) (SendOutcome, error) {
		if now.Before(morning) {
			return SendOutcome{Status: StepSkipped, Reason: messaging.ReasonQuietHours, DeferUntil: morning}, nil
		}
		return SendOutcome{Sent: true, Status: StepSent, MessageID: "msg_2"}, nil
	}
	h.run(t)
	if diff := cmp.Diff([]time.Duration{10 * time.Hour, morning.Sub(t0)}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
	if h.sends[0].In.Attempt != 0 || h.sends[1].In.Attempt != 1 {
		t.Errorf("attempts %d, %d: a retry after a refusal needs a new idempotency key", h.sends[0].In.Attempt, h.sends[1].In.Attempt)
	}
	if len(h.steps) != 1 || h.steps[0].Status != StepSent || h.steps[0].MessageID != "msg_2" {
		t.Errorf("steps %+v", h.steps)
	}
}

func TestWorkflowMissingPhone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prepare = func(PrepareInput, time.Time) (Preparation, error) {
		return Preparation{Action: ActionSkipCart, Reason: commerce.PhoneMissing}, nil
	}
	res := h.run(t)
	if res.Status != StatusSkipped || res.Reason != commerce.PhoneMissing || len(h.sends) != 0 {
		t.Errorf("result %+v with %d sends", res, len(h.sends))
	}
	if diff := cmp.Diff([]string{"skipped:no_phone"}, endReasons(h.ends)); diff != "" {
		t.Errorf("ends (-want +got):\n%s", diff)
	}
	if h.env.Now().Sub(t0) != time.Hour {
		t.Errorf("skipped after %s; the phone is checked when the first step is due (an update may add it)", h.env.Now().Sub(t0))
	}
}

func TestWorkflowDiscountFailure(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fallback bool
		err      error
		attempts int
		want     []stepSummary
	}{
		"retried, then the fallback template": {true, sdk.Retryable("shop 503"), DiscountAttempts,
			[]stepSummary{{1, StepSent, "", ""}, {2, StepSent, ReasonDiscountFailed, ""}, {3, StepSent, "", ""}}},
		"not retried when invalid, step skipped": {false, sdk.Invalid("percent too high"), 1,
			[]stepSummary{{1, StepSent, "", ""}, {2, StepSkipped, ReasonDiscountFailed, ""}, {3, StepSent, "", ""}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if !tc.fallback {
				h.settings.Steps[1].FallbackTemplate = nil
			}
			h.discount = func(DiscountInput) (commerce.Discount, error) { return commerce.Discount{}, ActivityError(tc.err) }
			h.run(t)
			if len(h.discounts) != tc.attempts {
				t.Errorf("discount tried %d times, want %d", len(h.discounts), tc.attempts)
			}
			if tc.attempts > 1 && h.discounts[1].Sub(h.discounts[0]) < 2*time.Second {
				t.Errorf("retried after %s, want backoff", h.discounts[1].Sub(h.discounts[0]))
			}
			if diff := cmp.Diff(tc.want, h.stepSummaries()); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if h.steps[1].Detail == "" {
				t.Errorf("step 2 does not say why there is no code")
			}
			if tc.fallback {
				if s := h.sends[1].In; s.Template.Template != "cart_reminder" || s.Code != "" {
					t.Errorf("fallback send %+v", s)
				}
			} else if len(h.sends) != 2 {
				t.Errorf("sent %d messages, want 2 (step 2 skipped)", len(h.sends))
			}
		})
	}
}

func TestWorkflowSendFailuresRecordedNotRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:1]
	h.send = func(SendInput, time.Time) (SendOutcome, error) {
		return SendOutcome{Status: StepSkipped, Reason: messaging.ReasonTemplateNotApproved, Detail: "template cart_reminder/en is pending"}, nil
	}
	res := h.run(t)
	if len(h.sends) != 1 {
		t.Errorf("send tried %d times; a refusal is final", len(h.sends))
	}
	if diff := cmp.Diff([]stepSummary{{1, StepSkipped, messaging.ReasonTemplateNotApproved, ""}}, h.stepSummaries()); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if res.Sent != 0 || res.Reason != ReasonSequenceCompleted {
		t.Errorf("result %+v", res)
	}
}

func TestWorkflowDisabledMidway(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		h.settings.Enabled = false
		h.mu.Unlock()
	}, 2*time.Hour)
	res := h.run(t)
	if res.Reason != ReasonDisabled || len(h.sends) != 1 {
		t.Errorf("result %+v after %d sends", res, len(h.sends))
	}
	if h.env.Now().Sub(t0) != 25*time.Hour {
		t.Errorf("ended after %s, want when step 2 was due (25h)", h.env.Now().Sub(t0))
	}
}

func TestWorkflowDelayChangedMidway(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.settings.Steps = h.settings.Steps[:1]
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		h.settings.Steps[0].Delay = Duration(3 * time.Hour)
		h.mu.Unlock()
	}, 30*time.Minute)
	h.run(t)
	if diff := cmp.Diff([]time.Duration{3 * time.Hour}, h.sendTimes()); diff != "" {
		t.Errorf("send times (-want +got):\n%s", diff)
	}
}

func TestWorkflowCartAlreadyClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.state = CartState{Status: StatusRecovered, Reason: ReasonOrderPlaced, StepsDone: 1}
	res := h.run(t)
	if res.Status != StatusRecovered || len(h.sends) != 0 || len(h.ends) != 0 {
		t.Errorf("result %+v, sends %d, ends %v", res, len(h.sends), h.ends)
	}
}

func TestWorkflowResumesAfterRecordedSteps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.state = CartState{Status: StatusContacted, StepsDone: 2}
	h.run(t)
	if len(h.sends) != 1 || h.sends[0].In.Step != 3 || h.sendTimes()[0] != 48*time.Hour {
		t.Errorf("sends %+v, want only step 3 after its 48 h", h.sends)
	}
}

func TestWorkflowContinuesAsNew(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range maxSignalsPerRun {
		h.at(time.Duration(i+1)*time.Second, SignalCheckout, checkout(int64(100+i), t0.Add(time.Duration(i+1)*time.Second)))
	}
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCheckout, checkout(1, t0)) }, 0)
	h.env.ExecuteWorkflow(WorkflowName, WorkflowInput{CartRef: ref1})
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	if len(h.sends) != 0 {
		t.Errorf("sent while the customer was active")
	}
	var in WorkflowInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	if in.CartRef != ref1 || in.Resume == nil || !in.Resume.Started || len(in.Resume.Seen) != maxSeen ||
		!in.Resume.LastUpdatedAt.Equal(t0.Add(time.Duration(maxSignalsPerRun-1)*time.Second)) {
		t.Errorf("continued with %+v", in.Resume)
	}
}

func TestActivityErrorKinds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err          error
		nonRetryable bool
	}{
		"invalid":      {sdk.Invalid("bad"), true},
		"auth":         {sdk.Auth("revoked"), true},
		"rate limited": {sdk.RateLimited(time.Minute, "slow down"), false},
		"retryable":    {sdk.Retryable("502"), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var appErr *temporal.ApplicationError
			if !errors.As(ActivityError(tc.err), &appErr) || appErr.NonRetryable() != tc.nonRetryable {
				t.Errorf("ActivityError(%v) = %v, non-retryable want %v", tc.err, appErr, tc.nonRetryable)
			}
		})
	}
}
