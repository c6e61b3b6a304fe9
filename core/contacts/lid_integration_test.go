package contacts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
)

// lidInbound is a linked device's message.received from a sender known by
// LID: from is "" when WhatsApp did not reveal the number.
func lidInbound(tenantID, connID, from, lid, wamid string, at time.Time) dispatch.Event {
	p := map[string]any{"phone_number_id": "+393330000001", "from": from, "lid": lid, "profile_name": "Anon " + lid,
		"message_id": wamid, "timestamp": at.UTC().Format(time.RFC3339), "type": "text", "text": "hello"}
	if from != "" {
		p["wa_id"] = from[1:]
	}
	b, _ := json.Marshal(p)
	return dispatch.Event{TenantID: tenantID, ConnectionID: connID, Connector: "linkeddevice", Type: contacts.EventMessageReceived, Payload: b, OccurredAt: at}
}

// contactRow is what the tests check of a contacts row, NULL phone as "".
type contactRow struct {
	Phone, LID, MergedInto string
}

func (e *env) contactRow(t *testing.T, id string) contactRow {
	t.Helper()
	var r contactRow
	if err := e.pool.QueryRow(context.Background(), `SELECT COALESCE(phone, '<null>'), COALESCE(lid, ''), COALESCE(merged_into, '')
		FROM contacts WHERE id = $1`, id).Scan(&r.Phone, &r.LID, &r.MergedInto); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIntegrationApplyInboundLIDOnlySender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const lid = "111222333444555@lid"
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

	// First message from a sender known only by LID: a contact without a
	// phone, its conversation and the message.
	r1, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", lid, "wamid.L1", t0))
	if err != nil {
		t.Fatalf("first LID-only message: %v", err)
	}
	if r1.ContactID == "" || r1.ConversationID == "" || r1.MessageID == "" {
		t.Fatalf("result %+v", r1)
	}
	if diff := cmp.Diff(contactRow{Phone: "<null>", LID: lid}, e.contactRow(t, r1.ContactID)); diff != "" {
		t.Errorf("LID-only contact (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(convState{Unread: 1, LastInbound: t0, LastMessage: t0, Messages: 1}, e.state(t, r1.ConversationID)); diff != "" {
		t.Errorf("conversation (-want +got):\n%s", diff)
	}
	// The API shape: no phone, the LID; also in the inbox list.
	c, err := e.svc.GetContact(ctx, e.tenant, r1.ContactID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Phone != "" || c.LID != lid || c.Name != "Anon "+lid {
		t.Errorf("contact %+v", c)
	}
	b, _ := json.Marshal(c)
	var shown map[string]any
	_ = json.Unmarshal(b, &shown)
	if _, ok := shown["phone"]; ok || shown["lid"] != lid {
		t.Errorf("contact JSON %s: want no phone and the lid", b)
	}
	items, _, err := e.svc.ListConversations(ctx, e.tenant, contacts.ConversationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Contact.Phone != "" || items[0].Contact.LID != lid {
		t.Errorf("inbox %+v", items)
	}
	list, _, err := e.svc.ListContacts(ctx, e.tenant, contacts.ContactFilter{})
	if err != nil || len(list) != 1 || list[0].ID != r1.ContactID {
		t.Errorf("contacts %+v, %v", list, err)
	}

	// Its LID is all it has: clearing it is a validation error.
	empty := ""
	var ve *store.ValidationError
	if _, err := e.svc.UpdateContact(ctx, e.tenant, r1.ContactID, contacts.ContactUpdate{LID: &empty}); !errors.As(err, &ve) || ve.Problems[0].Field != "lid" {
		t.Errorf("clearing the LID of a LID-only contact: %v; want a validation error on lid", err)
	}

	// A redelivery changes nothing; another number makes a second
	// conversation of the same contact.
	again, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", lid, "wamid.L1", t0))
	if err != nil || again.MessageID != "" || again.ContactID != r1.ContactID || again.ConversationID != r1.ConversationID {
		t.Errorf("redelivery = %+v, %v", again, err)
	}
	r2, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn2, "", lid, "wamid.L2", t0.Add(time.Minute)))
	if err != nil || r2.ContactID != r1.ContactID || r2.ConversationID == r1.ConversationID {
		t.Errorf("second number = %+v, %v", r2, err)
	}

	// The number arrives with the LID: it is attached to the LID-only
	// contact, which keeps its conversations.
	const phone = "+393331112222"
	r3, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, phone, lid, "wamid.L3", t0.Add(2*time.Minute)))
	if err != nil {
		t.Fatalf("phone and LID: %v", err)
	}
	if r3.ContactID != r1.ContactID || r3.ConversationID != r1.ConversationID {
		t.Errorf("phone and LID went to %+v, want contact %s conversation %s", r3, r1.ContactID, r1.ConversationID)
	}
	if diff := cmp.Diff(contactRow{Phone: phone, LID: lid}, e.contactRow(t, r1.ContactID)); diff != "" {
		t.Errorf("contact after the phone arrived (-want +got):\n%s", diff)
	}
	if got := e.state(t, r1.ConversationID); got.Messages != 2 || got.Unread != 2 {
		t.Errorf("conversation after the phone arrived %+v", got)
	}
	// From now on the phone and the LID both find it.
	r4, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, phone, "wamid.L4", "text", t0.Add(3*time.Minute), nil))
	if err != nil || r4.ContactID != r1.ContactID {
		t.Errorf("by phone = %+v, %v", r4, err)
	}
	r5, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", lid, "wamid.L5", t0.Add(4*time.Minute)))
	if err != nil || r5.ContactID != r1.ContactID {
		t.Errorf("by LID = %+v, %v", r5, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE tenant_id = $1`, e.tenant).Scan(&n); err != nil || n != 1 {
		t.Errorf("contacts = %d, %v; want 1", n, err)
	}

	// Without from and without lid there is no sender.
	_, err = e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", "", "wamid.L6", t0))
	if !dispatch.IsPermanent(err) {
		t.Errorf("no sender: err = %v, want permanent", err)
	}
}

func TestIntegrationConcurrentFirstLIDMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := e.conn
			if i%2 == 1 {
				conn = e.conn2
			}
			_, err := e.svc.ApplyInbound(context.Background(), lidInbound(e.tenant, conn, "", "999888777@lid", fmt.Sprintf("wamid.%d", i), time.Now()))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var contactsN, convs, msgs int
	if err := e.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM contacts WHERE tenant_id = $1 AND phone IS NULL), (SELECT count(*) FROM conversations WHERE tenant_id = $1),
		       (SELECT count(*) FROM messages WHERE tenant_id = $1)`, e.tenant).Scan(&contactsN, &convs, &msgs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, n}, []int{contactsN, convs, msgs}); diff != "" {
		t.Errorf("LID-only contacts, conversations, messages (-want +got):\n%s", diff)
	}
}

