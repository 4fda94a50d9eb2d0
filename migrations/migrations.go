// Package migrations holds the omnibridge database schema as embedded, numbered
// SQL migrations (sql/00001_schema.sql, sql/00002_…) and applies them with goose.
//
// Every object lives in the PostgreSQL schema "omnibridge", goose's version
// table included (omnibridge.goose_db_version). Each version runs in its own
// transaction. Up and Down hold a PostgreSQL session advisory lock (LockID)
// while they work, so several services starting at once against the same
// database apply each version exactly once: the others wait, then find nothing
// pending.
//
// Typical use:
//
//	db, err := migrations.OpenDB(ctx, url)
//	...
//	defer db.Close()
//	applied, err := migrations.Up(ctx, db)
//
// docs/schema.md describes the tables, partitioning, retention and roles.
package migrations

import (
	"log/slog"
	"time"
)

const (
	// Schema is the PostgreSQL schema that holds every omnibridge object.
	Schema = "omnibridge"

	// VersionTable is goose's table of applied versions. It lives in Schema so
	// that the whole of omnibridge is one schema; Up creates the schema before
	// goose creates the table, and rolling back every version keeps both.
	VersionTable = Schema + ".goose_db_version"

	// LockID is the key of the session advisory lock that serializes migrators
	// of one database (crc32 of "omnibridge.migrations"). Advisory locks are
	// per database, so migrations of different databases do not wait for each
	// other.
	LockID int64 = 3552637117

	// DefaultLockTimeout is how long Up and Down wait for another migrator to
	// finish before giving up.
	DefaultLockTimeout = 5 * time.Minute
)

// Direction values of Result.
const (
	DirectionUp   = "up"
	DirectionDown = "down"
)

// Result describes one version that Up or Down applied.
type Result struct {
	// Version is the migration number, 1 for 00001_schema.sql.
	Version int64
	// Name is the file name without number and extension ("schema").
	Name string
	// Direction is DirectionUp or DirectionDown.
	Direction string
	// Duration is how long the version's transaction took.
	Duration time.Duration
}

// VersionStatus is the state of one embedded version in a database.
type VersionStatus struct {
	// Version is the migration number.
	Version int64
	// Name is the file name without number and extension.
	Name string
	// Applied reports whether the version is applied.
	Applied bool
	// AppliedAt is when it was applied (as recorded by the server, in UTC);
	// zero while pending.
	AppliedAt time.Time
}

// Option adjusts Up or Down.
type Option func(*options)

type options struct {
	toVersion   int64
	hasTarget   bool
	logger      *slog.Logger
	lockTimeout time.Duration
}

// ToVersion sets the target version. Up applies pending versions up to and
// including v (v must be at least 1); Down rolls back every applied version
// above v, so ToVersion(0) rolls back all of them. Without it, Up applies every
// pending version and Down rolls back the last applied one.
func ToVersion(v int64) Option {
	return func(o *options) {
		o.toVersion = v
		o.hasTarget = true
	}
}

// WithLogger sends goose's progress messages to l. By default they are
// discarded; callers print the returned Results instead.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithLockTimeout sets how long to wait for the migration lock held by another
// migrator of the same database. The lock is polled every second. Defaults to
// DefaultLockTimeout; values under a second count as one second.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

func buildOptions(opts []Option) options {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.lockTimeout <= 0 {
		o.lockTimeout = DefaultLockTimeout
	}
	return o
}
