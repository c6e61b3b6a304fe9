package messaging

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// linkedNumber adds a linked-device number (connection, number row and
// session state) to the rig's tenant.
func (r *pgRig) linkedNumber(t testing.TB, state string, modules string) string {
	t.Helper()
	ctx := context.Background()
	id := store.NewID("con")
	if _, err := r.pool.Exec(ctx, `INSERT INTO connections (id, tenant_id, connector, name) VALUES ($1, $2, 'linkeddevice', 'Support')`, id, r.tenantID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO numbers (id, tenant_id, kind, label, connection_id, modules) VALUES ($1, $2, 'linked_device', 'Support', $3, $4)`,
		store.NewID("num"), r.tenantID, id, modules); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO session_states (connection_id, tenant_id, state, phone) VALUES ($1, $2, $3, '+393330009999')`, id, r.tenantID, state); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIntegrationLinkedDeviceNumbers(t *testing.T) {
	t.Parallel()
	r := newPGRig(t)
	ctx := t.Context()
	numbers := SQLNumbers{Pool: r.pool}

	// Only the Cloud API number exists: any send goes there.
	if got, err := numbers.Choose(ctx, r.tenantID, ModuleAutomations, false); err != nil || got != r.connID {
		t.Fatalf("Choose with one Cloud API number = %q, %v; want %s", got, err, r.connID)
	}
	// A disconnected linked device is not chosen; a connected one is, but
	// not for a template, and not for a module it has switched off.
	r.linkedNumber(t, "disconnected", `{"automations": true, "campaigns": true}`)
	linked := r.linkedNumber(t, "connected", `{"automations": true, "campaigns": false}`)
	for _, c := range []struct {
		module    Module
		cloudOnly bool
		want      string
	}{
		{ModuleAutomations, false, linked},
		{"", false, linked},
		{ModuleAutomations, true, r.connID},
		{ModuleCampaigns, false, r.connID},
	} {
		if got, err := numbers.Choose(ctx, r.tenantID, c.module, c.cloudOnly); err != nil || got != c.want {
			t.Errorf("Choose(%q, cloudOnly %v) = %q, %v; want %s", c.module, c.cloudOnly, got, err, c.want)
		}
	}
	if on, err := numbers.ModuleEnabled(ctx, r.tenantID, linked, ModuleCampaigns); err != nil || on {
		t.Fatalf("ModuleEnabled(campaigns) = %v, %v; want off", on, err)
	}
	if _, err := numbers.Choose(ctx, "ten_other", "", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Choose for a tenant without numbers = %v; want ErrNotFound", err)
	}

	// A send bound to any number goes from the linked device with an id
	// fixed before the call; a receipt finds it even though the provider's
	// answer was lost (the call failed as if the process had died).
	inv := &loggingInvoker{fail: func(c invoke.Call) error {
		return &sdk.Error{Kind: sdk.KindRetryable, Message: "connection reset mid-call"}
	}}
	svc, _ := newPGService(t, r, inv)
	m, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, To: "+393331110000", Kind: KindText, Text: "ciao",
		IdempotencyKey: "linked-1", Module: ModuleAutomations})
	if !errors.Is(err, ErrOutcomeUnknown) || m.ConnectionID != linked || m.ProviderMessageID != LinkedMessageID(m.ID) {
		t.Fatalf("Send = %+v, %v; want outcome unknown on %s with its id recorded", m, err, linked)
	}
	ev := r.statusEvent(1, "", LinkedMessageID(m.ID), "played", time.Now())
	ev.ConnectionID, ev.Connector = linked, ConnectorLinkedDevice
	r.apply(t, ev)
	got, err := svc.Get(ctx, r.tenantID, m.ID)
	if err != nil || got.Status != StatusRead {
		t.Fatalf("after a played receipt: %s, %v; want read", got.Status, err)
	}

	// The module switch refuses a send bound to the number itself.
	_, err = svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: linked, To: "+393331110001", Kind: KindText,
		Text: "promo", IdempotencyKey: "linked-2", Module: ModuleCampaigns})
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.Reason != ReasonModuleDisabled {
		t.Fatalf("Send with campaigns off = %v; want refused module_disabled", err)
	}

	// First contacts are counted per day; someone who wrote is not one.
	nc := SQLNewContacts{Pool: r.pool}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if n, err := nc.CountSince(ctx, r.tenantID, linked, day); err != nil || n != 1 {
		t.Fatalf("CountSince = %d, %v; want 1 (the first send; the refused one does not count)", n, err)
	}
}