func TestIntegrationLIDOnlyContactMergedIntoPhoneContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const (
		phone = "+393334445555"
		lid   = "555666777@lid"
	)
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	// The customer is known by phone (a Cloud API conversation, say, and
	// one on the linked number).
	known, err := e.svc.ApplyInbound(ctx, inbound(e.tenant, e.conn, phone, "wamid.P1", "text", t0, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The linked number then hears from it by LID only: a separate,
	// LID-only contact, with its own conversations on both numbers.
	anon, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", lid, "wamid.Q1", t0.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	anon2, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn2, "", lid, "wamid.Q2", t0.Add(2*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if anon.ContactID == known.ContactID || anon2.ContactID != anon.ContactID {
		t.Fatalf("LID-only sender went to %s and %s (known %s)", anon.ContactID, anon2.ContactID, known.ContactID)
	}
	// A message brings both: the LID-only contact is linked into the
	// phone's, and no conversation is lost.
	both, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, phone, lid, "wamid.Q3", t0.Add(3*time.Minute)))
	if err != nil {
		t.Fatalf("phone and LID: %v", err)
	}
	if both.ContactID != known.ContactID || both.ConversationID != known.ConversationID {
		t.Errorf("phone and LID went to %+v, want %+v", both, known)
	}
	if diff := cmp.Diff(contactRow{Phone: "<null>", LID: lid, MergedInto: known.ContactID}, e.contactRow(t, anon.ContactID)); diff != "" {
		t.Errorf("LID-only contact after the merge (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(contactRow{Phone: phone, LID: lid}, e.contactRow(t, known.ContactID)); diff != "" {
		t.Errorf("phone contact after the merge (-want +got):\n%s", diff)
	}
	// The conversation on the shared number holds all three messages; the
	// one on the other number moved as it was.
	if got := e.state(t, known.ConversationID); got.Messages != 3 || got.Unread != 3 {
		t.Errorf("merged conversation %+v, want 3 messages, 3 unread", got)
	}
	var owner string
	if err := e.pool.QueryRow(ctx, `SELECT contact_id FROM conversations WHERE id = $1`, anon2.ConversationID).Scan(&owner); err != nil || owner != known.ContactID {
		t.Errorf("other number's conversation belongs to %q, %v; want %s", owner, err, known.ContactID)
	}
	var left int
	if err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM conversations WHERE contact_id = $1) + (SELECT count(*) FROM messages WHERE contact_id = $1)`,
		anon.ContactID).Scan(&left); err != nil || left != 0 {
		t.Errorf("rows left on the LID-only contact = %d, %v", left, err)
	}
	// Redelivering the message that merged changes nothing; the LID alone
	// now finds the surviving contact.
	again, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, phone, lid, "wamid.Q3", t0.Add(3*time.Minute)))
	if err != nil || again.MessageID != "" || again.ContactID != known.ContactID {
		t.Errorf("redelivery = %+v, %v", again, err)
	}
	later, err := e.svc.ApplyInbound(ctx, lidInbound(e.tenant, e.conn, "", lid, "wamid.Q4", t0.Add(4*time.Minute)))
	if err != nil || later.ContactID != known.ContactID || later.ConversationID != known.ConversationID {
		t.Errorf("LID after the merge = %+v, %v", later, err)
	}
	list, _, err := e.svc.ListContacts(ctx, e.tenant, contacts.ContactFilter{})
	if err != nil || len(list) != 1 || list[0].ID != known.ContactID {
		t.Errorf("contacts %+v, %v; want only the phone contact", list, err)
	}
	// The merged LID-only contact cannot be linked again.
	if _, err := e.svc.Link(ctx, e.tenant, anon.ContactID, known.ContactID, ""); !errors.Is(err, contacts.ErrAlreadyMerged) {
		t.Errorf("linking the merged contact again: %v", err)
	}
}
