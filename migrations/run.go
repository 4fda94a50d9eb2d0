package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// ErrInvalidTarget is returned when Up is given ToVersion below 1 or Down a
// negative ToVersion.
var ErrInvalidTarget = errors.New("migrations: invalid target version (Up needs ToVersion(v) with v >= 1; Down needs v >= 0, and ToVersion(0) rolls back everything)")

// Up applies the pending versions in order, each in its own transaction, while
// holding the migration lock, and returns what it applied (empty when nothing
// was pending). It creates the omnibridge schema first if it is missing, which
// needs the CREATE privilege on the database.
//
// If a version fails, Up returns the versions applied before it together with
// the error; the failed version is rolled back.
func Up(ctx context.Context, db *sql.DB, opts ...Option) ([]Result, error) {
	o := buildOptions(opts)
	target := int64(math.MaxInt64)
	if o.hasTarget {
		if o.toVersion < 1 {
			return nil, ErrInvalidTarget
		}
		target = o.toVersion
	}
	if err := ensureSchema(ctx, db); err != nil {
		return nil, err
	}
	p, srcs, err := newProvider(db, o, true)
	if err != nil {
		return nil, err
	}
	res, err := p.UpTo(ctx, target)
	return results(srcs, res, err, "up")
}

// Down rolls back the last applied version, or with ToVersion(v) every applied
// version above v, newest first, while holding the migration lock. It returns
// what it rolled back; an empty result means nothing was applied. Rolling back
// version 1 removes every omnibridge table but keeps the schema and its
// version table; roles are kept too (see docs/schema.md).
func Down(ctx context.Context, db *sql.DB, opts ...Option) ([]Result, error) {
	o := buildOptions(opts)
	if o.hasTarget && o.toVersion < 0 {
		return nil, ErrInvalidTarget
	}
	if ok, err := versionTableExists(ctx, db); err != nil || !ok {
		return nil, err
	}
	p, srcs, err := newProvider(db, o, true)
	if err != nil {
		return nil, err
	}
	if !o.hasTarget {
		r, err := p.Down(ctx)
		if errors.Is(err, goose.ErrNoNextVersion) {
			return nil, nil
		}
		var res []*goose.MigrationResult
		if r != nil {
			res = []*goose.MigrationResult{r}
		}
		return results(srcs, res, err, "down")
	}
	res, err := p.DownTo(ctx, o.toVersion)
	return results(srcs, res, err, "down")
}

// Status lists every embedded version, oldest first, with whether and when it
// was applied. It changes nothing: on a database that was never migrated every
// version is reported pending.
func Status(ctx context.Context, db *sql.DB) ([]VersionStatus, error) {
	srcs, err := sources()
	if err != nil {
		return nil, err
	}
	out := make([]VersionStatus, len(srcs))
	for i, s := range srcs {
		out[i] = VersionStatus{Version: s.version, Name: s.name}
	}
	ok, err := versionTableExists(ctx, db)
	if err != nil || !ok {
		return out, err
	}
	p, _, err := newProvider(db, buildOptions(nil), false)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	for _, s := range st {
		if i := s.Source.Version - 1; i >= 0 && i < int64(len(out)) && s.State == goose.StateApplied {
			out[i].Applied = true
			out[i].AppliedAt = s.AppliedAt.UTC()
		}
	}
	return out, nil
}

// Current returns the highest applied version (0 when none) and the latest
// embedded one; the schema is current when they are equal. It changes nothing
// and needs only SELECT on the version table, which the service roles have, so
// health checks can call it.
func Current(ctx context.Context, db *sql.DB) (version, latest int64, err error) {
	srcs, err := sources()
	if err != nil {
		return 0, 0, err
	}
	latest = srcs[len(srcs)-1].version
	ok, err := versionTableExists(ctx, db)
	if err != nil || !ok {
		return 0, latest, err
	}
	// MAX over the version table, which is what goose reports as the database
	// version; read directly so that no provider (and no extra connection) is
	// needed.
	err = db.QueryRowContext(ctx,
		"SELECT COALESCE(max(version_id), 0) FROM "+VersionTable).Scan(&version)
	if err != nil {
		return 0, latest, fmt.Errorf("migrations: read current version: %w", err)
	}
	return version, latest, nil
}

func newProvider(db *sql.DB, o options, locked bool) (*goose.Provider, []source, error) {
	srcs, err := sources()
	if err != nil {
		return nil, nil, err
	}
	fsys, err := fs.Sub(embedded, "sql")
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	popts := []goose.ProviderOption{
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(o.logger),
	}
	if locked {
		attempts := uint64(max(1, (o.lockTimeout+time.Second-1)/time.Second))
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(LockID),
			lock.WithLockTimeout(1, attempts),
		)
		if err != nil {
			return nil, nil, fmt.Errorf("migrations: %w", err)
		}
		popts = append(popts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, popts...)
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	return p, srcs, nil
}

// results converts goose's results; on a partial failure it keeps the versions
// that did complete.
func results(srcs []source, res []*goose.MigrationResult, err error, op string) ([]Result, error) {
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) {
			res = partial.Applied
		}
	}
	out := make([]Result, 0, len(res))
	for _, r := range res {
		out = append(out, Result{
			Version:   r.Source.Version,
			Name:      nameOf(srcs, r.Source.Version),
			Direction: r.Direction,
			Duration:  r.Duration,
		})
	}
	if err != nil {
		return out, fmt.Errorf("migrations: %s: %w", op, err)
	}
	return out, nil
}

// ensureSchema creates the omnibridge schema, which must exist before goose
// creates its version table in it. Concurrent migrators serialize on LockID.
func ensureSchema(ctx context.Context, db *sql.DB) error {
	exists := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) (bool, error) {
		var ok bool
		// A query on pg_namespace, not to_regnamespace: the latter reads the
		// catalog cache, which taking an advisory lock does not refresh.
		err := q.QueryRowContext(ctx,
			"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", Schema).Scan(&ok)
		return ok, err
	}
	ok, err := exists(db)
	if err != nil {
		return fmt.Errorf("migrations: look up schema %s: %w", Schema, err)
	}
	if ok {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrations: create schema %s: %w", Schema, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", LockID); err != nil {
		return fmt.Errorf("migrations: create schema %s: %w", Schema, err)
	}
	// Checked again under the lock: CREATE SCHEMA IF NOT EXISTS would still
	// demand the CREATE privilege on the database when the schema exists.
	if ok, err := exists(tx); err != nil || ok {
		if err != nil {
			return fmt.Errorf("migrations: look up schema %s: %w", Schema, err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, "CREATE SCHEMA "+Schema); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P06" { // duplicate_schema
			return nil // created concurrently by a migrator that did not take the lock
		}
		return fmt.Errorf("migrations: create schema %s (the migrating user needs CREATE on the database, or a DBA creates the schema for it): %w", Schema, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrations: create schema %s: %w", Schema, err)
	}
	return nil
}

func versionTableExists(ctx context.Context, db *sql.DB) (bool, error) {
	var ok bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&ok); err != nil {
		return false, fmt.Errorf("migrations: look up %s: %w", VersionTable, err)
	}
	return ok, nil
}
