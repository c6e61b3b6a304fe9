package cartrecovery

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationCartPlansUseKeys: a cart read for a checkout event, and the
// reply route's grouped lookup of open carts by phone, keep plans that use
// their keys when the plans were made on an empty table
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
	}, testenv.CachedPlanCheck{
		Name: "open carts by phone", SQL: openCartsSQL, Types: []string{"text[]", "text[]"},
		Args:       []string{"ARRAY['ten_a', 'ten_a', 'ten_b']", "ARRAY['+393400004321', '+393400000007', '+393400004321']"},
		MaxBuffers: 20,
	})
}

// TestIntegrationOpenCartsConcurrent: lookups made at once, grouped into
// shared queries, each get the open carts of their own tenant and phone.
func TestIntegrationOpenCartsConcurrent(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	// Carts of phone i: i%3 open ones in ten_a, one closed; ten_b has one
	// open cart of every phone.
	if _, err := e.pool.Exec(ctx, `
INSERT INTO cart_recoveries (tenant_id, connection_id, checkout_id, workflow_id, phone, status, first_seen_at)
SELECT 'ten_a', 'con_shop', 'a' || i || '_' || k, 'wf', '+39340' || lpad(i::text, 7, '0'), 'waiting', now()
FROM generate_series(0, 59) i, generate_series(1, 3) k WHERE k <= i % 3
UNION ALL
SELECT 'ten_a', 'con_shop', 'closed' || i, 'wf', '+39340' || lpad(i::text, 7, '0'), 'ended', now() FROM generate_series(0, 59) i
UNION ALL
SELECT 'ten_b', 'con_shop_b', 'b' || i, 'wf', '+39340' || lpad(i::text, 7, '0'), 'contacted', now() FROM generate_series(0, 59) i`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 60 {
		for _, tenant := range []string{"ten_a", "ten_b"} {
			wg.Go(func() {
				phone := fmt.Sprintf("+39340%07d", i)
				refs, err := e.db.OpenCarts(ctx, tenant, phone)
				if err != nil {
					t.Error(err)
					return
				}
				var want []CartRef
				if tenant == "ten_a" {
					for k := 1; k <= i%3; k++ {
						want = append(want, CartRef{TenantID: "ten_a", ConnectionID: "con_shop", CheckoutID: fmt.Sprintf("a%d_%d", i, k)})
					}
				} else {
					want = []CartRef{{TenantID: "ten_b", ConnectionID: "con_shop_b", CheckoutID: fmt.Sprintf("b%d", i)}}
				}
				if diff := cmp.Diff(want, refs); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", tenant, phone, diff)
				}
			})
		}
	}
	wg.Wait()
}
