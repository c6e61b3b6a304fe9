package messaging

import (
	"context"
	"fmt"
	"testing"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationLedgerPlansUseKeys: the ledger statements that run for
// every send and every status keep plans that find their row by key when
// the plans were made on empty tables (testenv.CheckCachedPlans).
func TestIntegrationLedgerPlansUseKeys(t *testing.T) {
	r := newPGRig(t)
	ctx := context.Background()
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	lit := func(s string) string { return "'" + s + "'" }
	ten, con := lit(r.tenantID), lit(r.connID)
	grow := func() {
		if _, err := r.pool.Exec(ctx, `
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
                      idempotency_key, provider_message_id, status)
SELECT 'msg_' || cv.id, $1, cv.id, cv.contact_id, $2, 'out', 'text', '{}', 'key_' || cv.id, 'wamid.' || cv.id, 'sending' FROM cv`,
			r.tenantID, r.connID); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckCachedPlans(t, conn.Conn(), grow,
		testenv.CachedPlanCheck{Name: "status by ledger id", SQL: statusByLedgerIDSQL,
			Types: []string{"text", "text", "text"}, Args: []string{lit("msg_cv_ct_p4321"), ten, con}, MaxBuffers: 12},
		testenv.CachedPlanCheck{Name: "status by wamid", SQL: statusByWAMIDSQL,
			Types: []string{"text", "text", "text"}, Args: []string{con, lit("wamid.cv_ct_p4321"), ten}, MaxBuffers: 12},
		testenv.CachedPlanCheck{Name: "ledger row by id", SQL: getSQL,
			Types: []string{"text", "text"}, Args: []string{ten, lit("msg_cv_ct_p4322")}, MaxBuffers: 12},
		testenv.CachedPlanCheck{Name: "ledger row by key", SQL: byKeySQL,
			Types: []string{"text", "text"}, Args: []string{ten, lit("key_cv_ct_p4323")}, MaxBuffers: 12},
		testenv.CachedPlanCheck{Name: "mark sent", SQL: markSentBatch,
			Types: []string{"text[]", "text[]", "text[]", "timestamptz[]"},
			Args:  []string{fmt.Sprintf("ARRAY[%s]", ten), "ARRAY['msg_cv_ct_p4324']", "ARRAY['wamid.x']", "ARRAY[now()]"}, MaxBuffers: 40},
	)
}
