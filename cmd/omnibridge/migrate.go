package main

import (
	"context"
	"database/sql"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/migrations"
)

func newMigrateCmd(g *globals) *cobra.Command {
	cmd := newGroupCmd("migrate", "Apply, roll back or show schema migrations")
	var all bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (safe to run from several processes at once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd, g, "nothing to do: the schema is current", func(m *migrateRun) ([]migrations.Result, error) {
				return migrations.Up(m.ctx, m.db)
			})
		},
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll back the newest migration (--all: every migration)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd, g, "nothing to roll back: no migration is applied", func(m *migrateRun) ([]migrations.Result, error) {
				if all {
					return migrations.Down(m.ctx, m.db, migrations.ToVersion(0))
				}
				return migrations.Down(m.ctx, m.db)
			})
		},
	}
	down.Flags().BoolVar(&all, "all", false, "roll back every migration (removes every omnibridge object; the empty schema and its version table stay)")
	status := &cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := g.loadWithDatabase()
			if err != nil {
				return err
			}
			db, err := migrations.OpenDB(cmd.Context(), cfg.Database.URL)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := migrations.Status(cmd.Context(), db)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED AT")
			for _, s := range st {
				at := "pending"
				if s.Applied {
					at = s.AppliedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%05d\t%s\t%s\n", s.Version, s.Name, at)
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(up, down, status)
	return cmd
}

type migrateRun struct {
	ctx context.Context
	db  *sql.DB
}

// runMigrate opens the database, runs fn and prints what it applied, or the
// message nothing when it applied nothing.
func runMigrate(cmd *cobra.Command, g *globals, nothing string, fn func(*migrateRun) ([]migrations.Result, error)) error {
	cfg, _, err := g.loadWithDatabase()
	if err != nil {
		return err
	}
	db, err := migrations.OpenDB(cmd.Context(), cfg.Database.URL)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := fn(&migrateRun{ctx: cmd.Context(), db: db})
	out := cmd.OutOrStdout()
	for _, r := range res {
		fmt.Fprintf(out, "%s %05d %s (%s)\n", r.Direction, r.Version, r.Name, r.Duration.Round(time.Millisecond))
	}
	if err != nil {
		return err
	}
	if len(res) == 0 {
		fmt.Fprintln(out, nothing)
	}
	return nil
}
