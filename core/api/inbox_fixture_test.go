package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
)

// inboxFixture is the inbox part of the API fixture: users of every role
// with keys, and conversations of tenant A (one assigned to the operator,
// one not) and of tenant B.
type inboxFixture struct {
	svc                       *contacts.Service
	hub                       *contacts.Hub
	sender                    *fakeSender
	users                     map[string]string // user id by role
	convMine                  string            // A's conversation assigned to the operator
	convOther                 string            // A's conversation assigned to nobody
	contactMine, contactOther string
	convB, contactB           string
	waConnA                   string
}

// fakeSender records replies and answers like the messaging service would.
type fakeSender struct {
	mu      sync.Mutex
	replies []api.SendReply
	err     error
}

func (f *fakeSender) Send(_ context.Context, r api.SendReply) (api.MessageBody, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return api.MessageBody{}, f.err
	}
	f.replies = append(f.replies, r)
	return api.MessageBody{ID: fmt.Sprintf("msg_fake%d", len(f.replies)), ConversationID: r.ConversationID, Direction: "out",
		Kind: "text", Content: json.RawMessage(`{"text":` + mustJSON(r.Text) + `}`), Status: "queued", CreatedAt: time.Now()}, nil
}

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.replies)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// refusal is a send refused before any provider call.
type refusal struct{ reason string }

func (r *refusal) Error() string         { return "refused: " + r.reason }
func (r *refusal) RefusalReason() string { return r.reason }

