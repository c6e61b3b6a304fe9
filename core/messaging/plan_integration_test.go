package messaging

import (
	"fmt"
	"testing"

	"github.com/ponte-hub/ponte/core/store/storetest"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationLedgerPlansUseKeys: the ledger statements that run for
// every send and every status keep plans that find their row by key when
// the plans were made on empty tables (testenv.CheckCachedPlans).
func TestIntegrationLedgerPlansUseKeys(t *testing.T) {
	r := newPGRig(t)
	lit := func(s string) string { return "'" + s + "'" }
	ten, con := lit(r.tenantID), lit(r.connID)
	grow := func() { storetest.SeedMessages(t, r.pool, r.tenantID, r.connID, 5000, "out") }
	testenv.CheckCachedPlans(t, r.pool, grow,
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
