package hookreceiver

import (
	"errors"

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
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
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
// rather than split or blamed on the request: pgclient classifies it as
// transient (the circuit breaker is open, the pool had no connection in time,
// the statement timed out, the connection failed or was lost, the server is
// starting, stopping or out of connections) or as a transaction to retry
// (serialization failure, deadlock), or the client is closed (shutting down).
// It is the one place that decides.
func unavailable(err error) bool {
	switch pgclient.Classify(err) {
	case pgclient.ClassTransient, pgclient.ClassRetryTx, pgclient.ClassCanceled:
		return true
	}
	return errors.Is(err, pgclient.ErrClosed)
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
