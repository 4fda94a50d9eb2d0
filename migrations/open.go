package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultConnectTimeout bounds each connection attempt of a *sql.DB opened by
// OpenDB when the URL sets no connect_timeout.
const DefaultConnectTimeout = 15 * time.Second

// OpenDB opens a *sql.DB on the pgx driver for url (a postgres:// URL or a
// key=value DSN) and checks that the server answers. Unless the URL says
// otherwise it sets application_name to "omnibridge-migrate", the session time
// zone to UTC (so the version table records UTC) and a connect timeout of
// DefaultConnectTimeout. Server notices, such as the one saying that roles were
// not created, are logged through slog.Default. The caller closes the DB.
func OpenDB(ctx context.Context, url string) (*sql.DB, error) {
	if url == "" {
		return nil, errors.New("migrations: no database URL (set OMNIBRIDGE_DATABASE_URL or pass --database-url)")
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("migrations: parse database URL: %w", err)
	}
	setDefault(cfg.RuntimeParams, "application_name", "omnibridge-migrate")
	setDefault(cfg.RuntimeParams, "timezone", "UTC")
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		level := slog.LevelInfo
		if n.Severity == "WARNING" {
			level = slog.LevelWarn
		}
		slog.Default().Log(context.Background(), level, "migrations: server notice",
			"severity", n.Severity, "sqlstate", n.Code, "message", n.Message)
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrations: connect to %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return db, nil
}

// setDefault sets a server parameter unless it is set already; parameter names
// are case-insensitive.
func setDefault(params map[string]string, name, value string) {
	for k := range params {
		if strings.EqualFold(k, name) {
			return
		}
	}
	params[name] = value
}
