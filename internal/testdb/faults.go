package testdb

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omnibridge/omnibridge/store"
)

// FailingQueries is a store.DB whose Query fails, as if the connection had
// dropped (a *net.OpError), for every statement that contains Match; the
// others go to DB. With Match the delivery lookup of store.InsertEvents
// ("JOIN unnest"), it fails a batch after its insert has committed.
type FailingQueries struct {
	store.DB
	Match string
}

func (f FailingQueries) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, f.Match) {
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	}
	return f.DB.Query(ctx, sql, args...)
}

// Outage puts a test database through the faults of a restart or a failover,
// from a superuser connection on another database: it ends backends and
// refuses or allows new connections. At cleanup the database takes
// connections again.
type Outage struct {
	admin *pgx.Conn
	db    string
}

// NewOutage returns an Outage for the database of url (one of New's).
func NewOutage(t testing.TB, url string) *Outage {
	t.Helper()
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatalf("testdb: outage: %v", err)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, AdminURL(t))
	if err != nil {
		t.Fatalf("testdb: outage: %v", err)
	}
	o := &Outage{admin: admin, db: cfg.Database}
	t.Cleanup(func() {
		o.AllowConnections(t, true)
		_ = admin.Close(ctx)
	})
	return o
}

// Database is the name of the database the outage acts on.
func (o *Outage) Database() string { return o.db }

// Terminate ends the database's backends whose application_name is app, or
// all of them when app is "", and returns how many it ended.
func (o *Outage) Terminate(t testing.TB, app string) int {
	t.Helper()
	var n int
	err := o.admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND ($2 = '' OR application_name = $2)`, o.db, app).Scan(&n)
	if err != nil {
		t.Fatalf("testdb: outage: terminate: %v", err)
	}
	return n
}

// AllowConnections lets the database take new connections, or refuses them
// (SQLSTATE 55000) without ending those it has.
func (o *Outage) AllowConnections(t testing.TB, allow bool) {
	t.Helper()
	_, err := o.admin.Exec(context.Background(),
		`ALTER DATABASE `+pgx.Identifier{o.db}.Sanitize()+` ALLOW_CONNECTIONS `+strconv.FormatBool(allow))
	if err != nil {
		t.Fatalf("testdb: outage: allow connections %v: %v", allow, err)
	}
}
