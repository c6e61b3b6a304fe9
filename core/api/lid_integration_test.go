package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
)

// TestIntegrationLIDOnlyContact: a contact a linked device knows only by its
// LID is shown without a phone and with its lid, as a contact and as the
// contact of its conversation.
func TestIntegrationLIDOnlyContact(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const lid = "123456789012345@lid"
	payload, _ := json.Marshal(map[string]any{"phone_number_id": "+393330000009", "from": "", "lid": lid, "profile_name": "Anon",
		"message_id": "wamid.API_LID", "timestamp": time.Now().UTC().Format(time.RFC3339), "type": "text", "text": "hi"})
	res, err := f.inbox.svc.ApplyInbound(context.Background(), dispatch.Event{TenantID: f.tenantA, ConnectionID: f.inbox.waConnA,
		Connector: "linkeddevice", Type: contacts.EventMessageReceived, Payload: payload, OccurredAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ct := decode[map[string]any](t, f.do(t, "GET", "/v1/contacts/"+res.ContactID, "a-read", ""), 200)
	if _, ok := ct["phone"]; ok || ct["lid"] != lid || ct["name"] != "Anon" {
		t.Errorf("contact %v; want no phone, lid %s", ct, lid)
	}
	conv := decode[struct {
		Contact map[string]any `json:"contact"`
	}](t, f.do(t, "GET", "/v1/conversations/"+res.ConversationID, "a-read", ""), 200)
	if _, ok := conv.Contact["phone"]; ok || conv.Contact["lid"] != lid || conv.Contact["id"] != res.ContactID {
		t.Errorf("conversation contact %v; want no phone, lid %s", conv.Contact, lid)
	}
}
