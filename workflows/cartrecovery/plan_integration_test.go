package cartrecovery

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationCartPlansUseKeys: a cart read for a checkout event keeps a
// plan that uses the cart's key when the plan was made on an empty table
// (testenv.CheckCachedPlans), with 5,000 carts.
func TestIntegrationCartPlansUseKeys(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	grow := func() {
		if _, err := e.pool.Exec(ctx, `
INSERT INTO cart_recoveries (tenant_id, connection_id, checkout_id, workflow_id, phone, first_seen_at)
SELECT 'ten_a', 'con_shop', 'c' || i, 'wf' || i, '+39340' || lpad(i::text, 7, '0'), now()
FROM generate_series(1, 5000) i`); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckCachedPlans(t, e.pool, grow, testenv.CachedPlanCheck{
		Name: "cart status", SQL: cartStatusSQL, Types: []string{"text", "text", "text"},
		Args: []string{"'ten_a'", "'con_shop'", "'c4321'"}, MaxBuffers: 10,
	})
}
