package messaging

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

type testRig struct {
	svc     *Service
	ledger  *memLedger
	consent *fakeConsent
	inv     *fakeInvoker
	clock   *fakeClock
}

func newRig(t *testing.T, lastInbound time.Duration, consent *fakeConsent, results ...error) *testRig {
	t.Helper()
	clock := newFakeClock()
	var li *time.Time
	if lastInbound > 0 {
		at := clock.Now().Add(-lastInbound)
		li = &at
	}
	if consent == nil {
		consent = &fakeConsent{}
	}
	r := &testRig{ledger: newMemLedger(), consent: consent, inv: &fakeInvoker{results: results}, clock: clock}
	r.svc = newService(Config{
		Invoker: r.inv, Consent: consent, Guard: consent, Clock: clock,
		Templates: fakeTemplates{
			"order_shipped/it": {Status: "approved", Category: "utility", Parameters: 1},
			"promo/it":         {Status: "approved", Category: "marketing"},
			"draft/it":         {Status: "pending", Category: "utility"},
		},
		Directory: fakeDirectory{lastInbound: li},
		Channels:  fakeChannels{ch: Channel{Connector: Connector, Status: "active", Tier: 80}},
	}, r.ledger)
	return r
}

func textReq(key string) SendRequest {
	return SendRequest{TenantID: "ten_1", ConnectionID: "con_1", To: "+393331234567", Kind: KindText,
		Text: "hello", IdempotencyKey: key}
}

func templateReq(key, name string) SendRequest {
	return SendRequest{TenantID: "ten_1", ConnectionID: "con_1", To: "+393331234567", Kind: KindTemplate,
		Template: &Template{Name: name, Language: "it"}, IdempotencyKey: key}
}

