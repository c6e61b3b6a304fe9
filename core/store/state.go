package store

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// MaxStateValueSize is the largest value a connector may keep under one key
// (the SDK promises 64 KiB).
const MaxStateValueSize = 64 << 10

// maxStateKeyLen bounds state keys; they are identifiers, not data.
const maxStateKeyLen = 200

// ErrStateTooLarge is returned by SetState for a value over
// MaxStateValueSize.
var ErrStateTooLarge = errors.New("state value too large")

func checkStateKey(key string) error {
	if key == "" || len(key) > maxStateKeyLen || !utf8.ValidString(key) {
		return &ValidationError{Problems: []FieldProblem{{Field: "key", Message: fmt.Sprintf("must be 1 to %d bytes of UTF-8", maxStateKeyLen)}}}
	}
	return nil
}

// GetState returns the value a connector stored for a connection under key,
// or nil (and no error) when there is none.
func (s *Store) GetState(ctx context.Context, connectionID, key string) ([]byte, error) {
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM connection_state WHERE connection_id = $1 AND key = $2`, connectionID, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading connection state: %w", err)
	}
	if v == nil {
		v = []byte{} // stored empty, which is not the same as absent
	}
	return v, nil
}

// SetState stores value for a connection under key, replacing any previous
// value. It returns ErrNotFound when the connection does not exist and
// ErrStateTooLarge for a value over MaxStateValueSize.
func (s *Store) SetState(ctx context.Context, connectionID, key string, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if len(value) > MaxStateValueSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrStateTooLarge, len(value), MaxStateValueSize)
	}
	if value == nil {
		value = []byte{} // the column is NOT NULL
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO connection_state (connection_id, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (connection_id, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
		connectionID, key, value)
	if PGCode(err) == PGForeignKeyViolation {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("writing connection state: %w", err)
	}
	return nil
}

// DeleteState removes a connection's value under key; removing a missing key
// is not an error.
func (s *Store) DeleteState(ctx context.Context, connectionID, key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM connection_state WHERE connection_id = $1 AND key = $2`, connectionID, key); err != nil {
		return fmt.Errorf("deleting connection state: %w", err)
	}
	return nil
}
