package poller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockNamespace is the first key of the two-key advisory locks that claim a
// connection for polling; the second is hashtext(connection id). The two-key
// space is separate from the one-key space (the migrations lock), and this
// value keeps it apart from other two-key users (consent uses "CONS").
// Fixed forever, since processes of different versions must agree: "POLL"
// in ASCII.
const lockNamespace int32 = 0x504f4c4c

// Claiming a connection: why a session advisory lock and not a lease row.
//
// A poll holds its claim on a connection from its own pooled Postgres session
// for the whole poll: pg_try_advisory_lock(namespace, hashtext(id)) never
// waits, so a busy connection is simply skipped until the next tick. The lock
// goes away with the session, so a poller that crashes or is killed releases
// its claims at once (as soon as Postgres sees the connection close), with no
// lease duration to tune against polls of unknown length, no row to expire
// and no migration.
//
// What if the session dies while the poll goes on (network cut)? Then
// another poller may claim the connection and poll it too. Both may commit
// the same events, which the unique (connection, dedupe key) absorbs; but
// every write of the poll's own state (cursor, schedule) goes through the
// claiming session itself, so a poller that lost its claim cannot store a
// cursor: its writes fail with the session. A statement that succeeds on the
// session ran while the session, and thus the lock, was alive.
//
// Two connection ids whose hashtext collides share a lock; the price is that
// they are not polled at the same moment, which is harmless.
//
// The locks need session pooling: behind PgBouncer in transaction mode they
// would be taken and released on arbitrary server sessions. Ponte connects to
// Postgres directly (pgxpool).

// newClaimPool opens the pool claims are held on: the store's settings, at
// most n sessions. Claims do not share the store's pool because a claim holds
// its session for the whole poll while the poll also needs the store (to
// resolve the connection, to commit events); with as many polls as the pool
// has sessions, every poll would wait for a session that only a poll could
// give back.
func newClaimPool(ctx context.Context, base *pgxpool.Pool, n int) (*pgxpool.Pool, error) {
	cfg := base.Config()
	cfg.MaxConns = int32(n)
	cfg.MinConns = 0
	cfg.MinIdleConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the poller's claim pool: %w", err)
	}
	return pool, nil
}

// claim is one connection claimed for polling, held on its own session.
type claim struct {
	conn         *pgxpool.Conn
	connectionID string
}

// tryClaim claims a connection: ok is false when another poller holds it.
func tryClaim(ctx context.Context, pool *pgxpool.Pool, connectionID string) (c *claim, ok bool, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("acquiring a session to claim connection %s: %w", connectionID, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockNamespace, connectionID).Scan(&ok); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("claiming connection %s: %w", connectionID, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return &claim{conn: conn, connectionID: connectionID}, true, nil
}

// release gives the claim up and the session back to the pool. It runs even
// when the poll's context has ended; if the unlock fails, the session is
// closed, which drops the lock as surely.
func (c *claim) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockNamespace, c.connectionID); err != nil {
		discard(c.conn)
		return
	}
	c.conn.Release()
}

// discard closes a pooled session instead of returning it: the pool drops
// closed sessions on release.
func discard(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Conn().Close(ctx)
	conn.Release()
}

// errConnectionGone is returned by writes of state of a connection deleted
// during the poll.
var errConnectionGone = errors.New("connection deleted")

// getState reads the connection's value under key on the claiming session;
// nil when there is none.
func (c *claim) getState(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := c.conn.QueryRow(ctx, `SELECT value FROM connection_state WHERE connection_id = $1 AND key = $2`, c.connectionID, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state %q of connection %s: %w", key, c.connectionID, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// setState stores the connection's value under key on the claiming session
// (see the note on claims above for why it must be that session). The SQL is
// that of store.SetState: the same table, the same upsert.
func (c *claim) setState(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := c.conn.Exec(ctx, `
		INSERT INTO connection_state (connection_id, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (connection_id, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
		c.connectionID, key, value)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return errConnectionGone
	}
	if err != nil {
		return fmt.Errorf("writing state %q of connection %s: %w", key, c.connectionID, err)
	}
	return nil
}
