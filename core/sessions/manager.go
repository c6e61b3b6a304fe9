package sessions

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Defaults of [Config].
const (
	DefaultLeaseTTL          = 15 * time.Second
	DefaultRenewEvery        = 5 * time.Second
	DefaultScanEvery         = 2 * time.Second
	DefaultJanitorEvery      = time.Minute
	DefaultCleanupAfter      = 7 * 24 * time.Hour
	DefaultCleanupWarning    = 24 * time.Hour
	DefaultPhoneAwayWarning  = 12 * 24 * time.Hour
	DefaultMaxAcquirePerScan = 256
	DefaultOpenTimeout       = 30 * time.Second
	// DefaultMaxRebalancePerScan and DefaultRebalanceHoldOff: see
	// Config.MaxRebalancePerScan and Config.RebalanceHoldOff.
	DefaultMaxRebalancePerScan = 4
	DefaultRebalanceHoldOff    = 10 * time.Minute
	// DefaultPluginDownGrace is how long a node keeps the leases of a
	// connector whose plugin is not running (crashed and restarting) before
	// it gives them up for another node to run.
	DefaultPluginDownGrace = 30 * time.Second
)

// LogoutAction is the action of a session connector that logs its session
// out at the provider and forgets the device; the janitor calls it (when
// the connector declares it) before it cleans a session up.
const LogoutAction = "logout"

// ErrNotHeld is wrapped by [Manager.Owner] when no node holds a connection's
// session now.
var ErrNotHeld = errors.New("session not held by any node")

// Plugins reaches the running connector plugins. pluginhost.Registry (the
// *pluginhost.Host) implements it.
type Plugins interface {
	Connector(name string) (pluginhost.Client, error)
	Manifests() []sdk.Manifest
}

// Connections resolves a connection with its decrypted configuration, as
// plugins receive it. *store.Store and *store.ConnectionCache implement it.
type Connections = store.ConnectionResolver

// Config configures a [Manager]. Pool, Plugins and Connections are required;
// zero values of the rest take the defaults.
type Config struct {
	// Pool is the database every node shares.
	Pool *pgxpool.Pool
	// Plugins reaches the plugin processes of this node.
	Plugins Plugins
	// Connections resolves a connection before its session is opened.
	Connections Connections
	// NodeID names this node in session_leases.owner; default
	// hostname-pid-random. It must differ between live nodes.
	NodeID string
	// NodeURL is this node's internal base URL, stored as the lease's
	// owner_url so other nodes can route a session's actions here.
	NodeURL string
	// LeaseTTL is how long a lease lasts unrenewed (default 15s); a dead
	// node's sessions move to another node within about LeaseTTL+ScanEvery.
	LeaseTTL time.Duration
	// RenewEvery is how often held leases are renewed (default 5s); at most
	// half of LeaseTTL, so that one failed renewal costs nothing.
	RenewEvery time.Duration
	// ScanEvery is how often the node looks for sessions nobody holds
	// (default 2s, jittered by ±20% so nodes do not scan in step).
	ScanEvery time.Duration
	// MaxAcquirePerScan caps the sessions one scan takes (default 256):
	// enough for a survivor to take over a dead node's thousand sessions in
	// a few scans, few enough to bound one scan's work.
	MaxAcquirePerScan int
	// MaxRebalancePerScan caps the sessions one scan hands over to other
	// nodes because this node holds more than its share (default 4): each
	// move costs the session a reconnection, so a node that took every
	// session while alone gives its excess back gradually once others join.
	MaxRebalancePerScan int
	// RebalanceHoldOff is how long after a session was handed over for
	// balance it may be handed over for balance again (default 10 minutes):
	// a session no other node can open comes back here (after three scan
	// intervals left to the others) and stays.
	RebalanceHoldOff time.Duration
	// OpenTimeout bounds one OpenSession or CloseSession call (default 30s).
	OpenTimeout time.Duration
	// PluginDownGrace: see [DefaultPluginDownGrace].
	PluginDownGrace time.Duration
	// JanitorEvery is how often the janitor looks at the held sessions
	// (default 1 minute).
	JanitorEvery time.Duration
	// CleanupAfter: a session disconnected or logged out (not connected)
	// for longer than this is cleaned up: logged out, closed and its
	// connection disabled (default 7 days).
	CleanupAfter time.Duration
	// CleanupWarning is how long before the cleanup the warning event comes
	// (default 24h); less than CleanupAfter.
	CleanupWarning time.Duration
	// PhoneAwayWarning: a connected session whose phone was last seen longer
	// ago than this gets a warning event (default 12 days; WhatsApp logs
	// linked devices out after 14).
	PhoneAwayWarning time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock is the janitor's clock (default time.Now), replaceable in tests
	// to move days ahead. Leases never use it: their times are the
	// database's and their deadlines this process's monotonic clock.
	Clock func() time.Time
}

