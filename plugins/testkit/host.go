package testkit

import (
	"context"
	"slices"
	"sync"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// MemoryHost is an in-memory [sdk.Host] that behaves like the Ponte host's
// services: events are deduplicated per connection and dedupe key, events of
// types the manifest does not declare are refused, and state values are
// limited to [sdk.MaxStateSize].
type MemoryHost struct {
	mu       sync.Mutex
	declared map[string]bool // nil until the harness knows the manifest
	events   map[string][]sdk.Event
	seen     map[string]map[string]bool
	state    map[string]map[string][]byte
	emitErr  error
	sessions map[string][]sdk.SessionUpdate
	signals  map[string][]sdk.Signal
	notHeld  map[string]bool
	changed  chan struct{} // closed and replaced on every recorded call
}

// NewMemoryHost returns an empty host.
func NewMemoryHost() *MemoryHost {
	return &MemoryHost{
		events:   map[string][]sdk.Event{},
		seen:     map[string]map[string]bool{},
		state:    map[string]map[string][]byte{},
		sessions: map[string][]sdk.SessionUpdate{},
		signals:  map[string][]sdk.Signal{},
		notHeld:  map[string]bool{},
		changed:  make(chan struct{}),
	}
}

// notify wakes WaitFor callers; h.mu must be held.
func (h *MemoryHost) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// WaitFor blocks until cond (called with nothing locked) returns true after
// an Emit, UpdateSession or Signal, or ctx ends; it reports whether cond
// became true. Session connectors report from background goroutines, so tests
// wait for what they expect instead of sleeping.
func (h *MemoryHost) WaitFor(ctx context.Context, cond func() bool) bool {
	for {
		h.mu.Lock()
		ch := h.changed
		h.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cond()
		}
	}
}

// ReleaseSession makes the host answer later reports for the connection's
// session as the Ponte host does for a session its node no longer holds: an
// Invalid error with code sdk.CodeSessionNotHeld. Pass held=true to undo.
func (h *MemoryHost) ReleaseSession(connectionID string, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notHeld[connectionID] = !held
}

func (h *MemoryHost) checkHeld(connectionID string) error {
	if h.notHeld[connectionID] {
		return &sdk.Error{Kind: sdk.KindInvalid, Code: sdk.CodeSessionNotHeld, Message: "this node does not hold the session of connection " + connectionID}
	}
	return nil
}

// UpdateSession records a session report.
func (h *MemoryHost) UpdateSession(_ context.Context, connectionID string, u sdk.SessionUpdate) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkHeld(connectionID); err != nil {
		return err
	}
	h.sessions[connectionID] = append(h.sessions[connectionID], u)
	h.notify()
	return nil
}

// SessionUpdates returns the session reports for a connection, in order.
func (h *MemoryHost) SessionUpdates(connectionID string) []sdk.SessionUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sessions[connectionID])
}

// Signal records a signal.
func (h *MemoryHost) Signal(_ context.Context, connectionID string, sig sdk.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkHeld(connectionID); err != nil {
		return err
	}
	h.signals[connectionID] = append(h.signals[connectionID], sig)
	h.notify()
	return nil
}

// Signals returns the signals relayed for a connection, in order.
func (h *MemoryHost) Signals(connectionID string) []sdk.Signal {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.signals[connectionID])
}

var _ sdk.Host = (*MemoryHost)(nil)

func (h *MemoryHost) setManifest(m sdk.Manifest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.declared = map[string]bool{}
	for _, e := range m.Events {
		h.declared[e.Type] = true
	}
}

// FailEmits makes every later Emit return err (nil to stop), to test how a
// connector copes with a host that cannot store events.
func (h *MemoryHost) FailEmits(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitErr = err
}

// Emit records events, skipping those already recorded for the connection
// with the same dedupe key. It refuses the whole batch, recording nothing,
// when an event has no dedupe key or an undeclared type.
func (h *MemoryHost) Emit(_ context.Context, connectionID string, events ...sdk.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.emitErr != nil {
		return h.emitErr
	}
	if err := h.checkHeld(connectionID); err != nil {
		return err
	}
	defer h.notify()
	for i, e := range events {
		if e.DedupeKey == "" {
			return sdk.Invalid("event %d (%s) has no dedupe key", i, e.Type)
		}
		if h.declared != nil && !h.declared[e.Type] {
			return sdk.Invalid("event %d has type %q, which the manifest does not declare", i, e.Type)
		}
	}
	if h.seen[connectionID] == nil {
		h.seen[connectionID] = map[string]bool{}
	}
	for _, e := range events {
		if h.seen[connectionID][e.DedupeKey] {
			continue
		}
		h.seen[connectionID][e.DedupeKey] = true
		h.events[connectionID] = append(h.events[connectionID], e)
	}
	return nil
}

// Events returns the events emitted for a connection, in order.
func (h *MemoryHost) Events(connectionID string) []sdk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events[connectionID])
}

// GetState returns the stored value, or nil when there is none.
func (h *MemoryHost) GetState(_ context.Context, connectionID, key string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.state[connectionID][key]
	if !ok {
		return nil, nil
	}
	return slices.Clone(v), nil
}

// SetState stores a value.
func (h *MemoryHost) SetState(_ context.Context, connectionID, key string, value []byte) error {
	if len(value) > sdk.MaxStateSize {
		return sdk.Invalid("state value of %d bytes is larger than %d", len(value), sdk.MaxStateSize)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state[connectionID] == nil {
		h.state[connectionID] = map[string][]byte{}
	}
	if value == nil {
		value = []byte{}
	}
	h.state[connectionID][key] = slices.Clone(value)
	return nil
}

// State returns the value stored under key for a connection, for assertions.
func (h *MemoryHost) State(connectionID, key string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.state[connectionID][key]
	return slices.Clone(v), ok
}
