package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/internal/app"
)

// globals are the flags every command shares.
type globals struct {
	configFile  string
	databaseURL string
	logLevel    string
	logFormat   string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "omnibridge",
		Short:         "PostgreSQL data layer and event pipeline: webhooks in, Kafka out",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          runGroup,
	}
	f := root.PersistentFlags()
	f.StringVar(&g.configFile, "config", os.Getenv("OMNIBRIDGE_CONFIG"), "YAML configuration file (env OMNIBRIDGE_CONFIG)")
	f.StringVar(&g.databaseURL, "database-url", "", "PostgreSQL URL (env OMNIBRIDGE_DATABASE_URL, then DATABASE_URL)")
	f.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (env OMNIBRIDGE_LOG_LEVEL)")
	f.StringVar(&g.logFormat, "log-format", "", "text or json (env OMNIBRIDGE_LOG_FORMAT)")

	root.AddCommand(
		newVersionCmd(),
		newConfigCmd(g),
		newMigrateCmd(g),
		newDevCmd(g),
		newCleanupCmd(g),
		newEventsCmd(g),
		newSessionsCmd(g),
		newBenchCmd(g),
		newServeCmd(g),
		newHealthCmd(g),
		newStatsCmd(g),
	)
	return root
}

// newGroupCmd is a command that only holds subcommands.
func newGroupCmd(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: runGroup}
}

// runGroup prints the help of a command that only holds subcommands, or
// refuses an unknown subcommand (cobra would print the help and exit 0, so a
// mistyped command would look like success to a script).
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q; available commands: %s", args[0], cmd.CommandPath(), commandList(cmd))
	}
	return cmd.Help()
}

func commandList(parent *cobra.Command) string {
	var names []string
	for _, c := range parent.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// load reads the configuration from file, environment and flags.
func (g *globals) load() (config.Config, error) {
	flags := map[string]string{}
	if g.databaseURL != "" {
		flags["database.url"] = g.databaseURL
	}
	if g.logLevel != "" {
		flags["log.level"] = g.logLevel
	}
	if g.logFormat != "" {
		flags["log.format"] = g.logFormat
	}
	return config.Load(config.Source{File: g.configFile, Flags: flags})
}

// errNoDatabase is returned by commands that need a database when none is set.
var errNoDatabase = errors.New("no database URL: set --database-url, OMNIBRIDGE_DATABASE_URL or DATABASE_URL " +
	"(or run `omnibridge dev` for a local one)")

// loadWithDatabase is load for commands that cannot work without a database.
func (g *globals) loadWithDatabase() (config.Config, *slog.Logger, error) {
	cfg, err := g.load()
	if err != nil {
		return cfg, nil, err
	}
	if cfg.Database.URL == "" {
		return cfg, nil, errNoDatabase
	}
	return cfg, app.NewLogger(os.Stderr, cfg.Log), nil
}
