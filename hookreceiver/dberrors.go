package hookreceiver

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// failureClass says what a failed insert of a batch means for its requests.
type failureClass int

const (
	// failUnavailable: the database cannot be reached or is overloaded; no
	// row is at fault. The batch's requests are answered 503 and retried by
	// their senders.
	failUnavailable failureClass = iota
	// failRows: a row of the batch is at fault (a data error). The batch is
	// split to find it; the other rows are written.
	failRows
	// failDatabase: any other database error (missing grants, a broken
	// schema). No row is at fault and retrying at once will not help; the
	// requests are answered 503 and the error is logged.
	failDatabase
)

// classify sorts the error of a failed insert. A *store.ValidationError is
// handled before (it names its row) and never reaches here.
func classify(err error) failureClass {
	if unavailable(err) {
		return failUnavailable
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", // data exception: bad input for a column or jsonb
			"23", // integrity constraint violation
			"54": // program limit exceeded: a value too large to index or store
			return failRows
		}
	}
	return failDatabase
}

// unavailable reports whether err means that the database is unavailable for
// now, so that the request should be retried later (503 with Retry-After)
// rather than split or reported as a fault of the request: the pool had no
// connection in time, the statement ran out of time, the connection failed or
// was lost, the server is starting, stopping or out of connections, or the
// transaction hit a serialization failure or deadlock.
//
// It is the one place that decides; when pgclient grows a circuit breaker,
// its "open" error belongs here too.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, pgclient.ErrPoolExhausted) || errors.Is(err, pgclient.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources
			strings.HasPrefix(pgErr.Code, "57P"),         // operator intervention: shutdown, crash, starting up
			pgErr.Code == "40001", pgErr.Code == "40P01", // serialization failure, deadlock
			pgErr.Code == "55P03", // lock not available
			pgErr.Code == "57014": // query canceled (statement timeout)
			return true
		}
	}
	return false
}

// validationIndex returns the index of the row a *store.ValidationError
// names, or -1 when err is not one or names no row of a batch of n.
func validationIndex(err error, n int) (int, *store.ValidationError) {
	var ve *store.ValidationError
	if !errors.As(err, &ve) || ve.Index < 0 || ve.Index >= n {
		return -1, nil
	}
	return ve.Index, ve
}
