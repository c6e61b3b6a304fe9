package sessions

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// TestIntegrationSignalOfLIDOnlyContactReachesItsConversation: typing of a
// contact WhatsApp shows only by LID (no phone in the signal, no phone on
// the contact) reaches the live inbox as an event of its conversation.
func TestIntegrationSignalOfLIDOnlyContactReachesItsConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "lid")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })

	const lid = "123123123123@lid"
	contactID, convID := "ct_lid_"+e.tenant, "cv_lid_"+e.tenant
	if _, err := e.pool.Exec(ctx, `INSERT INTO contacts (id, tenant_id, phone, lid) VALUES ($1, $2, NULL, $3)`, contactID, e.tenant, lid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO conversations (id, tenant_id, contact_id, connection_id) VALUES ($1, $2, $3, $4)`,
		convID, e.tenant, contactID, id); err != nil {
		t.Fatal(err)
	}
	listener, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+contacts.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	if err := a.m.Signal(ctx, conn(e, id), sdk.Signal{Kind: "chat_state", Payload: json.RawMessage(`{"phone":"","lid":"` + lid + `","state":"composing"}`)}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no inbox notification: %v", err)
	}
	var got struct {
		ConversationID string `json:"conversation_id"`
		Kind           string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(n.Payload), &got); err != nil || got.ConversationID != convID || got.Kind != "signal" {
		t.Errorf("inbox notification %s; want a signal of %s", n.Payload, convID)
	}
}
