package testenv

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// CachedPlanCheck is a statement that runs once per event or message, to be
// checked with CheckCachedPlans.
type CachedPlanCheck struct {
	// Name labels the statement in failures.
	Name string
	// SQL is the statement, with $n parameters.
	SQL string
	// Types are the parameters' SQL types, e.g. "text", "int".
	Types []string
	// Args are the parameters' values as SQL literals ('msg_1', 1, NULL),
	// used once the tables have grown.
	Args []string
	// MaxBuffers bounds the shared buffers one execution may touch.
	MaxBuffers int
}

var buffersHit = regexp.MustCompile(`Buffers: shared hit=(\d+)(?: read=(\d+))?`)

// CheckCachedPlans guards against a hazard of prepared statements: Postgres
// keeps a statement's generic plan, and one made while the tables were empty
// (a new installation, before autovacuum's first ANALYZE) may use any index
// that matches a condition, e.g. a (tenant_id, …) index for "tenant_id = $2
// AND id = $1", which then scans every row of the tenant on every call.
//
// Each statement is prepared on a connection of pool with generic plans
// forced (for that connection's session only) and executed
// once with nulls, so its plan is made on the tables as they are (empty);
// then grow fills them (without ANALYZE), and each statement is executed
// again with its Args under EXPLAIN (ANALYZE, BUFFERS): the cached plan must
// touch at most MaxBuffers buffers. Statements that write do write; give
// them arguments whose effect the test does not mind. The connection is
// closed afterwards rather than returned to the pool.
func CheckCachedPlans(t testing.TB, pool *pgxpool.Pool, grow func(), checks ...CachedPlanCheck) {
	t.Helper()
	ctx := context.Background()
	pc, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquiring a connection: %v", err)
	}
	conn := pc.Hijack() // its session settings and prepared statements must not reach other tests
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`SET plan_cache_mode = force_generic_plan`)
	for i, c := range checks {
		name := fmt.Sprintf("plan_check_%d", i)
		exec(fmt.Sprintf(`PREPARE %s(%s) AS %s`, name, strings.Join(c.Types, ", "), c.SQL))
		nulls := strings.TrimSuffix(strings.Repeat("NULL, ", len(c.Types)), ", ")
		exec(fmt.Sprintf(`EXECUTE %s(%s)`, name, nulls)) // the generic plan is made now
	}
	grow()
	for i, c := range checks {
		rows, err := conn.Query(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE plan_check_%d(%s)`,
			i, strings.Join(c.Args, ", ")))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		plan := strings.Join(lines, "\n")
		// The first counts are the top node's: everything the statement
		// touched.
		m := buffersHit.FindStringSubmatch(plan)
		if m == nil {
			t.Errorf("%s: no buffer counts in its plan:\n%s", c.Name, plan)
			continue
		}
		hit, _ := strconv.Atoi(m[1])
		read, _ := strconv.Atoi(m[2])
		if hit+read > c.MaxBuffers {
			t.Errorf("%s touched %d buffers once the tables had grown, want at most %d; its cached plan:\n%s",
				c.Name, hit+read, c.MaxBuffers, plan)
		}
	}
}
