package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

type fakeConns map[string]store.Connection

func (f fakeConns) ResolvedConnection(_ context.Context, id string) (store.Connection, sdk.Config, error) {
	c, ok := f[id]
	if !ok {
		return store.Connection{}, nil, fmt.Errorf("looking up %s: %w", id, store.ErrNotFound)
	}
	return c, sdk.Config(`{"secret_key":"sk_test_x"}`), nil
}

type fakeClient struct {
	pluginhost.Client // panics on methods the tests do not expect
	manifest          sdk.Manifest
	err               error

	mu    sync.Mutex
	calls []sdk.ActionCall
}

func (c *fakeClient) Manifest() sdk.Manifest { return c.manifest }

// ValidateParams checks params against the manifest's schemas, as the
// plugin host does.
func (c *fakeClient) ValidateParams(action string, params json.RawMessage) error {
	v, err := hostrpc.NewParamValidator(c.manifest)
	if err != nil {
		return err
	}
	return v.Validate(action, params)
}

func (c *fakeClient) Invoke(_ context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if err := c.ValidateParams(call.Action, call.Params); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
	if c.err != nil {
		return nil, c.err
	}
	return json.RawMessage(`{"ok":true}`), nil
}

type fakeConnectors struct {
	client *fakeClient
	err    error
}

func (f fakeConnectors) Connector(name string) (pluginhost.Client, error) {
	if f.err != nil {
		return nil, f.err
	}
	if name != f.client.manifest.Name {
		return nil, pluginhost.ErrUnknownConnector
	}
	return f.client, nil
}

