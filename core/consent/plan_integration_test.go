package consent

import (
	"context"
	"testing"

	"github.com/ponte-hub/ponte/core/store/storetest"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// TestIntegrationCheckPlansUseKeys: the consent checks, of one contact and
// of a group (which a hold runs with generic plans forced), find each
// contact, exclusion and latest records by key when the plan was made on
// empty tables (testenv.CheckCachedPlans).
func TestIntegrationCheckPlansUseKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	grow := func() {
		storetest.SeedMessages(t, e.st.Pool(), e.tenantA, e.connA, 5000, "in")
		if _, err := e.st.Pool().Exec(ctx, `
INSERT INTO consent_records (tenant_id, contact_id, purpose, action, source, occurred_at)
SELECT $1, 'ct_p' || i, p, 'opt_in', 'import', now() - interval '1 day'
FROM generate_series(1, 5000) i, unnest(ARRAY['marketing', 'utility']) p`, e.tenantA); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Pool().Exec(ctx, `
INSERT INTO exclusions (tenant_id, phone) SELECT $1, '+39340' || lpad(i::text, 7, '0') FROM generate_series(1, 5000, 2) i`, e.tenantA); err != nil {
			t.Fatal(err)
		}
	}
	ten := "'" + e.tenantA + "'"
	testenv.CheckCachedPlans(t, e.st.Pool(), grow,
		testenv.CachedPlanCheck{
			Name: "consent check of a group", SQL: checkManySQL, Types: []string{"text[]", "text[]", "text[]"},
			Args:       []string{"ARRAY[" + ten + ", " + ten + ", " + ten + "]", "ARRAY['ct_p4321', 'ct_p4322', 'ct_p17']", "ARRAY['', '+393400004322', '']"},
			MaxBuffers: 60,
		},
		testenv.CachedPlanCheck{
			Name: "consent check of one contact", SQL: checkOneSQL, Types: []string{"text", "text", "text"},
			Args: []string{ten, "'ct_p4321'", "''"}, MaxBuffers: 25,
		})
}
