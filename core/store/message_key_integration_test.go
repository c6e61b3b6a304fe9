package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestIntegrationMessageBelongsToItsConversation: a message's tenant,
// contact and connection are those of its conversation (migration 0017),
// a conversation moved to another contact takes its messages along, and
// deleting the contact deletes its conversations' messages.
func TestIntegrationMessageBelongsToItsConversation(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	pool := s.Pool()
	tn := mustTenant(t, s, "T")
	exec := func(sql string, args ...any) error {
		_, err := pool.Exec(ctx, sql, args...)
		return err
	}
	for _, sql := range []string{
		`INSERT INTO connections (id, tenant_id, connector, name) VALUES ('con_1', $1, 'cloudapi', 'one'), ('con_2', $1, 'cloudapi', 'two')`,
		`INSERT INTO contacts (id, tenant_id, phone) VALUES ('ct_a', $1, '+393330000001'), ('ct_b', $1, '+393330000002')`,
		`INSERT INTO conversations (id, tenant_id, contact_id, connection_id) VALUES ('cv_a', $1, 'ct_a', 'con_1')`,
		`INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, status)
		 VALUES ('msg_ok', $1, 'cv_a', 'ct_a', 'con_1', 'in', 'text', '{}', 'received')`,
	} {
		if err := exec(sql, tn.ID); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for name, vals := range map[string][]any{
		"another contact":    {"ct_b", "con_1"},
		"another connection": {"ct_a", "con_2"},
	} {
		err := exec(`INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, status)
		 VALUES ('msg_bad', $1, 'cv_a', $2, $3, 'in', 'text', '{}', 'received')`, tn.ID, vals[0], vals[1])
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23503" {
			t.Errorf("%s than the conversation's: err = %v, want a foreign key violation", name, err)
		}
	}
	if err := exec(`UPDATE conversations SET contact_id = 'ct_b' WHERE id = 'cv_a'`); err != nil {
		t.Fatal(err)
	}
	var contact string
	if err := pool.QueryRow(ctx, `SELECT contact_id FROM messages WHERE id = 'msg_ok'`).Scan(&contact); err != nil || contact != "ct_b" {
		t.Errorf("after moving the conversation the message's contact is %q (%v), want ct_b", contact, err)
	}
	if err := exec(`DELETE FROM contacts WHERE id = 'ct_b'`); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1`, tn.ID).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d messages left after deleting their contact (%v)", left, err)
	}
}
