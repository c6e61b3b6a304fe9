package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Short lease times keep failover tests to seconds.
const (
	testTTL   = 1500 * time.Millisecond
	testRenew = 500 * time.Millisecond
	testScan  = 200 * time.Millisecond
)

type env struct {
	url    string
	st     *store.Store
	pool   *pgxpool.Pool
	tenant string
	world  *world
	log    *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ten, err := st.CreateTenant(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	return &env{url: url, st: st, pool: st.Pool(), tenant: ten.ID, world: newWorld(), log: testLogger(t)}
}

// testLogger logs through t until the test ends, then discards.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)

func (e *env) connection(t *testing.T, name string) string {
	t.Helper()
	id := "con_" + name + "_" + e.tenant
	if _, err := e.pool.Exec(context.Background(),
		`INSERT INTO connections (id, tenant_id, connector, name) VALUES ($1, $2, $3, $4)`, id, e.tenant, testConnector, name); err != nil {
		t.Fatal(err)
	}
	return id
}

type node struct {
	name   string
	m      *Manager
	p      *fakePlugin
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (e *env) startNode(t *testing.T, name string, mod func(*Config)) *node {
	t.Helper()
	p := newFakePlugin(e.world, name)
	cfg := Config{Pool: e.pool, Plugins: p, Connections: e.st, NodeID: name, NodeURL: "http://" + name + ".internal:8080",
		LeaseTTL: testTTL, RenewEvery: testRenew, ScanEvery: testScan, JanitorEvery: time.Hour, Logger: e.log.With("test_node", name)}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{name: name, m: m, p: p, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run of %s: %v", name, err)
		}
	}()
	t.Cleanup(n.stop)
	return n
}

// stop ends Run as a graceful shutdown does.
func (n *node) stop() {
	n.once.Do(func() {
		n.cancel()
		<-n.done
	})
}

// kill simulates kill -9 of the node: its plugin dies with its sessions and
// its leases are left to expire.
func (n *node) kill() {
	n.p.kill()
	n.m.abandon.Store(true)
	n.stop()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// holders returns the nodes that hold id by their own account.
func holders(id string, nodes ...*node) []string {
	var hs []string
	for _, n := range nodes {
		if n.m.Holds(id) {
			hs = append(hs, n.name)
		}
	}
	return hs
}

// settled says every session is held by exactly one live node and open in
// that node's plugin.
func settled(ids []string, nodes ...*node) bool {
	for _, id := range ids {
		hs := holders(id, nodes...)
		if len(hs) != 1 {
			return false
		}
		if w := nodes[0].p.w.holder(id); w != hs[0] {
			return false
		}
	}
	return true
}

func (e *env) lease(t *testing.T, id string) (Lease, bool) {
	t.Helper()
	var l Lease
	err := e.pool.QueryRow(context.Background(), `SELECT connection_id, owner, owner_url, fence, acquired_at, renewed_at, expires_at
		FROM session_leases WHERE connection_id = $1`, id).Scan(&l.ConnectionID, &l.Owner, &l.OwnerURL, &l.Fence, &l.AcquiredAt, &l.RenewedAt, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return l, true
}

type storedEvent struct {
	Type      string
	DedupeKey string
	Payload   map[string]any
}

func (e *env) events(t *testing.T, connectionID string) []storedEvent {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT type, dedupe_key, payload FROM events WHERE connection_id = $1 ORDER BY id`, connectionID)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedEvent, error) {
		var ev storedEvent
		err := r.Scan(&ev.Type, &ev.DedupeKey, &ev.Payload)
		return ev, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func conn(e *env, id string) store.Connection {
	return store.Connection{ID: id, TenantID: e.tenant, Connector: testConnector, Status: store.StatusActive}
}

func TestIntegrationOneHolderPerSessionAndTakeoverAfterKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		ids = append(ids, e.connection(t, fmt.Sprintf("n%d", i)))
	}
	a, b, c := e.startNode(t, "node-a", nil), e.startNode(t, "node-b", nil), e.startNode(t, "node-c", nil)
	all := []*node{a, b, c}
	waitFor(t, "every session held by one node", 10*time.Second, func() bool { return settled(ids, all...) })

	// The lease in the database names the node that holds the session.
	fences := map[string]int64{}
	for _, id := range ids {
		l, err := a.m.Owner(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.world.holder(id); l.Owner != got || l.OwnerURL != "http://"+got+".internal:8080" {
			t.Errorf("lease of %s names %s (%s), session open on %s", id, l.Owner, l.OwnerURL, got)
		}
		fences[id] = l.Fence
	}

	victim := a
	for _, n := range all {
		if len(n.p.openIDs()) > len(victim.p.openIDs()) {
			victim = n
		}
	}
	moved := victim.p.openIDs()
	var survivors []*node
	for _, n := range all {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	t.Logf("killing %s, which holds %d sessions", victim.name, len(moved))
	victim.kill()
	took := waitFor(t, "the sessions of the killed node taken over", 10*time.Second, func() bool { return settled(ids, survivors...) })
	t.Logf("takeover after kill took %s (lease TTL %s, scan every %s)", took, testTTL, testScan)
	if limit := testTTL + 2*testScan + time.Second; took > limit {
		t.Errorf("takeover took %s, want at most %s", took, limit)
	}
	for _, id := range moved {
		l, err := b.m.Owner(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence <= fences[id] || l.Owner == victim.name {
			t.Errorf("lease of %s after takeover: owner %s fence %d, before fence %d", id, l.Owner, l.Fence, fences[id])
		}
		// The dead node's memory no longer vouches for the session.
		if err := victim.m.CheckHeld(ctx, id); sdk.KindOf(err) != sdk.KindInvalid {
			t.Errorf("CheckHeld on the killed node = %v", err)
		}
	}
	e.world.check(t)
}

func TestIntegrationStaleHolderWritesAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "stale")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })
	if err := a.m.UpdateSession(ctx, conn(e, id), sdk.SessionUpdate{State: sdk.SessionConnecting}); err != nil {
		t.Fatal(err)
	}

	// Another node takes the lease while node-a still believes it holds it
	// (paused, partitioned): its in-memory deadline has not passed yet.
	if _, err := e.pool.Exec(ctx, `UPDATE session_leases SET owner = 'node-z', fence = fence + 1, expires_at = now() + interval '1 minute'
		WHERE connection_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if !a.m.Holds(id) {
		t.Fatal("node-a should still believe it holds the session")
	}
	err := a.m.UpdateSession(ctx, conn(e, id), sdk.SessionUpdate{State: sdk.SessionConnected, Account: &sdk.SessionAccount{Phone: "+393331234567"}})
	var se *sdk.Error
	if !errors.As(err, &se) || se.Kind != sdk.KindInvalid || se.Code != sdk.CodeSessionNotHeld {
		t.Fatalf("UpdateSession by the stale holder = %v, want invalid/%s", err, sdk.CodeSessionNotHeld)
	}
	s, err := LoadState(ctx, e.pool, e.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "connecting" || s.Phone != "" {
		t.Errorf("state after a refused report = %s, phone %q; want connecting, none", s.State, s.Phone)
	}
	if evs := e.events(t, id); len(evs) != 1 {
		t.Errorf("events after a refused report = %+v, want the first report's only", evs)
	}

	// The next renewal shows the loss: node-a closes the session and leaves
	// the new holder's lease alone.
	waitFor(t, "node-a to close the lost session", 3*time.Second, func() bool { return !a.p.isOpen(id) && !a.m.Holds(id) })
	if l, ok := e.lease(t, id); !ok || l.Owner != "node-z" {
		t.Errorf("lease after node-a gave up = %+v, %v; want node-z's", l, ok)
	}
	if err := a.m.Signal(ctx, conn(e, id), sdk.Signal{Kind: "presence"}); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("Signal by the stale holder = %v", err)
	}
	if err := a.m.CheckHeld(ctx, id); err == nil {
		t.Error("CheckHeld by the stale holder succeeded")
	}
	e.world.check(t)
}

func TestIntegrationGracefulStopHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for i := range 4 {
		ids = append(ids, e.connection(t, fmt.Sprintf("g%d", i)))
	}
	// A long TTL shows that the handover does not wait for expiry.
	long := func(c *Config) { c.LeaseTTL = 20 * time.Second; c.RenewEvery = 5 * time.Second }
	a := e.startNode(t, "node-a", long)
	waitFor(t, "node-a holding every session", 5*time.Second, func() bool { return settled(ids, a) })
	b := e.startNode(t, "node-b", long)

	a.stop()
	for _, id := range ids {
		if opens, closes := a.p.counts(id); closes != opens {
			t.Errorf("%s on node-a: %d opens, %d closes", id, opens, closes)
		}
	}
	var left int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM session_leases WHERE owner = 'node-a'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d leases of node-a left after its graceful stop", left)
	}
	took := waitFor(t, "node-b holding every session", 5*time.Second, func() bool { return settled(ids, b) })
	t.Logf("handover after a graceful stop took %s", took)
	e.world.check(t)
}

// A node that took every session while it was alone hands its excess over
// once other nodes start, a few per scan, until each holds its share; a
// session that is pairing stays where it is, and no session is ever open on
// two nodes.
func TestIntegrationSessionsSpreadWhenNodesJoin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for i := range 9 {
		ids = append(ids, e.connection(t, fmt.Sprintf("r%d", i)))
	}
	for i, id := range ids {
		state := "connected"
		if i == 0 {
			state = "pairing" // somebody is scanning its QR code
		}
		if _, err := e.pool.Exec(ctx, `INSERT INTO session_states (connection_id, tenant_id, state) VALUES ($1, $2, $3)`,
			id, e.tenant, state); err != nil {
			t.Fatal(err)
		}
	}
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "node-a holding every session", 5*time.Second, func() bool { return settled(ids, a) })

	b, c := e.startNode(t, "node-b", nil), e.startNode(t, "node-c", nil)
	all := []*node{a, b, c}
	took := waitFor(t, "three sessions on each node", 15*time.Second, func() bool {
		if !settled(ids, all...) {
			return false
		}
		for _, n := range all {
			if len(n.p.openIDs()) != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("9 sessions spread over 3 nodes %s after two nodes joined (scan every %s)", took, testScan)
	if !a.m.Holds(ids[0]) {
		t.Errorf("the pairing session moved: held by %v", holders(ids[0], all...))
	}
	// Balanced, it stays put: no more moves over several scans.
	var before [3]int
	for i, n := range all {
		for _, id := range ids {
			o, _ := n.p.counts(id)
			before[i] += o
		}
	}
	time.Sleep(10 * testScan)
	for i, n := range all {
		var opens int
		for _, id := range ids {
			o, _ := n.p.counts(id)
			opens += o
		}
		if opens != before[i] {
			t.Errorf("%s opened %d more sessions after the spread", n.name, opens-before[i])
		}
	}

	// A stopped node leaves the count at once: its sessions go to the two
	// others, which then hold them all between them.
	c.stop()
	waitFor(t, "the two remaining nodes holding every session", 10*time.Second, func() bool { return settled(ids, a, b) })
	var nodes int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM session_nodes WHERE node = 'node-c'`).Scan(&nodes); err != nil || nodes != 0 {
		t.Errorf("node-c still announced after its graceful stop (%d rows, %v)", nodes, err)
	}
	e.world.check(t)
}

func TestIntegrationDisabledAndDeletedConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	c1, c2 := e.connection(t, "d1"), e.connection(t, "d2")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "both sessions held", 5*time.Second, func() bool { return settled([]string{c1, c2}, a) })

	disabled := store.StatusDisabled
	if _, err := e.st.UpdateConnection(ctx, e.tenant, c1, store.ConnectionUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	a.m.Refresh()
	waitFor(t, "the disabled connection's session closed", 2*time.Second, func() bool { return !a.p.isOpen(c1) && !a.m.Holds(c1) })
	// The lease is deleted right after the close (not left to expire: the
	// lease TTL is 1.5 s, longer than this wait).
	waitFor(t, "the disabled connection's lease deleted", time.Second, func() bool { _, ok := e.lease(t, c1); return !ok })
	time.Sleep(4 * testScan)
	if a.m.Holds(c1) || a.p.isOpen(c1) {
		t.Error("a disabled connection's session was taken again")
	}

	if err := e.st.DeleteConnection(ctx, e.tenant, c2); err != nil {
		t.Fatal(err)
	}
	a.m.Refresh()
	waitFor(t, "the deleted connection's session closed", 2*time.Second, func() bool { return !a.p.isOpen(c2) && !a.m.Holds(c2) })

	active := store.StatusActive
	if _, err := e.st.UpdateConnection(ctx, e.tenant, c1, store.ConnectionUpdate{Status: &active}); err != nil {
		t.Fatal(err)
	}
	a.m.Refresh()
	waitFor(t, "the enabled connection's session open again", 2*time.Second, func() bool { return settled([]string{c1}, a) })
	if opens, closes := a.p.counts(c1); opens != 2 || closes != 1 {
		t.Errorf("c1: %d opens, %d closes; want 2, 1", opens, closes)
	}
	e.world.check(t)
}

func TestIntegrationOpenFailuresPluginRestartsAndDownPlugins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "f1")
	a := e.startNode(t, "node-a", func(c *Config) { c.PluginDownGrace = time.Second })
	a.p.mu.Lock()
	a.p.failOpen[id] = sdk.Permanent("device store unreachable")
	a.p.mu.Unlock()
	// node-a takes the lease, fails to open and releases it.
	waitFor(t, "node-a to try and give up", 5*time.Second, func() bool {
		_, ok := e.lease(t, id)
		return !ok && a.m.backingOff(id)
	})
	b := e.startNode(t, "node-b", func(c *Config) { c.PluginDownGrace = time.Second })
	waitFor(t, "node-b to hold the session", 5*time.Second, func() bool { return settled([]string{id}, a, b) && b.m.Holds(id) })
	if opens, _ := a.p.counts(id); opens != 0 {
		t.Errorf("node-a opened the session %d times", opens)
	}

	// A plugin restart loses its sessions; the holder opens them again.
	before, _ := b.p.counts(id)
	b.m.OnPluginStart(testConnector)
	if after, _ := b.p.counts(id); after != before+1 || !b.m.Holds(id) {
		t.Errorf("opens after OnPluginStart = %d, want %d, held %v", after, before+1, b.m.Holds(id))
	}

	// A plugin that stays down: node-b gives its sessions up to a node
	// that can run them.
	a.p.mu.Lock()
	delete(a.p.failOpen, id)
	a.p.mu.Unlock()
	b.p.kill()
	took := waitFor(t, "node-a to take over from the node whose plugin is down", 10*time.Second, func() bool {
		return a.m.Holds(id) && a.p.isOpen(id)
	})
	t.Logf("moved off a node with its plugin down after %s", took)
	if _, err := a.m.Owner(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.world.check(t)
}

func TestIntegrationUpdateSessionRecordsStateEventsAndNotifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "u1")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })

	listener, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	next := func(t *testing.T, wait time.Duration) (Notice, bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			return Notice{}, false
		}
		var notice Notice
		if err := json.Unmarshal([]byte(n.Payload), &notice); err != nil {
			t.Fatalf("notice %q: %v", n.Payload, err)
		}
		return notice, true
	}

	c := conn(e, id)
	qrExp := time.Now().Add(20 * time.Second).UTC().Truncate(time.Microsecond)
	steps := []struct {
		update sdk.SessionUpdate
		notice bool
	}{
		{sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: "qr-1", QRExpiresAt: qrExp}, true},
		{sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: "qr-2", QRExpiresAt: qrExp}, true},
		{sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: "qr-2", QRExpiresAt: qrExp}, false},
		{sdk.SessionUpdate{State: sdk.SessionConnected, Account: &sdk.SessionAccount{Phone: "+393331234567", JID: "39333:7@s.whatsapp.net", PushName: "Shop"}}, true},
		{sdk.SessionUpdate{State: sdk.SessionConnected}, false},
		{sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: "network unreachable", RetryAt: qrExp}, true},
		{sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: "network unreachable", RetryAt: qrExp}, false},
	}
	for i, s := range steps {
		if err := a.m.UpdateSession(ctx, c, s.update); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		n, got := next(t, 300*time.Millisecond)
		if got != s.notice {
			t.Fatalf("report %d (%s): notice received %v, want %v", i, s.update.State, got, s.notice)
		}
		if got && (n.Kind != NoticeState || n.ConnectionID != id || n.TenantID != e.tenant) {
			t.Errorf("report %d: notice %+v", i, n)
		}
		if i == 1 {
			st, err := LoadState(ctx, e.pool, e.tenant, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.QRCode != "qr-2" || st.QRExpiresAt == nil || !st.QRExpiresAt.Equal(qrExp) {
				t.Errorf("while pairing: QR %q expiring %v", st.QRCode, st.QRExpiresAt)
			}
		}
	}

	evs := e.events(t, id)
	var got []string
	keys := map[string]bool{}
	for _, ev := range evs {
		if ev.Type != sdk.EventSessionStateChanged {
			t.Errorf("unexpected event %s", ev.Type)
		}
		got = append(got, fmt.Sprintf("%v<-%v", ev.Payload["state"], ev.Payload["previous"]))
		keys[ev.DedupeKey] = true
	}
	if want := "pairing<-<nil> connected<-pairing disconnected<-connected"; strings.Join(got, " ") != want {
		t.Errorf("state events = %s, want %s", strings.Join(got, " "), want)
	}
	if len(keys) != len(evs) {
		t.Errorf("dedupe keys repeat: %v", keys)
	}
	if last := evs[len(evs)-1].Payload; last["reason"] != "network unreachable" || last["phone"] != "+393331234567" || last["retry_at"] == nil {
		t.Errorf("disconnected event payload = %v", last)
	}

	st, err := LoadState(ctx, e.pool, e.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "disconnected" || st.QRCode != "" || st.Phone != "+393331234567" || st.JID != "39333:7@s.whatsapp.net" ||
		st.ConnectedAt == nil || st.RetryAt == nil || !st.RetryAt.Equal(qrExp) {
		t.Errorf("state = %+v", st)
	}

	// Signals reach listeners and are not stored.
	if err := a.m.Signal(ctx, c, sdk.Signal{Kind: "presence", Payload: json.RawMessage(`{"from":"+393339999999","available":true}`)}); err != nil {
		t.Fatal(err)
	}
	n, ok := next(t, time.Second)
	if !ok || n.Kind != NoticeSignal || n.Signal == nil || n.Signal.Kind != "presence" || n.Signal.Payload["available"] != true {
		t.Errorf("signal notice = %+v, %v", n, ok)
	}
	big := json.RawMessage(`{"x":"` + strings.Repeat("a", 9000) + `"}`)
	if err := a.m.Signal(ctx, c, sdk.Signal{Kind: "presence", Payload: big}); err != nil {
		t.Errorf("oversized signal: %v, want dropped without error", err)
	}
	if n, ok := next(t, 300*time.Millisecond); ok {
		t.Errorf("oversized signal relayed: %+v", n)
	}
	if err := a.m.Signal(ctx, c, sdk.Signal{Kind: "presence", Payload: json.RawMessage(`[1]`)}); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("signal with an array payload = %v", err)
	}
	if n := len(e.events(t, id)); n != len(evs) {
		t.Errorf("signals stored events: %d, want %d", n, len(evs))
	}

	// A report for a session this node does not hold is refused.
	other := e.connection(t, "u2")
	a.stop()
	if err := a.m.UpdateSession(ctx, conn(e, other), sdk.SessionUpdate{State: sdk.SessionConnecting}); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("report for an unheld session = %v", err)
	}
}

// backingOff says whether the manager waits before taking id again.
func (m *Manager) backingOff(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.retry[id].delay > 0
}

type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) set(d time.Duration) { c.offset.Store(int64(d)) }
func countType(evs []storedEvent, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func TestIntegrationJanitorWarnsThenCleansUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "j1")
	clock := &fakeClock{}
	a := e.startNode(t, "node-a", func(c *Config) { c.Clock = clock.now })
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })
	c := conn(e, id)
	if err := a.m.UpdateSession(ctx, c, sdk.SessionUpdate{State: sdk.SessionConnected, Account: &sdk.SessionAccount{Phone: "+393331234567"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.UpdateSession(ctx, c, sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: "network unreachable"}); err != nil {
		t.Fatal(err)
	}
	janitor := func() []storedEvent {
		t.Helper()
		if err := a.m.janitor(ctx); err != nil {
			t.Fatal(err)
		}
		return e.events(t, id)
	}

	clock.set(5 * 24 * time.Hour)
	if n := countType(janitor(), sdk.EventSessionCleanupWarning); n != 0 {
		t.Fatalf("warning after 5 days: %d events", n)
	}
	// Reconnection attempts move since but not the cleanup clock.
	for _, s := range []sdk.SessionState{sdk.SessionConnecting, sdk.SessionDisconnected} {
		if err := a.m.UpdateSession(ctx, c, sdk.SessionUpdate{State: s}); err != nil {
			t.Fatal(err)
		}
	}
	clock.set(6*24*time.Hour + time.Hour)
	evs := janitor()
	if n := countType(evs, sdk.EventSessionCleanupWarning); n != 1 {
		t.Fatalf("warnings after 6 days and an hour: %d, want 1", n)
	}
	warning := evs[len(evs)-1].Payload
	cleanupAt, err := time.Parse(time.RFC3339Nano, fmt.Sprint(warning["cleanup_at"]))
	if err != nil {
		t.Fatalf("cleanup_at of %v: %v", warning, err)
	}
	if d := time.Until(cleanupAt); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
		t.Errorf("cleanup_at is %s away, want 7 days from the disconnection", d)
	}
	if n := countType(janitor(), sdk.EventSessionCleanupWarning); n != 1 {
		t.Fatalf("warnings after a second round: %d, want 1", n)
	}
	if !a.p.isOpen(id) {
		t.Fatal("the session was closed before its cleanup")
	}

	clock.set(7*24*time.Hour + time.Minute)
	evs = janitor()
	if n := countType(evs, sdk.EventSessionCleaned); n != 1 {
		t.Fatalf("cleaned events: %d, want 1", n)
	}
	if p := evs[len(evs)-1].Payload; p["logged_out"] != true || p["state"] != "disconnected" {
		t.Errorf("cleaned payload = %v", p)
	}
	a.p.mu.Lock()
	invokes := append([]sdk.ActionCall(nil), a.p.invokes...)
	a.p.mu.Unlock()
	if len(invokes) != 1 || invokes[0].Action != LogoutAction || invokes[0].Connection.ID != id || invokes[0].IdempotencyKey == "" {
		t.Errorf("actions invoked = %+v, want one logout", invokes)
	}
	if a.p.isOpen(id) || a.m.Holds(id) {
		t.Error("the cleaned session is still open or held")
	}
	if _, ok := e.lease(t, id); ok {
		t.Error("the cleaned session's lease is left")
	}
	got, err := e.st.LookupConnection(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusDisabled || got.StatusReason != "session cleaned up after 7 days disconnected" {
		t.Errorf("connection after cleanup: %s, %q", got.Status, got.StatusReason)
	}
	var keys int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM connection_state WHERE connection_id = $1`, id).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 0 {
		t.Errorf("%d host state keys left after cleanup", keys)
	}
	time.Sleep(3 * testScan)
	if a.m.Holds(id) {
		t.Error("the disabled connection's session was taken again")
	}
	e.world.check(t)
}

func TestIntegrationJanitorCleansUpWhenLogoutFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "j2")
	clock := &fakeClock{}
	a := e.startNode(t, "node-a", func(c *Config) { c.Clock = clock.now })
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })
	if err := a.m.UpdateSession(ctx, conn(e, id), sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: "device removed"}); err != nil {
		t.Fatal(err)
	}
	a.p.mu.Lock()
	a.p.failCall = sdk.Retryable("network unreachable")
	a.p.mu.Unlock()
	// Past the cleanup without a warning round first: the cleanup does not
	// depend on the warning having been given.
	clock.set(8 * 24 * time.Hour)
	if err := a.m.janitor(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.events(t, id)
	if n := countType(evs, sdk.EventSessionCleaned); n != 1 {
		t.Fatalf("cleaned events: %d, want 1", n)
	}
	if p := evs[len(evs)-1].Payload; p["logged_out"] != false || p["state"] != "logged_out" {
		t.Errorf("cleaned payload = %v", p)
	}
	got, err := e.st.LookupConnection(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusDisabled || a.p.isOpen(id) {
		t.Errorf("after cleanup: connection %s, session open %v", got.Status, a.p.isOpen(id))
	}
}

func TestIntegrationJanitorWarnsOnceWhenThePhoneIsAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "p1")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })
	c := conn(e, id)
	janitorCount := func() int {
		t.Helper()
		if err := a.m.janitor(ctx); err != nil {
			t.Fatal(err)
		}
		return countType(e.events(t, id), sdk.EventSessionPhoneInactive)
	}
	report := func(seen time.Time) {
		t.Helper()
		if err := a.m.UpdateSession(ctx, c, sdk.SessionUpdate{State: sdk.SessionConnected, PhoneSeenAt: seen,
			Account: &sdk.SessionAccount{Phone: "+393331234567"}}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	report(now.Add(-11 * 24 * time.Hour))
	if n := janitorCount(); n != 0 {
		t.Fatalf("warnings with the phone seen 11 days ago: %d", n)
	}
	report(now.Add(-13 * 24 * time.Hour)) // older: ignored, the phone was seen 11 days ago
	if n := janitorCount(); n != 0 {
		t.Fatalf("warnings after an older sighting: %d", n)
	}
	// Nothing new for a while: the phone has been away for more than 12 days.
	if _, err := e.pool.Exec(ctx, `UPDATE session_states SET phone_seen_at = now() - interval '12 days 1 hour' WHERE connection_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if n := janitorCount(); n != 1 {
		t.Fatalf("warnings with the phone away 12 days: %d, want 1", n)
	}
	if n := janitorCount(); n != 1 {
		t.Fatalf("warnings after a second round: %d, want 1", n)
	}
	report(now.Add(-12*24*time.Hour - 30*time.Minute)) // seen again, still long ago: a new episode
	if n := janitorCount(); n != 2 {
		t.Fatalf("warnings after a new episode: %d, want 2", n)
	}
	report(now)
	if n := janitorCount(); n != 2 {
		t.Fatalf("warnings with the phone back: %d, want 2", n)
	}
	for _, ev := range e.events(t, id) {
		if ev.Type == sdk.EventSessionPhoneInactive && (ev.Payload["phone_seen_at"] == nil || ev.Payload["phone"] != "+393331234567") {
			t.Errorf("phone-away payload = %v", ev.Payload)
		}
	}
}

func TestIntegrationSelfFencingWhenLeasesCannotBeRenewed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.connection(t, "s1")
	a := e.startNode(t, "node-a", nil)
	waitFor(t, "the session held", 5*time.Second, func() bool { return settled([]string{id}, a) })

	// Make the database unusable for lease work: a table lock that every
	// renewal waits on until its timeout.
	blocker, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	l, ok := e.lease(t, id)
	if !ok {
		t.Fatal("no lease")
	}
	if _, err := blocker.Exec(ctx, `LOCK TABLE session_leases IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a to close the session on its own", 3*testTTL, func() bool { return !a.p.isOpen(id) })
	closedAt := time.Now()
	// Renewals were already failing before the lock's renewal; the latest
	// expiry is the one read before the lock, plus at most one renewal.
	if latest := l.ExpiresAt.Add(testRenew); !closedAt.Before(latest) {
		t.Errorf("session closed at %s, after its lease could expire (%s)", closedAt.Format(time.StampMilli), latest.Format(time.StampMilli))
	}
	if err := a.m.CheckHeld(ctx, id); err == nil {
		t.Error("CheckHeld succeeded after self-fencing")
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a to take the session again", 3*testTTL, func() bool { return settled([]string{id}, a) })
	if l2, _ := e.lease(t, id); l2.Fence <= l.Fence {
		t.Errorf("fence after re-acquiring = %d, before %d", l2.Fence, l.Fence)
	}
	e.world.check(t)
}

// TestIntegrationTakeoverTimeWithDefaultLeases measures how long a session
// takes to move after its node is killed, with the default lease timing.
func TestIntegrationTakeoverTimeWithDefaultLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 17 seconds")
	}
	t.Parallel()
	e := newEnv(t)
	id := e.connection(t, "t1")
	defaults := func(c *Config) {
		c.LeaseTTL, c.RenewEvery, c.ScanEvery = DefaultLeaseTTL, DefaultRenewEvery, DefaultScanEvery
	}
	a := e.startNode(t, "node-a", defaults)
	waitFor(t, "node-a holding the session", 10*time.Second, func() bool { return settled([]string{id}, a) })
	b := e.startNode(t, "node-b", defaults)
	a.kill()
	took := waitFor(t, "node-b to take over", 30*time.Second, func() bool { return settled([]string{id}, b) })
	t.Logf("takeover after kill with default leases (TTL %s, renew %s, scan %s): %s", DefaultLeaseTTL, DefaultRenewEvery, DefaultScanEvery, took)
	if took > DefaultLeaseTTL+2*DefaultScanEvery+time.Second {
		t.Errorf("takeover took %s", took)
	}
	e.world.check(t)
}
