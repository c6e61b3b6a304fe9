package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockID is the key of the Postgres advisory lock held while
// migrating, so several `ponte serve` starting at once apply each migration
// exactly once. The value is arbitrary but fixed forever ("ponte" in ASCII).
const migrationLockID int64 = 0x706f6e7465

// Migration is one numbered schema change embedded in the binary.
type Migration struct {
	// Version is the number the file name starts with, e.g. 1 for 0001_init.sql.
	Version int
	// Name is the file name.
	Name string
	// SQL is the file's content.
	SQL string
}

// Migrations returns the embedded migrations in the order they apply.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", other, name, v)
		}
		seen[v] = name
		b, err := migrationFS.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("reading migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies the embedded migrations that the database at databaseURL has
// not seen yet, each in its own transaction, in version order, and records
// them in schema_migrations. It holds a session advisory lock for the whole
// run, so concurrent callers wait for each other and none applies a migration
// twice. A migration whose file changed after it was applied is an error: the
// database would no longer match what the code expects.
func Migrate(ctx context.Context, databaseURL string) error {
	migrations, err := Migrations()
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return errors.New("migrating: parsing database URL failed") // pgx may echo the password
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrating: connecting to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return fmt.Errorf("migrating: taking the migration lock: %w", err)
	}
	// Closing the session releases the lock too; unlocking explicitly just
	// frees waiters sooner.
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockID) }()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   bytea NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrating: creating schema_migrations: %w", err)
	}

	applied := map[int][]byte{}
	rows, err := conn.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrating: reading schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		var sum []byte
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return fmt.Errorf("migrating: reading schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrating: reading schema_migrations: %w", err)
	}

	for _, m := range migrations {
		sum := sha256.Sum256([]byte(m.SQL))
		if old, ok := applied[m.Version]; ok {
			if string(old) != string(sum[:]) {
				return fmt.Errorf("migrating: %s was changed after it was applied to this database; add a new migration instead of editing an applied one", m.Name)
			}
			continue
		}
		if err := applyMigration(ctx, conn, m, sum[:]); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m Migration, sum []byte) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrating %s: beginning transaction: %w", m.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Exec without arguments uses the simple protocol, which runs a file of
	// several statements in one round trip.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrating %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, m.Version, m.Name, sum); err != nil {
		return fmt.Errorf("migrating %s: recording it: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrating %s: committing: %w", m.Name, err)
	}
	return nil
}

// AppliedMigrations returns the versions recorded in schema_migrations, in
// order, for `ponte migrate` to report.
func (s *Store) AppliedMigrations(ctx context.Context) ([]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("listing applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("listing applied migrations: %w", err)
	}
	return versions, nil
}
