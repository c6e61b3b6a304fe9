package paymentlink

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
)

// runChat runs the workflow for a link with a chat and returns the order of
// the activities called.
func runChat(t *testing.T, sendLinkErr error, events ...PaymentEvent) (Status, []string, []Record) {
	t.Helper()
	h := newHarness(t)
	h.createReturns(created)
	h.deactivateReturns(nil)
	var mu sync.Mutex
	var order []string
	h.env.OnActivity(ActivitySendLink, mock.Anything, mock.Anything).Return(func(context.Context, LinkRef) error {
		mu.Lock()
		order = append(order, "link")
		mu.Unlock()
		return sendLinkErr
	})
	h.env.OnActivity(ActivitySendPaid, mock.Anything, mock.Anything).Return(func(context.Context, LinkRef) error {
		mu.Lock()
		order = append(order, "paid")
		mu.Unlock()
		return nil
	})
	if len(events) > 0 {
		h.signalAt(time.Hour, events...)
	}
	h.env.ExecuteWorkflow(WorkflowName, WorkflowInput{TenantID: "ten_1", LinkID: "pl_1", ExpiresAt: t0.Add(24 * time.Hour), Chat: true})
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
	return st, order, h.records
}

func TestWorkflowChat(t *testing.T) {
	t.Parallel()
	refused := temporal.NewNonRetryableApplicationError("message refused: opted_out", ErrTypeMessageRefused, nil)
	cases := map[string]struct {
		sendLinkErr error
		events      []PaymentEvent
		wantStatus  Status
		wantOrder   []string
		wantError   string // a last_error recorded
	}{
		"sent and paid":      {nil, []PaymentEvent{paidEvent(1, t0.Add(time.Hour))}, StatusPaid, []string{"link", "paid"}, ""},
		"sent and expired":   {nil, nil, StatusExpired, []string{"link"}, ""},
		"link refused, paid": {refused, []PaymentEvent{paidEvent(1, t0.Add(time.Hour))}, StatusPaid, []string{"link", "paid"}, "WhatsApp message not sent: message refused: opted_out"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, order, records := runChat(t, tc.sendLinkErr, tc.events...)
			if st != tc.wantStatus {
				t.Errorf("status %s, want %s", st, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantOrder, order); diff != "" {
				t.Errorf("chat activities (-want +got):\n%s", diff)
			}
			var lastErr string
			for _, r := range records {
				if r.To == "" && r.LastError != "" {
					lastErr = r.LastError
				}
			}
			if lastErr != tc.wantError {
				t.Errorf("recorded error %q, want %q", lastErr, tc.wantError)
			}
		})
	}
}

// fakeStore is one link in memory.
type fakeStore struct{ link Link }

func (f *fakeStore) GetLink(_ context.Context, tenantID, id string) (Link, error) {
	if f.link.ID != id || f.link.TenantID != tenantID {
		return Link{}, store.ErrNotFound
	}
	return f.link, nil
}
func (f *fakeStore) MarkOpen(context.Context, string, string, string, string) error { return nil }
func (f *fakeStore) Apply(context.Context, Record) (bool, error)                    { return true, nil }

// fakeMessenger refuses free text when outside is set, like the messaging
// core outside the 24-hour window.
type fakeMessenger struct {
	outside bool
	reqs    []messaging.SendRequest
}

func (f *fakeMessenger) Send(_ context.Context, r messaging.SendRequest) (messaging.Message, error) {
	f.reqs = append(f.reqs, r)
	if f.outside && r.Kind == messaging.KindText {
		return messaging.Message{}, &messaging.RefusedError{Reason: messaging.ReasonOutsideWindow}
	}
	return messaging.Message{ID: "msg_1", Status: messaging.StatusSent}, nil
}

func TestSendLinkActivity(t *testing.T) {
	t.Parallel()
	base := Link{ID: "pl_1", TenantID: "ten_1", URL: "https://buy.stripe.com/x", WorkflowID: "paymentlink/ten_1/pl_1",
		To: "+393331234567", ChannelConnectionID: "con_wa", Message: "Your order"}
	type sent struct {
		Kind   messaging.Kind
		Key    string
		Text   string
		Params []string
	}
	cases := map[string]struct {
		link     Link
		outside  bool
		template string
		want     []sent
		errType  string
	}{
		"inside the window": {base, false, "", []sent{{messaging.KindText, "paymentlink/ten_1/pl_1:link", "Your order\nhttps://buy.stripe.com/x", nil}}, ""},
		"outside, template": {base, true, "payment_link", []sent{
			{messaging.KindText, "paymentlink/ten_1/pl_1:link", "Your order\nhttps://buy.stripe.com/x", nil},
			{messaging.KindTemplate, "paymentlink/ten_1/pl_1:link:template", "", []string{"https://buy.stripe.com/x"}}}, ""},
		"outside, no template": {base, true, "", []sent{{messaging.KindText, "paymentlink/ten_1/pl_1:link", "Your order\nhttps://buy.stripe.com/x", nil}}, ErrTypeNoTemplate},
		"no chat":              {Link{ID: "pl_1", TenantID: "ten_1", URL: "https://x"}, false, "", nil, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := &fakeMessenger{outside: tc.outside}
			a := &Activities{Store: &fakeStore{link: tc.link}, Messenger: m, Chat: ChatConfig{LinkTemplate: tc.template, LinkTemplateLanguage: "it"}}
			err := a.SendLink(context.Background(), LinkRef{TenantID: "ten_1", LinkID: "pl_1"})
			var appErr *temporal.ApplicationError
			switch {
			case tc.errType == "" && err != nil:
				t.Fatalf("SendLink: %v", err)
			case tc.errType != "" && (!errors.As(err, &appErr) || appErr.Type() != tc.errType || !appErr.NonRetryable()):
				t.Fatalf("SendLink: %v, want a non-retryable %s", err, tc.errType)
			}
			var got []sent
			for _, r := range m.reqs {
				s := sent{Kind: r.Kind, Key: r.IdempotencyKey, Text: r.Text}
				if r.Template != nil {
					s.Params = r.Template.Params
				}
				if r.Purpose != messaging.PurposeUtility {
					t.Errorf("purpose %s, want utility", r.Purpose)
				}
				got = append(got, s)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("sends (-want +got):\n%s", diff)
			}
		})
	}
}
