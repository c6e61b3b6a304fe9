package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/store"
)

func TestIntegrationPollTargets(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	t1, t2 := mustTenant(t, s, "one"), mustTenant(t, s, "two")
	create := func(tenant, connector string) store.Connection {
		t.Helper()
		c, err := s.CreateConnection(ctx, tenant, store.NewConnection{Connector: connector, Name: connector, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatalf("CreateConnection: %v", err)
		}
		return c
	}
	a := create(t1.ID, "calendar")
	b := create(t2.ID, "calendar")
	c := create(t2.ID, "feed")
	create(t1.ID, "stripe")
	off := create(t1.ID, "calendar")
	disabled := store.StatusDisabled
	if _, err := s.UpdateConnection(ctx, t1.ID, off.ID, store.ConnectionUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(ctx, b.ID, "host.schedule", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(ctx, a.ID, "other.key", []byte(`x`)); err != nil {
		t.Fatal(err)
	}

	type row struct {
		ID, Tenant, Connector, State string
		HasState                     bool
	}
	list := func(connectors ...string) []row {
		t.Helper()
		got, err := s.PollTargets(ctx, connectors, "host.schedule")
		if err != nil {
			t.Fatalf("PollTargets: %v", err)
		}
		out := []row{}
		for _, g := range got {
			if g.UpdatedAt.IsZero() {
				t.Errorf("%s: no updated_at", g.ID)
			}
			out = append(out, row{g.ID, g.TenantID, g.Connector, string(g.State), g.State != nil})
		}
		return out
	}
	sorted := func(rows ...row) []row {
		// PollTargets orders by id.
		slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.ID, b.ID) })
		return rows
	}
	want := sorted(
		row{ID: a.ID, Tenant: t1.ID, Connector: "calendar"},
		row{ID: b.ID, Tenant: t2.ID, Connector: "calendar", State: `{"n":1}`, HasState: true},
		row{ID: c.ID, Tenant: t2.ID, Connector: "feed"},
	)
	if diff := cmp.Diff(want, list("calendar", "feed")); diff != "" {
		t.Errorf("calendar and feed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]row{}, list("nothing")); diff != "" {
		t.Errorf("unknown connector (-want +got):\n%s", diff)
	}
	if got, err := s.PollTargets(ctx, nil, "host.schedule"); err != nil || got != nil {
		t.Errorf("no connectors: got %v, %v", got, err)
	}
	if _, err := s.PollTargets(ctx, []string{"feed"}, ""); err == nil {
		t.Error("an empty state key was accepted")
	}
}
