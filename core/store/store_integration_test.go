package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a migrated store on a fresh database, its URL and its
// master key.
func newStore(t *testing.T) (*store.Store, string, []byte) {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	key, err := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, url, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, url, key
}

func mustTenant(t *testing.T, s *store.Store, name string) store.Tenant {
	t.Helper()
	tn, err := s.CreateTenant(context.Background(), name)
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return tn
}

var stripeFields = []sdk.ConfigField{
	{Name: "api_key", Type: sdk.FieldString, Required: true, Secret: true, Pattern: `^sk_(test|live)_`},
	{Name: "webhook_secret", Type: sdk.FieldString, Secret: true},
	{Name: "mode", Type: sdk.FieldString, Enum: []string{"test", "live"}, Default: "test"},
	{Name: "timeout_seconds", Type: sdk.FieldInteger, Default: 30},
}

func mustConnection(t *testing.T, s *store.Store, tenantID, name, config string) store.Connection {
	t.Helper()
	c, err := s.CreateConnection(context.Background(), tenantID, store.NewConnection{
		Connector: "stripe", Name: name, Config: json.RawMessage(config), Fields: stripeFields,
	})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

func jsonEqual(t *testing.T, want string, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestIntegrationMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.PostgresURL(t)

	// Several `ponte serve` starting at once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- store.Migrate(ctx, url)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	s, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	migrations, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, m := range migrations {
		want = append(want, m.Version)
	}
	got, err := s.AppliedMigrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied migrations (-want +got):\n%s", diff)
	}
	if len(want) < 2 || want[0] != 1 {
		t.Errorf("embedded migrations = %v, want 1, 2, ...", want)
	}

	// An applied migration whose file changed is refused.
	if _, err := s.Pool().Exec(ctx, `UPDATE schema_migrations SET checksum = '\x00' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, url); err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Errorf("Migrate after a changed migration = %v, want the changed-migration error", err)
	}
}

func TestIntegrationOpenDoesNotMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateTenant(ctx, "x"); err == nil {
		t.Fatal("CreateTenant worked on an unmigrated database; Open must not migrate")
	}
}

func TestIntegrationTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := mustTenant(t, s, "Acme")
	b := mustTenant(t, s, " Beta ")
	if !strings.HasPrefix(a.ID, "ten_") || a.ID == b.ID {
		t.Errorf("tenant ids %q, %q", a.ID, b.ID)
	}
	if b.Name != "Beta" {
		t.Errorf("name = %q, want trimmed", b.Name)
	}
	got, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Tenant{a, b}, got); diff != "" {
		t.Errorf("ListTenants (-want +got):\n%s", diff)
	}
	if g, err := s.GetTenant(ctx, a.ID); err != nil || g != a {
		t.Errorf("GetTenant = %+v, %v", g, err)
	}
	if _, err := s.GetTenant(ctx, "ten_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTenant(missing) = %v, want ErrNotFound", err)
	}
	var ve *store.ValidationError
	if _, err := s.CreateTenant(ctx, "  "); !errors.As(err, &ve) {
		t.Errorf("CreateTenant(blank) = %v, want ValidationError", err)
	}
}

func TestIntegrationAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := mustTenant(t, s, "A")
	b := mustTenant(t, s, "B")

	key, plain, err := s.CreateAPIKey(ctx, a.ID, "ci", []string{"write", "read", "write"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, key.Prefix+"_") || !strings.HasPrefix(key.Prefix, "ponte_") {
		t.Errorf("plaintext %q does not start with prefix %q", plain, key.Prefix)
	}
	if diff := cmp.Diff([]string{"read", "write"}, key.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}

	// Only a hash is stored.
	var hash []byte
	var prefix string
	if err := s.Pool().QueryRow(ctx, `SELECT hash, prefix FROM api_keys WHERE id = $1`, key.ID).Scan(&hash, &prefix); err != nil {
		t.Fatal(err)
	}
	secretPart := plain[len(key.Prefix)+1:]
	if bytes.Contains(hash, []byte(plain)) || strings.Contains(prefix, secretPart) || len(hash) != 32 {
		t.Errorf("stored key material looks wrong: hash %d bytes, prefix %q", len(hash), prefix)
	}

	got, err := s.Authenticate(ctx, plain)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if got.ID != key.ID || got.TenantID != a.ID || got.LastUsedAt == nil {
		t.Errorf("Authenticate = %+v", got)
	}
	firstUse := *got.LastUsedAt

	// A second use within the minute does not write.
	again, err := s.Authenticate(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if !again.LastUsedAt.Equal(firstUse) {
		t.Errorf("last_used_at moved from %v to %v within a minute", firstUse, *again.LastUsedAt)
	}
	// After a minute it does.
	if _, err := s.Pool().Exec(ctx, `UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1`, key.ID); err != nil {
		t.Fatal(err)
	}
	later, err := s.Authenticate(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(*later.LastUsedAt) > 30*time.Second {
		t.Errorf("last_used_at = %v, want refreshed", *later.LastUsedAt)
	}

	flip := func(s string, i int) string {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"wrong secret":   flip(plain, len(plain)-1),
		"unknown prefix": flip(plain, len("ponte_")),
		"truncated":      plain[:len(plain)-1],
		"garbage":        "Bearer xyz",
	} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, store.ErrInvalidAPIKey) {
			t.Errorf("Authenticate(%s) = %v, want ErrInvalidAPIKey", name, err)
		}
	}

	bKey, _, err := s.CreateAPIKey(ctx, b.ID, "b", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	// Tenant isolation: A cannot see or revoke B's key.
	if err := s.RevokeAPIKey(ctx, a.ID, bKey.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeAPIKey(other tenant) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetAPIKey(ctx, a.ID, bKey.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKey(other tenant) = %v, want ErrNotFound", err)
	}
	list, err := s.ListAPIKeys(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != key.ID {
		t.Errorf("ListAPIKeys(A) = %+v, want only A's key", list)
	}

	if err := s.RevokeAPIKey(ctx, a.ID, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, a.ID, key.ID); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if _, err := s.Authenticate(ctx, plain); !errors.Is(err, store.ErrInvalidAPIKey) {
		t.Errorf("Authenticate(revoked) = %v, want ErrInvalidAPIKey", err)
	}
	if k, err := s.GetAPIKey(ctx, a.ID, key.ID); err != nil || k.RevokedAt == nil {
		t.Errorf("GetAPIKey after revoke = %+v, %v", k, err)
	}

	var ve *store.ValidationError
	if _, _, err := s.CreateAPIKey(ctx, a.ID, "x", []string{"root"}); !errors.As(err, &ve) {
		t.Errorf("CreateAPIKey(unknown scope) = %v, want ValidationError", err)
	}
	if _, _, err := s.CreateAPIKey(ctx, a.ID, "x", nil); !errors.As(err, &ve) {
		t.Errorf("CreateAPIKey(no scope) = %v, want ValidationError", err)
	}
	if _, _, err := s.CreateAPIKey(ctx, "ten_missing", "x", []string{"read"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAPIKey(missing tenant) = %v, want ErrNotFound", err)
	}
}

func TestIntegrationConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, url, _ := newStore(t)
	a := mustTenant(t, s, "A")
	b := mustTenant(t, s, "B")

	const apiKey = "sk_test_supersecret123"
	const whsec = "whsec_alsosecret456"
	c := mustConnection(t, s, a.ID, "Stripe", `{"api_key":"`+apiKey+`","webhook_secret":"`+whsec+`","timeout_seconds":10}`)
	if !strings.HasPrefix(c.ID, "con_") || c.Status != store.StatusActive || c.Connector != "stripe" || c.TenantID != a.ID {
		t.Errorf("created %+v", c)
	}
	jsonEqual(t, `{"mode":"test","timeout_seconds":10}`, c.Config)
	if diff := cmp.Diff([]string{"api_key", "webhook_secret"}, c.SecretFields); diff != "" {
		t.Errorf("secret fields (-want +got):\n%s", diff)
	}

	// Secrets are not in the clear anywhere in the row.
	var rowText string
	if err := s.Pool().QueryRow(ctx, `SELECT row_to_json(c)::text FROM connections c WHERE id = $1`, c.ID).Scan(&rowText); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rowText, apiKey) || strings.Contains(rowText, "supersecret") || strings.Contains(rowText, whsec) {
		t.Fatalf("a secret is stored in the clear: %s", rowText)
	}

	conn, cfg, err := s.ResolvedConnection(ctx, c.ID)
	if err != nil {
		t.Fatalf("ResolvedConnection: %v", err)
	}
	if conn.TenantID != a.ID {
		t.Errorf("resolved tenant %q", conn.TenantID)
	}
	jsonEqual(t, `{"api_key":"`+apiKey+`","webhook_secret":"`+whsec+`","mode":"test","timeout_seconds":10}`, cfg)

	// Tenant isolation.
	if _, err := s.GetConnection(ctx, b.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection(other tenant) = %v", err)
	}
	newName := "stolen"
	if _, err := s.UpdateConnection(ctx, b.ID, c.ID, store.ConnectionUpdate{Name: &newName}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateConnection(other tenant) = %v", err)
	}
	if err := s.DeleteConnection(ctx, b.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteConnection(other tenant) = %v", err)
	}
	if list, _, err := s.ListConnections(ctx, b.ID, store.ConnectionFilter{}); err != nil || len(list) != 0 {
		t.Errorf("ListConnections(B) = %v, %v; want none", list, err)
	}

	// Update: a config patch without the secrets keeps them.
	got, err := s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Config: json.RawMessage(`{"mode":"live"}`), Fields: stripeFields})
	if err != nil {
		t.Fatalf("UpdateConnection: %v", err)
	}
	jsonEqual(t, `{"mode":"live","timeout_seconds":10}`, got.Config)
	_, cfg, err = s.ResolvedConnection(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, `{"api_key":"`+apiKey+`","webhook_secret":"`+whsec+`","mode":"live","timeout_seconds":10}`, cfg)

	// null removes an optional secret and resets a defaulted field.
	got, err = s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Config: json.RawMessage(`{"webhook_secret":null,"timeout_seconds":null,"api_key":"sk_live_new"}`), Fields: stripeFields})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"api_key"}, got.SecretFields); diff != "" {
		t.Errorf("secret fields after removal (-want +got):\n%s", diff)
	}
	_, cfg, err = s.ResolvedConnection(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, `{"api_key":"sk_live_new","mode":"live","timeout_seconds":30}`, cfg)

	// An invalid update changes nothing.
	var ve *store.ValidationError
	bad := "  "
	if _, err := s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Name: &bad}); !errors.As(err, &ve) {
		t.Errorf("UpdateConnection(blank name) = %v, want ValidationError", err)
	}
	_, err = s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Config: json.RawMessage(`{"api_key":null,"mode":"prod"}`), Fields: stripeFields})
	if !errors.As(err, &ve) {
		t.Fatalf("UpdateConnection(invalid config) = %v, want ValidationError", err)
	}
	if diff := cmp.Diff([]store.FieldProblem{{Field: "config.api_key", Message: "is required"}, {Field: "config.mode", Message: "must be one of test, live"}}, ve.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	_, cfg, _ = s.ResolvedConnection(ctx, c.ID)
	jsonEqual(t, `{"api_key":"sk_live_new","mode":"live","timeout_seconds":30}`, cfg)

	disabled := store.StatusDisabled
	newName = "Stripe live"
	got, err = s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Status: &disabled, Name: &newName})
	if err != nil || got.Status != store.StatusDisabled || got.Name != newName || !got.UpdatedAt.After(c.UpdatedAt) {
		t.Errorf("status/name update = %+v, %v", got, err)
	}
	badStatus := "paused"
	if _, err := s.UpdateConnection(ctx, a.ID, c.ID, store.ConnectionUpdate{Status: &badStatus}); !errors.As(err, &ve) {
		t.Errorf("UpdateConnection(bad status) = %v, want ValidationError", err)
	}

	// Create validation lists every problem.
	_, err = s.CreateConnection(ctx, a.ID, store.NewConnection{Connector: "stripe", Name: "", Config: json.RawMessage(`{"mode":"x","nope":1}`), Fields: stripeFields})
	if !errors.As(err, &ve) {
		t.Fatalf("CreateConnection(invalid) = %v", err)
	}
	wantProblems := []store.FieldProblem{
		{Field: "name", Message: "must not be empty"},
		{Field: "config.api_key", Message: "is required"},
		{Field: "config.mode", Message: "must be one of test, live"},
		{Field: "config.nope", Message: "unknown field"},
	}
	if diff := cmp.Diff(wantProblems, ve.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := s.CreateConnection(ctx, a.ID, store.NewConnection{Connector: "stripe", Name: "x", Config: json.RawMessage(`[1]`), Fields: stripeFields}); !errors.As(err, &ve) {
		t.Errorf("CreateConnection(array config) = %v", err)
	}
	if _, err := s.CreateConnection(ctx, "ten_missing", store.NewConnection{Connector: "stripe", Name: "x", Config: json.RawMessage(`{"api_key":"sk_test_1"}`), Fields: stripeFields}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateConnection(missing tenant) = %v, want ErrNotFound", err)
	}

	// Ciphertexts are bound to their row: swapped between two connections
	// they no longer open.
	other := mustConnection(t, s, a.ID, "Other", `{"api_key":"sk_test_other"}`)
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secrets = (SELECT secrets FROM connections WHERE id = $1) WHERE id = $2`, c.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ResolvedConnection(ctx, other.ID); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("ResolvedConnection(swapped ciphertext) = %v, want secrets.ErrOpen", err)
	}

	// Another master key cannot open them; no master key cannot either.
	otherKey, _ := secrets.ParseMasterKey(secrets.GenerateMasterKey())
	s2, err := store.Open(ctx, url, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, _, err := s2.ResolvedConnection(ctx, c.ID); !errors.Is(err, secrets.ErrOpen) {
		t.Errorf("ResolvedConnection(wrong key) = %v, want secrets.ErrOpen", err)
	}
	s3, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if _, _, err := s3.ResolvedConnection(ctx, c.ID); !errors.Is(err, store.ErrNoMasterKey) {
		t.Errorf("ResolvedConnection(no key) = %v, want ErrNoMasterKey", err)
	}
	if _, err := s3.CreateConnection(ctx, a.ID, store.NewConnection{Connector: "stripe", Name: "x", Config: json.RawMessage(`{"api_key":"sk_test_1"}`), Fields: stripeFields}); !errors.Is(err, store.ErrNoMasterKey) {
		t.Errorf("CreateConnection(no key) = %v, want ErrNoMasterKey", err)
	}
	if _, err := s3.GetConnection(ctx, a.ID, c.ID); err != nil {
		t.Errorf("GetConnection needs no key, got %v", err)
	}

	if _, _, err := s.ResolvedConnection(ctx, "con_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResolvedConnection(missing) = %v", err)
	}
	if l, err := s.LookupConnection(ctx, c.ID); err != nil || l.TenantID != a.ID {
		t.Errorf("LookupConnection = %+v, %v", l, err)
	}

	// A connection that payment links refer to cannot be deleted.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO payment_links (id, tenant_id, connection_id, workflow_id, expires_at) VALUES ('pl_1', $1, $2, 'wf', now())`, a.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, a.ID, c.ID); !errors.Is(err, store.ErrConnectionInUse) {
		t.Errorf("DeleteConnection(in use) = %v, want ErrConnectionInUse", err)
	}
	if err := s.DeleteConnection(ctx, a.ID, other.ID); err != nil {
		t.Errorf("DeleteConnection: %v", err)
	}
	if _, err := s.GetConnection(ctx, a.ID, other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection(deleted) = %v", err)
	}
	if err := s.DeleteConnection(ctx, a.ID, other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteConnection twice = %v", err)
	}
}

func TestIntegrationConnectionPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := mustTenant(t, s, "A")
	b := mustTenant(t, s, "B")
	var want []string
	for i := range 5 {
		c := mustConnection(t, s, a.ID, fmt.Sprintf("c%d", i), `{"api_key":"sk_test_x"}`)
		want = append(want, c.ID)
		mustConnection(t, s, b.ID, fmt.Sprintf("b%d", i), `{"api_key":"sk_test_x"}`)
	}
	var got []string
	cursor, pages := "", 0
	for {
		page, next, err := s.ListConnections(ctx, a.ID, store.ConnectionFilter{Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range page {
			got = append(got, c.ID)
		}
		if next == "" {
			break
		}
		cursor = next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	if page, _, err := s.ListConnections(ctx, a.ID, store.ConnectionFilter{Connector: "shopify"}); err != nil || len(page) != 0 {
		t.Errorf("connector filter = %v, %v", page, err)
	}
	if _, _, err := s.ListConnections(ctx, a.ID, store.ConnectionFilter{Cursor: "garbage!"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor = %v, want ErrInvalidCursor", err)
	}
}

func TestIntegrationConnectionState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := mustTenant(t, s, "A")
	c := mustConnection(t, s, a.ID, "c", `{"api_key":"sk_test_x"}`)

	if v, err := s.GetState(ctx, c.ID, "cursor"); err != nil || v != nil {
		t.Fatalf("GetState(missing) = %q, %v; want nil, nil", v, err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.SetState(ctx, c.ID, "cursor", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetState(ctx, c.ID, "cursor"); err != nil || string(got) != v {
			t.Fatalf("GetState = %q, %v; want %q", got, err, v)
		}
	}
	if err := s.SetState(ctx, c.ID, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetState(ctx, c.ID, "empty"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("GetState(empty) = %v, %v; want empty non-nil", got, err)
	}
	if err := s.SetState(ctx, c.ID, "big", make([]byte, store.MaxStateValueSize+1)); !errors.Is(err, store.ErrStateTooLarge) {
		t.Errorf("SetState(too large) = %v", err)
	}
	if err := s.SetState(ctx, c.ID, "max", make([]byte, store.MaxStateValueSize)); err != nil {
		t.Errorf("SetState(at limit) = %v", err)
	}
	if err := s.SetState(ctx, "con_missing", "k", []byte("v")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetState(missing connection) = %v", err)
	}
	var ve *store.ValidationError
	if err := s.SetState(ctx, c.ID, "", []byte("v")); !errors.As(err, &ve) {
		t.Errorf("SetState(empty key) = %v", err)
	}
	if err := s.DeleteState(ctx, c.ID, "cursor"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetState(ctx, c.ID, "cursor"); err != nil || v != nil {
		t.Errorf("GetState after delete = %q, %v", v, err)
	}
	// State goes with its connection.
	if err := s.DeleteConnection(ctx, a.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM connection_state WHERE connection_id = $1`, c.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("state rows after connection delete = %d, %v", n, err)
	}
}

func insertEvent(t *testing.T, s *store.Store, tenantID, connID, typ string, receivedAt time.Time) int64 {
	t.Helper()
	var id int64
	err := s.Pool().QueryRow(context.Background(), `
		INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, received_at, correlation, payload)
		VALUES ($1, $2, gen_random_uuid()::text, $3, $4, $4, '{"payment_link":"pl_1"}', '{"amount":100}')
		RETURNING id`, tenantID, connID, typ, receivedAt).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIntegrationEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newStore(t)
	a := mustTenant(t, s, "A")
	b := mustTenant(t, s, "B")
	ca1 := mustConnection(t, s, a.ID, "a1", `{"api_key":"sk_test_x"}`)
	ca2 := mustConnection(t, s, a.ID, "a2", `{"api_key":"sk_test_x"}`)
	cb := mustConnection(t, s, b.ID, "b", `{"api_key":"sk_test_x"}`)

	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var a1, a2, all []int64 // newest first
	for i := range 6 {
		at := base.Add(time.Duration(i) * time.Minute)
		typ := "payment_intent.succeeded"
		if i%2 == 1 {
			typ = "charge.refunded"
		}
		conn := ca1
		if i >= 4 {
			conn = ca2
		}
		id := insertEvent(t, s, a.ID, conn.ID, typ, at)
		if conn.ID == ca1.ID {
			a1 = append([]int64{id}, a1...)
		} else {
			a2 = append([]int64{id}, a2...)
		}
		all = append([]int64{id}, all...)
		insertEvent(t, s, b.ID, cb.ID, typ, at)
	}
	ids := func(events []store.Event) []int64 {
		out := []int64{}
		for _, e := range events {
			out = append(out, e.ID)
		}
		return out
	}

	tests := map[string]struct {
		f    store.EventFilter
		want []int64
	}{
		"all":                 {f: store.EventFilter{}, want: all},
		"connection":          {f: store.EventFilter{ConnectionID: ca2.ID}, want: a2},
		"other tenant's conn": {f: store.EventFilter{ConnectionID: cb.ID}, want: []int64{}},
		"type":                {f: store.EventFilter{Type: "charge.refunded"}, want: []int64{all[0], all[2], all[4]}},
		"since":               {f: store.EventFilter{Since: base.Add(4 * time.Minute)}, want: all[:2]},
		"until":               {f: store.EventFilter{Until: base.Add(time.Minute)}, want: all[5:]},
		"window":              {f: store.EventFilter{Since: base.Add(time.Minute), Until: base.Add(3 * time.Minute)}, want: all[3:5]},
		"combined":            {f: store.EventFilter{ConnectionID: ca1.ID, Type: "payment_intent.succeeded"}, want: []int64{a1[1], a1[3]}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, next, err := s.ListEvents(ctx, a.ID, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if next != "" {
				t.Errorf("next cursor %q on a short page", next)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}

	// Pagination walks every event once, newest first.
	var paged []int64
	cursor := ""
	for range 10 {
		page, next, err := s.ListEvents(ctx, a.ID, store.EventFilter{Limit: 4, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ids(page)...)
		if next == "" {
			break
		}
		cursor = next
	}
	if diff := cmp.Diff(all, paged); diff != "" {
		t.Errorf("paged (-want +got):\n%s", diff)
	}

	e, err := s.GetEvent(ctx, a.ID, all[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.ConnectionID != ca2.ID || e.Correlation["payment_link"] != "pl_1" || e.DispatchedAt != nil {
		t.Errorf("GetEvent = %+v", e)
	}
	jsonEqual(t, `{"amount":100}`, e.Payload)
	bEvents, _, err := s.ListEvents(ctx, b.ID, store.EventFilter{Limit: 1})
	if err != nil || len(bEvents) != 1 {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, a.ID, bEvents[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEvent(other tenant) = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"garbage!", "e30"} { // "e30" is {}: no position
		if _, _, err := s.ListEvents(ctx, a.ID, store.EventFilter{Cursor: bad}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListEvents(cursor %q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
}
