package contacts_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ponte-hub/ponte/core/contacts"
)

// TestIntegrationApplyInboundPlansUseKeys guards against a plan that made
// applying an inbound message cost O(messages of the tenant). Postgres keeps
// a prepared statement's generic plan, and a plan made while the tables were
// empty (a new installation, before autovacuum's first ANALYZE) can pick any
// index that matches a condition. The unread-count statement is prepared
// here on empty tables with generic plans forced, 5,000 messages are added
// without ANALYZE, and the cached plan must still find its rows by key: a
// few buffers, not a scan of the tenant's messages.
func TestIntegrationApplyInboundPlansUseKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c := conn.Conn()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`SET plan_cache_mode = force_generic_plan`)
	exec(`PREPARE count_unread(text, text, int) AS ` + contacts.CountSQL)
	exec(`EXECUTE count_unread('msg_none', '` + e.tenant + `', 1)`) // the generic plan is made now, on empty tables

	exec(`
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
		e.tenant, e.conn)

	rows, err := c.Query(ctx, fmt.Sprintf(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE count_unread('msg_cv_ct_p4321', '%s', 1)`, e.tenant))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	// The top node's buffers count everything the statement read.
	m := regexp.MustCompile(`Buffers: shared hit=(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no buffer counts in the plan:\n%s", text)
	}
	if hit, _ := strconv.Atoi(m[1]); hit > 40 {
		t.Errorf("the unread count read %d buffers with 5,000 messages; want a few (lookups by key):\n%s", hit, text)
	}
	for _, want := range []string{"messages_pkey", "conversations_pkey"} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan does not use %s:\n%s", want, text)
		}
	}
	var unread int
	if err := e.pool.QueryRow(ctx, `SELECT unread_count FROM conversations WHERE id = 'cv_ct_p4321'`).Scan(&unread); err != nil || unread != 1 {
		t.Errorf("unread_count %d (%v), want 1", unread, err)
	}
}
