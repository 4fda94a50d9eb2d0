package testdb

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"

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
