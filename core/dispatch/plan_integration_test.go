package dispatch

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationOutboxPlansUseKeys: the outbox statements that run for
// every batch keep plans that find their rows by key or by the pending index
// when the plans were made on an empty table (testenv.CheckCachedPlans),
// with 50,000 events of 1 kB, 49,900 of them already dispatched: a scan of
// the table would touch some 7,000 buffers.
func TestIntegrationOutboxPlansUseKeys(t *testing.T) {
	pool := newDB(t)
	ctx := context.Background()
	grow := func() {
		if _, err := pool.Exec(ctx, `
INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, payload)
SELECT 'ten_1', 'con_1', 'evt_' || i, 'thing.happened', now(), jsonb_build_object('pad', repeat('x', 1000))
FROM generate_series(1, 50000) i;
UPDATE event_dispatch SET dispatched_at = now() WHERE event_id <= 49900`); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckCachedPlans(t, pool, grow,
		testenv.CachedPlanCheck{Name: "claim", SQL: claimEvents, Types: []string{"int", "bigint"},
			Args: []string{"100", "20000"}, MaxBuffers: 4000},
		testenv.CachedPlanCheck{Name: "mark done", SQL: markDone, Types: []string{"bigint[]", "text[]"},
			Args: []string{"ARRAY[49950, 49951]::bigint[]", "ARRAY['', '']"}, MaxBuffers: 200},
		testenv.CachedPlanCheck{Name: "mark retry", SQL: markRetry, Types: []string{"bigint[]", "bigint[]", "text[]"},
			Args: []string{"ARRAY[49960]::bigint[]", "ARRAY[1000]::bigint[]", "ARRAY['boom']"}, MaxBuffers: 100},
		testenv.CachedPlanCheck{Name: "renew lease", SQL: renewLease, Types: []string{"bigint[]", "bigint"},
			Args: []string{"ARRAY[49970, 49971]::bigint[]", "20000"}, MaxBuffers: 200},
	)
}