const payParams = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["amount"],
  "properties": {"amount": {"type": "integer", "minimum": 1}, "note": {"type": "string"}}
}`

func manifest(version, schema string) sdk.Manifest {
	return sdk.Manifest{
		Name:    "pay",
		Version: version,
		Actions: []sdk.Action{
			{Name: "charge", Params: json.RawMessage(schema)},
			{Name: "ping"},
		},
	}
}

func conns() fakeConns {
	return fakeConns{
		"con_a":   {ID: "con_a", TenantID: "ten_a", Connector: "pay", Status: "active"},
		"con_off": {ID: "con_off", TenantID: "ten_a", Connector: "pay", Status: "disabled"},
		"con_b":   {ID: "con_b", TenantID: "ten_b", Connector: "pay", Status: "active"},
		"con_x":   {ID: "con_x", TenantID: "ten_a", Connector: "gone", Status: "active"},
	}
}

func TestInvokeChecks(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		call       Call
		clientErr  error
		wantKind   sdk.ErrorKind
		wantIs     error
		wantInErr  string
		wantCalled bool
	}{
		"valid call": {
			call:       Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":5}`), IdempotencyKey: "k1"},
			wantCalled: true,
		},
		"action without schema, no params": {
			call:       Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "ping"},
			wantCalled: true,
		},
		"another tenant's connection": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_b", Action: "charge", Params: json.RawMessage(`{"amount":5}`)},
			wantKind: sdk.KindNotFound, wantIs: store.ErrNotFound,
		},
		"missing connection": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_nope", Action: "charge", Params: json.RawMessage(`{"amount":5}`)},
			wantKind: sdk.KindNotFound, wantIs: store.ErrNotFound,
		},
		"disabled connection": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_off", Action: "charge", Params: json.RawMessage(`{"amount":5}`)},
			wantKind: sdk.KindInvalid, wantInErr: "disabled",
		},
		"undeclared action": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "refund", Params: json.RawMessage(`{}`)},
			wantKind: sdk.KindInvalid, wantInErr: `no action "refund"`,
		},
		"params failing the schema": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":0}`)},
			wantKind: sdk.KindInvalid, wantInErr: "/amount",
		},
		"unknown property": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":1,"evil":true}`)},
			wantKind: sdk.KindInvalid, wantInErr: "evil",
		},
		"params not an object": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "ping", Params: json.RawMessage(`[1]`)},
			wantKind: sdk.KindInvalid, wantInErr: "JSON object",
		},
		"params not JSON": {
			call:     Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "ping", Params: json.RawMessage(`{`)},
			wantKind: sdk.KindInvalid, wantInErr: "not valid JSON",
		},
		"connector not installed": {
			call:   Call{TenantID: "ten_a", ConnectionID: "con_x", Action: "charge"},
			wantIs: pluginhost.ErrUnknownConnector,
		},
		"connector's rate limit keeps its kind and delay": {
			call:       Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":5}`)},
			clientErr:  sdk.RateLimited(7*time.Second, "slow down"),
			wantKind:   sdk.KindRateLimited,
			wantCalled: true,
		},
		"plugin down": {
			call:       Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":5}`)},
			clientErr:  fmt.Errorf("calling plugin: %w", pluginhost.ErrUnavailable),
			wantIs:     pluginhost.ErrUnavailable,
			wantCalled: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client := &fakeClient{manifest: manifest("1.0.0", payParams), err: tc.clientErr}
			inv := New(conns(), fakeConnectors{client: client})
			out, err := inv.Invoke(context.Background(), tc.call)
			wantErr := tc.wantKind != sdk.KindUnknown || tc.wantIs != nil || tc.clientErr != nil
			if !wantErr {
				if err != nil {
					t.Fatalf("Invoke: %v", err)
				}
				if diff := cmp.Diff(`{"ok":true}`, string(out)); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			} else {
				if err == nil {
					t.Fatal("Invoke succeeded, want an error")
				}
				if got := sdk.KindOf(err); got != tc.wantKind {
					t.Errorf("kind = %v, want %v (err %v)", got, tc.wantKind, err)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("err = %v, want it to wrap %v", err, tc.wantIs)
				}
				if !strings.Contains(err.Error(), tc.wantInErr) {
					t.Errorf("err = %q, want it to mention %q", err, tc.wantInErr)
				}
			}
			if got := len(client.calls) > 0; got != tc.wantCalled {
				t.Fatalf("connector called = %v, want %v", got, tc.wantCalled)
			}
			if tc.wantCalled {
				want := sdk.ActionCall{
					Connection:     sdk.Connection{ID: tc.call.ConnectionID, TenantID: tc.call.TenantID, Config: sdk.Config(`{"secret_key":"sk_test_x"}`)},
					Action:         tc.call.Action,
					Params:         tc.call.Params,
					IdempotencyKey: tc.call.IdempotencyKey,
				}
				if len(want.Params) == 0 {
					want.Params = json.RawMessage(`{}`)
				}
				if diff := cmp.Diff(want, client.calls[0]); diff != "" {
					t.Errorf("call reaching the connector (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRateLimitDelaySurvives(t *testing.T) {
	t.Parallel()
	client := &fakeClient{manifest: manifest("1", payParams), err: sdk.RateLimited(7*time.Second, "slow down")}
	inv := New(conns(), fakeConnectors{client: client})
	_, err := inv.Invoke(context.Background(), Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":1}`)})
	var serr *sdk.Error
	if !errors.As(err, &serr) || serr.RetryAfter != 7*time.Second {
		t.Fatalf("err = %#v, want a rate-limited *sdk.Error with RetryAfter 7s", err)
	}
}

func TestValidateDoesNotCall(t *testing.T) {
	t.Parallel()
	client := &fakeClient{manifest: manifest("1", payParams)}
	inv := New(conns(), fakeConnectors{client: client})
	ctx := context.Background()
	if err := inv.Validate(ctx, Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{"amount":1}`)}); err != nil {
		t.Fatalf("Validate of a good call: %v", err)
	}
	if err := inv.Validate(ctx, Call{TenantID: "ten_a", ConnectionID: "con_a", Action: "charge", Params: json.RawMessage(`{}`)}); sdk.KindOf(err) != sdk.KindInvalid {
		t.Fatalf("Validate of a call missing amount = %v, want KindInvalid", err)
	}
	if len(client.calls) != 0 {
		t.Fatalf("Validate called the connector %d times", len(client.calls))
	}
}
