package ordernotify

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationOrderPlansUseKeys: the statements that read an order's rows
// for every order event keep plans that use the primary keys when the plans
// were made on empty tables (testenv.CheckCachedPlans), with 5,000 orders.
func TestIntegrationOrderPlansUseKeys(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	grow := func() {
		if _, err := pool.Exec(ctx, `
WITH o AS (
    INSERT INTO order_notify_orders (tenant_id, connection_id, order_id, workflow_id)
    SELECT 'ten_a', 'con_shop', 'o' || i, 'wf' || i FROM generate_series(1, 5000) i
    RETURNING order_id
)
INSERT INTO order_notifications (tenant_id, connection_id, order_id, kind, status)
SELECT 'ten_a', 'con_shop', order_id, 'confirmation', 'sent' FROM o`); err != nil {
			t.Fatal(err)
		}
	}
	order := []string{"'ten_a'", "'con_shop'", "'o4321'"}
	testenv.CheckCachedPlans(t, pool, grow,
		testenv.CachedPlanCheck{Name: "stage", SQL: stageSQL, Types: []string{"text", "text", "text"},
			Args: order, MaxBuffers: 10},
		testenv.CachedPlanCheck{Name: "handled kinds", SQL: handledKindsSQL, Types: []string{"text", "text", "text"},
			Args: order, MaxBuffers: 10},
		testenv.CachedPlanCheck{Name: "notification", SQL: notificationSQL, Types: []string{"text", "text", "text", "text"},
			Args: append(order, "'confirmation'"), MaxBuffers: 10},
	)
}
