package main

import (
	"github.com/spf13/cobra"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/localdev"
)

func newDevCmd() *cobra.Command {
	var root string
	var serveLogs bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run Ponte locally: Postgres and Temporal in ./var, the plugins and the server",
		Long: "Run Ponte on this machine until Ctrl-C. Unless DATABASE_URL is set, a Postgres cluster\n" +
			"in var/pg; unless TEMPORAL_ADDRESS is set, a Temporal dev server (built into bin/ once)\n" +
			"with its state in var/temporal.db and the Web UI on. The master key comes from\n" +
			"PONTE_MASTER_KEY or var/master.key (generated once). On the first run a tenant \"default\"\n" +
			"and an admin API key are created and the key is printed once. `ponte serve` runs as a\n" +
			"child process and is restarted if it crashes. Logs are in var/log/. A second run reuses var/.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := localdev.DevOptions{
				Root:         root,
				Migrate:      store.Migrate,
				EnsureTenant: ensureFirstTenant,
				Out:          cmd.OutOrStdout(),
			}
			if serveLogs {
				opts.ServeOutput = cmd.ErrOrStderr()
			}
			return localdev.Dev(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&root, "root", ".", "the repository root (var/ and bin/ live there)")
	cmd.Flags().BoolVar(&serveLogs, "serve-logs", false, "also copy the server's log to the terminal")
	return cmd
}
