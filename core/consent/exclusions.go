package consent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/store"
)

// Exclusion is a number the tenant never messages, whatever its consent.
type Exclusion struct {
	Phone     string
	Reason    string
	CreatedAt time.Time
}

// AddExclusion puts phone on the tenant's exclusion list, or updates the
// reason of an existing entry. Like an opt-out, it takes the consent lock of
// the number's contact, so a send to it under [Service.Hold] either finished
// before or sees the exclusion. A *store.ValidationError for a phone that is
// not E.164, store.ErrNotFound for an unknown tenant.
func (s *Service) AddExclusion(ctx context.Context, tenantID, phone, reason string) (Exclusion, error) {
	phone = strings.TrimSpace(phone)
	var problems []store.FieldProblem
	if !ValidPhone(phone) {
		problems = append(problems, store.FieldProblem{Field: "phone", Message: "must be an E.164 number, e.g. +393331234567"})
	}
	if len([]rune(reason)) > 500 {
		problems = append(problems, store.FieldProblem{Field: "reason", Message: "at most 500 characters"})
	}
	if len(problems) > 0 {
		return Exclusion{}, &store.ValidationError{Problems: problems}
	}
	var e Exclusion
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			SELECT pg_advisory_xact_lock($3, hashtext(id)) FROM contacts WHERE tenant_id = $1 AND phone = $2`,
			tenantID, phone, lockNamespace); err != nil {
			return fmt.Errorf("locking consent of contact: %w", err)
		}
		return tx.QueryRow(ctx, `
			INSERT INTO exclusions (tenant_id, phone, reason) VALUES ($1, $2, NULLIF($3, ''))
			ON CONFLICT (tenant_id, phone) DO UPDATE SET reason = EXCLUDED.reason
			RETURNING phone, COALESCE(reason, ''), created_at`, tenantID, phone, reason).Scan(&e.Phone, &e.Reason, &e.CreatedAt)
	})
	if isForeignKeyViolation(err) {
		return Exclusion{}, store.ErrNotFound
	}
	if err != nil {
		return Exclusion{}, fmt.Errorf("adding exclusion: %w", err)
	}
	return e, nil
}

// RemoveExclusion takes phone off the tenant's exclusion list;
// store.ErrNotFound when it is not on it.
func (s *Service) RemoveExclusion(ctx context.Context, tenantID, phone string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM exclusions WHERE tenant_id = $1 AND phone = $2`, tenantID, phone)
	if err != nil {
		return fmt.Errorf("removing exclusion: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// GetExclusion returns the exclusion of phone; store.ErrNotFound when there is none.
func (s *Service) GetExclusion(ctx context.Context, tenantID, phone string) (Exclusion, error) {
	var e Exclusion
	err := s.pool.QueryRow(ctx, `SELECT phone, COALESCE(reason, ''), created_at FROM exclusions WHERE tenant_id = $1 AND phone = $2`,
		tenantID, phone).Scan(&e.Phone, &e.Reason, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Exclusion{}, store.ErrNotFound
	}
	if err != nil {
		return Exclusion{}, fmt.Errorf("reading exclusion: %w", err)
	}
	return e, nil
}

// ListExclusions returns a page of the tenant's exclusions ordered by phone,
// and the cursor of the next page ("" on the last). limit is clamped to
// 1..store.MaxPageSize (0 means store.DefaultPageSize); a cursor this
// function did not return is store.ErrInvalidCursor.
func (s *Service) ListExclusions(ctx context.Context, tenantID, cursor string, limit int) ([]Exclusion, string, error) {
	switch {
	case limit <= 0:
		limit = store.DefaultPageSize
	case limit > store.MaxPageSize:
		limit = store.MaxPageSize
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !ValidPhone(string(b)) {
			return nil, "", store.ErrInvalidCursor
		}
		after = string(b)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT phone, COALESCE(reason, ''), created_at FROM exclusions
		WHERE tenant_id = $1 AND phone > $2 ORDER BY phone LIMIT $3`, tenantID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing exclusions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Exclusion, error) {
		var e Exclusion
		err := row.Scan(&e.Phone, &e.Reason, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing exclusions: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(list[limit-1].Phone))
	}
	return list, next, nil
}
