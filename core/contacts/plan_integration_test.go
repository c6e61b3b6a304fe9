package contacts_test

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/store/storetest"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationApplyInboundPlansUseKeys: the unread count, run for every
// inbound message, keeps a plan that finds its rows by key when the plan was
// made on empty tables (testenv.CheckCachedPlans).
func TestIntegrationApplyInboundPlansUseKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	grow := func() { storetest.SeedMessages(t, e.pool, e.tenant, e.conn, 5000, "in") }
	testenv.CheckCachedPlans(t, e.pool, grow, testenv.CachedPlanCheck{
		Name: "unread count", SQL: contacts.CountSQL, Types: []string{"text", "text", "int"},
		Args: []string{"'msg_cv_ct_p4321'", "'" + e.tenant + "'", "1"}, MaxBuffers: 80,
	})
	var unread int
	if err := e.pool.QueryRow(ctx, `SELECT unread_count FROM conversations WHERE id = 'cv_ct_p4321'`).Scan(&unread); err != nil || unread != 1 {
		t.Errorf("unread_count %d (%v), want 1", unread, err)
	}
}