// Lease is a live session lease: which node holds a connection's session.
type Lease struct {
	ConnectionID string
	// Owner is the holding node's id; OwnerURL its internal base URL.
	Owner    string
	OwnerURL string
	// Fence grows with every acquisition of the lease.
	Fence      int64
	AcquiredAt time.Time
	RenewedAt  time.Time
	ExpiresAt  time.Time
}

// Manager holds this node's share of the sessions. Create it with [New],
// start it with [Manager.Run].
type Manager struct {
	cfg     Config
	pool    *pgxpool.Pool
	plugins Plugins
	conns   Connections
	log     *slog.Logger
	node    string
	now     func() time.Time

	mu   sync.Mutex
	held map[string]*holding
	// closing counts closes in progress per connection: a connection being
	// closed is not acquired again by this node until its CloseSession has
	// returned, so a new OpenSession can never be overtaken by the old close.
	closing map[string]int
	// retry keeps connections whose OpenSession failed here from being
	// taken again by this node for a while, so another node gets to try.
	retry map[string]retryEntry
	// pluginDown is when each connector's plugin was first seen unavailable.
	pluginDown map[string]time.Time
	// rebalanced is when each connection was last handed over for balance.
	rebalanced map[string]time.Time

	scanNow  chan struct{}
	renewNow chan struct{}
	running  atomic.Bool
	// abandon is a test hook that simulates kill -9: Run returns without
	// closing sessions or releasing leases.
	abandon atomic.Bool
}

type retryEntry struct {
	notBefore time.Time
	delay     time.Duration
}

// holding is one session this node holds.
type holding struct {
	connID, tenantID, connector string
	fence                       int64
	// deadline is this process's lower bound for the lease's expiry: the
	// monotonic time at which the last successful acquire or renew
	// statement was sent, plus LeaseTTL. The database computed expires_at
	// from its now() at or after that moment, so the lease is surely ours
	// until deadline whatever the skew between the clocks. Guarded by
	// Manager.mu.
	deadline time.Time

	// ops orders this holding's OpenSession and CloseSession calls: a close
	// waits for an open in flight, and nothing is opened once closed.
	ops    sync.Mutex
	closed bool // guarded by ops
}

