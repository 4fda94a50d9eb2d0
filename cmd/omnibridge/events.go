package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/omnibridge/omnibridge/internal/app"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/store"
)

func newEventsCmd(g *globals) *cobra.Command {
	cmd := newGroupCmd("events", "List, inspect, replay and import hook events")
	cmd.AddCommand(newEventsListCmd(g), newEventsShowCmd(g), newEventsReplayCmd(g),
		newEventsDeadLettersCmd(g), newEventsImportCmd(g))
	return cmd
}

// withStore loads the configuration, opens a store and runs fn.
func (g *globals) withStore(cmd *cobra.Command, fn func(*store.Store) error) error {
	cfg, log, err := g.loadWithDatabase()
	if err != nil {
		return err
	}
	client, st, err := app.OpenStore(cmd.Context(), cfg, log)
	if err != nil {
		return err
	}
	defer client.Close()
	return fn(st)
}

func newEventsListCmd(g *globals) *cobra.Command {
	var (
		status, source, cursor string
		since                  time.Duration
		limit                  int
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := errors.Join(between("--limit", limit, 1, store.MaxListLimit),
				notNegative("--since", since), storable("--source", source)); err != nil {
				return err
			}
			f := store.EventFilter{Status: store.EventStatus(status), Source: source, Limit: limit}
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			if cursor != "" {
				c, err := store.ParseCursor(cursor)
				if err != nil {
					return fmt.Errorf("--cursor: %w", err)
				}
				f.After = &c
			}
			return g.withStore(cmd, func(st *store.Store) error {
				page, err := st.ListEvents(cmd.Context(), f)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, eventsJSON(page.Events, page.Next))
				}
				printEvents(out, page.Events)
				if page.Next != nil {
					fmt.Fprintf(out, "\nmore: --cursor %s\n", page.Next)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "pending, processing, processed or dead")
	cmd.Flags().StringVar(&source, "source", "", "only this source")
	cmd.Flags().DurationVar(&since, "since", 0, "only events created within this long (e.g. 1h; default: all)")
	cmd.Flags().IntVar(&limit, "limit", 50, fmt.Sprintf("page size (at most %d)", store.MaxListLimit))
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue a previous listing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newEventsDeadLettersCmd(g *globals) *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dead-letters",
		Short: "List dead-lettered events with their last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := between("--limit", limit, 1, store.MaxListLimit); err != nil {
				return err
			}
			return g.withStore(cmd, func(st *store.Store) error {
				page, err := st.ListEvents(cmd.Context(), store.EventFilter{Status: store.EventDead, Limit: limit})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, eventsJSON(page.Events, page.Next))
				}
				printEvents(out, page.Events)
				if page.Next != nil {
					fmt.Fprintf(out, "\nmore: omnibridge events list --status dead --limit %d --cursor %s\n", limit, page.Next)
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, fmt.Sprintf("most events to list (at most %d)", store.MaxListLimit))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newEventsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one event with its payload and processing history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return fmt.Errorf("%q is not an event id (a UUID): %w", args[0], err)
			}
			return g.withStore(cmd, func(st *store.Store) error {
				ev, err := st.GetEvent(cmd.Context(), id)
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), metricsapi.NewEventJSON(&ev, true))
			})
		},
	}
}

func newEventsReplayCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replay ID...",
		Short: "Send dead or processed events again (back to pending)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := make([]uuid.UUID, 0, len(args))
			for _, a := range args {
				id, err := uuid.Parse(a)
				if err != nil {
					return fmt.Errorf("%q is not an event id (a UUID): %w", a, err)
				}
				// An id given twice is one event: counting it twice would
				// report a replayed event as not replayed.
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			return g.withStore(cmd, func(st *store.Store) error {
				n, err := st.Replay(cmd.Context(), ids...)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "replayed %d of %d events\n", n, len(ids))
				if n < len(ids) {
					return fmt.Errorf("%d events were not replayed: unknown, or still pending or processing", len(ids)-n)
				}
				return nil
			})
		},
	}
}

