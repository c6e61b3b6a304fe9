// Package storetest builds rows in Ponte's schema for tests of the packages
// that query it: fixtures too large to create through the services one by
// one.
package storetest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedMessages adds n contacts to tenantID, each with a conversation on
// connID and one message in direction ("in" or "out"), in one statement.
// Contact i (1..n) is "ct_p<i>" with phone +39340 and i in seven digits, its
// conversation "cv_ct_p<i>", its message "msg_cv_ct_p<i>" with wamid
// "wamid.cv_ct_p<i>"; an outbound message is "sending" with idempotency key
// "key_cv_ct_p<i>", an inbound one "received".
func SeedMessages(t testing.TB, pool *pgxpool.Pool, tenantID, connID string, n int, direction string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `
WITH ct AS (
    INSERT INTO contacts (id, tenant_id, phone)
    SELECT 'ct_p' || i, $1, '+39340' || lpad(i::text, 7, '0') FROM generate_series(1, $3::int) i
    RETURNING id
), cv AS (
    INSERT INTO conversations (id, tenant_id, contact_id, connection_id)
    SELECT 'cv_' || id, $1, id, $2 FROM ct
    RETURNING id, contact_id
)
INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content,
                      idempotency_key, provider_message_id, status)
SELECT 'msg_' || cv.id, $1, cv.id, cv.contact_id, $2, $4, 'text', '{}',
       CASE WHEN $4 = 'out' THEN 'key_' || cv.id END, 'wamid.' || cv.id,
       CASE WHEN $4 = 'out' THEN 'sending' ELSE 'received' END
FROM cv`, tenantID, connID, n, direction); err != nil {
		t.Fatalf("seeding %d conversations with a message: %v", n, err)
	}
}