func (h *holding) attrs(node string) []any {
	return []any{"connection_id", h.connID, "tenant_id", h.tenantID, "connector", h.connector, "node", node, "fence", h.fence}
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Pool == nil || cfg.Plugins == nil || cfg.Connections == nil {
		return nil, errors.New("sessions: Pool, Plugins and Connections are required")
	}
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, DefaultLeaseTTL)
	cfg.RenewEvery = cmp.Or(cfg.RenewEvery, DefaultRenewEvery)
	cfg.ScanEvery = cmp.Or(cfg.ScanEvery, DefaultScanEvery)
	cfg.MaxAcquirePerScan = cmp.Or(cfg.MaxAcquirePerScan, DefaultMaxAcquirePerScan)
	cfg.MaxRebalancePerScan = cmp.Or(cfg.MaxRebalancePerScan, DefaultMaxRebalancePerScan)
	cfg.RebalanceHoldOff = cmp.Or(cfg.RebalanceHoldOff, DefaultRebalanceHoldOff)
	cfg.OpenTimeout = cmp.Or(cfg.OpenTimeout, DefaultOpenTimeout)
	cfg.PluginDownGrace = cmp.Or(cfg.PluginDownGrace, DefaultPluginDownGrace)
	cfg.JanitorEvery = cmp.Or(cfg.JanitorEvery, DefaultJanitorEvery)
	cfg.CleanupAfter = cmp.Or(cfg.CleanupAfter, DefaultCleanupAfter)
	cfg.CleanupWarning = cmp.Or(cfg.CleanupWarning, DefaultCleanupWarning)
	cfg.PhoneAwayWarning = cmp.Or(cfg.PhoneAwayWarning, DefaultPhoneAwayWarning)
	if cfg.LeaseTTL < 100*time.Millisecond {
		return nil, fmt.Errorf("sessions: LeaseTTL %s is too short", cfg.LeaseTTL)
	}
	if cfg.RenewEvery*2 > cfg.LeaseTTL {
		return nil, fmt.Errorf("sessions: RenewEvery %s must be at most half of LeaseTTL %s", cfg.RenewEvery, cfg.LeaseTTL)
	}
	if cfg.CleanupWarning >= cfg.CleanupAfter {
		return nil, fmt.Errorf("sessions: CleanupWarning %s must be shorter than CleanupAfter %s", cfg.CleanupWarning, cfg.CleanupAfter)
	}
	if cfg.MaxAcquirePerScan < 0 || cfg.MaxRebalancePerScan < 0 {
		return nil, errors.New("sessions: MaxAcquirePerScan and MaxRebalancePerScan must not be negative")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	m := &Manager{
		cfg:        cfg,
		pool:       cfg.Pool,
		plugins:    cfg.Plugins,
		conns:      cfg.Connections,
		log:        cmp.Or(cfg.Logger, slog.Default()).With("component", "sessions"),
		node:       cfg.NodeID,
		now:        cfg.Clock,
		held:       map[string]*holding{},
		closing:    map[string]int{},
		retry:      map[string]retryEntry{},
		pluginDown: map[string]time.Time{},
		rebalanced: map[string]time.Time{},
		scanNow:    make(chan struct{}, 1),
		renewNow:   make(chan struct{}, 1),
	}
	return m, nil
}

// defaultNodeID is hostname-pid-random: readable in session_leases, and
// unique even for two processes with the same pid in two containers.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// NodeID returns this node's id as written in session_leases.owner.
func (m *Manager) NodeID() string { return m.node }

// Refresh asks for a scan and a renewal now, without waiting for them: a
// connection was created, enabled, disabled or deleted.
func (m *Manager) Refresh() {
	poke(m.scanNow)
	poke(m.renewNow)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Holds reports whether this node holds connectionID's session now.
func (m *Manager) Holds(connectionID string) bool {
	return m.current(connectionID) != nil
}

// current returns the holding of connectionID if its lease is surely still
// this node's, else nil.
func (m *Manager) current(connectionID string) *holding {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.held[connectionID]
	if h == nil || !time.Now().Before(h.deadline) {
		return nil
	}
	return h
}

// Owner returns the live lease of connectionID's session, or an error
// wrapping ErrNotHeld when no node holds it now (never acquired, released,
// or expired after its node died).
func (m *Manager) Owner(ctx context.Context, connectionID string) (Lease, error) {
	var l Lease
	err := m.pool.QueryRow(ctx, `
		SELECT connection_id, owner, owner_url, fence, acquired_at, renewed_at, expires_at
		FROM session_leases WHERE connection_id = $1 AND expires_at > now()`, connectionID).
		Scan(&l.ConnectionID, &l.Owner, &l.OwnerURL, &l.Fence, &l.AcquiredAt, &l.RenewedAt, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("session of connection %s: %w", connectionID, ErrNotHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("reading the session lease of %s: %w", connectionID, err)
	}
	return l, nil
}

// Run holds sessions until ctx ends: it scans for sessions nobody holds,
// renews the held leases, fences itself when it cannot renew and runs the
// janitor. When ctx ends it closes every held session and deletes its
// leases, so other nodes take them over at their next scan. Run may be
// called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("sessions: Run called twice")
	}
	m.log.Info("session manager running", "node", m.node, "lease_ttl", m.cfg.LeaseTTL,
		"renew_every", m.cfg.RenewEvery, "scan_every", m.cfg.ScanEvery)
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){m.scanLoop, m.renewLoop, m.fenceLoop, m.janitorLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	wg.Wait()
	if m.abandon.Load() {
		return nil
	}
	m.releaseAll(context.WithoutCancel(ctx))
	return nil
}