func TestSendCheckOrder(t *testing.T) {
	t.Parallel()
	quietEnd := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	deny := func(p Purpose, reason string) *fakeConsent {
		return &fakeConsent{decision: map[Purpose]ConsentDecision{p: {Reason: reason}}}
	}
	quiet := &fakeConsent{decision: map[Purpose]ConsentDecision{PurposeMarketing: {Reason: ReasonQuietHours, DeferUntil: quietEnd}}}
	marketing := func(r SendRequest) SendRequest { r.Purpose = PurposeMarketing; return r }
	deferOK := func(r SendRequest) SendRequest { r.AllowDefer = true; return r }
	type want struct {
		Status Status
		Reason string
		Calls  int
		Err    string // refused, failed, unknown, invalid or ""
	}
	cases := map[string]struct {
		req         SendRequest
		consent     *fakeConsent
		lastInbound time.Duration // 0: never wrote
		results     []error
		want        want
	}{
		"sent inside the window":      {textReq("k"), nil, time.Hour, nil, want{StatusSent, "", 1, ""}},
		"excluded":                    {textReq("k"), deny(PurposeService, ReasonExcluded), time.Hour, nil, want{StatusRefused, ReasonExcluded, 0, "refused"}},
		"opted out":                   {textReq("k"), deny(PurposeService, ReasonOptedOut), time.Hour, nil, want{StatusRefused, ReasonOptedOut, 0, "refused"}},
		"no marketing consent":        {marketing(textReq("k")), deny(PurposeMarketing, ReasonNoMarketingConsent), time.Hour, nil, want{StatusRefused, ReasonNoMarketingConsent, 0, "refused"}},
		"consent before window":       {marketing(textReq("k")), deny(PurposeMarketing, ReasonOptedOut), 0, nil, want{StatusRefused, ReasonOptedOut, 0, "refused"}},
		"quiet hours refused":         {marketing(textReq("k")), quiet, time.Hour, nil, want{StatusRefused, ReasonQuietHours, 0, "refused"}},
		"quiet hours deferred":        {deferOK(marketing(textReq("k"))), quiet, time.Hour, nil, want{StatusDeferred, ReasonQuietHours, 0, ""}},
		"outside the window":          {textReq("k"), nil, 25 * time.Hour, nil, want{StatusRefused, ReasonOutsideWindow, 0, "refused"}},
		"never wrote":                 {textReq("k"), nil, 0, nil, want{StatusRefused, ReasonOutsideWindow, 0, "refused"}},
		"template outside window":     {templateReq("k", "promo"), nil, 0, nil, want{StatusSent, "", 1, ""}},
		"template takes its category": {templateReq("k", "promo"), deny(PurposeMarketing, ReasonNoMarketingConsent), 0, nil, want{StatusRefused, ReasonNoMarketingConsent, 0, "refused"}},
		"window before template":      {func() SendRequest { r := textReq("k"); return r }(), nil, 0, nil, want{StatusRefused, ReasonOutsideWindow, 0, "refused"}},
		"template unknown":            {templateReq("k", "nope"), nil, 0, nil, want{StatusRefused, ReasonTemplateNotFound, 0, "refused"}},
		"template pending":            {templateReq("k", "draft"), nil, 0, nil, want{StatusRefused, ReasonTemplateNotApproved, 0, "refused"}},
		"stop after the first look":   {textReq("k"), &fakeConsent{afterFirst: &ConsentDecision{Reason: ReasonOptedOut}}, 25 * time.Hour, nil, want{StatusRefused, ReasonOutsideWindow, 0, "refused"}},
		"provider 131047": {textReq("k"), nil, time.Hour, []error{&sdk.Error{Kind: sdk.KindPermanent, Code: "131047", Message: "re-engagement"}},
			want{StatusRefused, ReasonOutsideWindow, 1, "refused"}},
		"provider 131026": {textReq("k"), nil, time.Hour, []error{&sdk.Error{Kind: sdk.KindPermanent, Code: "131026", Message: "undeliverable"}},
			want{StatusFailed, ReasonUndeliverable, 1, "failed"}},
		"provider 131050": {templateReq("k", "promo"), nil, 0, []error{&sdk.Error{Kind: sdk.KindPermanent, Code: "131050", Message: "declined"}},
			want{StatusFailed, ReasonMarketingDeclined, 1, "failed"}},
		"provider invalid": {textReq("k"), nil, time.Hour, []error{&sdk.Error{Kind: sdk.KindInvalid, Code: "100", Message: "bad"}},
			want{StatusFailed, ReasonProviderRejected, 1, "failed"}},
		"provider timeout": {textReq("k"), nil, time.Hour, []error{&sdk.Error{Kind: sdk.KindRetryable, Message: "timeout"}},
			want{StatusSending, ReasonOutcomeUnknown, 1, "unknown"}},
		"plugin died mid-call": {textReq("k"), nil, time.Hour, []error{errors.New("rpc error: transport is closing")},
			want{StatusSending, ReasonOutcomeUnknown, 1, "unknown"}},
		"throttled then sent": {textReq("k"), nil, time.Hour, []error{sdk.RateLimited(2*time.Second, "130429")},
			want{StatusSent, "", 2, ""}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, tc.lastInbound, tc.consent, tc.results...)
			m, err := r.svc.Send(context.Background(), tc.req)
			var (
				ref *RefusedError
				fe  *FailedError
				ie  *InvalidError
			)
			got := want{Status: m.Status, Reason: m.StatusReason, Calls: r.inv.count()}
			switch {
			case err == nil:
			case errors.As(err, &ref):
				got.Err = "refused"
				if ref.MessageID != m.ID || ref.Reason != m.StatusReason {
					t.Errorf("refusal %+v does not match row %s/%s", ref, m.ID, m.StatusReason)
				}
			case errors.As(err, &fe):
				got.Err = "failed"
			case errors.Is(err, ErrOutcomeUnknown):
				got.Err = "unknown"
			case errors.As(err, &ie):
				got.Err = "invalid"
			default:
				t.Fatalf("Send: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			stored, gerr := r.ledger.get(context.Background(), "ten_1", m.ID)
			if gerr != nil {
				t.Fatalf("the outcome is not in the ledger: %v", gerr)
			}
			if stored.Status != m.Status {
				t.Errorf("ledger status %s, returned %s", stored.Status, m.Status)
			}
			if tc.want.Status == StatusDeferred && (stored.DeferredUntil == nil || !stored.DeferredUntil.Equal(quietEnd)) {
				t.Errorf("deferred_until = %v, want %v", stored.DeferredUntil, quietEnd)
			}
			if tc.want.Calls > 0 && r.consent.inHold == 0 {
				t.Errorf("the provider was called without a consent check under the STOP lock")
			}
			if tc.want.Calls > 0 && r.inv.calls[0].IdempotencyKey != m.ID {
				t.Errorf("call idempotency key %q, want the ledger id %q", r.inv.calls[0].IdempotencyKey, m.ID)
			}
		})
	}
}

