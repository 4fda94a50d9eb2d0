package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure omnibridge against a bare baseline in the same run",
		Long: "bench runs on a scratch database: on the configured server when there is one (the user\n" +
			"needs CREATEDB), else on a temporary embedded PostgreSQL. --json prints one JSON object\n" +
			"with our rate, the baseline's rate and their ratio.",
	}
	cmd.AddCommand(newBenchBulkCmd(g))
	return cmd
}

func newBenchBulkCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		sizes  []int
		quick  bool
	)
	cmd := &cobra.Command{
		Use:   "bulk",
		Short: "Adaptive bulk insert vs bare pgx batch and COPY at 10 … 100k rows; insert-one latency; claim + complete",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := app.NewLogger(os.Stderr, cfg.Log)
			bc := bench.BulkConfig{Sizes: sizes}
			if quick {
				bc.MinRows, bc.MinReps, bc.InsertOne, bc.ClaimEvents = 1, 1, 10, 200
			}
			if !asJSON {
				bc.Progress = func(step string) { fmt.Fprintf(os.Stderr, "bench bulk: %s…\n", step) }
			}
			rep, err := app.BenchBulk(cmd.Context(), cfg, log, bc)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			printBulk(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().IntSliceVar(&sizes, "sizes", nil, "batch sizes in rows (default 10,100,1000,10000,100000)")
	cmd.Flags().BoolVar(&quick, "quick", false, "one repetition of everything (a smoke test, not a measurement)")
	return cmd
}

func printBulk(out io.Writer, rep bench.BulkReport) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "ROWS\tMETHOD\tOURS rows/s\tpgx batch\tpgx COPY\tRATIO (vs better)\tevents+dedup rows/s\t")
	for _, r := range rep.Sizes {
		fmt.Fprintf(w, "%d\t%s\t%.0f\t%.0f\t%.0f\t%.2f× %s\t%.0f\t\n", r.Rows, r.Method, r.Rate, r.BatchRate, r.CopyRate, r.Ratio, r.Baseline, r.EventsRate)
	}
	_ = w.Flush()
	fmt.Fprintf(out, "\ninsert one:      %+v\nclaim+complete:  %+v\n", rep.InsertOne, rep.ClaimComplete)
}