// releaseAll closes every held session, then deletes their leases in one
// statement. Closing comes first so that the next holder, which may start
// as soon as a lease is gone, never overlaps with this node.
func (m *Manager) releaseAll(ctx context.Context) {
	// One last renewal gives the closes a full lease of time: closing many
	// sessions may take a while, and a lease expiring meanwhile would let
	// another node open a session this one is still closing.
	m.renew(ctx)
	// Others stop counting this node at once, not when its row expires.
	pctx, pcancel := context.WithTimeout(ctx, m.cfg.LeaseTTL)
	if _, err := m.pool.Exec(pctx, `DELETE FROM session_nodes WHERE node = $1`, m.node); err != nil {
		m.log.Warn("withdrawing the node from the session nodes failed; its row expires instead", "node", m.node, "error", err)
	}
	pcancel()
	m.mu.Lock()
	all := make([]*holding, 0, len(m.held))
	for _, h := range m.held {
		all = append(all, h)
	}
	clear(m.held)
	m.mu.Unlock()
	if len(all) == 0 {
		return
	}
	m.parallel(all, func(h *holding) { m.closeLocal(ctx, h) })
	ids, fences := make([]string, len(all)), make([]int64, len(all))
	for i, h := range all {
		ids[i], fences[i] = h.connID, h.fence
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.OpenTimeout)
	defer cancel()
	tag, err := m.pool.Exec(dctx, `
		DELETE FROM session_leases l USING unnest($2::text[], $3::bigint[]) AS h(id, fence)
		WHERE l.connection_id = h.id AND l.fence = h.fence AND l.owner = $1`, m.node, ids, fences)
	if err != nil {
		m.log.Warn("releasing session leases at shutdown failed; they expire instead", "node", m.node, "sessions", len(all), "error", err)
		return
	}
	m.log.Info("session leases released at shutdown", "node", m.node, "sessions", len(all), "released", tag.RowsAffected())
}

// parallel runs f on every holding, a few at a time.
func (m *Manager) parallel(hs []*holding, f func(*holding)) {
	const workers = 8
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, h := range hs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(h)
		}()
	}
	wg.Wait()
}

// jitter returns d ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

func (m *Manager) scanLoop(ctx context.Context) {
	for {
		if err := m.scan(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("scanning for sessions failed", "node", m.node, "error", err)
		}
		t := time.NewTimer(jitter(m.cfg.ScanEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.scanNow:
			t.Stop()
		}
	}
}

func (m *Manager) renewLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.renewNow:
		}
		m.renew(ctx)
	}
}

// selfFenceMargin is how long before a lease's local deadline the node
// closes the session when it could not renew: time for CloseSession to
// reach the provider before another node may open the session.
func (m *Manager) selfFenceMargin() time.Duration { return m.cfg.LeaseTTL / 4 }

