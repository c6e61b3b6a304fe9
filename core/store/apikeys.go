package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrInvalidAPIKey is returned by Authenticate for a key that is malformed,
// unknown, wrong or revoked. The API answers all of them with the same 401.
var ErrInvalidAPIKey = errors.New("invalid API key")

// Scopes an API key can carry. They form a ladder: admin includes write,
// write includes read.
const (
	// ScopeRead allows reading everything of the tenant: connectors,
	// connections (never their secrets), events, payment links.
	ScopeRead = "read"
	// ScopeWrite also allows changing things: connections and payment links.
	ScopeWrite = "write"
	// ScopeAdmin also allows managing the tenant's API keys.
	ScopeAdmin = "admin"
)

var scopeRank = map[string]int{ScopeRead: 1, ScopeWrite: 2, ScopeAdmin: 3}

// ValidateScopes checks that scopes is non-empty and names only known scopes.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return &ValidationError{Problems: []FieldProblem{{Field: "scopes", Message: "at least one scope is required (read, write or admin)"}}}
	}
	var problems []FieldProblem
	for _, sc := range scopes {
		if _, ok := scopeRank[sc]; !ok {
			problems = append(problems, FieldProblem{Field: "scopes", Message: fmt.Sprintf("unknown scope %q (want read, write or admin)", sc)})
		}
	}
	if problems != nil {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// APIKey is an API key as stored: everything but the secret, which is shown
// once at creation and kept only as a hash.
type APIKey struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	// Prefix is the non-secret start of the key (e.g. "ponte_ab3d5fgh"), shown
	// in listings so people can tell their keys apart.
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// UserID is the agent the key belongs to, or "" for a tenant service key
	// governed by its scopes only.
	UserID string `json:"user_id,omitempty"`
	// Role is the agent's current role (RoleAdmin, ...), filled by
	// Authenticate for a user's key; "" for a service key and in listings.
	Role string `json:"role,omitempty"`
}

// Allows reports whether the key grants scope, following the ladder
// admin > write > read.
func (k APIKey) Allows(scope string) bool {
	need, ok := scopeRank[scope]
	if !ok {
		return false
	}
	for _, have := range k.Scopes {
		if scopeRank[have] >= need {
			return true
		}
	}
	return false
}

// Key format: "ponte_" + 8 lookup characters + "_" + 52 secret characters
// (32 random bytes in lowercase base32). The lookup part is stored in clear
// (api_keys.prefix) to find the row with an index instead of hashing against
// every key; it is not secret.
const (
	keyPrefix       = "ponte_"
	keyLookupLen    = 8           // 40 random bits; unique in the table
	keySecretBytes  = 32          // 256 random bits
	lastUsedQuantum = time.Minute // also spelled out in Authenticate's SQL
)

var keySecretLen = idEncoding.EncodedLen(keySecretBytes)

// hashKey hashes a plaintext key for storage. SHA-256 without salt or
// stretching is right here, unlike for passwords: a key carries 256 bits from
// crypto/rand, so no dictionary or brute force gets anywhere near it however
// fast the hash is, while a deliberately slow hash (bcrypt, argon2) would add
// tens of milliseconds and a CPU spike to every API request.
func hashKey(plaintext string) []byte {
	sum := sha256.Sum256([]byte(plaintext))
	return sum[:]
}

func randomString(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return idEncoding.EncodeToString(b)
}

// CreateAPIKey creates an API key for a tenant and returns it with its
// plaintext, which is not stored and cannot be shown again. It returns
// ErrNotFound when the tenant does not exist and a *ValidationError for a bad
// name or scopes.
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, name string, scopes []string) (key APIKey, plaintext string, err error) {
	return s.insertAPIKey(ctx, tenantID, "", name, scopes)
}

// insertAPIKey creates a key of the tenant, a user's key when userID is not
// empty; the user must be one of the tenant's (ErrNotFound otherwise).
func (s *Store) insertAPIKey(ctx context.Context, tenantID, userID, name string, scopes []string) (key APIKey, plaintext string, err error) {
	if err := checkName("name", name); err != nil {
		return APIKey{}, "", err
	}
	if err := ValidateScopes(scopes); err != nil {
		return APIKey{}, "", err
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)

	// The lookup part has 40 random bits; a collision with an existing key is
	// unlikely but possible, so retry on the unique violation.
	for attempt := 0; attempt < 5; attempt++ {
		lookup := randomString(5)[:keyLookupLen]
		plaintext = keyPrefix + lookup + "_" + randomString(keySecretBytes)
		key = APIKey{ID: NewID("key"), TenantID: tenantID, Name: strings.TrimSpace(name), Prefix: keyPrefix + lookup, Scopes: scopes, UserID: userID}
		// A user's key is inserted only when the user is the tenant's: the
		// SELECT yields no row otherwise, and no row means not found.
		err = s.pool.QueryRow(ctx, `
			INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes, user_id)
			SELECT $1, $2, $3, $4, $5, $6, NULLIF($7, '')
			WHERE $7 = '' OR EXISTS (SELECT 1 FROM users WHERE id = $7 AND tenant_id = $2)
			RETURNING created_at`,
			key.ID, tenantID, key.Name, lookup, hashKey(plaintext), scopes, userID).Scan(&key.CreatedAt)
		switch PGCode(err) {
		case "":
			if errors.Is(err, pgx.ErrNoRows) {
				return APIKey{}, "", ErrNotFound
			}
			if err != nil {
				return APIKey{}, "", fmt.Errorf("creating API key: %w", err)
			}
			return key, plaintext, nil
		case PGForeignKeyViolation:
			return APIKey{}, "", ErrNotFound
		case PGUniqueViolation:
			continue
		default:
			return APIKey{}, "", fmt.Errorf("creating API key: %w", err)
		}
	}
	return APIKey{}, "", errors.New("creating API key: could not find a free key prefix")
}

