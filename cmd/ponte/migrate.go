package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ponte-hub/ponte/core/store"
)

func newMigrateCmd() *cobra.Command {
	var db dbFlag
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := db.resolve(cmd)
			if err != nil {
				return err
			}
			if err := store.Migrate(cmd.Context(), url); err != nil {
				return fmt.Errorf("migrating: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Migrations applied.")
			return nil
		},
	}
	db.register(cmd)
	return cmd
}
