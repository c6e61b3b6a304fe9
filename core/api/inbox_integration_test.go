package api_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/store"
)

// TestIntegrationRoles runs every route with a user key of each role and
// checks the role model: admin everything, manager everything but users and
// keys, operator only its inbox, read_only only reads.
func TestIntegrationRoles(t *testing.T) {
	t.Parallel()
	rank := map[string]int{"read": 1, "write": 2, "admin": 3}
	for _, role := range store.Roles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for _, rt := range f.routes() {
				tmpl := rt.method + " " + routeTemplate(rt.path)
				var allowed bool
				switch role {
				case store.RoleAdmin:
					allowed = true
				case store.RoleManager:
					allowed = rank[rt.scope] <= rank["write"]
				case store.RoleReadOnly:
					allowed = rt.scope == "read"
				case store.RoleOperator:
					allowed = operatorRoutes[tmpl]
				}
				r := f.do(t, rt.method, rt.path, "a-user-"+role, rt.body)
				if !allowed {
					problem(t, r, http.StatusForbidden)
					continue
				}
				if r.Code >= 300 {
					t.Errorf("%s %s as %s: status %d, want success; body %s", rt.method, rt.path, role, r.Code, r.Body)
				}
			}
			if role == store.RoleReadOnly && f.inbox.sender.count() != 0 {
				t.Errorf("read_only sent %d replies", f.inbox.sender.count())
			}
		})
	}
}

// TestIntegrationOperatorConfined runs every conversation and contact
// operation as the operator against the conversation and contact not
// assigned to it: 403 everywhere, nothing changed, nothing listed.
func TestIntegrationOperatorConfined(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ib := f.inbox
	for _, rt := range f.inboxRoutes() {
		if !strings.Contains(rt.path, ib.convMine) && !strings.Contains(rt.path, ib.contactMine) {
			continue
		}
		path := strings.ReplaceAll(strings.ReplaceAll(rt.path, ib.convMine, ib.convOther), ib.contactMine, ib.contactOther)
		r := f.do(t, rt.method, path, "a-user-operator", rt.body)
		problem(t, r, http.StatusForbidden)
	}
	if n := ib.sender.count(); n != 0 {
		t.Errorf("operator replied in a conversation not assigned to it (%d sends)", n)
	}
	type list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	for _, path := range []string{"/v1/conversations", "/v1/conversations?assignee=none", "/v1/contacts"} {
		got := decode[list](t, f.do(t, "GET", path, "a-user-operator", ""), 200)
		for _, it := range got.Data {
			if it.ID == ib.convOther || it.ID == ib.contactOther {
				t.Errorf("%s lists %s to the operator", path, it.ID)
			}
		}
	}
	convs := decode[list](t, f.do(t, "GET", "/v1/conversations", "a-user-operator", ""), 200)
	if len(convs.Data) != 1 || convs.Data[0].ID != ib.convMine {
		t.Errorf("operator's conversations = %+v, want only %s", convs.Data, ib.convMine)
	}
}

func TestIntegrationInboxEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ib := f.inbox
	// The list item carries the contact, window and unread count.
	conv := decode[api.ConversationBody](t, f.do(t, "GET", "/v1/conversations/"+ib.convMine, "a-read", ""), 200)
	if conv.Contact.Phone != "+393330000001" || !conv.Window.Open || conv.Window.SecondsLeft < 86000 || conv.UnreadCount != 1 ||
		conv.Assignee == nil || conv.Assignee.ID != ib.users[store.RoleOperator] {
		t.Errorf("conversation = %+v", conv)
	}
	type convList struct {
		Data       []api.ConversationBody `json:"data"`
		NextCursor string                 `json:"next_cursor"`
	}
	filters := map[string][]string{
		"assignee=none": {ib.convOther},
		"assignee=" + ib.users[store.RoleOperator]: {ib.convMine},
		"unread=true":                 {ib.convOther, ib.convMine},
		"window_open=false":           nil,
		"needs_human=true":            nil,
		"tag=nope":                    nil,
		"connection_id=" + ib.waConnA: {ib.convOther, ib.convMine},
	}
	for q, want := range filters {
		got := decode[convList](t, f.do(t, "GET", "/v1/conversations?"+q, "a-read", ""), 200)
		var ids []string
		for _, c := range got.Data {
			ids = append(ids, c.ID)
		}
		// Both conversations have the same activity second; order aside.
		if diff := cmp.Diff(want, ids, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", q, diff)
		}
	}
	page := decode[convList](t, f.do(t, "GET", "/v1/conversations?limit=1", "a-read", ""), 200)
	next := decode[convList](t, f.do(t, "GET", "/v1/conversations?limit=1&cursor="+page.NextCursor, "a-read", ""), 200)
	if len(page.Data) != 1 || len(next.Data) != 1 || page.Data[0].ID == next.Data[0].ID || next.NextCursor != "" {
		t.Errorf("pages = %+v / %+v", page, next)
	}
	problem(t, f.do(t, "GET", "/v1/conversations?assignee=me", "a-read", ""), 422)
	me := decode[convList](t, f.do(t, "GET", "/v1/conversations?assignee=me", "a-user-operator", ""), 200)
	if len(me.Data) != 1 {
		t.Errorf("assignee=me = %+v", me)
	}

	// Read, assign, notes.
	if c := decode[api.ConversationBody](t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/read", "a-write", ""), 200); c.UnreadCount != 0 {
		t.Errorf("after read: unread %d", c.UnreadCount)
	}
	problem(t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/assign", "a-write", `{"user_id":"usr_nope"}`), 422)
	if c := decode[api.ConversationBody](t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/assign", "a-write", `{"user_id":null}`), 200); c.Assignee != nil {
		t.Errorf("after unassign: %+v", c.Assignee)
	}
	decode[api.NoteBody](t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/notes", "a-user-manager", `{"body":"VIP"}`), 201)

	// Reply: passes the author and a conversation-scoped idempotency key;
	// a refusal is a 422 with the reason.
	decode[api.MessageBody](t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/messages", "a-user-manager", `{"text":"hi"}`, "Idempotency-Key", "k1"), 201)
	ib.sender.mu.Lock()
	got := ib.sender.replies[0]
	ib.sender.err = &refusal{reason: "outside_window"}
	ib.sender.mu.Unlock()
	if got.AuthorID != ib.users[store.RoleManager] || got.IdempotencyKey != "reply:"+ib.convMine+":k1" || got.Text != "hi" || got.TenantID != f.tenantA {
		t.Errorf("reply passed as %+v", got)
	}
	r := f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/messages", "a-write", `{"text":"hi"}`)
	problem(t, r, 422)
	if !strings.Contains(r.Body, `"reason":"outside_window"`) {
		t.Errorf("refusal body %s lacks the reason", r.Body)
	}
	problem(t, f.do(t, "POST", "/v1/conversations/"+ib.convMine+"/messages", "a-write", `{}`), 422)

	// Contacts: search, patch, tags, link.
	type contactList struct {
		Data []api.ContactBody `json:"data"`
	}
	if got := decode[contactList](t, f.do(t, "GET", "/v1/contacts?phone=%2B393330000002", "a-read", ""), 200); len(got.Data) != 1 || got.Data[0].ID != ib.contactOther {
		t.Errorf("phone search = %+v", got.Data)
	}
	c := decode[api.ContactBody](t, f.do(t, "PATCH", "/v1/contacts/"+ib.contactMine, "a-write", `{"name":"Maria","fields":{"size":"M"},"external_ids":{"shopify_customer":"7"}}`), 200)
	if c.Name != "Maria" || string(c.Fields["size"]) != `"M"` || c.ExternalIDs["shopify_customer"] != "7" {
		t.Errorf("patched contact = %+v", c)
	}
	problem(t, f.do(t, "PUT", "/v1/contacts/"+ib.contactMine+"/tags/%21bad", "a-write", ""), 422)
	if c := decode[api.ContactBody](t, f.do(t, "PUT", "/v1/contacts/"+ib.contactMine+"/tags/vip", "a-write", ""), 200); !cmp.Equal(c.Tags, []string{"vip"}) {
		t.Errorf("tags = %v", c.Tags)
	}
	if got := decode[contactList](t, f.do(t, "GET", "/v1/contacts?tag=vip", "a-read", ""), 200); len(got.Data) != 1 {
		t.Errorf("tag search = %+v", got.Data)
	}
	linked := decode[api.ContactBody](t, f.do(t, "POST", "/v1/contacts/"+ib.contactOther+"/link", "a-write", `{"into_contact_id":"`+ib.contactMine+`"}`), 200)
	if linked.ID != ib.contactMine {
		t.Errorf("linked = %+v", linked)
	}
	problem(t, f.do(t, "POST", "/v1/contacts/"+ib.contactOther+"/link", "a-write", `{"into_contact_id":"`+ib.contactMine+`"}`), 409)
	old := decode[api.ContactBody](t, f.do(t, "GET", "/v1/contacts/"+ib.contactOther, "a-read", ""), 200)
	if old.MergedInto != ib.contactMine {
		t.Errorf("old contact = %+v", old)
	}
}

func TestIntegrationUsers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := decode[api.UserBody](t, f.do(t, "POST", "/v1/users", "a-admin", `{"email":"Bob@A.example","name":"Bob","role":"read_only"}`), 201)
	if u.Email != "bob@a.example" || u.Role != "read_only" {
		t.Errorf("created %+v", u)
	}
	problem(t, f.do(t, "POST", "/v1/users", "a-admin", `{"email":"bob@a.example","name":"Bob 2","role":"operator"}`), 409)
	problem(t, f.do(t, "POST", "/v1/users", "a-admin", `{"email":"bob@a.example","name":"Bob","role":"god"}`), 422)
	k := decode[map[string]any](t, f.do(t, "POST", "/v1/users/"+u.ID+"/api-keys", "a-admin", `{"name":"bob"}`), 201)
	if !cmp.Equal(k["scopes"], []any{"read"}) || k["user_id"] != u.ID {
		t.Errorf("key = %v", k)
	}
	f.keys["bob"] = k["key"].(string)
	decode[map[string]any](t, f.do(t, "GET", "/v1/conversations", "bob", ""), 200)
	problem(t, f.do(t, "PATCH", "/v1/contacts/"+f.inbox.contactMine, "bob", `{"name":"x"}`), 403)
	// Disabling the user turns its keys off at once.
	decode[api.UserBody](t, f.do(t, "PATCH", "/v1/users/"+u.ID, "a-admin", `{"disabled":true}`), 200)
	problem(t, f.do(t, "GET", "/v1/conversations", "bob", ""), 401)
	decode[api.UserBody](t, f.do(t, "PATCH", "/v1/users/"+u.ID, "a-admin", `{"disabled":false,"role":"operator"}`), 200)
	decode[map[string]any](t, f.do(t, "GET", "/v1/conversations", "bob", ""), 200)
	// An admin user cannot lock itself out.
	problem(t, f.do(t, "PATCH", "/v1/users/"+f.inbox.users[store.RoleAdmin], "a-user-admin", `{"role":"read_only"}`), 422)
}

// TestIntegrationStream opens real event streams and checks that a message
// NOTIFY'd by the inbound path arrives, filtered by role.
func TestIntegrationStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	open := func(key string) (<-chan string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+f.keys[key])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		return lines, func() { cancel(); resp.Body.Close() }
	}
	next := func(lines <-chan string, prefix string) string {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q line within 5 s", prefix)
			}
		}
	}
	manager, closeManager := open("a-user-manager")
	defer closeManager()
	operator, closeOperator := open("a-user-operator")
	defer closeOperator()
	other, closeOther := open("b-admin")
	defer closeOther()
	next(operator, ": heartbeat") // heartbeats flow

	// A message in the conversation not assigned to the operator: the
	// manager sees it, the operator and tenant B do not.
	if _, err := f.st.Pool().Exec(context.Background(),
		`SELECT pg_notify('ponte_inbox', json_build_object('tenant_id', $1::text, 'conversation_id', $2::text, 'message_id', 'msg_x', 'kind', 'status', 'status', 'read')::text)`,
		f.tenantA, f.inbox.convOther); err != nil {
		t.Fatal(err)
	}
	if l := next(manager, "data:"); !strings.Contains(l, f.inbox.convOther) || !strings.Contains(l, `"status":"read"`) {
		t.Errorf("manager got %s", l)
	}
	// Then one in the operator's conversation: the operator's first event
	// is this one (the other was filtered out).
	if _, err := f.st.Pool().Exec(context.Background(),
		`SELECT pg_notify('ponte_inbox', json_build_object('tenant_id', $1::text, 'conversation_id', $2::text, 'message_id', 'msg_y', 'kind', 'message')::text)`,
		f.tenantA, f.inbox.convMine); err != nil {
		t.Fatal(err)
	}
	if l := next(operator, "data:"); !strings.Contains(l, f.inbox.convMine) || !strings.Contains(l, `"kind":"message"`) {
		t.Errorf("operator got %s", l)
	}
	select {
	case l := <-other:
		for l != "" && strings.HasPrefix(l, ":") || l == "" {
			select {
			case l = <-other:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
		if strings.HasPrefix(l, "data:") {
			t.Errorf("tenant B got %s", l)
		}
	case <-time.After(300 * time.Millisecond):
	}
}
