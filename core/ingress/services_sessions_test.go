package ingress

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// gate is a SessionGate holding the sessions in held.
type gate struct {
	mu      sync.Mutex
	held    map[string]bool
	updates []sdk.SessionUpdate
	signals []sdk.Signal
}

func (g *gate) CheckHeld(_ context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held[id] {
		return &sdk.Error{Kind: sdk.KindInvalid, Code: sdk.CodeSessionNotHeld, Message: "not held here"}
	}
	return nil
}

func (g *gate) UpdateSession(ctx context.Context, conn store.Connection, u sdk.SessionUpdate) error {
	if err := g.CheckHeld(ctx, conn.ID); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.updates = append(g.updates, u)
	return nil
}

func (g *gate) Signal(ctx context.Context, conn store.Connection, s sdk.Signal) error {
	if err := g.CheckHeld(ctx, conn.ID); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.signals = append(g.signals, s)
	return nil
}

func TestIntegrationServicesOfSessionConnectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, CommitterConfig{}, nil)
	ctx := context.Background()
	e.client.manifest.Sessions = true
	s := NewServices(e.st, e.registry, e.committer, e.st)

	// Without a gate, a session connector's reports are refused.
	if err := s.Emit(ctx, "fake", e.conn, []sdk.Event{ev("e1")}); sdk.KindOf(err) != sdk.KindPermanent {
		t.Fatalf("Emit without a session gate = %v; want permanent", err)
	}
	if err := s.UpdateSession(ctx, "fake", e.conn, sdk.SessionUpdate{State: sdk.SessionConnected}); sdk.KindOf(err) != sdk.KindPermanent {
		t.Fatalf("UpdateSession without a session gate = %v; want permanent", err)
	}

	g := &gate{held: map[string]bool{}}
	s.SetSessions(g)
	// Not held here: nothing is stored and the plugin hears why.
	err := s.Emit(ctx, "fake", e.conn, []sdk.Event{ev("e1")})
	var se *sdk.Error
	if !errors.As(err, &se) || se.Code != sdk.CodeSessionNotHeld {
		t.Fatalf("Emit for a session held elsewhere = %v; want code %s", err, sdk.CodeSessionNotHeld)
	}
	if n := e.count(t, e.conn); n != 0 {
		t.Fatalf("stored %d events of a session held elsewhere", n)
	}
	// Held here: stored, and reports reach the gate.
	g.held[e.conn] = true
	if err := s.Emit(ctx, "fake", e.conn, []sdk.Event{ev("e1")}); err != nil {
		t.Fatalf("Emit: %v", err)
	}
	if n := e.count(t, e.conn); n != 1 {
		t.Fatalf("stored %d events; want 1", n)
	}
	if err := s.UpdateSession(ctx, "fake", e.conn, sdk.SessionUpdate{State: sdk.SessionConnected}); err != nil || len(g.updates) != 1 {
		t.Fatalf("UpdateSession = %v, %d recorded", err, len(g.updates))
	}
	if err := s.Signal(ctx, "fake", e.conn, sdk.Signal{Kind: "presence"}); err != nil || len(g.signals) != 1 {
		t.Fatalf("Signal = %v, %d relayed", err, len(g.signals))
	}
	// Another connector's connection looks missing.
	if err := s.UpdateSession(ctx, "other", e.conn, sdk.SessionUpdate{State: sdk.SessionConnected}); sdk.KindOf(err) != sdk.KindNotFound {
		t.Fatalf("UpdateSession by another connector = %v; want not found", err)
	}
}
