package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/internal/app"
)

func newCleanupCmd(g *globals) *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Apply retention now: create partitions ahead, drop or delete expired data",
		Long: "cleanup applies the retention policy (retention.* settings) once: it creates partitions\n" +
			"ahead, drops whole expired partitions, and deletes other expired rows in short batches.\n" +
			"Pending and processing events are never removed. --dry-run only counts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.loadWithDatabase()
			if err != nil {
				return err
			}
			rep, err := app.Cleanup(cmd.Context(), cfg, log, dryRun)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rep)
			}
			verb := "removed"
			if rep.DryRun {
				verb = "would remove"
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TABLE\tROWS\tPARTITIONS DROPPED\tBATCHES\tDURATION\tERROR")
			for _, t := range rep.Tables {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%.0fms\t%s\n", t.Table, t.RowsDeleted, t.PartitionsDropped, t.Batches, t.DurationMS, printable(t.Error))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "\n%s %d rows and %d partitions; created %d partitions ahead; %.0fms\n",
				verb, rep.RowsDeleted, rep.PartitionsDropped, rep.PartitionsCreated, rep.DurationMS)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be removed, change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