func TestSendInvalid(t *testing.T) {
	t.Parallel()
	mod := func(f func(*SendRequest)) SendRequest { r := textReq("k"); f(&r); return r }
	cases := map[string]struct {
		req   SendRequest
		field string
	}{
		"no key":          {mod(func(r *SendRequest) { r.IdempotencyKey = "" }), "idempotency_key"},
		"no recipient":    {mod(func(r *SendRequest) { r.To = "" }), "to"},
		"both recipients": {mod(func(r *SendRequest) { r.ContactID = "ct_1" }), "to"},
		"not E.164":       {mod(func(r *SendRequest) { r.To = "3331234567" }), "to"},
		"empty text":      {mod(func(r *SendRequest) { r.Text = "" }), "text"},
		"bad kind":        {mod(func(r *SendRequest) { r.Kind = "fax" }), "kind"},
		"bad purpose":     {mod(func(r *SendRequest) { r.Purpose = "spam" }), "purpose"},
		"media no link": {mod(func(r *SendRequest) {
			r.Kind, r.Text, r.Media = KindMedia, "", &Media{Type: "image", Link: "ftp://x"}
		}), "media.link"},
		"template params": {mod(func(r *SendRequest) {
			r.Kind, r.Text, r.Template = KindTemplate, "", &Template{Name: "order_shipped", Language: "it", Params: []string{"a", "b"}}
		}), "template.params"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, time.Hour, nil)
			_, err := r.svc.Send(context.Background(), tc.req)
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Send: %v, want *InvalidError", err)
			}
			if ie.Field != tc.field {
				t.Errorf("field %q, want %q", ie.Field, tc.field)
			}
			if r.inv.count() != 0 || len(r.ledger.rows) != 0 {
				t.Errorf("an invalid request made %d calls and %d rows", r.inv.count(), len(r.ledger.rows))
			}
		})
	}
}

func TestSendIdempotent(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		req     SendRequest
		results []error
		wantErr bool
	}{
		"sent":    {textReq("same"), nil, false},
		"refused": {templateReq("same", "draft"), nil, true},
		"failed":  {textReq("same"), []error{&sdk.Error{Kind: sdk.KindPermanent, Code: "131026"}}, true},
		"unknown": {textReq("same"), []error{&sdk.Error{Kind: sdk.KindRetryable}}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, time.Hour, nil, tc.results...)
			first, _ := r.svc.Send(context.Background(), tc.req)
			calls := r.inv.count()
			for range 3 {
				again, err := r.svc.Send(context.Background(), tc.req)
				if (err != nil) != tc.wantErr {
					t.Errorf("repeated Send error %v, want error %v", err, tc.wantErr)
				}
				if again.ID != first.ID {
					t.Errorf("repeated Send returned %s, want the first row %s", again.ID, first.ID)
				}
			}
			if r.inv.count() != calls {
				t.Errorf("repeated Sends made %d more provider calls", r.inv.count()-calls)
			}
			if len(r.ledger.rows) != 1 {
				t.Errorf("%d ledger rows, want 1", len(r.ledger.rows))
			}
		})
	}
}

func TestSendThrottledBeyondDeadlineIsQueued(t *testing.T) {
	t.Parallel()
	r := newRig(t, time.Hour, nil, sdk.RateLimited(time.Hour, "pair rate"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := r.svc.Send(ctx, textReq("k"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if m.Status != StatusQueued || m.StatusReason != ReasonRateLimited || m.DeferredUntil == nil {
		t.Fatalf("row %s/%s deferred_until %v, want queued/rate_limited with a time", m.Status, m.StatusReason, m.DeferredUntil)
	}
	if r.inv.count() != 1 {
		t.Errorf("%d calls, want 1", r.inv.count())
	}
	// The scheduler's re-attempt goes through the checks again and sends.
	r.clock.Advance(time.Hour)
	got, err := r.svc.resend(context.Background(), m)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if got.Status != StatusSent || r.inv.count() != 2 {
		t.Errorf("after resend: status %s, %d calls; want sent, 2", got.Status, r.inv.count())
	}
}

func TestDeferredResendRechecks(t *testing.T) {
	t.Parallel()
	quietEnd := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	c := &fakeConsent{decision: map[Purpose]ConsentDecision{PurposeMarketing: {Reason: ReasonQuietHours, DeferUntil: quietEnd}}}
	r := newRig(t, time.Hour, c)
	req := textReq("k")
	req.Purpose, req.AllowDefer = PurposeMarketing, true
	m, err := r.svc.Send(context.Background(), req)
	if err != nil || m.Status != StatusDeferred {
		t.Fatalf("Send: %v, status %s; want deferred", err, m.Status)
	}
	// Quiet hours end; meanwhile the contact opted out.
	c.mu.Lock()
	c.decision[PurposeMarketing] = ConsentDecision{Reason: ReasonOptedOut}
	c.mu.Unlock()
	got, err := r.svc.resend(context.Background(), m)
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.Reason != ReasonOptedOut || got.Status != StatusRefused {
		t.Fatalf("resend: %v, status %s; want refused opted_out", err, got.Status)
	}
	if r.inv.count() != 0 {
		t.Errorf("%d provider calls, want 0", r.inv.count())
	}
}