// fenceLoop closes every session whose lease this node could not renew in
// time. It runs apart from renewLoop because a renewal can hang on a
// database that does not answer; this loop never touches the database
// before it has closed the sessions.
func (m *Manager) fenceLoop(ctx context.Context) {
	t := time.NewTicker(max(m.cfg.LeaseTTL/20, 20*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		limit := time.Now().Add(m.selfFenceMargin())
		var late []*holding
		m.mu.Lock()
		for id, h := range m.held {
			if limit.After(h.deadline) {
				late = append(late, h)
				delete(m.held, id)
				m.closing[id]++
			}
		}
		m.mu.Unlock()
		if len(late) == 0 {
			continue
		}
		m.log.Error("session leases not renewed in time; closing their sessions (self-fencing)",
			"node", m.node, "sessions", len(late))
		m.parallel(late, func(h *holding) {
			m.log.Warn("session closed: lease not renewed in time", h.attrs(m.node)...)
			m.closeLocal(ctx, h)
			// Best effort: the database was likely unreachable, and the
			// lease expires by itself anyway.
			m.deleteLease(ctx, h, time.Second)
			m.doneClosing(h.connID)
		})
	}
}

// sessionConnectors returns the names of the installed session connectors
// whose plugin runs now. Connectors whose plugin is down are left out of
// scans: a lease taken for a session that cannot be opened would only be
// released again.
func (m *Manager) sessionConnectors() []string {
	var names []string
	for _, man := range m.plugins.Manifests() {
		if !man.Sessions {
			continue
		}
		if _, err := m.plugins.Connector(man.Name); err != nil {
			continue
		}
		names = append(names, man.Name)
	}
	return names
}

type candidate struct{ id, tenantID, connector string }

// scan acquires leases of sessions nobody holds and opens them.
//
// Spreading sessions over nodes: a node takes at most its fair share of all
// the sessions, ceil(total / live nodes) minus what it holds already, where
// the live nodes are those holding a live lease, plus itself; and at least
// one per scan, so that a session never starves when the other nodes cannot
// take it (their plugin is down). Candidates are taken in random order and
// at most MaxAcquirePerScan per scan. The live nodes are those announced in
// session_nodes (every node running a session connector renews its row at
// each scan) or holding a live lease, so a node that just started counts
// before it holds anything. When every session is held and this node holds
// more than its share (it was alone when the others started), it hands the
// excess over gradually (rebalance); otherwise held sessions stay where they
// are: a move costs a reconnection at the provider.
func (m *Manager) scan(ctx context.Context) error {
	connectors := m.sessionConnectors()
	if len(connectors) == 0 {
		return nil
	}
	// A scan stuck on a database that does not answer must not hold up the
	// next one for long; the leases it would take can wait.
	qctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseTTL)
	defer cancel()
	// This node announces itself (it runs a session connector) and counts
	// the other live nodes: those announced, and those holding a live lease.
	var total, others, mine int
	err := m.pool.QueryRow(qctx, `
		WITH me AS (
		    INSERT INTO session_nodes (node, expires_at) VALUES ($2, now() + $3 * interval '1 millisecond')
		    ON CONFLICT (node) DO UPDATE SET expires_at = EXCLUDED.expires_at
		), live AS (SELECT owner, count(*) AS n FROM session_leases WHERE expires_at > now() GROUP BY owner)
		SELECT (SELECT count(*) FROM connections WHERE connector = ANY($1) AND status = 'active'),
		       (SELECT count(*) FROM (SELECT owner FROM live UNION SELECT node FROM session_nodes WHERE expires_at > now()) n
		        WHERE n.owner <> $2),
		       COALESCE((SELECT n FROM live WHERE owner = $2), 0)`,
		connectors, m.node, m.cfg.LeaseTTL.Milliseconds()).Scan(&total, &others, &mine)
	if err != nil {
		return fmt.Errorf("counting sessions: %w", err)
	}
	share := int(math.Ceil(float64(total) / float64(others+1)))
	rows, err := m.pool.Query(qctx, `
		SELECT c.id, c.tenant_id, c.connector FROM connections c
		LEFT JOIN session_leases l ON l.connection_id = c.id
		WHERE c.connector = ANY($1) AND c.status = 'active'
		  AND (l.connection_id IS NULL OR l.expires_at < now())`, connectors)
	if err != nil {
		return fmt.Errorf("listing sessions nobody holds: %w", err)
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (candidate, error) {
		var c candidate
		err := r.Scan(&c.id, &c.tenantID, &c.connector)
		return c, err
	})
	if err != nil {
		return fmt.Errorf("listing sessions nobody holds: %w", err)
	}
	now := time.Now()
	m.mu.Lock()
	cands = slices.DeleteFunc(cands, func(c candidate) bool {
		if m.held[c.id] != nil || m.closing[c.id] > 0 {
			return true
		}
		r, ok := m.retry[c.id]
		return ok && now.Before(r.notBefore)
	})
	m.mu.Unlock()
	if len(cands) == 0 {
		// Every session is held: the moment to even out the load.
		if others > 0 && mine > share {
			m.rebalance(ctx, mine-share)
		}
		return nil
	}
	take := min(max(share-mine, 1), m.cfg.MaxAcquirePerScan, len(cands))
	mrand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	cands = cands[:take]

	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, c := range cands {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m.acquire(ctx, c)
		}()
	}
	wg.Wait()
	return nil
}

