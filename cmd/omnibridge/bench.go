package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := newGroupCmd("bench", "Measure omnibridge against a bare baseline in the same run")
	cmd.Long = "bench runs on a scratch database: on the configured server when there is one (the user\n" +
		"needs CREATEDB), else on a temporary embedded PostgreSQL. --json prints one JSON object\n" +
		"with our rate, the baseline's rate and their ratio."
	cmd.AddCommand(newBenchPoolCmd(g), newBenchBulkCmd(g), newBenchIngestCmd(g), newBenchDrainCmd(g))
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
			var errs []error
			for _, n := range sizes {
				errs = append(errs, atLeast("--sizes", n, 1))
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
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

// benchLoad loads the configuration and the logger of a bench command.
func (g *globals) benchLoad() (config.Config, *slog.Logger, error) {
	cfg, err := g.load()
	if err != nil {
		return cfg, nil, err
	}
	return cfg, app.NewLogger(os.Stderr, cfg.Log), nil
}

func progress(asJSON bool, name string) func(string) {
	if asJSON {
		return nil
	}
	return func(step string) { fmt.Fprintf(os.Stderr, "bench %s: %s…\n", name, step) }
}

func newBenchPoolCmd(g *globals) *cobra.Command {
	var (
		asJSON   bool
		workers  int
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Point queries through pgclient vs bare pgxpool, 32 concurrent workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := errors.Join(atLeast("--workers", workers, 1), positive("--duration", duration)); err != nil {
				return err
			}
			cfg, log, err := g.benchLoad()
			if err != nil {
				return err
			}
			res, err := app.BenchPool(cmd.Context(), cfg, log, workers, duration)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pgclient %.0f queries/s, bare pgxpool %.0f queries/s: ratio %.3f (%d workers, %d rounds)\n",
				res.Rate, res.BaselineRate, res.Ratio, res.Workers, res.Rounds)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().IntVar(&workers, "workers", 32, "concurrent workers")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "measuring time of each side")
	return cmd
}

func ingestFlags(cmd *cobra.Command, o *bench.IngestOptions) {
	cmd.Flags().IntVar(&o.Concurrency, "concurrency", 64, "concurrent senders")
	cmd.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "measuring time of each server")
	cmd.Flags().IntVar(&o.Count, "count", 0, "measure over this many acknowledged webhooks instead of --duration")
	cmd.Flags().IntVar(&o.BodySize, "body-size", 500, "webhook body size in bytes")
}

// checkIngest refuses bad values of the flags ingestFlags adds. The smallest
// body the benchmark can send is checked when it starts.
func checkIngest(o bench.IngestOptions) error {
	errs := []error{
		atLeast("--concurrency", o.Concurrency, 1),
		atLeast("--count", o.Count, 0),
		between("--body-size", o.BodySize, bench.MinIngestBodySize, hookreceiver.BodyLimitDefault),
	}
	if o.Count == 0 {
		errs = append(errs, positive("--duration", o.Duration))
	}
	return errors.Join(errs...)
}

func newBenchIngestCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		o      bench.IngestOptions
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "HookReceiver acknowledged events/s vs a naive one-INSERT-per-request server, 64 concurrent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkIngest(o); err != nil {
				return err
			}
			cfg, log, err := g.benchLoad()
			if err != nil {
				return err
			}
			o.Progress = progress(asJSON, "ingest")
			res, err := app.BenchIngest(cmd.Context(), cfg, log, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			for _, r := range []bench.IngestRun{res.Ours, res.Baseline} {
				fmt.Fprintf(out, "%-9s %8.0f acked/s  p50 %.2f ms  p99 %.2f ms  max %.1f ms  lost %d  peak RSS %.0f MiB\n",
					r.Name, r.Rate, r.P50Ms, r.P99Ms, r.MaxMs, r.Lost, float64(r.PeakRSSBytes)/(1<<20))
			}
			fmt.Fprintf(out, "ratio %.2f× (%d senders, %d-byte bodies)\n", res.Ratio, res.Concurrency, res.BodySize)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	ingestFlags(cmd, &o)
	return cmd
}

func newBenchDrainCmd(g *globals) *cobra.Command {
	var (
		asJSON     bool
		events     int
		ingestRate float64
		ingest     bench.IngestOptions
		latencyFor time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "WorkflowCoordinator events/s from table to Kafka vs the ingest rate; end-to-end latency at half load",
		Long: "drain first measures the HookReceiver's ingest rate (as bench ingest does) unless\n" +
			"--ingest-rate is given, then drains --events pending events through the coordinator to\n" +
			"the in-process Kafka, and measures end-to-end latency at half the ingest rate.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			errs := []error{atLeast("--events", events, 1), finiteRate("--ingest-rate", ingestRate)}
			if latencyFor <= bench.DefaultDrainLatencyWarmup {
				errs = append(errs, fmt.Errorf("--latency-duration %s: must be longer than the %s warm-up",
					latencyFor, bench.DefaultDrainLatencyWarmup))
			}
			if ingestRate == 0 {
				errs = append(errs, checkIngest(ingest))
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			cfg, log, err := g.benchLoad()
			if err != nil {
				return err
			}
			ingest.Progress = progress(asJSON, "drain")
			dc := bench.DrainConfig{Progress: progress(asJSON, "drain"), LatencyDuration: latencyFor}
			rep, err := app.BenchDrain(cmd.Context(), cfg, log, events, ingestRate, ingest, dc)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "drain: %d events in %.1fs = %.0f events/s; ingest %.0f events/s; ratio %.2f×\n",
				rep.Events, rep.Seconds, rep.Rate, rep.IngestRate, rep.Ratio)
			if rep.StoreRate > 0 {
				fmt.Fprintf(out, "store-only claim+complete: %.0f events/s (coordinator at %.2f× of it)\n", rep.StoreRate, rep.StoreRatio)
			}
			if l := rep.Latency; l != nil {
				fmt.Fprintf(out, "end-to-end latency at %.0f events/s: %+v\n", rep.IngestRate/2, *l)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().IntVar(&events, "events", 100_000, "pending events to drain")
	cmd.Flags().Float64Var(&ingestRate, "ingest-rate", 0, "compare with this ingest rate (events/s) instead of measuring it")
	cmd.Flags().DurationVar(&latencyFor, "latency-duration", 10*time.Second, "how long to ingest at half load for the latency figures")
	ingestFlags(cmd, &ingest)
	return cmd
}
