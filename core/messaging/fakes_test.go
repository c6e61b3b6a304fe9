package messaging

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ponte-hub/ponte/core/invoke"
)

// fakeClock is virtual time: Sleep advances it at once.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// memLedger is the ledger in memory, with the same conditional updates.
type memLedger struct {
	mu   sync.Mutex
	rows map[string]*Message
}

func newMemLedger() *memLedger { return &memLedger{rows: map[string]*Message{}} }

func (l *memLedger) get(_ context.Context, tenantID, id string) (Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.rows[id]
	if !ok || m.TenantID != tenantID {
		return Message{}, ErrNotFound
	}
	return *m, nil
}

func (l *memLedger) byKey(_ context.Context, tenantID, key string) (Message, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.rows {
		if m.TenantID == tenantID && m.IdempotencyKey == key {
			return *m, true, nil
		}
	}
	return Message{}, false, nil
}

func (l *memLedger) insert(ctx context.Context, m Message) (Message, bool, error) {
	l.mu.Lock()
	for _, r := range l.rows {
		if r.TenantID == m.TenantID && r.IdempotencyKey == m.IdempotencyKey {
			l.mu.Unlock()
			return *r, false, nil
		}
	}
	c := m
	l.rows[m.ID] = &c
	l.mu.Unlock()
	return c, true, nil
}

func (l *memLedger) update(tenantID, id string, from []Status, f func(m *Message)) (Message, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.rows[id]
	if !ok || m.TenantID != tenantID {
		return Message{}, false
	}
	match := from == nil
	for _, s := range from {
		match = match || m.Status == s
	}
	if !match {
		return *m, false
	}
	f(m)
	return *m, true
}

func (l *memLedger) claim(_ context.Context, tenantID, id string) (Message, bool, error) {
	m, ok := l.update(tenantID, id, []Status{StatusQueued, StatusDeferred}, func(m *Message) {
		m.Status, m.StatusReason, m.DeferredUntil = StatusSending, "", nil
	})
	return m, ok, nil
}

func (l *memLedger) settle(_ context.Context, tenantID, id string, status Status, reason, code, detail string, until *time.Time) (Message, error) {
	m, _ := l.update(tenantID, id, []Status{StatusQueued, StatusDeferred, StatusSending}, func(m *Message) {
		m.Status, m.StatusReason, m.ErrorCode, m.ErrorDetail, m.DeferredUntil = status, reason, code, detail, until
	})
	return m, nil
}

func (l *memLedger) markSent(_ context.Context, tenantID, id, wamid string, at time.Time) (Message, error) {
	m, _ := l.update(tenantID, id, nil, func(m *Message) {
		if m.ProviderMessageID == "" {
			m.ProviderMessageID = wamid
		}
		if m.Status == StatusSending || m.Status == StatusUnknown {
			m.Status, m.StatusReason = StatusSent, ""
		}
		if m.SentAt == nil {
			m.SentAt = &at
		}
	})
	return m, nil
}

func (l *memLedger) markFailed(_ context.Context, tenantID, id, reason, code, detail string, at time.Time) (Message, error) {
	m, _ := l.update(tenantID, id, []Status{StatusSending, StatusUnknown}, func(m *Message) {
		m.Status, m.StatusReason, m.ErrorCode, m.ErrorDetail, m.FailedAt = StatusFailed, reason, code, detail, &at
	})
	return m, nil
}

func (l *memLedger) note(_ context.Context, tenantID, id, reason, code, detail string) error {
	l.update(tenantID, id, []Status{StatusSending}, func(m *Message) {
		m.StatusReason, m.ErrorCode, m.ErrorDetail = reason, code, detail
	})
	return nil
}

// fakeConsent answers from a table keyed by purpose; guarded counts Holds.
type fakeConsent struct {
	mu       sync.Mutex
	decision map[Purpose]ConsentDecision // missing: allowed
	// afterFirst, when set, is the decision of every check after the first
	// (a STOP arriving between the checks).
	afterFirst *ConsentDecision
	checks     int
	holds      int
	// inHold counts checks made with the context Hold passed to send.
	inHold int
}

type holdMark struct{}

func (f *fakeConsent) Check(ctx context.Context, q ConsentQuery) (ConsentDecision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if ctx.Value(holdMark{}) != nil {
		f.inHold++
	}
	if f.afterFirst != nil && f.checks > 1 {
		return *f.afterFirst, nil
	}
	if d, ok := f.decision[q.Purpose]; ok {
		return d, nil
	}
	return ConsentDecision{Allowed: true}, nil
}

func (f *fakeConsent) HoldCheck(ctx context.Context, q ConsentQuery, send func(context.Context) error) (ConsentDecision, error) {
	f.mu.Lock()
	f.holds++
	f.mu.Unlock()
	ctx = context.WithValue(ctx, holdMark{}, true)
	d, err := f.Check(ctx, q)
	if err != nil || !d.Allowed {
		return d, err
	}
	return d, send(ctx)
}

type fakeTemplates map[string]TemplateInfo

func (f fakeTemplates) Template(_ context.Context, _, _, name, lang string) (TemplateInfo, error) {
	t, ok := f[name+"/"+lang]
	if !ok {
		return TemplateInfo{}, fmt.Errorf("template %s: %w", name, ErrNotFound)
	}
	return t, nil
}

type fakeDirectory struct{ lastInbound *time.Time }

func (f fakeDirectory) Recipient(_ context.Context, _, _, phone, contactID string) (Recipient, error) {
	if contactID == "" {
		contactID = "ct_" + phone
	}
	if phone == "" {
		phone = "+390000000000"
	}
	return Recipient{ContactID: contactID, Phone: phone, ConversationID: "cv_" + contactID, LastInboundAt: f.lastInbound}, nil
}

type fakeChannels struct{ ch Channel }

func (f fakeChannels) Channel(context.Context, string, string) (Channel, error) { return f.ch, nil }

// fakeInvoker records calls and answers from results in order (then OK).
type fakeInvoker struct {
	mu      sync.Mutex
	calls   []invoke.Call
	results []error
}

func (f *fakeInvoker) Invoke(_ context.Context, c invoke.Call) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	if n <= len(f.results) && f.results[n-1] != nil {
		return nil, f.results[n-1]
	}
	return json.RawMessage(fmt.Sprintf(`{"message_id":"wamid.%d","wa_id":"1"}`, n)), nil
}

func (f *fakeInvoker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}
