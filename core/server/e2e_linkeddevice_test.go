package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"

	"github.com/ponte-hub/ponte/connectors/linkeddevice"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/localdev"
)

// linkedSession is what the test reads of a session: its lease and its
// last report.
type linkedSession struct {
	OwnerURL  string
	Fence     int64
	State     string
	Reason    string
	JID       string
	UpdatedAt time.Time
	Now       time.Time // the database's clock when read
}

func readLinkedSession(ctx context.Context, pool *pgxpool.Pool, connID string) (linkedSession, error) {
	var s linkedSession
	err := pool.QueryRow(ctx, `
SELECT l.owner_url, l.fence, st.state, st.reason, COALESCE(st.jid, ''), st.updated_at, now()
FROM session_leases l JOIN session_states st USING (connection_id)
WHERE l.connection_id = $1 AND l.expires_at > now()`, connID).Scan(
		&s.OwnerURL, &s.Fence, &s.State, &s.Reason, &s.JID, &s.UpdatedAt, &s.Now)
	return s, err
}

// pairedLinkedNumber creates a linked-device number whose device is already
// paired: the device is in whatsmeow's store and the connection's state
// names it, as after a QR scan. Its session therefore never shows a QR code;
// on this machine, without a route to WhatsApp, it reports disconnected.
func pairedLinkedNumber(t *testing.T, in *installation) (connID string, jid types.JID) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, in.dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn, err := st.CreateConnection(ctx, in.tenantID, store.NewConnection{Connector: "linkeddevice", Name: "Support", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("creating the linked-device connection: %v", err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO numbers (id, tenant_id, kind, label, connection_id) VALUES ($1, $2, 'linked_device', 'Support', $3)`,
		"num_e2e"+conn.ID[4:], in.tenantID, conn.ID); err != nil {
		t.Fatal(err)
	}
	ds, err := linkeddevice.OpenDeviceStore(ctx, in.dbURL, linkeddevice.DefaultStoreSchema, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("opening the device store: %v", err)
	}
	defer ds.Close()
	dev := ds.Container.NewDevice()
	jid = types.JID{User: "393330001111", Device: 7, Server: types.DefaultUserServer}
	dev.ID, dev.PushName, dev.Platform = &jid, "Bottega", "android"
	// The account identity WhatsApp signs at pairing; random bytes stand
	// for it (the session never reaches WhatsApp here).
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: randomBytes(t, 40), AccountSignature: randomBytes(t, 64),
		AccountSignatureKey: randomBytes(t, 32), DeviceSignature: randomBytes(t, 64)}
	if err := ds.Container.PutDevice(ctx, dev); err != nil {
		t.Fatalf("saving the paired device: %v", err)
	}
	if err := st.SetState(ctx, conn.ID, linkeddevice.StateDeviceJID, []byte(jid.String())); err != nil {
		t.Fatal(err)
	}
	return conn.ID, jid
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntegrationLinkedDeviceTakeoverAfterKill runs three `ponte serve`
// nodes on one database with a paired linked device, kills the node holding
// its session with SIGKILL (plugins included), and measures how long until
// another node holds it and its plugin reports from the same device, with
// the default lease timings. The target is 30 s.
func TestIntegrationLinkedDeviceTakeoverAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three ponte serve processes")
	}
	in := newInstallation(t, "cloudapi", "linkeddevice")
	connID, jid := pairedLinkedNumber(t, in)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, in.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	nodes := map[string]*serveProcess{}
	var addrs []string
	for i := range 3 {
		port, err := localdev.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		addrs = append(addrs, addr)
		nodes["http://"+addr] = in.startAt(addr, fmt.Sprintf("node%d.log", i))
	}
	nodeLogs := func() string {
		var b strings.Builder
		for i := range addrs {
			raw, _ := os.ReadFile(in.logDir + fmt.Sprintf("/node%d.log", i))
			if len(raw) > 4000 {
				raw = raw[len(raw)-4000:]
			}
			fmt.Fprintf(&b, "--- node%d (%s)\n%s\n", i, addrs[i], raw)
		}
		return b.String()
	}

	// One node takes the session and its plugin loads the paired device:
	// no QR, and without a route to WhatsApp, disconnected with a reason.
	var before linkedSession
	deadline := time.Now().Add(60 * time.Second)
	for {
		before, err = readLinkedSession(ctx, pool, connID)
		if err == nil && before.State == "disconnected" && before.JID != "" {
			break
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node reported the session within 60 s (last %+v, %v)\n%s", before, err, nodeLogs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(before.Reason, "network") || before.JID != jid.String() {
		t.Fatalf("session before the kill = %+v; want disconnected for the network, device %s", before, jid)
	}
	owner := nodes[before.OwnerURL]
	if owner == nil {
		t.Fatalf("the lease names %s, not one of the nodes %v", before.OwnerURL, addrs)
	}
	t.Logf("session held by %s (fence %d): %s: %s", before.OwnerURL, before.Fence, before.State, before.Reason)

	// The API of every node shows the session; actions from a node that
	// does not hold it are forwarded to the one that does (the plugin
	// there answers that the device is not connected: the send waits).
	for url := range nodes {
		if url == before.OwnerURL {
			continue
		}
		var msg struct {
			Status       string `json:"status"`
			StatusReason string `json:"status_reason"`
		}
		code := in.callAt(url, "POST", "/v1/messages", map[string]any{"connection_id": connID, "to": "+393331234567",
			"kind": "text", "text": "Ciao!"}, &msg, "Idempotency-Key", "forwarded-"+url)
		if code >= 300 || msg.Status != "queued" || msg.StatusReason != "channel_unavailable" {
			t.Fatalf("send through %s: %d %+v; want queued channel_unavailable (forwarded to the holder)\n%s", url, code, msg, nodeLogs())
		}
		break
	}

	owner.kill()
	killed := time.Now()
	var killedDB time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&killedDB); err != nil {
		t.Fatal(err)
	}

	var after linkedSession
	for {
		after, err = readLinkedSession(ctx, pool, connID)
		if err == nil && after.OwnerURL != before.OwnerURL && after.Fence > before.Fence && after.UpdatedAt.After(killedDB) {
			break
		}
		if time.Since(killed) > 60*time.Second {
			t.Fatalf("no takeover 60 s after kill -9 (last %+v, %v)\n%s", after, err, nodeLogs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	takeover := time.Since(killed)
	t.Logf("takeover after kill -9 of the holding node: %.1f s (default lease TTL), now held by %s with fence %d: %s: %s",
		takeover.Seconds(), after.OwnerURL, after.Fence, after.State, after.Reason)
	if takeover > 30*time.Second {
		t.Errorf("takeover took %s; the target is under 30 s", takeover)
	}
	if after.State == "pairing" || after.JID != jid.String() {
		t.Errorf("after the takeover %+v; want the same device %s, no new pairing", after, jid)
	}
	if nodes[after.OwnerURL] == nil || after.OwnerURL == before.OwnerURL {
		t.Errorf("new holder %s is not one of the surviving nodes", after.OwnerURL)
	}
}

// callAt makes an authenticated API call to one node of the installation.
func (in *installation) callAt(baseURL, method, path string, body any, out any, headers ...string) int {
	in.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		in.t.Fatal(err)
	}
	req, err := http.NewRequest(method, baseURL+path, strings.NewReader(string(raw)))
	if err != nil {
		in.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.apiKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s%s: %v", method, baseURL, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		in.t.Logf("%s %s%s -> %d %s", method, baseURL, path, resp.StatusCode, b)
		return resp.StatusCode
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			in.t.Fatalf("decoding %s: %v", b, err)
		}
	}
	return resp.StatusCode
}
