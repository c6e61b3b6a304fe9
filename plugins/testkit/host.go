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
}

// NewMemoryHost returns an empty host.
func NewMemoryHost() *MemoryHost {
	return &MemoryHost{
		events: map[string][]sdk.Event{},
		seen:   map[string]map[string]bool{},
		state:  map[string]map[string][]byte{},
	}
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