func newEventsImportCmd(g *globals) *cobra.Command {
	var batch int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE.ndjson",
		Short: "Load events from NDJSON (one event per line); '-' reads standard input",
		Long: "import reads one event per line: {\"source\",\"action\",\"resource\",\"resource_id\",\"payload\",\n" +
			"\"metadata\", optional \"delivery_id\", \"id\", \"created_at\"} (the receiver's generic envelope plus\n" +
			"the source it came from). Bad lines are reported with their numbers and skipped; events already\n" +
			"stored (same delivery or id) count as duplicates.\n\n" +
			"Exit status: 0 when every line was stored or a duplicate, 1 when some lines were rejected (the\n" +
			"others are stored), 2 on an error (the summary so far is printed; the batches before it\n" +
			"stay stored).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 0 || batch > store.MaxImportBatchSize {
				return fmt.Errorf("--batch %d: must be between 1 and %d (0: the store's default, %d)",
					batch, store.MaxImportBatchSize, store.DefaultImportBatchSize)
			}
			in, size, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			opts := store.ImportOptions{BatchSize: batch}
			var bar *progressbar.ProgressBar
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) && size > 0 {
				bar = progressbar.DefaultBytes(size, "importing")
				opts.Progress = func(done int64) { _ = bar.Set64(done) }
			}
			return g.withStore(cmd, func(st *store.Store) error {
				sum, err := st.ImportNDJSON(cmd.Context(), in, opts)
				if bar != nil {
					_ = bar.Finish()
				}
				if err != nil {
					// The batches before the failure are stored: say how far
					// the import got, then why it stopped.
					if perr := printImport(cmd.OutOrStdout(), sum, err, asJSON); perr != nil {
						return errors.Join(err, perr)
					}
					return fmt.Errorf("import stopped (the events counted as imported are stored, the rest are not): %w", err)
				}
				if err := printImport(cmd.OutOrStdout(), sum, nil, asJSON); err != nil {
					return err
				}
				if sum.RejectedCount > 0 {
					return exitCodeError{code: 1}
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 0, fmt.Sprintf("events per transaction (default %d, at most %d)",
		store.DefaultImportBatchSize, store.MaxImportBatchSize))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = fmt.Errorf("%s is a directory: give an NDJSON file, or - for standard input", name)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// printImport prints the summary of an import; failed is the error that
// stopped it early, if any.
func printImport(out io.Writer, sum store.ImportSummary, failed error, asJSON bool) error {
	if asJSON {
		rej := make([]map[string]any, 0, len(sum.Rejected))
		for _, r := range sum.Rejected {
			rej = append(rej, map[string]any{"line": r.Line, "error": r.Err.Error()})
		}
		res := map[string]any{
			"lines": sum.Lines, "imported": sum.Imported, "duplicates": sum.Duplicates,
			"rejected_count": sum.RejectedCount, "rejected": rej,
		}
		if failed != nil {
			res["error"] = failed.Error()
		}
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "imported %d, duplicates %d, rejected %d (of %d lines)\n",
		sum.Imported, sum.Duplicates, sum.RejectedCount, sum.Lines)
	for _, r := range sum.Rejected {
		fmt.Fprintf(out, "  %s\n", printable(r.Error()))
	}
	if sum.RejectedCount > len(sum.Rejected) {
		fmt.Fprintf(out, "  … and %d more\n", sum.RejectedCount-len(sum.Rejected))
	}
	return nil
}

// printEvents prints events as a table. Its last column is the newest entry of
// an event's processing_errors: a failed attempt's error, or a note of a
// replay or an expired lease.
func printEvents(out io.Writer, evs []store.HookEvent) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCREATED\tSTATUS\tSOURCE\tACTION\tRESOURCE\tRETRIES\tLAST ERROR OR NOTE")
	for _, e := range evs {
		last := ""
		if n := len(e.ProcessingErrors); n > 0 {
			last = oneLine(e.ProcessingErrors[n-1], 60)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\t%s\n", e.ID, e.CreatedAt.Format(time.RFC3339),
			e.Status, printable(e.Source), printable(e.Action), printable(e.Resource), printable(e.ResourceID),
			e.RetryCount, printable(last))
	}
	_ = w.Flush()
	if len(evs) == 0 {
		fmt.Fprintln(out, "(no events)")
	}
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// eventsJSON is a list of events in the API's representation, payloads
// included.
func eventsJSON(evs []store.HookEvent, next *store.Cursor) map[string]any {
	out := make([]metricsapi.EventJSON, 0, len(evs))
	for i := range evs {
		out = append(out, metricsapi.NewEventJSON(&evs[i], true))
	}
	res := map[string]any{"events": out}
	if next != nil {
		res["next_cursor"] = next.String()
	}
	return res
}
