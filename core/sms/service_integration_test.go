package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeSender stands in for the messaging core: it writes a real ledger row
// in the status the test asks for (sms_messages references it) and answers
// with the outcome given, recording the requests.
type fakeSender struct {
	st      *store.Store
	dir     *messaging.SQLDirectory
	mu      sync.Mutex
	reqs    []messaging.SendRequest
	status  messaging.Status
	reason  string
	err     error // returned with the row
	noRow   error // returned without any row
	counter int
}

func (f *fakeSender) Send(ctx context.Context, r messaging.SendRequest) (messaging.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if f.noRow != nil {
		return messaging.Message{}, f.noRow
	}
	var id string
	err := f.st.Pool().QueryRow(ctx, `SELECT id FROM messages WHERE tenant_id = $1 AND idempotency_key = $2`, r.TenantID, r.IdempotencyKey).Scan(&id)
	if err != nil {
		rc, err := f.dir.Recipient(ctx, r.TenantID, r.ConnectionID, r.To, "")
		if err != nil {
			return messaging.Message{}, err
		}
		f.counter++
		id = fmt.Sprintf("msg_fake%d_%d", f.counter, time.Now().UnixNano())
		content, _ := json.Marshal(map[string]any{"to": r.To, "text": r.Text, "media": r.Media})
		var sentAt *time.Time
		if f.status == messaging.StatusSent {
			now := time.Now()
			sentAt = &now
		}
		if _, err := f.st.Pool().Exec(ctx, `
			INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, purpose,
			                      idempotency_key, status, status_reason, sent_at)
			VALUES ($1, $2, $3, $4, $5, 'out', 'text', $6, $7, $8, $9, NULLIF($10, ''), $11)`,
			id, r.TenantID, rc.ConversationID, rc.ContactID, r.ConnectionID, content, string(r.Purpose), r.IdempotencyKey,
			string(f.status), f.reason, sentAt); err != nil {
			return messaging.Message{}, err
		}
	}
	m, err := f.Get(ctx, r.TenantID, id)
	if err != nil {
		return messaging.Message{}, err
	}
	return m, f.err
}

