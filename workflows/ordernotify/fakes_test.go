package ordernotify

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ponte-hub/ponte/core/messaging"
)

// memStore is an in-memory Store with the same rules as DB: one
// notification per order and kind, Settle only while sending, the order's
// stage raised by final outcomes.
type memStore struct {
	mu     sync.Mutex
	orders map[OrderRef]*OrderRecord
	notes  map[OrderRef]map[Kind]Notification
	// order keeps the notifications in the order they were claimed.
	order []Notification
	// failNext makes the next n store calls fail, as a database outage,
	// after skip calls succeeded.
	failNext int
	skip     int
}

func newMemStore() *memStore {
	return &memStore{orders: map[OrderRef]*OrderRecord{}, notes: map[OrderRef]map[Kind]Notification{}}
}

func (s *memStore) outage() error {
	if s.skip > 0 {
		s.skip--
		return nil
	}
	if s.failNext > 0 {
		s.failNext--
		return fmt.Errorf("connection refused")
	}
	return nil
}

func (s *memStore) Begin(_ context.Context, ref OrderRef, workflowID string) (Progress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.outage(); err != nil {
		return Progress{}, err
	}
	o := s.orders[ref]
	if o == nil {
		o = &OrderRecord{OrderRef: ref}
		s.orders[ref] = o
	}
	o.WorkflowID = workflowID
	p := Progress{Stage: o.Stage}
	for _, n := range s.order {
		if n.OrderRef == ref && s.notes[ref][n.Kind].Status.final() {
			p.Handled = append(p.Handled, n.Kind)
		}
	}
	return p, nil
}

func (s *memStore) Notification(_ context.Context, ref OrderRef, kind Kind) (Notification, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.outage(); err != nil {
		return Notification{}, false, err
	}
	n, ok := s.notes[ref][kind]
	return n, ok, nil
}

func (s *memStore) raise(n Notification) {
	o := s.orders[n.OrderRef]
	if o == nil {
		o = &OrderRecord{OrderRef: n.OrderRef}
		s.orders[n.OrderRef] = o
	}
	if n.Status.final() && n.Kind.Rank() > o.Stage.Rank() {
		o.Stage = n.Kind
	}
	if n.Status.final() && n.To != "" {
		o.Phone = n.To
	}
}

func (s *memStore) Claim(_ context.Context, n Notification) (Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.outage(); err != nil {
		return Notification{}, err
	}
	if s.notes[n.OrderRef] == nil {
		s.notes[n.OrderRef] = map[Kind]Notification{}
	}
	if old, ok := s.notes[n.OrderRef][n.Kind]; ok {
		return old, nil
	}
	s.notes[n.OrderRef][n.Kind] = n
	s.order = append(s.order, n)
	s.raise(n)
	return n, nil
}

func (s *memStore) Settle(_ context.Context, n Notification) (Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.outage(); err != nil {
		return Notification{}, err
	}
	old, ok := s.notes[n.OrderRef][n.Kind]
	if !ok {
		return Notification{}, fmt.Errorf("no %s notification to settle", n.Kind)
	}
	if old.Status != StatusSending {
		return old, nil
	}
	old.Status, old.Reason, old.MessageID = n.Status, n.Reason, n.MessageID
	if n.Mode != "" {
		old.Mode = n.Mode
	}
	s.notes[n.OrderRef][n.Kind] = old
	s.raise(old)
	return old, nil
}

// outcomes lists the final notifications as kind/status/reason, in claim
// order.
func (s *memStore) outcomes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.order {
		n := s.notes[c.OrderRef][c.Kind]
		line := string(n.Kind) + "/" + string(n.Status)
		if n.Reason != "" {
			line += "/" + n.Reason
		}
		out = append(out, line)
	}
	return out
}

// call is one send the fake provider received, with the (fake) time.
type call struct {
	req messaging.SendRequest
	at  time.Time
}

// fakeMessenger stands in for the messaging core: it keeps its ledger by
// idempotency key (a repeated key returns the first outcome and is not a
// provider call) and answers per template name or for text as configured.
type fakeMessenger struct {
	mu    sync.Mutex
	clock func() time.Time
	calls []call
	byKey map[string]result
	// refuse maps a template name (or "text") to the error its sends get.
	refuse map[string]error
	// transient is how many sends fail with a transient error first.
	transient int
	attempts  int
}

type result struct {
	m   messaging.Message
	err error
}

func newFakeMessenger(clock func() time.Time) *fakeMessenger {
	return &fakeMessenger{clock: clock, byKey: map[string]result{}, refuse: map[string]error{}}
}

func (f *fakeMessenger) Send(_ context.Context, req messaging.SendRequest) (messaging.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if req.IdempotencyKey == "" {
		return messaging.Message{}, &messaging.InvalidError{Field: "idempotency_key", Reason: "required"}
	}
	if r, ok := f.byKey[req.IdempotencyKey]; ok {
		return r.m, r.err
	}
	if f.transient > 0 {
		f.transient--
		return messaging.Message{}, fmt.Errorf("messaging database unavailable")
	}
	name := "text"
	if req.Template != nil {
		name = req.Template.Name
	}
	m := messaging.Message{ID: fmt.Sprintf("msg_%d", len(f.byKey)+1), Status: messaging.StatusSent}
	err := f.refuse[name]
	switch e := err.(type) {
	case *messaging.RefusedError:
		m.Status = messaging.StatusRefused
		cp := *e
		cp.MessageID = m.ID
		err = &cp
	case *messaging.FailedError:
		m.Status = messaging.StatusFailed
		cp := *e
		cp.MessageID = m.ID
		err = &cp
	}
	if err == nil || m.Status == messaging.StatusSent {
		f.calls = append(f.calls, call{req: req, at: f.clock()})
	}
	f.byKey[req.IdempotencyKey] = result{m, err}
	return m, err
}

// sent lists the provider calls as "template:name[params]" or "text:body".
func (f *fakeMessenger) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if c.req.Template != nil {
			t := c.req.Template
			if len(t.Components) > 0 {
				out = append(out, fmt.Sprintf("template:%s%s", t.Name, t.Components))
			} else {
				out = append(out, fmt.Sprintf("template:%s%q", t.Name, t.Params))
			}
			continue
		}
		out = append(out, "text:"+c.req.Text)
	}
	return out
}

func (f *fakeMessenger) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Time
	for _, c := range f.calls {
		out = append(out, c.at)
	}
	return out
}

func (f *fakeMessenger) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.req.IdempotencyKey)
	}
	slices.Sort(out)
	return out
}

// fakeWindow answers from a fixed set of phones with an open window.
type fakeWindow struct{ open map[string]bool }

func (w fakeWindow) WindowOpen(_ context.Context, _, _, phone string, _ time.Time) (bool, error) {
	return w.open[phone], nil
}

// fixedSettings always loads the same settings.
type fixedSettings struct {
	s     Settings
	found bool
}

func (f fixedSettings) Load(context.Context, string, string) (Settings, bool, error) {
	return f.s, f.found, nil
}
