package main

import (
	"github.com/spf13/cobra"

	"github.com/ponte-hub/ponte/core/server"
)

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the Ponte server (API, webhook ingress and worker)",
		Long: "Run the Ponte server until SIGINT or SIGTERM. Configuration comes from the environment:\n" +
			"  DATABASE_URL        Postgres connection URL (required)\n" +
			"  PONTE_MASTER_KEY    32 random bytes, base64 or hex, sealing connection secrets (required)\n" +
			"  TEMPORAL_ADDRESS    Temporal frontend host:port (default 127.0.0.1:7233)\n" +
			"  TEMPORAL_NAMESPACE  Temporal namespace (default \"default\")\n" +
			"  PONTE_PLUGIN_DIR    directory of connector plugin binaries (default bin/plugins)\n" +
			"  PONTE_HTTP_ADDR     listen address (default 127.0.0.1:8080)\n" +
			"  PONTE_PUBLIC_URL    externally reachable base URL (default http://PONTE_HTTP_ADDR)\n" +
			"  PONTE_ROLES         api,ingress,worker (default all)\n" +
			"  PONTE_LOG_LEVEL     debug, info, warn or error (default info)\n" +
			"  PONTE_INGRESS_BUSY_ABOVE  mean webhook answer time above which the worker gives way\n" +
			"                      to ingress (default 10ms)\n" +
			"Migrations are applied at start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return server.Run(cmd.Context(), server.ConfigFromEnv())
		},
	}
}
