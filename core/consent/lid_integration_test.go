package consent

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/dispatch"
)

// TestIntegrationKeywordFromLIDOnlySender: a linked device's STOP from a
// sender known only by LID (from empty) is applied to the contact with that
// LID, once core/contacts has created it; before that the delivery is
// retried, never dropped. A contact without a phone matches no exclusion.
func TestIntegrationKeywordFromLIDOnlySender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const lid = "444555666777@lid"
	payload, _ := json.Marshal(map[string]any{"phone_number_id": "+393330000001", "from": "", "lid": lid,
		"message_id": "wamid.LIDSTOP", "timestamp": time.Now().UTC().Format(time.RFC3339), "type": "text", "text": "STOP"})
	ev := dispatch.Event{ID: 7, TenantID: e.tenantA, ConnectionID: e.connA, Connector: "linkeddevice", DedupeKey: "msg:wamid.LIDSTOP",
		Type: EventMessageReceived, OccurredAt: time.Now().Truncate(time.Second), Payload: payload}

	// No contact has the LID yet: a transient error, retried.
	n, err := e.apply(t, ev)
	if n != 1 || err == nil || dispatch.IsPermanent(err) || !errors.Is(err, errLIDContactNotYet) {
		t.Fatalf("apply before the contact exists = %d, %v; want one delivery failing transiently", n, err)
	}
	// core/contacts creates the LID-only contact from the same event.
	id := randomID("ct")
	if _, err := e.st.Pool().Exec(ctx, `INSERT INTO contacts (id, tenant_id, phone, lid) VALUES ($1, $2, NULL, $3)`, id, e.tenantA, lid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.apply(t, ev); err != nil {
		t.Fatalf("apply after the contact exists: %v", err)
	}
	cc, err := e.svc.ContactConsent(ctx, e.tenantA, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"marketing": "out", "utility": "out"}, cc.States); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	for _, r := range cc.History {
		if r.Phone != "" {
			t.Errorf("record of a contact without phone shows phone %q", r.Phone)
		}
	}
	sent := e.notifier.sent()
	if len(sent) != 1 || sent[0].ContactID != id || sent[0].IdempotencyKey != "consent-confirm:wamid.LIDSTOP" {
		t.Errorf("confirmations %+v", sent)
	}
	if d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: id, Purpose: PurposeService}); err != nil || d.Reason != ReasonOptedOut {
		t.Errorf("service after STOP = %+v, %v; want opted_out", d, err)
	}

	// Neither a phone nor a LID: refused for good.
	bad, _ := json.Marshal(map[string]any{"from": "", "message_id": "wamid.X", "type": "text", "text": "STOP"})
	if _, err := Route(e.svc).Route(ctx, dispatch.Event{TenantID: e.tenantA, Type: EventMessageReceived, Payload: bad}); !dispatch.IsPermanent(err) {
		t.Errorf("keyword without sender: %v; want permanent", err)
	}
}
