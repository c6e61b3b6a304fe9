package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// owners is a fixed view of who holds which session.
type owners struct {
	held map[string]bool   // held by this node
	urls map[string]string // holder's URL by connection
}

func (o owners) Holds(id string) bool { return o.held[id] }

func (o owners) OwnerURL(_ context.Context, id string) (string, error) {
	if u, ok := o.urls[id]; ok {
		return u, nil
	}
	return "", errors.New("no live lease")
}

// sessionNode is one node: an Invoker over a session connector's fake plugin.
func sessionNode(t *testing.T, err error) (*Invoker, *fakeClient) {
	t.Helper()
	m := sdk.Manifest{Name: "device", Version: "1", Sessions: true, Actions: []sdk.Action{{Name: "send"}}}
	client := &fakeClient{manifest: m, err: err}
	conns := fakeConns{"con_d": {ID: "con_d", TenantID: "ten_1", Connector: "device", Status: "active"}}
	return New(conns, fakeConnectors{client: client}), client
}

func TestForwardedSessionCalls(t *testing.T) {
	t.Parallel()
	key := DeriveInternalKey([]byte("0123456789abcdef0123456789abcdef"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	call := Call{TenantID: "ten_1", ConnectionID: "con_d", Action: "send", Params: json.RawMessage(`{"to":"+39"}`), IdempotencyKey: "k1"}

	t.Run("holder runs it, another node forwards with the answer unchanged", func(t *testing.T) {
		t.Parallel()
		holder, holderPlugin := sessionNode(t, nil)
		holder.RouteSessions(owners{held: map[string]bool{"con_d": true}}, NewForwarder(key))
		srv := httptest.NewServer(InternalHandler(holder, key, log))
		defer srv.Close()

		other, otherPlugin := sessionNode(t, nil)
		other.RouteSessions(owners{urls: map[string]string{"con_d": srv.URL}}, NewForwarder(key))
		out, err := other.Invoke(t.Context(), call)
		if err != nil || string(out) != `{"ok":true}` {
			t.Fatalf("Invoke = %s, %v; want the holder's result", out, err)
		}
		if len(otherPlugin.calls) != 0 || len(holderPlugin.calls) != 1 || holderPlugin.calls[0].IdempotencyKey != "k1" {
			t.Fatalf("calls: here %d, at the holder %+v; want one at the holder with the key", len(otherPlugin.calls), holderPlugin.calls)
		}
	})

	t.Run("a connector error keeps its kind, code and retry-after across nodes", func(t *testing.T) {
		t.Parallel()
		holder, _ := sessionNode(t, &sdk.Error{Kind: sdk.KindRateLimited, Code: "rate", Message: "slow down", RetryAfter: 7 * time.Second})
		holder.RouteSessions(owners{held: map[string]bool{"con_d": true}}, NewForwarder(key))
		srv := httptest.NewServer(InternalHandler(holder, key, log))
		defer srv.Close()
		other, _ := sessionNode(t, nil)
		other.RouteSessions(owners{urls: map[string]string{"con_d": srv.URL}}, NewForwarder(key))
		_, err := other.Invoke(t.Context(), call)
		var se *sdk.Error
		if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.Code != "rate" || se.RetryAfter != 7*time.Second {
			t.Fatalf("Invoke error = %v; want rate_limited, code rate, retry after 7s", err)
		}
	})

	t.Run("a node that lost the session refuses a forwarded call as retryable", func(t *testing.T) {
		t.Parallel()
		stale, stalePlugin := sessionNode(t, nil)
		stale.RouteSessions(owners{}, NewForwarder(key))
		srv := httptest.NewServer(InternalHandler(stale, key, log))
		defer srv.Close()
		other, _ := sessionNode(t, nil)
		other.RouteSessions(owners{urls: map[string]string{"con_d": srv.URL}}, NewForwarder(key))
		_, err := other.Invoke(t.Context(), call)
		if k := sdk.KindOf(err); k != sdk.KindRetryable || !strings.Contains(err.Error(), "no longer holds") || len(stalePlugin.calls) != 0 {
			t.Fatalf("Invoke error = %v (kind %v), plugin calls %d; want retryable, not run", err, k, len(stalePlugin.calls))
		}
	})

	t.Run("no holder: retryable session_not_held without a call", func(t *testing.T) {
		t.Parallel()
		inv, plugin := sessionNode(t, nil)
		inv.RouteSessions(owners{}, NewForwarder(key))
		_, err := inv.Invoke(t.Context(), call)
		var se *sdk.Error
		if !errors.As(err, &se) || se.Kind != sdk.KindRetryable || se.Code != sdk.CodeSessionNotHeld || len(plugin.calls) != 0 {
			t.Fatalf("Invoke error = %v; want retryable session_not_held", err)
		}
	})

	t.Run("bad signature, stale timestamp and wrong key are refused", func(t *testing.T) {
		t.Parallel()
		holder, plugin := sessionNode(t, nil)
		holder.RouteSessions(owners{held: map[string]bool{"con_d": true}}, NewForwarder(key))
		srv := httptest.NewServer(InternalHandler(holder, key, log))
		defer srv.Close()
		body := `{"tenant_id":"ten_1","connection_id":"con_d","action":"send"}`
		old := "1000000000"
		for name, hdr := range map[string][2]string{
			"no signature":  {"", ""},
			"wrong key":     {now(), sign([]byte("other"), now(), []byte(body))},
			"old timestamp": {old, sign(key, old, []byte(body))},
		} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+InternalPath, strings.NewReader(body))
			req.Header.Set(headerTimestamp, hdr[0])
			req.Header.Set(headerSignature, hdr[1])
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401", name, res.StatusCode)
			}
		}
		if len(plugin.calls) != 0 {
			t.Fatalf("refused calls reached the plugin: %d", len(plugin.calls))
		}
		// A connection of another tenant is refused as not found.
		other, _ := sessionNode(t, nil)
		other.RouteSessions(owners{urls: map[string]string{"con_d": srv.URL}}, NewForwarder(key))
		holder.conns = fakeConns{"con_d": store.Connection{ID: "con_d", TenantID: "ten_2", Connector: "device", Status: "active"}}
		if _, err := holder.InvokeLocal(t.Context(), call); sdk.KindOf(err) != sdk.KindNotFound {
			t.Fatalf("another tenant's connection: %v; want not found", err)
		}
	})
}

func now() string { return strconv.FormatInt(time.Now().Unix(), 10) }