// rebalance hands up to excess sessions (at most MaxRebalancePerScan) over to
// the other nodes: it closes them here and deletes their leases, and keeps
// away from them for three scan intervals, so another node takes them at its
// next scan (or this one again, when none can). Only settled sessions move: connected, disconnected (reconnecting
// anyway) or in an end state; a session pairing or connecting (a QR code on
// somebody's screen) stays. A session moved for balance is not moved again
// for RebalanceHoldOff, so a session no other node can open does not bounce.
func (m *Manager) rebalance(ctx context.Context, excess int) {
	now := time.Now()
	m.mu.Lock()
	// Hand-overs older than the hold-off no longer count: forget them, so
	// the map holds only recent ones (moved sessions never come back to
	// clear their entry).
	for id, t := range m.rebalanced {
		if now.Sub(t) >= m.cfg.RebalanceHoldOff {
			delete(m.rebalanced, id)
		}
	}
	ids := make([]string, 0, len(m.held))
	for id := range m.held {
		if _, recent := m.rebalanced[id]; !recent {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseTTL)
	defer cancel()
	rows, err := m.pool.Query(qctx, `
		SELECT connection_id FROM session_states
		WHERE connection_id = ANY($1) AND state IN ('connected', 'disconnected', 'logged_out', 'banned', 'temporarily_banned')`, ids)
	if err != nil {
		m.log.Warn("rebalancing sessions: reading their states failed", "node", m.node, "error", err)
		return
	}
	movable, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		m.log.Warn("rebalancing sessions: reading their states failed", "node", m.node, "error", err)
		return
	}
	mrand.Shuffle(len(movable), func(i, j int) { movable[i], movable[j] = movable[j], movable[i] })
	movable = movable[:min(len(movable), excess, m.cfg.MaxRebalancePerScan)]
	for _, id := range movable {
		m.mu.Lock()
		h := m.held[id]
		if h != nil {
			m.rebalanced[id] = now
			m.retry[id] = retryEntry{notBefore: now.Add(3 * m.cfg.ScanEvery)}
		}
		m.mu.Unlock()
		if h == nil {
			continue
		}
		m.log.Info("handing a session over to another node for balance", h.attrs(m.node)...)
		m.drop(ctx, h)
	}
}

// acquireLease takes a missing or expired lease in one statement. The
// INSERT happens only for an active connection; ON CONFLICT takes over the
// existing row only if it has expired, re-checked under the row lock, so of
// two nodes racing for one lease exactly one gets a row back, with the fence
// incremented.
//
// A new row's fence is the database clock in microseconds rather than 1: a
// lease given up is deleted, and a fence starting again at 1 would repeat
// one handed out before, so a write delayed from the earlier holding could
// pass for the new one. Fences thus keep growing for a connection across
// deletions too.
const acquireLease = `
INSERT INTO session_leases (connection_id, owner, owner_url, fence, acquired_at, renewed_at, expires_at)
SELECT c.id, $2, $3, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
       now(), now(), now() + $4 * interval '1 millisecond'
FROM connections c WHERE c.id = $1 AND c.status = 'active'
ON CONFLICT (connection_id) DO UPDATE
SET owner = EXCLUDED.owner, owner_url = EXCLUDED.owner_url, fence = session_leases.fence + 1,
    acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at
WHERE session_leases.expires_at < now()
RETURNING fence`

func (m *Manager) acquire(ctx context.Context, c candidate) {
	sent := time.Now()
	var fence int64
	actx, cancel := context.WithTimeout(ctx, m.cfg.LeaseTTL)
	defer cancel()
	err := m.pool.QueryRow(actx, acquireLease, c.id, m.node, m.cfg.NodeURL, m.cfg.LeaseTTL.Milliseconds()).Scan(&fence)
	if errors.Is(err, pgx.ErrNoRows) {
		return // another node was faster, or the connection went away
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("acquiring a session lease failed", "connection_id", c.id, "tenant_id", c.tenantID, "node", m.node, "error", err)
		}
		return
	}
	h := &holding{connID: c.id, tenantID: c.tenantID, connector: c.connector, fence: fence, deadline: sent.Add(m.cfg.LeaseTTL)}
	m.mu.Lock()
	m.held[c.id] = h
	m.mu.Unlock()
	m.log.Info("session lease acquired", h.attrs(m.node)...)
	if err := m.open(ctx, h); err != nil {
		m.log.Warn("opening a session failed; releasing its lease", append(h.attrs(m.node), "error", err)...)
		m.drop(context.WithoutCancel(ctx), h)
		m.backOff(c.id)
		return
	}
	m.mu.Lock()
	delete(m.retry, c.id)
	m.mu.Unlock()
}