const apiKeyColumns = `id, tenant_id, name, prefix, scopes, created_at, last_used_at, revoked_at, COALESCE(user_id, '')`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	var lookup string
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &lookup, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt, &k.UserID); err != nil {
		return APIKey{}, err
	}
	k.Prefix = keyPrefix + lookup
	return k, nil
}

// parseKey splits a plaintext key into its lookup part, or reports that it
// cannot be one of ours.
func parseKey(plaintext string) (lookup string, ok bool) {
	rest, ok := strings.CutPrefix(plaintext, keyPrefix)
	if !ok || len(rest) != keyLookupLen+1+keySecretLen || rest[keyLookupLen] != '_' {
		return "", false
	}
	for _, c := range rest[:keyLookupLen] + rest[keyLookupLen+1:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", false
		}
	}
	return rest[:keyLookupLen], true
}

// Authenticate returns the API key whose plaintext is given, or
// ErrInvalidAPIKey (wrapped with the reason, for debug logs) when it is
// malformed, unknown, wrong or revoked, or belongs to a disabled user. A user's
// key comes with the user's current Role.
//
// The hash comparison runs in constant time. The lookup by prefix may take
// measurably different time for known and unknown prefixes, which tells an
// attacker only what listings already show.
//
// last_used_at is refreshed at most once a minute per key, so an API under
// load does not turn every read into a write.
func (s *Store) Authenticate(ctx context.Context, plaintext string) (APIKey, error) {
	lookup, ok := parseKey(plaintext)
	if !ok {
		return APIKey{}, fmt.Errorf("%w: malformed", ErrInvalidAPIKey)
	}
	// A user's key carries the user's current role; a disabled user's keys
	// stop working at once, like revoked ones.
	row := s.pool.QueryRow(ctx, `
		SELECT k.id, k.tenant_id, k.name, k.prefix, k.scopes, k.created_at, k.last_used_at, k.revoked_at,
		       COALESCE(k.user_id, ''), COALESCE(u.role, ''), u.disabled_at IS NOT NULL, k.hash
		FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
		WHERE k.prefix = $1`, lookup)
	var k APIKey
	var hash []byte
	var userDisabled bool
	err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt,
		&k.UserID, &k.Role, &userDisabled, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("%w: unknown prefix", ErrInvalidAPIKey)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("authenticating API key: %w", err)
	}
	k.Prefix = keyPrefix + k.Prefix
	if subtle.ConstantTimeCompare(hash, hashKey(plaintext)) != 1 {
		return APIKey{}, fmt.Errorf("%w: wrong secret", ErrInvalidAPIKey)
	}
	if k.RevokedAt != nil {
		return APIKey{}, fmt.Errorf("%w: revoked", ErrInvalidAPIKey)
	}
	if userDisabled {
		return APIKey{}, fmt.Errorf("%w: user disabled", ErrInvalidAPIKey)
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) >= lastUsedQuantum {
		// The WHERE clause repeats the check on the database's clock, so a
		// skewed application clock costs a no-op round trip, not a write.
		var used time.Time
		err := s.pool.QueryRow(ctx, `
			UPDATE api_keys SET last_used_at = now()
			WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
			RETURNING last_used_at`, k.ID).Scan(&used)
		switch {
		case err == nil:
			k.LastUsedAt = &used
		case errors.Is(err, pgx.ErrNoRows):
			// Another request refreshed it within the minute.
		default:
			return APIKey{}, fmt.Errorf("recording API key use: %w", err)
		}
	}
	return k, nil
}

// ListAPIKeys returns a tenant's keys, revoked ones included, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing API keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, fmt.Errorf("listing API keys: %w", err)
	}
	return keys, nil
}

// GetAPIKey returns one of a tenant's keys or ErrNotFound.
func (s *Store) GetAPIKey(ctx context.Context, tenantID, keyID string) (APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = $1 AND id = $2`, tenantID, keyID))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("reading API key: %w", err)
	}
	return k, nil
}

// RevokeAPIKey revokes one of a tenant's keys; it stops authenticating at
// once. Revoking a revoked key is not an error and keeps the first revocation
// time. It returns ErrNotFound for a key the tenant does not have.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
		WHERE tenant_id = $1 AND id = $2`, tenantID, keyID)
	if err != nil {
		return fmt.Errorf("revoking API key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
