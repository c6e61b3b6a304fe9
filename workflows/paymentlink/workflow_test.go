package paymentlink

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type wfHarness struct {
	env     *testsuite.TestWorkflowEnvironment
	mu      sync.Mutex
	records []Record
	creates []time.Time
	deacts  int
}

// newHarness sets up a workflow test environment whose Record activity
// collects what it is asked to record; CreateLink and DeactivateLink are
// mocked by each test.
func newHarness(t *testing.T) *wfHarness {
	var s testsuite.WorkflowTestSuite
	h := &wfHarness{env: s.NewTestWorkflowEnvironment()}
	h.env.SetStartTime(t0)
	Register(h.env, &Activities{})
	h.env.OnActivity(ActivityRecord, mock.Anything, mock.Anything).Return(func(_ context.Context, r Record) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.records = append(h.records, r)
		return nil
	})
	return h
}

func (h *wfHarness) createReturns(results ...func() (Created, error)) {
	i := 0
	h.env.OnActivity(ActivityCreateLink, mock.Anything, mock.Anything).Return(func(context.Context, LinkRef) (Created, error) {
		h.mu.Lock()
		h.creates = append(h.creates, h.env.Now())
		r := results[min(i, len(results)-1)]
		i++
		h.mu.Unlock()
		return r()
	})
}

func (h *wfHarness) deactivateReturns(err error) {
	h.env.OnActivity(ActivityDeactivateLink, mock.Anything, mock.Anything).Return(func(context.Context, LinkRef) error {
		h.mu.Lock()
		h.deacts++
		h.mu.Unlock()
		return err
	})
}

func (h *wfHarness) signalAt(d time.Duration, evs ...PaymentEvent) {
	h.env.RegisterDelayedCallback(func() {
		for _, ev := range evs {
			h.env.SignalWorkflow(SignalPaymentEvent, ev)
		}
	}, d)
}

func (h *wfHarness) run(t *testing.T) Status {
	t.Helper()
	h.env.ExecuteWorkflow(WorkflowName, WorkflowInput{TenantID: "ten_1", LinkID: "pl_1", ExpiresAt: t0.Add(24 * time.Hour)})
	if !h.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var st Status
	if err := h.env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func created() (Created, error) {
	return Created{URL: "https://buy.stripe.com/test_1", ProviderID: "plink_1"}, nil
}

func i64(v int64) *int64 { return &v }

func paidEvent(id int64, at time.Time) PaymentEvent {
	return PaymentEvent{EventID: id, Type: EventCheckoutSessionCompleted, OccurredAt: at,
		Payload: json.RawMessage(`{"object":"checkout.session","payment_status":"paid","amount":1500,"currency":"eur"}`)}
}

func failedEvent(id int64) PaymentEvent {
	return PaymentEvent{EventID: id, Type: EventPaymentIntentFailed, OccurredAt: t0,
		Payload: json.RawMessage(`{"object":"payment_intent","failure_code":"card_declined","decline_code":"insufficient_funds","failure_message":"Your card has insufficient funds."}`)}
}

var ref1 = LinkRef{TenantID: "ten_1", LinkID: "pl_1"}

func TestWorkflowPaid(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(created)
	paidAt := t0.Add(time.Hour)
	// The session and the intent both report the payment; the second, and a
	// redelivery of the first, change nothing.
	intent := PaymentEvent{EventID: 2, Type: EventPaymentIntentSucceeded, OccurredAt: paidAt,
		Payload: json.RawMessage(`{"object":"payment_intent","amount":1500,"amount_received":1500}`)}
	h.signalAt(time.Hour, paidEvent(1, paidAt), intent, paidEvent(1, paidAt))
	if st := h.run(t); st != StatusPaid {
		t.Fatalf("status %s, want paid", st)
	}
	want := []Record{{LinkRef: ref1, From: []Status{StatusOpen}, To: StatusPaid, PaidAt: &paidAt, AmountPaid: i64(1500)}}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if h.deacts != 0 {
		t.Errorf("a paid link was deactivated")
	}
}

func TestWorkflowExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(created)
	h.deactivateReturns(nil)
	// A session that expired is not the link expiring.
	h.signalAt(2*time.Hour, PaymentEvent{EventID: 7, Type: EventCheckoutSessionExpired, OccurredAt: t0, Payload: json.RawMessage(`{}`)})
	start := time.Now()
	if st := h.run(t); st != StatusExpired {
		t.Fatalf("status %s, want expired", st)
	}
	if got := h.env.Now().Sub(t0); got < 24*time.Hour {
		t.Errorf("expired after %s of workflow time, want 24h", got)
	}
	if real := time.Since(start); real > 5*time.Second {
		t.Errorf("24h took %s of real time; time skipping is not working", real)
	}
	want := []Record{{LinkRef: ref1, From: []Status{StatusOpen}, To: StatusExpired}}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if h.deacts != 1 {
		t.Errorf("deactivated %d times, want 1", h.deacts)
	}
}

