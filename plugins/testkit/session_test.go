package testkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// sessionKeeper is a session connector that reports from a goroutine, as a
// real one does from its provider's event stream, and closes a session when
// the host says this node no longer holds it.
type sessionKeeper struct {
	host sdk.Host

	mu     sync.Mutex
	open   map[string]chan struct{}
	closed []string
}

func (k *sessionKeeper) Manifest() sdk.Manifest {
	return sdk.Manifest{Name: "keeper", Version: "1", Events: []sdk.EventType{{Type: "message.received"}}}
}

var fullUpdate = sdk.SessionUpdate{
	State: sdk.SessionConnected, Reason: "ok", RetryAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	BannedUntil: time.Date(2026, 2, 2, 3, 4, 5, 0, time.UTC), QRCode: "2@abc", QRExpiresAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
	PairingCode: "ABCD-EFGH", PhoneSeenAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	Account: &sdk.SessionAccount{Phone: "+393331234567", JID: "393331234567:7@s.whatsapp.net", LID: "1234@lid", PushName: "Shop", Platform: "android"},
}

func (k *sessionKeeper) OpenSession(_ context.Context, conn sdk.Connection) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.open[conn.ID]; ok {
		return nil
	}
	stop := make(chan struct{})
	k.open[conn.ID] = stop
	go func() {
		ctx := context.Background()
		for {
			err := k.host.UpdateSession(ctx, conn.ID, fullUpdate)
			if err == nil {
				err = k.host.Signal(ctx, conn.ID, sdk.Signal{Kind: "presence", Payload: json.RawMessage(`{"available":true}`), At: fullUpdate.RetryAt})
			}
			var se *sdk.Error
			if errors.As(err, &se) && se.Code == sdk.CodeSessionNotHeld {
				_ = k.CloseSession(ctx, conn.ID)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return nil
}

func (k *sessionKeeper) CloseSession(_ context.Context, id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if stop, ok := k.open[id]; ok {
		close(stop)
		delete(k.open, id)
		k.closed = append(k.closed, id)
	}
	return nil
}

func TestSessionsCrossTheBoundary(t *testing.T) {
	t.Parallel()
	host := testkit.NewMemoryHost()
	keeper := &sessionKeeper{open: map[string]chan struct{}{}}
	h := testkit.Start(t, func(hs sdk.Host) (sdk.Connector, error) { keeper.host = hs; return keeper, nil }, testkit.WithHost(host))
	if !h.Manifest().Sessions {
		t.Fatal("the manifest does not say the connector holds sessions; the SDK sets it")
	}
	conn := sdk.Connection{ID: "con_1", TenantID: "ten_1"}
	if err := h.OpenSession(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if !host.WaitFor(ctx, func() bool { return len(host.Signals("con_1")) > 0 }) {
		t.Fatal("no session report reached the host")
	}
	got := host.SessionUpdates("con_1")[0]
	if diff := cmp.Diff(fullUpdate, got); diff != "" {
		t.Fatalf("session update across the boundary (-sent +received):\n%s", diff)
	}
	sig := host.Signals("con_1")[0]
	if sig.Kind != "presence" || string(sig.Payload) != `{"available":true}` || !sig.At.Equal(fullUpdate.RetryAt) {
		t.Fatalf("signal = %+v", sig)
	}

	// The node loses the session: the connector hears it and closes it.
	host.ReleaseSession("con_1", false)
	// Refused reports are not recorded, so WaitFor would not wake: poll.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		keeper.mu.Lock()
		n := len(keeper.closed)
		keeper.mu.Unlock()
		if n > 0 {
			break
		}
	}
	keeper.mu.Lock()
	closed := keeper.closed
	keeper.mu.Unlock()
	if len(closed) != 1 {
		t.Fatalf("closed sessions %v; want con_1 closed after the host refused its report", closed)
	}
	if err := h.CloseSession(t.Context(), "con_1"); err != nil {
		t.Fatalf("closing a closed session: %v; want nil (idempotent)", err)
	}
}

func TestSessionReportsAreValidated(t *testing.T) {
	t.Parallel()
	host := testkit.NewMemoryHost()
	var hs sdk.Host
	testkit.Start(t, func(h sdk.Host) (sdk.Connector, error) {
		hs = h
		return &sessionKeeper{open: map[string]chan struct{}{}}, nil
	}, testkit.WithHost(host))
	for name, u := range map[string]sdk.SessionUpdate{
		"unknown state":   {State: "sleeping"},
		"huge QR code":    {State: sdk.SessionPairing, QRCode: string(make([]byte, 3000))},
		"no state at all": {},
	} {
		err := hs.UpdateSession(t.Context(), "con_1", u)
		if k, _ := testkit.ErrorKind(err); k != sdk.KindInvalid {
			t.Errorf("%s: UpdateSession = %v; want invalid", name, err)
		}
	}
	if n := len(host.SessionUpdates("con_1")); n != 0 {
		t.Fatalf("%d invalid reports reached the host", n)
	}
	if err := hs.Signal(t.Context(), "con_1", sdk.Signal{Payload: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("a signal without a kind was accepted")
	}
}

// A connector without sessions answers OpenSession with Invalid.
func TestOpenSessionWithoutSessions(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, func(sdk.Host) (sdk.Connector, error) { return &mirror{}, nil })
	if h.Manifest().Sessions {
		t.Fatal("a connector without SessionHolder has Sessions set")
	}
	err := h.OpenSession(t.Context(), sdk.Connection{ID: "con_1"})
	if k, _ := testkit.ErrorKind(err); k != sdk.KindInvalid {
		t.Fatalf("OpenSession = %v; want invalid", err)
	}
	if err := h.CloseSession(t.Context(), "con_1"); err != nil {
		t.Fatalf("CloseSession = %v; want nil", err)
	}
}
