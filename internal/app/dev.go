package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

// DevOptions tune the development environment.
type DevOptions struct {
	// Fresh deletes the kept data directory first.
	Fresh bool
	// Out receives the human-readable banner. Defaults to os.Stdout.
	Out io.Writer
}

// Dev is the all-in-one development environment: an embedded PostgreSQL (unless
// the configuration names a database) with the schema applied.
type Dev struct {
	Config  config.Config
	Logger  *slog.Logger
	cluster *pgembed.Cluster
	dbURL   string
}

// StartDev brings the development environment up and returns once it is ready.
// Close stops it.
func StartDev(ctx context.Context, cfg config.Config, log *slog.Logger, opts DevOptions) (*Dev, error) {
	out := opts.Out
	if out == nil {
		out = os.Stdout
	}
	d := &Dev{Config: cfg, Logger: log, dbURL: cfg.Database.URL}
	if d.dbURL == "" {
		dir, err := filepath.Abs(cfg.Dev.DataDir)
		if err != nil {
			return nil, err
		}
		if opts.Fresh {
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("remove %s: %w", dir, err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		log.Info("dev: starting embedded PostgreSQL", "data_dir", dir)
		cl, err := pgembed.Start(ctx, pgembed.Config{DataDir: dir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("start embedded PostgreSQL: %w", err)
		}
		d.cluster = cl
		if err := ensureDatabase(ctx, cl.URL("postgres"), DevDatabase); err != nil {
			return nil, errors.Join(err, d.Close())
		}
		d.dbURL = cl.URL(DevDatabase)
	}
	if err := d.migrate(ctx, out); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	fmt.Fprintf(out, "\nomnibridge dev is running.\n\n  database:  %s\n", config.RedactURL(d.dbURL))
	if d.cluster != nil {
		fmt.Fprintf(out, "  data dir:  %s (kept between runs; --fresh starts over)\n", d.cluster.DataDir())
	}
	fmt.Fprintf(out, "\n  psql %q\n\nPress Ctrl-C to stop.\n", d.dbURL)
	return d, nil
}

// DevDatabase is the database `omnibridge dev` creates in its embedded cluster.
const DevDatabase = "omnibridge"

// ensureDatabase creates the named database unless it exists.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to embedded PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// DatabaseURL is the URL of the development database.
func (d *Dev) DatabaseURL() string { return d.dbURL }

func (d *Dev) migrate(ctx context.Context, out io.Writer) error {
	db, err := migrations.OpenDB(ctx, d.dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := migrations.Up(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range applied {
		fmt.Fprintf(out, "migrated: %05d %s (%s)\n", r.Version, r.Name, r.Duration.Round(1e6))
	}
	return nil
}

// Close stops everything StartDev started. It is safe to call more than once.
func (d *Dev) Close() error {
	if d.cluster == nil {
		return nil
	}
	d.Logger.Info("dev: stopping embedded PostgreSQL")
	err := d.cluster.Stop(context.Background(), pgembed.StopFast)
	d.cluster = nil
	return err
}