// setUpInbox creates the inbox fixture data and returns the Deps fields.
func (f *fixture) setUpInbox(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	svc, err := contacts.New(contacts.Config{Pool: f.st.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	ib := &inboxFixture{svc: svc, hub: contacts.NewHub(f.st.Pool(), nil), sender: &fakeSender{}, users: map[string]string{}}
	t.Cleanup(ib.hub.Close)
	f.inbox = ib
	for _, role := range store.Roles {
		u, err := f.st.CreateUser(ctx, f.tenantA, store.NewUser{Email: role + "@a.example", Name: "A " + role, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		ib.users[role] = u.ID
		_, plain, err := f.st.CreateUserAPIKey(ctx, f.tenantA, u.ID, "key of "+role)
		if err != nil {
			t.Fatal(err)
		}
		f.keys["a-user-"+role] = plain
	}
	// The conversations live on the fixture's existing connections, so the
	// connection counts other tests assert stay as they are.
	ib.waConnA = f.connA
	waB := f.connB
	apply := func(tenantID, conn, from, wamid string) contacts.InboundResult {
		b, _ := json.Marshal(map[string]any{"from": from, "wa_id": from[1:], "message_id": wamid, "type": "text", "text": "hello",
			"timestamp": time.Now().UTC().Format(time.RFC3339)})
		r, err := svc.ApplyInbound(ctx, dispatch.Event{TenantID: tenantID, ConnectionID: conn, Connector: "cloudapi", Type: contacts.EventMessageReceived, Payload: b})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	mine := apply(f.tenantA, ib.waConnA, "+393330000001", "wamid.a1")
	other := apply(f.tenantA, ib.waConnA, "+393330000002", "wamid.a2")
	bb := apply(f.tenantB, waB, "+393330000001", "wamid.b1")
	ib.convMine, ib.contactMine = mine.ConversationID, mine.ContactID
	ib.convOther, ib.contactOther = other.ConversationID, other.ContactID
	ib.convB, ib.contactB = bb.ConversationID, bb.ContactID
	if err := svc.Assign(ctx, f.tenantA, ib.convMine, ib.users[store.RoleOperator]); err != nil {
		t.Fatal(err)
	}
}

// inboxRoutes are the inbox, contacts and users operations with a request
// valid for tenant A; entries marked operator target the conversation and
// contact assigned to the operator.
func (f *fixture) inboxRoutes() []route {
	ib := f.inbox
	return []route{
		{"POST", "/v1/users", "admin", `{"email":"new@a.example","name":"New","role":"operator"}`},
		{"GET", "/v1/users", "admin", ""},
		{"GET", "/v1/users/" + ib.users[store.RoleManager], "admin", ""},
		{"PATCH", "/v1/users/" + ib.users[store.RoleManager], "admin", `{"name":"Renamed"}`},
		{"POST", "/v1/users/" + ib.users[store.RoleManager] + "/api-keys", "admin", `{"name":"laptop"}`},
		{"GET", "/v1/conversations", "read", ""},
		{"GET", "/v1/conversations/" + ib.convMine, "read", ""},
		{"GET", "/v1/conversations/" + ib.convMine + "/messages", "read", ""},
		{"POST", "/v1/conversations/" + ib.convMine + "/messages", "write", `{"text":"hi"}`},
		{"POST", "/v1/conversations/" + ib.convMine + "/read", "write", ""},
		{"POST", "/v1/conversations/" + ib.convMine + "/assign", "write", `{"user_id":"` + ib.users[store.RoleOperator] + `"}`},
		{"POST", "/v1/conversations/" + ib.convMine + "/notes", "write", `{"body":"called back"}`},
		{"GET", "/v1/conversations/" + ib.convMine + "/notes", "read", ""},
		{"GET", "/v1/contacts", "read", ""},
		{"GET", "/v1/contacts/" + ib.contactMine, "read", ""},
		{"PATCH", "/v1/contacts/" + ib.contactMine, "write", `{"name":"Maria"}`},
		{"PUT", "/v1/contacts/" + ib.contactMine + "/tags/vip", "write", ""},
		{"DELETE", "/v1/contacts/" + ib.contactMine + "/tags/vip", "write", ""},
		{"POST", "/v1/contacts/" + ib.contactOther + "/link", "write", `{"into_contact_id":"` + ib.contactMine + `"}`},
		{"GET", "/v1/stream", "read", ""},
	}
}

// operatorRoutes are the operations an operator may use (on its own
// conversation and contact).
var operatorRoutes = map[string]bool{
	"GET /v1/conversations": true, "GET /v1/conversations/{id}": true, "GET /v1/conversations/{id}/messages": true,
	"POST /v1/conversations/{id}/messages": true, "POST /v1/conversations/{id}/read": true,
	"POST /v1/conversations/{id}/notes": true, "GET /v1/conversations/{id}/notes": true,
	"GET /v1/contacts": true, "GET /v1/contacts/{id}": true, "PATCH /v1/contacts/{id}": true,
	"PUT /v1/contacts/{id}/tags/{tag}": true, "DELETE /v1/contacts/{id}/tags/{tag}": true, "GET /v1/stream": true,
}

type isolationTest = struct {
	method, path, body string
	check              func(t *testing.T, r response)
}

// inboxIsolationTests are tenant B's requests against A's inbox, contacts and
// users, for TestIntegrationTenantIsolation.
func (f *fixture) inboxIsolationTests(notFound, noneOfA func(*testing.T, response)) map[string]isolationTest {
	ib := f.inbox
	noneOfInbox := func(t *testing.T, r response) {
		t.Helper()
		noneOfA(t, r)
		for _, id := range []string{ib.convMine, ib.convOther, ib.contactMine, ib.contactOther, ib.users[store.RoleAdmin]} {
			if strings.Contains(r.Body, id) {
				t.Errorf("B's response carries A's %s: %s", id, r.Body)
			}
		}
	}
	created := func(t *testing.T, r response) { t.Helper(); decode[map[string]any](t, r, 201) }
	return map[string]isolationTest{
		"create user":        {"POST", "/v1/users", `{"email":"x@b.example","name":"X","role":"admin"}`, created},
		"list users":         {"GET", "/v1/users", "", noneOfInbox},
		"get A's user":       {"GET", "/v1/users/" + ib.users[store.RoleAdmin], "", notFound},
		"patch A's user":     {"PATCH", "/v1/users/" + ib.users[store.RoleAdmin], `{"disabled":true}`, notFound},
		"key for A's user":   {"POST", "/v1/users/" + ib.users[store.RoleAdmin] + "/api-keys", `{"name":"steal"}`, notFound},
		"list conversations": {"GET", "/v1/conversations", "", noneOfInbox},
		"A's conn filter":    {"GET", "/v1/conversations?connection_id=" + ib.waConnA, "", noneOfInbox},
		"get conversation":   {"GET", "/v1/conversations/" + ib.convMine, "", notFound},
		"list messages":      {"GET", "/v1/conversations/" + ib.convMine + "/messages", "", notFound},
		"reply":              {"POST", "/v1/conversations/" + ib.convMine + "/messages", `{"text":"pwned"}`, notFound},
		"mark read":          {"POST", "/v1/conversations/" + ib.convMine + "/read", "", notFound},
		"assign":             {"POST", "/v1/conversations/" + ib.convMine + "/assign", `{"user_id":null}`, notFound},
		"add note":           {"POST", "/v1/conversations/" + ib.convMine + "/notes", `{"body":"x"}`, notFound},
		"list notes":         {"GET", "/v1/conversations/" + ib.convMine + "/notes", "", notFound},
		"list contacts":      {"GET", "/v1/contacts", "", noneOfInbox},
		"get contact":        {"GET", "/v1/contacts/" + ib.contactMine, "", notFound},
		"patch contact":      {"PATCH", "/v1/contacts/" + ib.contactMine, `{"name":"pwned"}`, notFound},
		"tag contact":        {"PUT", "/v1/contacts/" + ib.contactMine + "/tags/pwned", "", notFound},
		"untag contact":      {"DELETE", "/v1/contacts/" + ib.contactMine + "/tags/vip", "", notFound},
		"link A's contact":   {"POST", "/v1/contacts/" + ib.contactOther + "/link", `{"into_contact_id":"` + ib.contactB + `"}`, notFound},
		"link into A's":      {"POST", "/v1/contacts/" + ib.contactB + "/link", `{"into_contact_id":"` + ib.contactMine + `"}`, notFound},
		"stream":             {"GET", "/v1/stream", "", func(t *testing.T, r response) { t.Helper(); noneOfInbox(t, r) }},
	}
}
