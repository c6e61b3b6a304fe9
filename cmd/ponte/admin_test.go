package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// ponte runs the CLI in-process and returns what it wrote.
func ponte(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func migratedDB(t *testing.T) string {
	t.Helper()
	url := testenv.PostgresURL(t)
	if _, _, err := ponte(t, "migrate", "--database-url", url); err != nil {
		t.Fatalf("ponte migrate: %v", err)
	}
	return url
}

var (
	tenantIDRE = regexp.MustCompile(`ten_[a-z0-9]+`)
	keyIDRE    = regexp.MustCompile(`key_[a-z0-9]+`)
)

func TestIntegrationAdminTenantsAndKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migratedDB(t)

	out, _, err := ponte(t, "admin", "tenant", "create", "--name", "Acme Shop", "--database-url", url)
	if err != nil {
		t.Fatalf("tenant create: %v", err)
	}
	tenantID := tenantIDRE.FindString(out)
	if tenantID == "" || !strings.Contains(out, `"Acme Shop"`) {
		t.Fatalf("tenant create printed %q", out)
	}
	out, _, err = ponte(t, "admin", "tenant", "create", "--name", "Other", "--database-url", url)
	if err != nil {
		t.Fatal(err)
	}
	otherID := tenantIDRE.FindString(out)

	out, _, err = ponte(t, "admin", "tenant", "list", "--database-url", url)
	if err != nil {
		t.Fatalf("tenant list: %v", err)
	}
	if !strings.Contains(out, tenantID) || !strings.Contains(out, "Acme Shop") || !strings.Contains(out, otherID) {
		t.Errorf("tenant list misses a tenant:\n%s", out)
	}

	keyOut, keyErr, err := ponte(t, "admin", "key", "create", "--tenant", tenantID, "--name", "ci", "--scopes", "read,write", "--database-url", url)
	if err != nil {
		t.Fatalf("key create: %v", err)
	}
	plaintext := strings.TrimSpace(keyOut)
	if strings.Count(keyOut, "\n") != 1 || !strings.HasPrefix(plaintext, "ponte_") {
		t.Fatalf("key create should print only the key on stdout, got %q", keyOut)
	}
	if !strings.Contains(keyErr, "only this once") {
		t.Errorf("key create did not say the key is shown once: %q", keyErr)
	}
	keyID := keyIDRE.FindString(keyErr)

	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := st.Authenticate(ctx, plaintext)
	if err != nil {
		t.Fatalf("the printed key does not authenticate: %v", err)
	}
	if key.TenantID != tenantID || key.ID != keyID || !key.Allows(store.ScopeWrite) || key.Allows(store.ScopeAdmin) {
		t.Errorf("authenticated key %+v; want tenant %s, id %s, read+write only", key, tenantID, keyID)
	}

	out, _, err = ponte(t, "admin", "key", "list", "--tenant", tenantID, "--database-url", url)
	if err != nil {
		t.Fatalf("key list: %v", err)
	}
	if !strings.Contains(out, keyID) || !strings.Contains(out, key.Prefix) {
		t.Errorf("key list misses the key:\n%s", out)
	}
	if secret := plaintext[len(key.Prefix):]; strings.Contains(out, secret) {
		t.Errorf("key list shows the key's secret")
	}

	// Another tenant cannot revoke it.
	if _, _, err := ponte(t, "admin", "key", "revoke", "--tenant", otherID, "--key", keyID, "--database-url", url); err == nil || !strings.Contains(err.Error(), "has no API key") {
		t.Errorf("revoking through another tenant: err = %v; want 'has no API key'", err)
	}
	if _, err := st.Authenticate(ctx, plaintext); err != nil {
		t.Fatalf("key stopped working after a refused revoke: %v", err)
	}
	if _, _, err := ponte(t, "admin", "key", "revoke", "--tenant", tenantID, "--key", keyID, "--database-url", url); err != nil {
		t.Fatalf("key revoke: %v", err)
	}
	if _, err := st.Authenticate(ctx, plaintext); !errors.Is(err, store.ErrInvalidAPIKey) {
		t.Errorf("revoked key authenticates: err = %v", err)
	}
}

func TestIntegrationAdminRejectsBadInput(t *testing.T) {
	t.Parallel()
	url := migratedDB(t)
	out, _, err := ponte(t, "admin", "tenant", "create", "--name", "T", "--database-url", url)
	if err != nil {
		t.Fatal(err)
	}
	tenantID := tenantIDRE.FindString(out)
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"unknown tenant":   {[]string{"admin", "key", "create", "--tenant", "ten_nope", "--name", "x", "--scopes", "read"}, "no tenant ten_nope"},
		"unknown scope":    {[]string{"admin", "key", "create", "--tenant", tenantID, "--name", "x", "--scopes", "root"}, "unknown scope"},
		"missing scopes":   {[]string{"admin", "key", "create", "--tenant", tenantID, "--name", "x"}, `"scopes" not set`},
		"empty name":       {[]string{"admin", "tenant", "create", "--name", " "}, "must not be empty"},
		"unknown key":      {[]string{"admin", "key", "revoke", "--tenant", tenantID, "--key", "key_nope"}, "has no API key"},
		"missing key flag": {[]string{"admin", "key", "revoke", "--tenant", tenantID}, `"key" not set`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, _, err := ponte(t, append(tc.args, "--database-url", url)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v; want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(out, "ponte_") {
				t.Errorf("a failed command printed a key: %q", out)
			}
		})
	}
}

func TestIntegrationEnsureFirstTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := migratedDB(t)
	first, err := ensureFirstTenant(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if first.TenantName != "default" || first.TenantID == "" || first.APIKey == "" {
		t.Fatalf("first run: %+v; want tenant default with a new key", first)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := st.Authenticate(ctx, first.APIKey)
	if err != nil {
		t.Fatalf("the first key does not authenticate: %v", err)
	}
	if key.TenantID != first.TenantID || !key.Allows(store.ScopeAdmin) {
		t.Errorf("first key %+v; want an admin key of %s", key, first.TenantID)
	}

	again, err := ensureFirstTenant(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if again.TenantID != first.TenantID || again.APIKey != "" {
		t.Errorf("second run: %+v; want the same tenant and no new key", again)
	}
	tenants, err := st.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tenants) != 1 {
		t.Errorf("%d tenants after two runs; want 1", len(tenants))
	}
}

func TestIntegrationMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	url := migratedDB(t)
	out, _, err := ponte(t, "migrate", "--database-url", url)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if !strings.Contains(out, "Migrations applied") {
		t.Errorf("migrate printed %q", out)
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, _, err := ponte(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "ponte ") || !strings.Contains(out, "go1.") {
		t.Errorf("version printed %q", out)
	}
}
