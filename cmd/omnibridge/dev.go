package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/internal/app"
)

func newDevCmd(g *globals) *cobra.Command {
	var fresh bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything locally: embedded PostgreSQL, schema, services; Ctrl-C stops it",
		Long: "dev starts an embedded PostgreSQL (data kept in dev.data_dir between runs) unless a\n" +
			"database URL is configured, applies the migrations and runs until interrupted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := app.NewLogger(os.Stderr, cfg.Log)
			d, err := app.StartDev(cmd.Context(), cfg, log, app.DevOptions{Fresh: fresh, Out: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			log.Info("dev: shutting down")
			return errors.Join(d.Close())
		},
	}
	cmd.Flags().BoolVar(&fresh, "fresh", false, "delete the kept development database and start over")
	return cmd
}
