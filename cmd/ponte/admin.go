package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/localdev"
)

// dbFlag is the --database-url flag shared by the commands that talk to
// Postgres directly.
type dbFlag struct{ url string }

func (f *dbFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "database-url", "", "Postgres URL (default $DATABASE_URL, else the database of `ponte dev` in ./var)")
}

// resolve returns the flag, $DATABASE_URL, or the `ponte dev` database of
// the working directory, in that order.
func (f *dbFlag) resolve(cmd *cobra.Command) (string, error) {
	if f.url != "" {
		return f.url, nil
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u, nil
	}
	if u, ok := localdev.DevDatabaseURL("."); ok {
		fmt.Fprintf(cmd.ErrOrStderr(), "Using the `ponte dev` database in ./var (set DATABASE_URL for another).\n")
		return u, nil
	}
	return "", errors.New("DATABASE_URL is not set (and there is no `ponte dev` database in ./var)")
}

func (f *dbFlag) open(cmd *cobra.Command) (*store.Store, error) {
	url, err := f.resolve(cmd)
	if err != nil {
		return nil, err
	}
	// Admin commands never touch connection secrets: no master key.
	st, err := store.Open(cmd.Context(), url, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return st, nil
}

func newAdminCmd() *cobra.Command {
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Manage tenants and API keys directly in the database",
	}
	tenant := &cobra.Command{Use: "tenant", Short: "Create and list tenants"}
	tenant.AddCommand(newTenantCreateCmd(), newTenantListCmd())
	key := &cobra.Command{Use: "key", Short: "Create, list and revoke API keys"}
	key.AddCommand(newKeyCreateCmd(), newKeyListCmd(), newKeyRevokeCmd())
	admin.AddCommand(tenant, key, newStripeEventCmd())
	return admin
}

func newTenantCreateCmd() *cobra.Command {
	var db dbFlag
	var name string
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := st.CreateTenant(cmd.Context(), name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created tenant %s (%q).\n", t.ID, t.Name)
			return nil
		},
	}
	db.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the tenant's name")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newTenantListCmd() *cobra.Command {
	var db dbFlag
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			tenants, err := st.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tCREATED")
			for _, t := range tenants {
				fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	db.register(cmd)
	return cmd
}

func newKeyCreateCmd() *cobra.Command {
	var db dbFlag
	var tenantID, name string
	var scopes []string
	cmd := &cobra.Command{
		Use:   "create --tenant ID --name NAME --scopes read,write,admin",
		Short: "Create an API key; its secret is printed once and stored only as a hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			key, plaintext, err := st.CreateAPIKey(cmd.Context(), tenantID, name, scopes)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no tenant %s", tenantID)
			}
			if err != nil {
				return err
			}
			// The notes go to stderr, the key alone to stdout, so
			// KEY=$(ponte admin key create ...) captures just the key.
			fmt.Fprintf(cmd.ErrOrStderr(), "Created API key %s (%s) for tenant %s with scopes %s.\n", key.ID, key.Prefix, key.TenantID, strings.Join(key.Scopes, ","))
			fmt.Fprintf(cmd.ErrOrStderr(), "It is shown only this once and stored hashed:\n")
			fmt.Fprintln(cmd.OutOrStdout(), plaintext)
			return nil
		},
	}
	db.register(cmd)
	cmd.Flags().StringVar(&tenantID, "tenant", "", "the tenant's id (ten_...)")
	cmd.Flags().StringVar(&name, "name", "", "what the key is for, e.g. \"ci\"")
	cmd.Flags().StringSliceVar(&scopes, "scopes", nil, "comma-separated scopes: read, write (includes read), admin (includes write)")
	for _, f := range []string{"tenant", "name", "scopes"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newKeyListCmd() *cobra.Command {
	var db dbFlag
	var tenantID string
	cmd := &cobra.Command{
		Use:   "list --tenant ID",
		Short: "List a tenant's API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListAPIKeys(cmd.Context(), tenantID)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPREFIX\tNAME\tSCOPES\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, strings.Join(k.Scopes, ","),
					k.CreatedAt.UTC().Format(time.RFC3339), timeOrDash(k.LastUsedAt), timeOrDash(k.RevokedAt))
			}
			return w.Flush()
		},
	}
	db.register(cmd)
	cmd.Flags().StringVar(&tenantID, "tenant", "", "the tenant's id (ten_...)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func newKeyRevokeCmd() *cobra.Command {
	var db dbFlag
	var tenantID, keyID string
	cmd := &cobra.Command{
		Use:   "revoke --tenant ID --key KEY_ID",
		Short: "Revoke an API key; it stops working at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.RevokeAPIKey(cmd.Context(), tenantID, keyID)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("tenant %s has no API key %s", tenantID, keyID)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API key %s of tenant %s.\n", keyID, tenantID)
			return nil
		},
	}
	db.register(cmd)
	cmd.Flags().StringVar(&tenantID, "tenant", "", "the tenant's id (ten_...)")
	cmd.Flags().StringVar(&keyID, "key", "", "the key's id (key_..., see `ponte admin key list`)")
	_ = cmd.MarkFlagRequired("tenant")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// ensureFirstTenant gives a fresh database its first tenant, "default", and
// an admin API key, for `ponte dev`. A tenant without any key (a run that
// failed half-way) gets its key on the next run.
func ensureFirstTenant(ctx context.Context, databaseURL string) (localdev.FirstTenant, error) {
	st, err := store.Open(ctx, databaseURL, nil)
	if err != nil {
		return localdev.FirstTenant{}, fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()
	tenants, err := st.ListTenants(ctx)
	if err != nil {
		return localdev.FirstTenant{}, err
	}
	var t store.Tenant
	if len(tenants) > 0 {
		t = tenants[0]
	} else if t, err = st.CreateTenant(ctx, "default"); err != nil {
		return localdev.FirstTenant{}, err
	}
	first := localdev.FirstTenant{TenantID: t.ID, TenantName: t.Name}
	keys, err := st.ListAPIKeys(ctx, t.ID)
	if err != nil {
		return first, err
	}
	if len(keys) > 0 {
		return first, nil
	}
	_, first.APIKey, err = st.CreateAPIKey(ctx, t.ID, "ponte dev admin", []string{store.ScopeAdmin})
	if err != nil {
		return first, err
	}
	return first, nil
}
