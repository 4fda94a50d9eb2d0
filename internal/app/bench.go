package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/internal/bench"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/pgembed"
)

// BenchDB is a scratch database for a benchmark: on the configured server when
// there is one, else on a temporary embedded cluster. Close drops it.
type BenchDB struct {
	URL     string
	admin   string
	name    string
	cluster *pgembed.Cluster
}

// OpenBenchDB creates and migrates a scratch database. The benchmarks truncate
// what they write, so they never run on the configured database itself.
func OpenBenchDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*BenchDB, error) {
	b := &BenchDB{admin: cfg.Database.URL, name: "omnibridge_bench_" + randomHex(4)}
	if b.admin == "" {
		log.Info("bench: starting a temporary embedded PostgreSQL")
		cl, err := pgembed.Start(ctx, pgembed.Config{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("start embedded PostgreSQL (or set --database-url): %w", err)
		}
		b.cluster = cl
		b.admin = cl.URL("postgres")
	}
	// Parse before creating: Close drops the scratch database only once its
	// URL is known.
	u, err := url.Parse(b.admin)
	if err != nil || u.Scheme == "" {
		return nil, errors.Join(fmt.Errorf("bench needs a URL-form database URL (postgres://…), not %q: %v",
			config.RedactURL(b.admin), err), b.Close())
	}
	if err := adminExec(ctx, b.admin, "CREATE DATABASE "+pgx.Identifier{b.name}.Sanitize()); err != nil {
		return nil, errors.Join(fmt.Errorf("create scratch database (the user needs CREATEDB): %w", err), b.Close())
	}
	u.Path = "/" + b.name
	b.URL = u.String()
	db, err := migrations.OpenDB(ctx, b.URL)
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	_, err = migrations.Up(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("migrate scratch database: %w", err), b.Close())
	}
	return b, nil
}

// Close drops the scratch database and stops the temporary cluster.
func (b *BenchDB) Close() error {
	ctx := context.Background()
	var errs []error
	if b.URL != "" {
		errs = append(errs, adminExec(ctx, b.admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{b.name}.Sanitize()+" WITH (FORCE)"))
	}
	if b.cluster != nil {
		errs = append(errs, b.cluster.Close())
	}
	return errors.Join(errs...)
}

func adminExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// BenchBulk runs `omnibridge bench bulk`: the adaptive bulk insert through
// pgclient and the store against bare pgx batch and COPY on the same server.
func BenchBulk(ctx context.Context, cfg config.Config, log *slog.Logger, bc bench.BulkConfig) (bench.BulkReport, error) {
	db, err := OpenBenchDB(ctx, cfg, log)
	if err != nil {
		return bench.BulkReport{}, err
	}
	defer db.Close()
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		return bench.BulkReport{}, err
	}
	defer pool.Close()
	dbc := cfg.Database
	dbc.URL = db.URL
	dbc.ServiceName = "omnibridge_bench"
	dbc.Logger = log
	client, err := pgclient.Open(ctx, dbc)
	if err != nil {
		return bench.BulkReport{}, err
	}
	defer client.Close()
	bc.Ours = client
	return bench.Bulk(ctx, pool, bc)
}

// BenchPool runs `omnibridge bench pool`: point queries through pgclient vs a
// bare pgxpool of the same size, from the same workers, in one run.
func BenchPool(ctx context.Context, cfg config.Config, log *slog.Logger, workers int, d time.Duration) (pgclient.PoolBenchResult, error) {
	db, err := OpenBenchDB(ctx, cfg, log)
	if err != nil {
		return pgclient.PoolBenchResult{}, err
	}
	defer db.Close()
	dbc := cfg.Database
	dbc.URL = db.URL
	dbc.ServiceName = "omnibridge_bench"
	dbc.Logger = log
	return pgclient.BenchPool(ctx, dbc, workers, d)
}

// BenchIngest runs `omnibridge bench ingest`: the HookReceiver vs a naive
// one-INSERT-per-request server, in one run.
func BenchIngest(ctx context.Context, cfg config.Config, log *slog.Logger, o bench.IngestOptions) (bench.IngestResult, error) {
	db, err := OpenBenchDB(ctx, cfg, log)
	if err != nil {
		return bench.IngestResult{}, err
	}
	defer db.Close()
	return bench.Ingest(ctx, db.URL, o)
}

// DrainReport is `omnibridge bench drain`: the ingest rate it is compared with
// (measured in the same run unless given) and the drain.
type DrainReport struct {
	Ingest *bench.IngestResult `json:"ingest,omitempty"`
	bench.DrainResult
}

// BenchDrain runs `omnibridge bench drain`: n pending events through the
// WorkflowCoordinator to the in-process Kafka, compared with the ingest rate of
// the HookReceiver on the same machine (measured first when ingestRate is 0),
// and end-to-end latency at half that rate.
func BenchDrain(ctx context.Context, cfg config.Config, log *slog.Logger, n int, ingestRate float64, io bench.IngestOptions, dc bench.DrainConfig) (DrainReport, error) {
	var rep DrainReport
	if ingestRate <= 0 {
		ir, err := BenchIngest(ctx, cfg, log, io)
		if err != nil {
			return rep, fmt.Errorf("measure the ingest rate: %w", err)
		}
		rep.Ingest = &ir
		ingestRate = ir.Rate
	}
	db, err := OpenBenchDB(ctx, cfg, log)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	dc.IngestRate = ingestRate
	if dc.LatencyRate == 0 {
		dc.LatencyRate = ingestRate / 2
	}
	res, err := bench.Drain(ctx, db.URL, n, dc)
	rep.DrainResult = res
	return rep, err
}
