package api_test

import (
	"net/http"
	"testing"

	"github.com/ponte-hub/ponte/core/messaging"
)

func TestIntegrationMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fm := f.msgs.svc

	// Sent: 201 with the ledger row; the key makes a retry return it.
	r := f.do(t, "POST", "/v1/messages", "a-write", f.sendBody(phoneMine, "hello"), "Idempotency-Key", "k1")
	m := decode[messaging.Message](t, r, http.StatusCreated)
	if m.ID == "" || m.Status != messaging.StatusSent || m.To != phoneMine {
		t.Fatalf("sent message %+v", m)
	}
	again := decode[messaging.Message](t, f.do(t, "POST", "/v1/messages", "a-write", f.sendBody(phoneMine, "hello"), "Idempotency-Key", "k1"), http.StatusCreated)
	if again.ID != m.ID {
		t.Errorf("retry returned %s, want %s", again.ID, m.ID)
	}
	got := decode[messaging.Message](t, f.do(t, "GET", "/v1/messages/"+m.ID, "a-read", ""), http.StatusOK)
	if got.ID != m.ID {
		t.Errorf("GET returned %s", got.ID)
	}

	// Refused: 422 problem with the machine-readable reason.
	r = f.do(t, "POST", "/v1/messages", "a-write", f.sendBody(phoneMine, "refuse"), "Idempotency-Key", "k2")
	problem(t, r, http.StatusUnprocessableEntity)
	if want := `"reason":"opted_out"`; !contains(r.Body, want) {
		t.Errorf("refusal body %s lacks %s", r.Body, want)
	}

	// The Idempotency-Key is required.
	before := fm.sends()
	problem(t, f.do(t, "POST", "/v1/messages", "a-write", f.sendBody(phoneMine, "hello"), "Idempotency-Key", ""), http.StatusUnprocessableEntity)
	// A bad phone is refused by the schema.
	problem(t, f.do(t, "POST", "/v1/messages", "a-write", f.sendBody("3331234567", "hello"), "Idempotency-Key", "k3"), http.StatusUnprocessableEntity)
	if fm.sends() != before {
		t.Errorf("invalid requests reached the service")
	}
	problem(t, f.do(t, "GET", "/v1/messages/msg_nope", "a-read", ""), http.StatusNotFound)
}

func TestIntegrationMessagesRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fm := f.msgs.svc
	cases := map[string]struct {
		key, body string
		want      int
	}{
		"read_only cannot send":               {"a-user-read_only", f.sendBody(phoneMine, "x"), http.StatusForbidden},
		"operator to its contact":             {"a-user-operator", f.sendBody(phoneMine, "x"), http.StatusCreated},
		"operator to another's contact":       {"a-user-operator", f.sendBody(phoneOther, "x"), http.StatusForbidden},
		"operator to a new number":            {"a-user-operator", f.sendBody("+393339999999", "x"), http.StatusForbidden},
		"manager to anyone":                   {"a-user-manager", f.sendBody("+393339999999", "x"), http.StatusCreated},
		"read-scoped service key cannot send": {"a-read", f.sendBody(phoneMine, "x"), http.StatusForbidden},
	}
	for name, tc := range cases {
		before := fm.sends()
		r := f.do(t, "POST", "/v1/messages", tc.key, tc.body, "Idempotency-Key", "role-"+name)
		if r.Code != tc.want {
			t.Errorf("%s: status %d, want %d; body %s", name, r.Code, tc.want, r.Body)
		}
		if sent := fm.sends() > before; sent != (tc.want == http.StatusCreated) {
			t.Errorf("%s: reached the service %v", name, sent)
		}
	}
	// The operator reads messages of its own conversation only.
	other, _ := fm.Send(t.Context(), messaging.SendRequest{TenantID: f.tenantA, ConnectionID: f.inbox.waConnA, To: phoneOther,
		Kind: messaging.KindText, Text: "x", IdempotencyKey: "other"})
	decode[messaging.Message](t, f.do(t, "GET", "/v1/messages/"+f.msgs.msgMine, "a-user-operator", ""), http.StatusOK)
	problem(t, f.do(t, "GET", "/v1/messages/"+other.ID, "a-user-operator", ""), http.StatusForbidden)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