// backOff keeps this node from taking connectionID again for a while after
// its session failed to open: 1 scan interval, doubling up to 5 minutes.
func (m *Manager) backOff(connectionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.retry[connectionID]
	r.delay = min(max(2*r.delay, m.cfg.ScanEvery), 5*time.Minute)
	r.notBefore = time.Now().Add(r.delay)
	m.retry[connectionID] = r
}

// open resolves h's connection and opens its session in the local plugin.
// Opening an open session again updates its configuration.
func (m *Manager) open(ctx context.Context, h *holding) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.OpenTimeout)
	defer cancel()
	conn, cfg, err := m.conns.ResolvedConnection(ctx, h.connID)
	if err != nil {
		return fmt.Errorf("resolving the connection: %w", err)
	}
	if conn.Status != store.StatusActive {
		return fmt.Errorf("the connection is %s", conn.Status)
	}
	client, err := m.plugins.Connector(h.connector)
	if err != nil {
		return fmt.Errorf("reaching the %s plugin: %w", h.connector, err)
	}
	h.ops.Lock()
	defer h.ops.Unlock()
	if h.closed {
		return nil // given up meanwhile; the close has happened or will not need this open
	}
	if err := client.OpenSession(ctx, sdk.Connection{ID: conn.ID, TenantID: conn.TenantID, Config: cfg}); err != nil {
		return fmt.Errorf("OpenSession: %w", err)
	}
	m.log.Info("session opened", h.attrs(m.node)...)
	return nil
}

// closeLocal closes h's session in the local plugin, once.
func (m *Manager) closeLocal(ctx context.Context, h *holding) {
	h.ops.Lock()
	defer h.ops.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	client, err := m.plugins.Connector(h.connector)
	if err != nil {
		// A plugin that is not running holds no sessions.
		m.log.Info("session closed with its plugin down", append(h.attrs(m.node), "reason", err)...)
		return
	}
	// A close must happen even when the node is shutting down: that is
	// when every session is closed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.OpenTimeout)
	defer cancel()
	if err := client.CloseSession(ctx, h.connID); err != nil {
		m.log.Warn("closing a session failed", append(h.attrs(m.node), "error", err)...)
		return
	}
	m.log.Info("session closed", h.attrs(m.node)...)
}

// drop gives h up: forgets it, closes its session and deletes its lease if
// the lease is still h's (a lease someone else took is left alone).
func (m *Manager) drop(ctx context.Context, h *holding) {
	m.mu.Lock()
	if m.held[h.connID] == h {
		delete(m.held, h.connID)
	}
	m.closing[h.connID]++
	m.mu.Unlock()
	defer m.doneClosing(h.connID)
	m.closeLocal(ctx, h)
	m.deleteLease(ctx, h, m.cfg.OpenTimeout)
}

func (m *Manager) doneClosing(connectionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing[connectionID]--; m.closing[connectionID] <= 0 {
		delete(m.closing, connectionID)
	}
}

func (m *Manager) deleteLease(ctx context.Context, h *holding, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if _, err := m.pool.Exec(ctx, `DELETE FROM session_leases WHERE connection_id = $1 AND owner = $2 AND fence = $3`,
		h.connID, m.node, h.fence); err != nil {
		m.log.Warn("deleting a session lease failed; it expires instead", append(h.attrs(m.node), "error", err)...)
	}
}

// renewLeases extends every lease this node holds, of connections still
// active, in one statement, and returns those it extended. A lease another
// node took has another owner and fence and is not touched. A lease that
// expired but nobody took yet is extended: nobody else can have run the
// session meanwhile.
const renewLeases = `
UPDATE session_leases l
SET renewed_at = now(), expires_at = now() + $2 * interval '1 millisecond'
FROM unnest($3::text[], $4::bigint[]) AS h(id, fence), connections c
WHERE l.connection_id = h.id AND l.fence = h.fence AND l.owner = $1
  AND c.id = l.connection_id AND c.status = 'active'
RETURNING l.connection_id`

