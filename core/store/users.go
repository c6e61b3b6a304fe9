package store

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles of a tenant's users (agents). A user's role bounds what the user's
// API keys can do, whatever scopes the key was created with.
const (
	// RoleAdmin can do everything in the tenant, including managing users and
	// API keys.
	RoleAdmin = "admin"
	// RoleManager can do everything in the tenant but manage users and keys.
	RoleManager = "manager"
	// RoleOperator reads and acts only on the conversations assigned to it
	// (and their contacts), can reply in them and read templates.
	RoleOperator = "operator"
	// RoleReadOnly reads and never sends or changes anything.
	RoleReadOnly = "read_only"
)

// Roles lists the valid roles, most powerful first.
var Roles = []string{RoleAdmin, RoleManager, RoleOperator, RoleReadOnly}

// ValidRole reports whether role is one of [Roles].
func ValidRole(role string) bool {
	switch role {
	case RoleAdmin, RoleManager, RoleOperator, RoleReadOnly:
		return true
	}
	return false
}

// RoleScopes returns the scopes a role implies: the scopes of keys created
// for a user of that role, and the most a user's key can use whatever scopes
// it carries. Nil for an unknown role.
func RoleScopes(role string) []string {
	switch role {
	case RoleAdmin:
		return []string{ScopeAdmin}
	case RoleManager, RoleOperator:
		return []string{ScopeWrite}
	case RoleReadOnly:
		return []string{ScopeRead}
	}
	return nil
}

// ErrConflict is returned when a create or update would break a uniqueness
// rule (a user's email already taken in the tenant).
var ErrConflict = errors.New("conflict")

// User is an agent of a tenant: a person who works the inbox.
type User struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"-"`
	Email      string     `json:"email"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// NewUser is what creating a user takes.
type NewUser struct {
	Email string
	Name  string
	Role  string
}

// UserUpdate changes a user; nil fields are left alone.
type UserUpdate struct {
	Name *string
	Role *string
	// Disabled true disables the user (its keys stop authenticating at once);
	// false enables it again.
	Disabled *bool
}

func checkEmail(email string) error {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return &ValidationError{Problems: []FieldProblem{{Field: "email", Message: "must be a plain email address, e.g. ada@example.com"}}}
	}
	return nil
}

func checkRole(role string) error {
	if !ValidRole(role) {
		return &ValidationError{Problems: []FieldProblem{{Field: "role", Message: fmt.Sprintf("unknown role %q (want admin, manager, operator or read_only)", role)}}}
	}
	return nil
}

const userColumns = `id, tenant_id, email, name, role, created_at, disabled_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.TenantID, &u.Email, &u.Name, &u.Role, &u.CreatedAt, &u.DisabledAt)
	return u, err
}

// CreateUser creates a user of the tenant. Emails are compared without case
// and unique in a tenant (ErrConflict). It returns a *ValidationError for a
// bad email, name or role and ErrNotFound for an unknown tenant.
func (s *Store) CreateUser(ctx context.Context, tenantID string, in NewUser) (User, error) {
	in.Email = strings.ToLower(strings.TrimSpace(in.Email))
	var problems []FieldProblem
	for _, err := range []error{checkEmail(in.Email), checkName("name", in.Name), checkRole(in.Role)} {
		var ve *ValidationError
		if errors.As(err, &ve) {
			problems = append(problems, ve.Problems...)
		}
	}
	if problems != nil {
		return User{}, &ValidationError{Problems: problems}
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `
		INSERT INTO users (id, tenant_id, email, name, role) VALUES ($1, $2, $3, $4, $5)
		RETURNING `+userColumns, NewID("usr"), tenantID, in.Email, strings.TrimSpace(in.Name), in.Role))
	switch PGCode(err) {
	case "":
		if err != nil {
			return User{}, fmt.Errorf("creating user: %w", err)
		}
		return u, nil
	case PGUniqueViolation:
		return User{}, fmt.Errorf("creating user %s: %w", in.Email, ErrConflict)
	case PGForeignKeyViolation:
		return User{}, ErrNotFound
	}
	return User{}, fmt.Errorf("creating user: %w", err)
}

// ListUsers returns the tenant's users, disabled ones included, oldest first.
func (s *Store) ListUsers(ctx context.Context, tenantID string) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// GetUser returns one of the tenant's users or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, tenantID, id string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("reading user: %w", err)
	}
	return u, nil
}

// UpdateUser changes a user's name, role or disabled state. Disabling keeps
// the first disabling time. It returns ErrNotFound for a user the tenant does
// not have and a *ValidationError for a bad name or role.
func (s *Store) UpdateUser(ctx context.Context, tenantID, id string, up UserUpdate) (User, error) {
	var problems []FieldProblem
	if up.Name != nil {
		var ve *ValidationError
		if errors.As(checkName("name", *up.Name), &ve) {
			problems = append(problems, ve.Problems...)
		}
		trimmed := strings.TrimSpace(*up.Name)
		up.Name = &trimmed
	}
	if up.Role != nil {
		var ve *ValidationError
		if errors.As(checkRole(*up.Role), &ve) {
			problems = append(problems, ve.Problems...)
		}
	}
	if problems != nil {
		return User{}, &ValidationError{Problems: problems}
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `
		UPDATE users SET
			name = COALESCE($3, name),
			role = COALESCE($4, role),
			disabled_at = CASE WHEN $5::boolean IS NULL THEN disabled_at
			                   WHEN $5 THEN COALESCE(disabled_at, now())
			                   ELSE NULL END
		WHERE tenant_id = $1 AND id = $2
		RETURNING `+userColumns, tenantID, id, up.Name, up.Role, up.Disabled))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("updating user: %w", err)
	}
	return u, nil
}

// CreateUserAPIKey creates an API key for one of the tenant's users, with the
// scopes the user's role implies, and returns it with its plaintext (shown
// once). The key authenticates as the user: its role, checked at every
// request, bounds it. ErrNotFound for a user the tenant does not have;
// a *ValidationError for a bad name or a disabled user.
func (s *Store) CreateUserAPIKey(ctx context.Context, tenantID, userID, name string) (APIKey, string, error) {
	u, err := s.GetUser(ctx, tenantID, userID)
	if err != nil {
		return APIKey{}, "", err
	}
	if u.DisabledAt != nil {
		return APIKey{}, "", &ValidationError{Problems: []FieldProblem{{Field: "user", Message: "the user is disabled"}}}
	}
	k, plain, err := s.insertAPIKey(ctx, tenantID, userID, name, RoleScopes(u.Role))
	if err != nil {
		return APIKey{}, "", err
	}
	k.Role = u.Role
	return k, plain, nil
}