func TestWorkflowFailedAttemptThenPaid(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(created)
	paidAt := t0.Add(3 * time.Hour)
	h.signalAt(time.Hour, failedEvent(1))
	h.signalAt(2*time.Hour, failedEvent(1)) // redelivered: ignored
	h.signalAt(3*time.Hour, paidEvent(2, paidAt))
	if st := h.run(t); st != StatusPaid {
		t.Fatalf("status %s, want paid", st)
	}
	want := []Record{
		{LinkRef: ref1, From: []Status{StatusOpen}, LastError: "payment attempt failed: insufficient_funds: Your card has insufficient funds."},
		{LinkRef: ref1, From: []Status{StatusOpen}, To: StatusPaid, PaidAt: &paidAt, AmountPaid: i64(1500)},
	}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestWorkflowRefundQueuedBehindPayment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(created)
	paidAt := t0.Add(time.Hour)
	refund := PaymentEvent{EventID: 9, Type: EventChargeRefunded, OccurredAt: paidAt, Payload: json.RawMessage(`{"object":"charge","refunded":true}`)}
	h.signalAt(time.Hour, paidEvent(1, paidAt), refund)
	if st := h.run(t); st != StatusRefunded {
		t.Fatalf("status %s, want refunded (the queued refund was lost)", st)
	}
	want := []Record{
		{LinkRef: ref1, From: []Status{StatusOpen}, To: StatusPaid, PaidAt: &paidAt, AmountPaid: i64(1500)},
		{LinkRef: ref1, From: []Status{StatusPaid}, To: StatusRefunded},
	}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestWorkflowPermanentCreateFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(func() (Created, error) {
		return Created{}, ActivityError(sdk.Invalid("No such price: 'price_x'"))
	})
	if st := h.run(t); st != StatusFailed {
		t.Fatalf("status %s, want failed", st)
	}
	if len(h.creates) != 1 {
		t.Errorf("CreateLink ran %d times; an invalid request must not be retried", len(h.creates))
	}
	want := []Record{{LinkRef: ref1, From: []Status{StatusCreating}, To: StatusFailed, LastError: "invalid: No such price: 'price_x'"}}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestWorkflowRateLimitedCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(
		func() (Created, error) {
			return Created{}, ActivityError(sdk.RateLimited(90*time.Second, "too many requests"))
		},
		func() (Created, error) { return Created{}, ActivityError(sdk.Retryable("stripe 502")) },
		created,
	)
	paidAt := t0.Add(2 * time.Hour)
	h.signalAt(2*time.Hour, paidEvent(1, paidAt))
	if st := h.run(t); st != StatusPaid {
		t.Fatalf("status %s, want paid", st)
	}
	if len(h.creates) != 3 {
		t.Fatalf("CreateLink ran %d times, want 3", len(h.creates))
	}
	if gap := h.creates[1].Sub(h.creates[0]); gap < 90*time.Second {
		t.Errorf("retried %s after a rate limit asking for 90s", gap)
	}
}

func TestWorkflowDeactivateFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createReturns(created)
	h.deactivateReturns(ActivityError(sdk.Auth("api key revoked")))
	if st := h.run(t); st != StatusExpired {
		t.Fatalf("status %s, want expired", st)
	}
	want := []Record{{LinkRef: ref1, From: []Status{StatusOpen}, To: StatusExpired,
		LastError: "expired, but deactivating the link at the provider failed: auth: api key revoked"}}
	if diff := cmp.Diff(want, h.records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	at := t0
	paid := paidEvent(1, at)
	unpaid := PaymentEvent{Type: EventCheckoutSessionCompleted, OccurredAt: at, Payload: json.RawMessage(`{"payment_status":"unpaid"}`)}
	refundFull := PaymentEvent{Type: EventChargeRefunded, Payload: json.RawMessage(`{"refunded":true,"amount_refunded":1500}`)}
	refundPart := PaymentEvent{Type: EventChargeRefunded, Payload: json.RawMessage(`{"refunded":false,"amount_refunded":500}`)}
	tests := map[string]struct {
		status Status
		ev     PaymentEvent
		want   Status // "" for no status change
		change bool
	}{
		"paid while open":             {StatusOpen, paid, StatusPaid, true},
		"paid after expiry":           {StatusExpired, paid, StatusPaid, true},
		"paid twice":                  {StatusPaid, paid, "", false},
		"paid after refund":           {StatusRefunded, paid, "", false},
		"paid for a failed link":      {StatusFailed, paid, "", false},
		"unpaid completion":           {StatusOpen, unpaid, "", false},
		"failed attempt while open":   {StatusOpen, failedEvent(1), "", true},
		"failed attempt after expiry": {StatusExpired, failedEvent(1), "", false},
		"session expired":             {StatusOpen, PaymentEvent{Type: EventCheckoutSessionExpired}, "", false},
		"full refund of paid":         {StatusPaid, refundFull, StatusRefunded, true},
		"partial refund of paid":      {StatusPaid, refundPart, "", false},
		"refund of open link":         {StatusOpen, refundFull, "", false},
		"unknown type":                {StatusOpen, PaymentEvent{Type: "customer.created"}, "", false},
		"broken payload":              {StatusOpen, PaymentEvent{Type: EventPaymentIntentSucceeded, Payload: json.RawMessage(`{`)}, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := Apply(tc.status, tc.ev)
			if tr.To != tc.want || tr.Ignored() == tc.change {
				t.Errorf("Apply(%s, %s) = %+v, want to %q (change %v)", tc.status, tc.ev.Type, tr, tc.want, tc.change)
			}
			if tr.Ignored() && tr.Reason == "" {
				t.Errorf("ignored without a reason")
			}
		})
	}
}
