package pgclient

import (
	"errors"

	"github.com/omnibridge/omnibridge/internal/fielderr"
)

// ErrPoolExhausted is wrapped by the error of an operation that waited longer
// than Config.AcquireTimeout for a free connection. Every connection was busy
// the whole time: raise MaxConns (within the server's max_connections), make
// transactions shorter, or look for leaked connections (Stats.CurrentLeaks).
var ErrPoolExhausted = errors.New("pgclient: connection pool exhausted (raise max_conns, shorten transactions or look for leaked connections)")

// ErrClosed is returned by every operation on a Client after Close.
var ErrClosed = errors.New("pgclient: client is closed (open a new one with pgclient.Open)")

// ErrQueryTimeout is wrapped by the error of a statement that ran longer than
// Config.QueryTimeout. The statement was cancelled on the server. The error
// also matches context.DeadlineExceeded. Raise query_timeout, or pass a context
// with its own (shorter) deadline.
var ErrQueryTimeout = errors.New("pgclient: query timed out (raise query_timeout or make the statement faster)")

// errAcquireTimedOut is the cause of the acquire context the client derives,
// so that its expiry can be told apart from the caller's own deadline.
var errAcquireTimedOut = errors.New("pgclient: acquire timeout")

// ConfigError names an invalid configuration field (by its YAML key) and its value.
type ConfigError = fielderr.Error

func configError(field string, value any, reason string) error {
	return fielderr.New(field, value, reason)
}
