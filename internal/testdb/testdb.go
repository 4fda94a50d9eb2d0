// Package testdb gives each test its own PostgreSQL database, cloned from a
// migrated template. Databases live on TEST_DATABASE_URL's server when that is
// set, otherwise on one embedded cluster (pgembed) started per test package.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
// and in tests:
//
//	url := testdb.New(t) // fresh, migrated, dropped at cleanup
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

// EnvURL names the variable that points tests at an existing server. Its user
// must be allowed to create databases (and roles, for the role tests).
const EnvURL = "TEST_DATABASE_URL"

var state struct {
	mu       sync.Mutex
	adminURL string           // superuser on an admin database
	cluster  *pgembed.Cluster // nil when EnvURL is set
	template string           // migrated template database, created lazily
	created  []string         // databases to drop at the end, for safety
}

// Main runs the package's tests against a database server and then checks that
// no goroutine leaked. It exits the process with the tests' status.
func Main(m *testing.M, leakOptions ...goleak.Option) {
	os.Exit(run(m, leakOptions))
}

func run(m *testing.M, leakOptions []goleak.Option) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if u := os.Getenv(EnvURL); u != "" {
		state.adminURL = u
	} else {
		cl, err := pgembed.Start(ctx, pgembed.Config{Settings: TestSettings()})
		if err != nil {
			cancel()
			fmt.Fprintf(os.Stderr, "testdb: start embedded PostgreSQL: %v\n", err)
			return 1
		}
		state.cluster = cl
		state.adminURL = cl.URL("postgres")
	}
	cancel()

	code := m.Run()

	cleanup()
	if code == 0 {
		// goleak retries for a while, since goroutines of closed pools and
		// servers may take a moment to finish.
		if err := goleak.Find(leakOptions...); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: goroutine leak: %v\n", err)
			return 1
		}
	}
	return code
}

func cleanup() {
	state.mu.Lock()
	defer state.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if state.cluster == nil {
		// On a shared server, drop what this package created.
		for _, db := range append(state.created, state.template) {
			if db != "" {
				_ = dropDatabase(ctx, db)
			}
		}
	}
	if state.cluster != nil {
		_ = state.cluster.Close()
		state.cluster = nil
	}
}

// TestSettings are server settings that make a throwaway test cluster fast.
// Durability across a PostgreSQL process crash is kept (the OS still holds the
// data); only an OS crash would lose it.
func TestSettings() map[string]string {
	return map[string]string{
		"fsync":              "off",
		"full_page_writes":   "off",
		"max_connections":    "300",
		"shared_buffers":     "64MB",
		"log_min_messages":   "warning",
		"max_wal_size":       "1GB",
		"checkpoint_timeout": "30min",
	}
}

// AdminURL returns a superuser URL on the server's "postgres" database.
func AdminURL(t testing.TB) string {
	t.Helper()
	if state.adminURL == "" {
		t.Fatal("testdb: not initialised; call testdb.Main(m) from TestMain")
	}
	return state.adminURL
}

// Cluster returns the package's embedded cluster, or skips the test when the
// tests run against TEST_DATABASE_URL (restarting a shared server is not ours).
func Cluster(t testing.TB) *pgembed.Cluster {
	t.Helper()
	if state.cluster == nil {
		t.Skip("testdb: running against " + EnvURL + "; this test needs the embedded cluster")
	}
	return state.cluster
}

// NewCluster starts a private embedded cluster (for tests that restart, kill or
// reconfigure the server) and closes it at cleanup.
func NewCluster(t testing.TB, cfg pgembed.Config) *pgembed.Cluster {
	t.Helper()
	if cfg.Settings == nil {
		cfg.Settings = TestSettings()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("testdb: start private cluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// New returns the URL of a fresh database cloned from the migrated template; it
// is dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	tmpl, err := templateDB()
	if err != nil {
		t.Fatalf("testdb: template: %v", err)
	}
	return create(t, "TEMPLATE "+pgx.Identifier{tmpl}.Sanitize())
}

// NewEmpty returns the URL of a fresh database without migrations; it is
// dropped when the test ends.
func NewEmpty(t testing.TB) string {
	t.Helper()
	return create(t, "TEMPLATE template0")
}

func create(t testing.TB, clause string) string {
	t.Helper()
	AdminURL(t)
	name := "t_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" "+clause); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	state.mu.Lock()
	state.created = append(state.created, name)
	state.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, name); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	return withDatabase(state.adminURL, name)
}

// templateDB creates and migrates the package's template database once.
func templateDB() (string, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.template != "" {
		return state.template, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "tmpl_" + randomSuffix()
	if err := adminExec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", err
	}
	db, err := migrations.OpenDB(ctx, withDatabase(state.adminURL, name))
	if err == nil {
		_, err = migrations.Up(ctx, db)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// Leave nothing half-made behind on a shared server.
		return "", errors.Join(fmt.Errorf("migrate template: %w", err), dropDatabase(ctx, name))
	}
	state.template = name
	return name, nil
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, state.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func dropDatabase(ctx context.Context, name string) error {
	return adminExec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("testdb: %s is not a URL: %v", EnvURL, err))
	}
	u.Path = "/" + name
	return u.String()
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