func (f *fakeSender) Get(ctx context.Context, tenantID, id string) (messaging.Message, error) {
	var m messaging.Message
	err := f.st.Pool().QueryRow(ctx, `SELECT id, status, COALESCE(status_reason, ''), content, sent_at, created_at, updated_at
		FROM messages WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&m.ID, &m.Status, &m.StatusReason, &m.Content, &m.SentAt, &m.CreatedAt, &m.UpdatedAt)
	if err != nil {
		return messaging.Message{}, messaging.ErrNotFound
	}
	return m, nil
}

type rig struct {
	st     *store.Store
	tenant string
	linked string // the linked-device number's id
	conn   string // its connection
	cloud  string // a Cloud API number's id
	sender *fakeSender
	svc    *Service
}

const linkedPhone = "+393339990001"

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	key, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	st, err := store.Open(ctx, url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ten, err := st.CreateTenant(ctx, "sms")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{st: st, tenant: ten.ID, linked: "num_linked", cloud: "num_cloud"}
	mkNumber := func(id, kind, connector string) string {
		c, err := st.CreateConnection(ctx, ten.ID, store.NewConnection{Connector: connector, Name: id, Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `INSERT INTO numbers (id, tenant_id, kind, label, connection_id) VALUES ($1, $2, $3, 'n', $4)`,
			id, ten.ID, kind, c.ID); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	r.conn = mkNumber(r.linked, "linked_device", "linkeddevice")
	mkNumber(r.cloud, "cloud_api", "cloudapi")
	// The linked device's account, as its session reports it; and an older
	// logged-out pairing of the same phone on another number, which loses.
	old := mkNumber("num_old", "linked_device", "linkeddevice")
	for _, s := range []struct{ conn, state string }{{old, "logged_out"}, {r.conn, "connected"}} {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO session_states (connection_id, tenant_id, state, phone) VALUES ($1, $2, $3, $4)`,
			s.conn, ten.ID, s.state, linkedPhone); err != nil {
			t.Fatal(err)
		}
	}
	r.sender = &fakeSender{st: st, dir: messaging.NewSQLDirectory(st.Pool()), status: messaging.StatusSent}
	r.svc, err = New(st.Pool(), r.sender, Options{SendTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The request the messaging core gets: the number's connection, the E.164
// recipient, purpose utility, deferral allowed, a key from the token; and
// the answer mapped from the ledger row.
func TestIntegrationSendResolvesTheNumber(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	tests := map[string]struct {
		from, mss string
		token     string
		wantKey   string
	}{
		"linked device by phone":    {from: linkedPhone, token: "t1", wantKey: "sms:token:t1"},
		"linked device by whatsapp": {from: "whatsapp:" + linkedPhone, token: "t2", wantKey: "sms:token:t2"},
		"by number id":              {from: r.linked, token: "t3", wantKey: "sms:token:t3"},
		"by MessagingServiceSid":    {mss: r.linked, token: "t4", wantKey: "sms:token:t4"},
	}
	for name, tc := range tests {
		m, err := r.svc.Send(ctx, SendRequest{TenantID: r.tenant, AccountSid: r.tenant, To: "whatsapp:+393331234567",
			From: tc.from, MessagingServiceSid: tc.mss, Body: "hi", IdempotencyToken: tc.token, StatusCallback: "https://cb.example/s"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r.sender.mu.Lock()
		got := r.sender.reqs[len(r.sender.reqs)-1]
		r.sender.mu.Unlock()
		want := messaging.SendRequest{TenantID: r.tenant, ConnectionID: r.conn, To: "+393331234567", Kind: messaging.KindText,
			Text: "hi", Purpose: messaging.PurposeUtility, IdempotencyKey: tc.wantKey, AllowDefer: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: request (-want +got):\n%s", name, diff)
		}
		wantFrom := tc.from
		if wantFrom == "" {
			wantFrom = tc.mss
		}
		if m.Status != StatusSent || m.From != wantFrom || m.To != "whatsapp:+393331234567" || m.Body != "hi" ||
			m.MessagingServiceSid != tc.mss || m.DateSent == nil || !smsSid(m.Sid) {
			t.Errorf("%s: answer %+v", name, m)
		}
		got2, err := r.svc.Get(ctx, r.tenant, m.Sid)
		if err != nil || got2.Sid != m.Sid || got2.LedgerID != m.LedgerID {
			t.Errorf("%s: Get = %+v, %v", name, got2, err)
		}
	}
	// A Cloud API number cannot be named by a phone (its connection does
	// not know it); an unknown phone is 21606, an unknown service 21701.
	for from, code := range map[string]int{"+15550001111": CodeFromNotUsable, "num_missing": CodeFromNotUsable} {
		_, err := r.svc.Send(ctx, SendRequest{TenantID: r.tenant, To: "+393331234567", From: from, Body: "hi"})
		if e := (*Error)(nil); !errors.As(err, &e) || e.Code != code {
			t.Errorf("From %s: %v, want %d", from, err, code)
		}
	}
	_, err := r.svc.Send(ctx, SendRequest{TenantID: r.tenant, To: "+393331234567", MessagingServiceSid: "MG123", Body: "hi"})
	if e := (*Error)(nil); !errors.As(err, &e) || e.Code != CodeServiceNotFound {
		t.Errorf("unknown MessagingServiceSid: %v", err)
	}
	if _, err := r.svc.Get(ctx, r.tenant, "SMnope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := r.svc.Get(ctx, "ten_other", mustSid(t, r)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of another tenant: %v", err)
	}
}

func smsSid(s string) bool { return len(s) == 34 && s[:2] == "SM" }

func mustSid(t *testing.T, r *rig) string {
	var sid string
	if err := r.st.Pool().QueryRow(context.Background(), `SELECT sid FROM sms_messages LIMIT 1`).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	return sid
}

// Each outcome of the messaging core becomes the answer Twilio would give.
func TestIntegrationSendOutcomes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	tests := map[string]struct {
		status     messaging.Status
		reason     string
		err, noRow error
		wantStatus string
		wantCode   int // of the message
		wantErr    int // Twilio error code answered instead
		wantHTTP   int
		wantWatch  bool
	}{
		"sent":                 {status: messaging.StatusSent, wantStatus: StatusSent, wantWatch: true},
		"deferred (DND)":       {status: messaging.StatusDeferred, reason: messaging.ReasonQuietHours, wantStatus: StatusQueued, wantWatch: true},
		"queued (rate limit)":  {status: messaging.StatusQueued, reason: messaging.ReasonRateLimited, wantStatus: StatusQueued, wantWatch: true},
		"outcome unknown":      {status: messaging.StatusSending, err: fmt.Errorf("x: %w", messaging.ErrOutcomeUnknown), wantStatus: StatusSending, wantWatch: true},
		"provider refused":     {status: messaging.StatusFailed, reason: messaging.ReasonProviderRejected, err: &messaging.FailedError{Reason: messaging.ReasonProviderRejected, MessageID: "x"}, wantStatus: StatusFailed, wantCode: CodeUnknownError},
		"opted out":            {noRow: &messaging.RefusedError{Reason: messaging.ReasonOptedOut}, wantErr: CodeUnsubscribed, wantHTTP: 400},
		"no marketing consent": {noRow: &messaging.RefusedError{Reason: messaging.ReasonNoMarketingConsent}, wantErr: CodeUnsubscribed, wantHTTP: 400},
		"window closed":        {noRow: &messaging.RefusedError{Reason: messaging.ReasonOutsideWindow}, wantErr: CodeOutsideWindow, wantHTTP: 400},
		"not a usable number":  {noRow: &messaging.InvalidError{Field: "connection_id", Reason: "the connection is disabled"}, wantErr: CodeFromNotUsable, wantHTTP: 400},
		"plugin restarting":    {noRow: fmt.Errorf("invoking: %w", pluginhost.ErrUnavailable), wantErr: CodeUnavailable, wantHTTP: 503},
		"no turn in time":      {noRow: fmt.Errorf("waiting for the send's turn: %w", context.DeadlineExceeded), wantErr: CodeTooManyRequests, wantHTTP: 429},
	}
	i := 0
	for name, tc := range tests {
		i++
		r.sender.mu.Lock()
		r.sender.status, r.sender.reason, r.sender.err, r.sender.noRow = tc.status, tc.reason, tc.err, tc.noRow
		r.sender.mu.Unlock()
		m, err := r.svc.Send(ctx, SendRequest{TenantID: r.tenant, AccountSid: r.tenant, To: fmt.Sprintf("+3933312345%02d", i),
			From: r.linked, Body: "hi", StatusCallback: "https://cb.example/s"})
		if tc.wantErr != 0 {
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.wantErr || e.Status != tc.wantHTTP {
				t.Errorf("%s: %v, want %d/%d", name, err, tc.wantErr, tc.wantHTTP)
			}
			if tc.wantHTTP != http.StatusBadRequest && e != nil && e.RetryAfter == 0 {
				t.Errorf("%s: no Retry-After", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if m.Status != tc.wantStatus || m.ErrorCode != tc.wantCode {
			t.Errorf("%s: status %s code %d, want %s %d", name, m.Status, m.ErrorCode, tc.wantStatus, tc.wantCode)
		}
		var watched bool
		var cbStatus string
		if err := r.st.Pool().QueryRow(ctx, `SELECT callback_next_at IS NOT NULL, callback_status FROM sms_messages WHERE sid = $1`, m.Sid).Scan(&watched, &cbStatus); err != nil {
			t.Fatal(err)
		}
		if watched != tc.wantWatch || cbStatus != tc.wantStatus {
			t.Errorf("%s: watched %v callback_status %s", name, watched, cbStatus)
		}
	}
}