// renew extends the held leases and gives up those it could not extend: a
// lease someone else took, or one of a connection disabled or deleted. The
// sessions of a connector whose plugin stayed down for PluginDownGrace are
// given up as well, so another node runs them.
func (m *Manager) renew(ctx context.Context) {
	m.mu.Lock()
	hs := make([]*holding, 0, len(m.held))
	for _, h := range m.held {
		hs = append(hs, h)
	}
	m.mu.Unlock()
	if len(hs) == 0 {
		return
	}
	var keep, stranded []*holding
	for _, h := range hs {
		if m.pluginDownFor(h.connector) > m.cfg.PluginDownGrace {
			stranded = append(stranded, h)
		} else {
			keep = append(keep, h)
		}
	}
	for _, h := range stranded {
		m.log.Warn("giving a session up: its plugin is not running", h.attrs(m.node)...)
		m.drop(ctx, h)
	}
	if len(keep) == 0 {
		return
	}
	ids, fences := make([]string, len(keep)), make([]int64, len(keep))
	for i, h := range keep {
		ids[i], fences[i] = h.connID, h.fence
	}
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RenewEvery)
	defer cancel()
	rows, err := m.pool.Query(rctx, renewLeases, m.node, m.cfg.LeaseTTL.Milliseconds(), ids, fences)
	var ids2 []string
	if err == nil {
		ids2, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("renewing session leases failed", "node", m.node, "sessions", len(keep), "error", err)
		}
		return
	}
	renewed := make(map[string]bool, len(ids2))
	for _, id := range ids2 {
		renewed[id] = true
	}
	deadline := sent.Add(m.cfg.LeaseTTL)
	var lost []*holding
	m.mu.Lock()
	for _, h := range keep {
		if renewed[h.connID] {
			if m.held[h.connID] == h {
				h.deadline = deadline
			}
		} else if m.held[h.connID] == h {
			lost = append(lost, h)
		}
	}
	m.mu.Unlock()
	for _, h := range lost {
		m.log.Warn("session lease lost or connection no longer active; closing the session", h.attrs(m.node)...)
		m.drop(ctx, h)
	}
}

// pluginDownFor says for how long the connector's plugin has been
// unavailable (0 while it runs).
func (m *Manager) pluginDownFor(connector string) time.Duration {
	_, err := m.plugins.Connector(connector)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.pluginDown, connector)
		return 0
	}
	since, ok := m.pluginDown[connector]
	if !ok {
		m.pluginDown[connector] = time.Now()
		return 0
	}
	return time.Since(since)
}

// OnPluginStart opens again every held session of connector: its plugin
// (re)started and holds no sessions. Wire it to pluginhost.Options.OnStart.
// A session that fails to open is given up, for another node or a later
// scan to retry.
func (m *Manager) OnPluginStart(connector string) {
	m.mu.Lock()
	var hs []*holding
	for _, h := range m.held {
		if h.connector == connector {
			hs = append(hs, h)
		}
	}
	delete(m.pluginDown, connector)
	m.mu.Unlock()
	if len(hs) == 0 {
		poke(m.scanNow)
		return
	}
	m.log.Info("plugin started; opening its sessions again", "connector", connector, "node", m.node, "sessions", len(hs))
	ctx := context.Background()
	m.parallel(hs, func(h *holding) {
		if err := m.open(ctx, h); err != nil {
			m.log.Warn("reopening a session failed; releasing its lease", append(h.attrs(m.node), "error", err)...)
			m.drop(ctx, h)
			m.backOff(h.connID)
		}
	})
	poke(m.scanNow)
}

// notHeld is the answer to a report for a session this node does not hold.
func notHeld(connectionID string) *sdk.Error {
	return &sdk.Error{Kind: sdk.KindInvalid, Code: sdk.CodeSessionNotHeld,
		Message: fmt.Sprintf("this node does not hold the session of connection %s", connectionID)}
}

var (
	_ ingress.SessionGate = (*Manager)(nil)
	_ Plugins             = (*pluginhost.Host)(nil)
	_ Connections         = (*store.Store)(nil)
)
