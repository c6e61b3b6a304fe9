package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree, writing normal output to stdout and
// notes to stderr (so `ponte admin ... | jq`-style use sees only results).
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ponte",
		Short: "Ponte connects shops, CRMs, payments and calendars to WhatsApp",
		Long: "Ponte is an integration hub: connectors run as plugins, long-lived processes as\n" +
			"Temporal workflows, and Postgres keeps the records.\n\n" +
			"Start everything locally with `ponte dev` (or `make run`).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newServeCmd(),
		newMigrateCmd(),
		newAdminCmd(),
		newDevCmd(),
		newNumbersCmd(),
		newVersionCmd(),
	)
	return root
}
