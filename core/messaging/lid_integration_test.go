package messaging

import (
	"context"
	"errors"
	"testing"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/store"
)

// TestIntegrationLIDOnlyRecipient: a contact known only by its LID (phone
// NULL, as core/contacts creates it for a linked device's sender without a
// number) resolves with an empty phone and its LID, consent is kept by its
// contact id, and a Cloud API number refuses to send to it before writing a
// ledger row.
func TestIntegrationLIDOnlyRecipient(t *testing.T) {
	t.Parallel()
	r := newPGRig(t)
	ctx := context.Background()
	const lid = "123456789012345@lid"
	contactID := store.NewID("ct")
	if _, err := r.pool.Exec(ctx, `INSERT INTO contacts (id, tenant_id, phone, lid) VALUES ($1, $2, NULL, $3)`, contactID, r.tenantID, lid); err != nil {
		t.Fatal(err)
	}
	rc, err := NewSQLDirectory(r.pool).Recipient(ctx, r.tenantID, r.connID, "", contactID)
	if err != nil {
		t.Fatal(err)
	}
	if rc.ContactID != contactID || rc.Phone != "" || rc.LID != lid || rc.ConversationID == "" {
		t.Fatalf("recipient %+v", rc)
	}

	svc, cs := newPGService(t, r, &loggingInvoker{})
	// Consent by contact id: an opt-out is recorded and read back; the
	// missing phone is "" in the record, and a service message is refused
	// only because of it (no exclusion can match a contact without phone).
	recs, err := cs.Record(ctx, r.tenantID, consent.NewRecord{ContactID: contactID, Purposes: consent.LedgerPurposes,
		Action: consent.ActionOptOut, Source: "api"})
	if err != nil || len(recs) == 0 || recs[0].Phone != "" {
		t.Fatalf("Record = %+v, %v", recs, err)
	}
	dec, err := cs.Check(ctx, consent.CheckRequest{TenantID: r.tenantID, ContactID: contactID, Purpose: consent.PurposeService})
	if err != nil || dec.Allowed || dec.Reason != consent.ReasonOptedOut {
		t.Fatalf("Check = %+v, %v; want opted_out", dec, err)
	}

	_, err = svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, ContactID: contactID, Kind: KindText,
		Text: "hello", IdempotencyKey: "lid-1"})
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Reason != "this contact is known only by its WhatsApp LID; answer from a linked-device number" {
		t.Fatalf("Send from a Cloud API number = %v; want the LID-only invalid error", err)
	}
	var rows int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, r.tenantID).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("ledger rows = %d, %v; want none", rows, err)
	}
}
