// Package store is Ponte's system of record in Postgres: tenants and their API
// keys, connections (with secret fields sealed under the master key), the
// per-connection state connectors keep, and the read side of stored events.
//
// SQL is hand-written next to the type that owns it. Every query that serves a
// tenant takes the tenant id and filters on it, so a row of another tenant is
// indistinguishable from a missing one ([ErrNotFound]).
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/secrets"
)

// ErrNoMasterKey is returned by operations that seal or open connection
// secrets when the Store was opened without a master key.
var ErrNoMasterKey = errors.New("store: no master key configured")

// ErrInvalidCursor is returned for a pagination cursor this package did not
// hand out (or that was altered).
var ErrInvalidCursor = errors.New("invalid cursor")

// Store is Ponte's Postgres store. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	sealer *secrets.Sealer // nil when opened without a master key
}

// DefaultMaxConns is the pool size when the database URL does not choose one.
// pgxpool's own default (max(4, NumCPU)) starves a host process in which the
// ingress group commit, the dispatcher, the poller, the API and sends (which
// hold a connection while they check consent) all need connections at once;
// 24 keeps three processes under Postgres's default max_connections of 100.
const DefaultMaxConns = 24

// Open connects to the database at databaseURL (a postgres:// URL or DSN) and
// checks that it answers. It does not apply migrations: the caller decides
// (`ponte migrate`, or `ponte serve` at start) by calling [Migrate].
//
// masterKey is the 32-byte key that seals connection secrets, or nil for
// callers that never touch them (admin commands, the dispatcher). The pool
// holds DefaultMaxConns connections unless the URL sets pool_max_conns.
func Open(ctx context.Context, databaseURL string, masterKey []byte) (*Store, error) {
	var sealer *secrets.Sealer
	if masterKey != nil {
		var err error
		if sealer, err = secrets.NewSealer(masterKey); err != nil {
			return nil, fmt.Errorf("opening store: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors can echo the URL, password included; keep them out.
		return nil, errors.New("opening store: parsing database URL failed")
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening store: creating pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("opening store: connecting to postgres: %w", err)
	}
	return &Store{pool: pool, sealer: sealer}, nil
}

// Pool returns the underlying connection pool, for packages that own their
// own tables' SQL (ingress, dispatch, payment links).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes every connection of the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers, for readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging postgres: %w", err)
	}
	return nil
}

// idEncoding is lowercase base32 without padding: URL- and path-safe, case
// insensitive to read aloud, no ambiguous punctuation.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 120 random bits in lowercase base32, e.g.
// "con_3k...": the id of every row Ponte creates. Ids are random rather than
// sequential so they reveal nothing about other tenants (counts, creation
// order) and cannot be guessed.
func NewID(prefix string) string {
	b := make([]byte, 15)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// Pagination bounds shared by the list queries.
const (
	// DefaultPageSize is used when a caller passes a limit of 0.
	DefaultPageSize = 50
	// MaxPageSize caps the limit a caller may ask for.
	MaxPageSize = 200
)

func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// encodeCursor makes an opaque cursor of a small keyset position. It is not
// signed: a client that forges one only pages through its own tenant's rows,
// because every list query filters on the tenant as well.
// EncodeCursor encodes a page cursor (a plain struct of the last row's
// sort keys) as the opaque string list endpoints return.
func EncodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: encoding cursor: %v", err)) // only called with plain structs
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor decodes a cursor made by EncodeCursor into v; anything else
// is ErrInvalidCursor.
func DecodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return ErrInvalidCursor
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ErrInvalidCursor
	}
	return nil
}

// Postgres error codes the store and its neighbours turn into typed errors.
const (
	PGForeignKeyViolation = "23503"
	PGUniqueViolation     = "23505"
)

// PGCode returns the SQLSTATE of a Postgres error in err's chain, or "".
func PGCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
