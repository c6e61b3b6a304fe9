package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/messaging"
)

// fakeMessages answers like the messaging service on the fixture's contacts
// and conversations: text "refuse" is refused as opted out; everything else
// is sent. It records the requests it got.
type fakeMessages struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	msgs map[string]messaging.Message
	reqs []messaging.SendRequest
}

func (f *fakeMessages) Send(ctx context.Context, r messaging.SendRequest) (messaging.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	for _, m := range f.msgs {
		if m.TenantID == r.TenantID && m.IdempotencyKey == r.IdempotencyKey {
			return m, nil
		}
	}
	m := messaging.Message{ID: fmt.Sprintf("msg_fake%d", len(f.msgs)+1), TenantID: r.TenantID, ConnectionID: r.ConnectionID,
		ContactID: r.ContactID, To: r.To, Direction: "out", Kind: string(r.Kind), Content: []byte(`{}`), Status: messaging.StatusSent,
		IdempotencyKey: r.IdempotencyKey, AuthorID: r.AuthorID, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if m.ContactID == "" {
		_ = f.pool.QueryRow(ctx, `SELECT id FROM contacts WHERE tenant_id = $1 AND phone = $2`, r.TenantID, r.To).Scan(&m.ContactID)
	}
	_ = f.pool.QueryRow(ctx, `SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2`, r.TenantID, m.ContactID).Scan(&m.ConversationID)
	var err error
	if r.Text == "refuse" {
		m.Status, m.StatusReason = messaging.StatusRefused, messaging.ReasonOptedOut
		err = &messaging.RefusedError{Reason: messaging.ReasonOptedOut, MessageID: m.ID}
	}
	f.msgs[m.ID] = m
	return m, err
}

func (f *fakeMessages) Get(_ context.Context, tenantID, id string) (messaging.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.msgs[id]
	if !ok || m.TenantID != tenantID {
		return messaging.Message{}, messaging.ErrNotFound
	}
	return m, nil
}

func (f *fakeMessages) ContactID(ctx context.Context, tenantID, phone string) (string, error) {
	var id string
	if err := f.pool.QueryRow(ctx, `SELECT id FROM contacts WHERE tenant_id = $1 AND phone = $2`, tenantID, phone).Scan(&id); err != nil {
		return "", messaging.ErrNotFound
	}
	return id, nil
}

func (f *fakeMessages) sends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

type messagesFixture struct {
	svc     *fakeMessages
	msgMine string // A's message in the operator's conversation
}

// Phones of the inbox fixture's contacts (see setUpInbox).
const (
	phoneMine  = "+393330000001"
	phoneOther = "+393330000002"
)

func (f *fixture) setUpMessages(t *testing.T) {
	t.Helper()
	fm := &fakeMessages{pool: f.st.Pool(), msgs: map[string]messaging.Message{}}
	m, err := fm.Send(context.Background(), messaging.SendRequest{TenantID: f.tenantA, ConnectionID: f.inbox.waConnA,
		To: phoneMine, Kind: messaging.KindText, Text: "seed", IdempotencyKey: "seed"})
	if err != nil || m.ConversationID != f.inbox.convMine {
		t.Fatalf("seeding a message: %v (conversation %q, want %q)", err, m.ConversationID, f.inbox.convMine)
	}
	fm.reqs = nil
	f.msgs = &messagesFixture{svc: fm, msgMine: m.ID}
}

func (f *fixture) sendBody(to, text string) string {
	return `{"connection_id":"` + f.inbox.waConnA + `","to":"` + to + `","kind":"text","text":"` + text + `"}`
}

func (f *fixture) messageRoutes() []route {
	return []route{
		{"POST", "/v1/messages", "write", f.sendBody(phoneMine, "hi")},
		{"GET", "/v1/messages/" + f.msgs.msgMine, "read", ""},
	}
}

func init() {
	// Operators send to and read messages of their own conversations.
	operatorRoutes["POST /v1/messages"] = true
	operatorRoutes["GET /v1/messages/{id}"] = true
}

func (f *fixture) messageIsolationTests(notFound func(*testing.T, response)) map[string]isolationTest {
	return map[string]isolationTest{
		"get A's message": {"GET", "/v1/messages/" + f.msgs.msgMine, "", notFound},
		"send on A's number": {"POST", "/v1/messages", f.sendBody(phoneMine, "pwned"), func(t *testing.T, r response) {
			t.Helper()
			// The fake sends anything; what matters is that the request
			// reached the service as tenant B's, never A's.
			if r.Code >= 500 {
				t.Fatalf("status %d", r.Code)
			}
			for _, req := range f.msgs.svc.reqs {
				if req.TenantID != f.tenantB {
					t.Errorf("B's send ran as tenant %s", req.TenantID)
				}
			}
		}},
	}
}

var _ = http.StatusOK

var keySeq struct {
	sync.Mutex
	n int
}

// newKeySuffix returns a fresh idempotency key suffix.
func newKeySuffix() string {
	keySeq.Lock()
	defer keySeq.Unlock()
	keySeq.n++
	return fmt.Sprint(keySeq.n)
}
