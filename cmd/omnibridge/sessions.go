package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/store"
)

func newSessionsCmd(g *globals) *cobra.Command {
	cmd := newGroupCmd("sessions", "Service sessions")
	var all, asJSON bool
	var service string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List service sessions (active ones unless --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := errors.Join(between("--limit", limit, 1, store.MaxSessionLimit), storable("--service", service)); err != nil {
				return err
			}
			return g.withStore(cmd, func(st *store.Store) error {
				ss, err := st.ListSessions(cmd.Context(), store.SessionFilter{ActiveOnly: !all, Service: service, Limit: limit})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeJSON(out, map[string]any{"sessions": ss})
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tSERVICE\tINSTANCE\tSTATUS\tSTARTED\tLAST SEEN\tENDED")
				for _, s := range ss {
					ended := "-"
					if s.EndedAt != nil {
						ended = s.EndedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", s.ID, printable(s.ServiceName), printable(s.InstanceID), s.Status,
						s.StartedAt.Format(time.RFC3339), time.Since(s.LastSeen).Round(time.Second), ended)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				switch len(ss) {
				case 0:
					fmt.Fprintln(out, "(no sessions)")
				case limit:
					fmt.Fprintf(out, "\n(the newest %d; there may be more: raise --limit, at most %d)\n", limit, store.MaxSessionLimit)
				}
				return nil
			})
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include ended, terminated and failed sessions")
	list.Flags().StringVar(&service, "service", "", "only this service")
	list.Flags().IntVar(&limit, "limit", store.DefaultSessionLimit, fmt.Sprintf("most sessions to list, newest first (at most %d)", store.MaxSessionLimit))
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}
