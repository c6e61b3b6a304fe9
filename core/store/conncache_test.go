package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

type resolverFunc func(ctx context.Context, id string) (Connection, sdk.Config, error)

func (f resolverFunc) ResolvedConnection(ctx context.Context, id string) (Connection, sdk.Config, error) {
	return f(ctx, id)
}

func TestConnectionCache(t *testing.T) {
	t.Parallel()
	calls := 0
	var next resolverFunc = func(_ context.Context, id string) (Connection, sdk.Config, error) {
		calls++
		if id == "missing" {
			return Connection{}, nil, ErrNotFound
		}
		return Connection{ID: id, Status: fmt.Sprint(calls)}, nil, nil
	}
	c := NewConnectionCache(next, time.Minute)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	get := func(id string) string {
		conn, _, err := c.ResolvedConnection(ctx, id)
		if err != nil {
			return err.Error()
		}
		return conn.Status
	}
	// A hit is reused, a miss is asked again every time, an expired entry is
	// asked again.
	got := []string{get("a"), get("a"), get("missing"), get("missing")}
	now = now.Add(2 * time.Minute)
	got = append(got, get("a"))
	want := []string{"1", "1", "not found", "not found", "4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cached answers (-want +got):\n%s", diff)
	}
	if !errors.Is(func() error { _, _, err := c.ResolvedConnection(ctx, "missing"); return err }(), ErrNotFound) {
		t.Error("a miss lost its ErrNotFound")
	}
}
