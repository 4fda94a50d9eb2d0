package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// CLIServiceName is the application_name of operator commands' connections.
const CLIServiceName = "omnibridge_cli"

// OpenStore opens a small pool for an operator command and the store on it.
// The caller closes the client.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*pgclient.Client, *store.Store, error) {
	dbc := cfg.Database
	dbc.ServiceName = CLIServiceName
	dbc.MinConns = -1 // connect on demand
	if dbc.MaxConns == 0 || dbc.MaxConns > 4 {
		dbc.MaxConns = 4
	}
	dbc.Logger = log
	client, err := pgclient.Open(ctx, dbc)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", config.RedactURL(dbc.URL), err)
	}
	return client, store.New(client, store.WithLogger(log)), nil
}

// Cleanup applies retention now (omnibridge cleanup).
func Cleanup(ctx context.Context, cfg config.Config, log *slog.Logger, dryRun bool) (store.RetentionReport, error) {
	client, st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return store.RetentionReport{}, err
	}
	defer client.Close()
	return st.RunRetention(ctx, cfg.Retention, dryRun)
}
