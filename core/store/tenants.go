package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Tenant is a customer of Ponte; everything else belongs to one.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

const maxNameLen = 200

func checkName(field, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return &ValidationError{Problems: []FieldProblem{{Field: field, Message: "must not be empty"}}}
	case utf8.RuneCountInString(name) > maxNameLen:
		return &ValidationError{Problems: []FieldProblem{{Field: field, Message: fmt.Sprintf("must be at most %d characters", maxNameLen)}}}
	}
	return nil
}

// CreateTenant creates a tenant. The name is for people and need not be
// unique.
func (s *Store) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	if err := checkName("name", name); err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: NewID("ten"), Name: strings.TrimSpace(name)}
	err := s.pool.QueryRow(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING created_at`, t.ID, t.Name).Scan(&t.CreatedAt)
	if err != nil {
		return Tenant{}, fmt.Errorf("creating tenant: %w", err)
	}
	return t, nil
}

// GetTenant returns a tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = $1`, id).Scan(&t.ID, &t.Name, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, ErrNotFound
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("reading tenant: %w", err)
	}
	return t, nil
}

// ListTenants returns every tenant, oldest first. It is for operators (the
// admin commands, `ponte dev` finding its first tenant), never for the API.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at FROM tenants ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) {
		var t Tenant
		return t, r.Scan(&t.ID, &t.Name, &t.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return tenants, nil
}
