package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/store"
)

func newHealthCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		th     app.HealthThresholds
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check every component; exit 0 healthy, 1 degraded, 2 unhealthy",
		Long: "health checks the database (test query, circuit breaker), the migrations, the services'\n" +
			"pools (their latest snapshots), the backlog, the maintenance (retention lag) and Kafka.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkThresholds(th); err != nil {
				return err
			}
			cfg, log, err := g.loadWithDatabase()
			if err != nil {
				return err
			}
			rep := app.CheckHealth(cmd.Context(), cfg, log, th)
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				printHealth(out, rep, isTerminal(out))
			}
			if code := app.ExitCode(rep.Status); code != 0 {
				return exitCodeError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&th.BacklogDegraded, "backlog-degraded", 5*time.Minute, "oldest pending event age that counts as degraded")
	cmd.Flags().DurationVar(&th.BacklogUnhealthy, "backlog-unhealthy", time.Hour, "oldest pending event age that counts as unhealthy")
	cmd.Flags().DurationVar(&th.Timeout, "timeout", 5*time.Second, "bound on each check")
	cmd.Flags().DurationVar(&th.SnapshotMaxAge, "snapshot-max-age", 0,
		"a pool snapshot older than this is from an instance that stopped (default: 3 × the longest metrics_interval, at least 5m)")
	return cmd
}

// checkThresholds refuses health flags that would be replaced by defaults.
// A --backlog-unhealthy at or below --backlog-degraded is allowed (a probe
// may lower only the first): the backlog is then never merely degraded.
func checkThresholds(th app.HealthThresholds) error {
	return errors.Join(
		positive("--backlog-degraded", th.BacklogDegraded),
		positive("--backlog-unhealthy", th.BacklogUnhealthy),
		positive("--timeout", th.Timeout),
		notNegative("--snapshot-max-age", th.SnapshotMaxAge),
	)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printHealth(out io.Writer, rep app.HealthReport, colour bool) {
	paint := func(status string) string {
		if !colour {
			return status
		}
		code := map[string]string{app.Healthy: "32", app.Degraded: "33", app.Unhealthy: "31"}[status]
		return "\x1b[" + code + "m" + status + "\x1b[0m"
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, c := range rep.Components {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, paint(c.Status), printable(c.Detail))
	}
	_ = w.Flush()
	fmt.Fprintf(out, "\noverall: %s\n", paint(rep.Status))
}

func newStatsCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		window time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Pool and performance metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if window <= 0 || window > store.MaxPerformanceWindow {
				return fmt.Errorf("--window %s: must be positive and at most %s", window, store.MaxPerformanceWindow)
			}
			return g.withStore(cmd, func(st *store.Store) error {
				perf, err := st.PerformanceReport(cmd.Context(), window)
				if err != nil {
					return err
				}
				pools, err := st.LatestConnectionMetrics(cmd.Context())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, map[string]any{"performance": perf, "pools": pools})
				}
				fmt.Fprintf(out, "last %s: received %d, processed %d (%.2f/s), attempts %d (%d failed), dead now %d\n",
					window, perf.Received, perf.Processed, perf.ThroughputPerSecond, perf.Attempts, perf.FailedAttempts, perf.Dead)
				if pt := perf.ProcessingTime; pt != nil {
					fmt.Fprintf(out, "processing time ms: avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f\n", pt.Avg, pt.P50, pt.P95, pt.P99)
				}
				if r := perf.KafkaPublishSuccessRate; r != nil {
					fmt.Fprintf(out, "kafka publish success: %.2f%%\n", *r*100)
				}
				fmt.Fprintf(out, "backlog: %d (oldest pending %s)\n\n", perf.Backlog, perf.OldestPendingAge.Round(time.Second))
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SERVICE\tINSTANCE\tSIZE\tACTIVE\tIDLE\tWAITING\tUTIL %\tQUERIES\tFAILED\tAVG ms\tLEAKS\tRECORDED")
				for _, p := range pools {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%.0f\t%d\t%d\t%.2f\t%d\t%s\n", printable(p.ServiceName), printable(p.InstanceID), p.PoolSize,
						p.Active, p.Idle, p.Waiting, p.UtilizationPercent, p.TotalQueries, p.FailedQueries, p.AvgQueryTimeMS,
						p.PotentialLeaks, p.RecordedAt.Format(time.RFC3339))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&window, "window", time.Hour, "performance window")
	return cmd
}
