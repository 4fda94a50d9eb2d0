package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/internal/app"
)

func newServeCmd(g *globals) *cobra.Command {
	var services string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run services against the configured database and Kafka until SIGINT/SIGTERM",
		Long: "serve runs the named services in this process, each with its own connection pool,\n" +
			"session and HTTP port (hook-receiver :8080, workflow-coordinator :8081,\n" +
			"model-metrics :8082). SIGTERM stops taking requests, finishes and acknowledges\n" +
			"in-flight work, ends the sessions and exits.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := app.ParseServices(services)
			if err != nil {
				return err
			}
			cfg, log, err := g.loadWithDatabase()
			if err != nil {
				return err
			}
			s, err := app.StartServices(cmd.Context(), cfg, log, names, app.ServeOptions{Version: versionString()})
			if err != nil {
				return err
			}
			return s.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&services, "services", strings.Join(app.AllServices, ","), "comma-separated services to run")
	return cmd
}
