package main

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/internal/app"
)

func newDevCmd(g *globals) *cobra.Command {
	var fresh, tail bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything locally: embedded PostgreSQL, in-process Kafka, the three services",
		Long: "dev starts an embedded PostgreSQL (data kept in dev.data_dir between runs) unless a\n" +
			"database URL is configured, an in-process Kafka broker unless kafka.brokers is set,\n" +
			"applies the migrations and runs the three services until Ctrl-C. It prints the URLs\n" +
			"and a ready-to-paste curl that sends a signed webhook.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := app.NewLogger(os.Stderr, cfg.Log)
			d, err := app.StartDev(cmd.Context(), cfg, log, app.DevOptions{
				Fresh: fresh, Out: cmd.OutOrStdout(), Version: versionString(),
			})
			if err != nil {
				return err
			}
			if !tail {
				return d.Run(cmd.Context())
			}
			// Tail until the services stop, then let it finish before the
			// broker goes away.
			ctx, cancel := context.WithCancel(cmd.Context())
			tailed := make(chan error, 1)
			go func() { tailed <- d.Tail(ctx, cmd.OutOrStdout()) }()
			err = d.Services.Run(ctx)
			cancel()
			if terr := <-tailed; terr != nil {
				log.Warn("dev: tail stopped", "err", terr)
			}
			return errors.Join(err, d.Close())
		},
	}
	cmd.Flags().BoolVar(&fresh, "fresh", false, "delete the kept development database and start over")
	cmd.Flags().BoolVar(&tail, "tail", false, "print every record published to Kafka")
	return cmd
}
