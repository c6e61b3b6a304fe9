package contacts_test

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationApplyInboundPlansUseKeys: the unread count, run for every
// inbound message, keeps a plan that finds its rows by key when the plan was
// made on empty tables (testenv.CheckCachedPlans).
func TestIntegrationApplyInboundPlansUseKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	grow := func() {
		if _, err := e.pool.Exec(ctx, `
WITH ct AS (
    INSERT INTO contacts (id, tenant_id, phone)
    SELECT 'ct_p' || i, $1, '+39340' || lpad(i::text, 7, '0') FROM generate_series(1, 5000) i
    RETURNING id
), cv AS (
    INSERT INTO conversations (id, tenant_id, contact_id, connection_id)
    SELECT 'cv_' || id, $1, id, $2 FROM ct
    RETURNING id, contact_id
)
INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content,
                      provider_message_id, status)
SELECT 'msg_' || cv.id, $1, cv.id, cv.contact_id, $2, 'in', 'text', '{}', 'wamid.' || cv.id, 'received' FROM cv`,
			e.tenant, e.conn); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckCachedPlans(t, conn.Conn(), grow, testenv.CachedPlanCheck{
		Name: "unread count", SQL: contacts.CountSQL, Types: []string{"text", "text", "int"},
		Args: []string{"'msg_cv_ct_p4321'", "'" + e.tenant + "'", "1"}, MaxBuffers: 80,
	})
	var unread int
	if err := e.pool.QueryRow(ctx, `SELECT unread_count FROM conversations WHERE id = 'cv_ct_p4321'`).Scan(&unread); err != nil || unread != 1 {
		t.Errorf("unread_count %d (%v), want 1", unread, err)
	}
}
