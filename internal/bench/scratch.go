package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// scratchDB is what the scratch-database helpers need: a *pgxpool.Pool or
// a *pgclient.Client.
type scratchDB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// checkScratch refuses a database that is not migrated or whose hook_events
// holds a row: the benchmarks empty the event tables (emptyEvents).
func checkScratch(ctx context.Context, db scratchDB, bench string) error {
	var nonEmpty bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM omnibridge.hook_events)`).Scan(&nonEmpty); err != nil {
		return fmt.Errorf("bench %s: needs a migrated database: %w", bench, err)
	}
	if nonEmpty {
		return errors.New("bench " + bench + ": omnibridge.hook_events is not empty; the benchmark truncates it, so point it at a scratch database")
	}
	return nil
}

// emptyEvents empties the event tables.
func emptyEvents(ctx context.Context, db scratchDB, bench string) error {
	if _, err := db.Exec(ctx, `TRUNCATE omnibridge.hook_events, omnibridge.hook_event_deliveries, omnibridge.event_metrics`); err != nil {
		return fmt.Errorf("bench %s: truncate: %w", bench, err)
	}
	return nil
}
