package pgclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class says what a failed operation means for the caller: whether trying
// again can succeed, and what has to be tried again.
type Class uint8

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassPermanent errors fail the same way when retried: bad input,
	// constraint violations, syntax errors, missing objects or privileges,
	// failed authentication, TLS verification failures, protocol violations,
	// and every error this package does not know. The circuit breaker counts
	// them as successes: the server answered.
	ClassPermanent
	// ClassTransient errors come from the path to the database, not from
	// the statement: the connection failed or was lost, the statement or the
	// wait for a connection timed out, the server is starting, shutting down,
	// out of connections or resources, or has become read-only (a failover).
	// The same operation may succeed later; the circuit breaker counts them.
	ClassTransient
	// ClassRetryTx errors abort the transaction but not the database: a
	// serialization failure (40001), a deadlock (40P01) or a lock that could
	// not be taken (55P03). Running the whole transaction again is expected
	// to succeed; InTx does that.
	ClassRetryTx
	// ClassCanceled is the caller's own cancellation (context.Canceled). It
	// says nothing about the database and never trips the circuit breaker.
	ClassCanceled
)

// String returns the class name: "none", "permanent", "transient",
// "retry_tx" or "canceled".
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassPermanent:
		return "permanent"
	case ClassTransient:
		return "transient"
	case ClassRetryTx:
		return "retry_tx"
	case ClassCanceled:
		return "canceled"
	}
	return "unknown"
}

// Classify answers "is this worth retrying, and how" for any error returned
// by this package (or by pgx). The rules, first match wins:
//
//   - nil: ClassNone;
//   - context.Canceled anywhere in the chain: ClassCanceled. A deadline that
//     expires is a timeout, not a cancellation;
//   - ErrUnavailable (the circuit breaker is open), ErrPoolExhausted and
//     ErrQueryTimeout: ClassTransient; ErrClosed: ClassPermanent;
//   - a server error (*pgconn.PgError), by SQLSTATE: 40001, 40P01 and 55P03
//     are ClassRetryTx; 08000, 08001, 08003, 08004, 08006, class 53,
//     57P01, 57P02, 57P03, 57P05, 57014 (query canceled, which is how a
//     statement_timeout or the query timeout ends a statement) and 25006
//     (read-only transaction: the primary has become a standby) are
//     ClassTransient; every other code, among them classes 22, 23, 28 and
//     42, 3D000, 0A000, 08P01 and 08007 (the outcome of the transaction is
//     unknown), is ClassPermanent; 55000 is ClassTransient when a new
//     connection was refused with it (the database does not allow
//     connections for now), ClassPermanent for a statement;
//   - a TLS failure (certificate verification, an alert from the server, a
//     handshake error): ClassPermanent — it does not heal by itself;
//   - a timeout (pgconn.Timeout, context.DeadlineExceeded), a network error
//     (net.Error, connection refused or reset, broken pipe), io.EOF and
//     io.ErrUnexpectedEOF on a connection, and a connection pgx had to close
//     (pgconn.ErrConnClosed): ClassTransient;
//   - anything else: ClassPermanent.
//
// Only codes and types are inspected, never message text.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, context.Canceled) {
		return ClassCanceled
	}
	switch {
	case errors.Is(err, ErrClosed):
		return ClassPermanent
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrPoolExhausted), errors.Is(err, ErrQueryTimeout):
		return ClassTransient
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "55000" && isConnectError(err) {
			// The database takes no connections for now (ALLOW_CONNECTIONS
			// false, set while it is restored or moved): it passes.
			return ClassTransient
		}
		return classifyCode(pgErr.Code)
	}
	if IsTLSError(err) {
		return ClassPermanent
	}
	if isNetworkError(err) {
		return ClassTransient
	}
	return ClassPermanent
}

// IsTransient reports whether err is ClassTransient: the database could not
// be reached or did not answer in time, and the same operation may succeed
// later. Whether it may be re-sent at once depends on the operation: see
// docs/resilience.md.
func IsTransient(err error) bool { return Classify(err) == ClassTransient }

// IsRetryableTx reports whether err is ClassRetryTx: the transaction lost a
// serialization conflict or a deadlock, or could not take a lock, and the
// whole transaction should be run again.
func IsRetryableTx(err error) bool { return Classify(err) == ClassRetryTx }

// IsPermanent reports whether err is ClassPermanent: retrying will fail the
// same way. It is false for nil.
func IsPermanent(err error) bool { return Classify(err) == ClassPermanent }

// isConnectError reports whether err is the failure to open a connection.
func isConnectError(err error) bool {
	_, ok := errors.AsType[*pgconn.ConnectError](err)
	return ok
}

// classifyCode classifies a SQLSTATE.
func classifyCode(code string) Class {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03": // lock_not_available
		return ClassRetryTx
	case "08000", // connection_exception
		"08001", // sqlclient_unable_to_establish_sqlconnection
		"08003", // connection_does_not_exist
		"08004", // sqlserver_rejected_establishment_of_sqlconnection
		"08006", // connection_failure
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, shutting down, in recovery)
		"57P05", // idle_session_timeout
		"57014", // query_canceled
		"25006": // read_only_sql_transaction
		return ClassTransient
	}
	if len(code) == 5 && code[:2] == "53" { // insufficient resources, too many connections
		return ClassTransient
	}
	return ClassPermanent
}

// IsTLSError reports whether err is a failure to set up TLS: the server's
// certificate did not verify (unknown authority, wrong host name, expired),
// the server sent a TLS alert (no common protocol version or cipher suite,
// client certificate refused), or the handshake failed otherwise.
func IsTLSError(err error) bool {
	var (
		verifyErr   *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		alertErr    tls.AlertError
		recordErr   tls.RecordHeaderError
		opErr       *net.OpError
	)
	switch {
	case errors.As(err, &verifyErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidErr), errors.As(err, &alertErr), errors.As(err, &recordErr):
		return true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls reports an alert received from the peer as a
		// *net.OpError with this Op (its alert type is not exported).
		return true
	}
	return false
}

// isNetworkError reports whether err says that the connection failed or was
// lost, or that a deadline expired, rather than that the server refused the
// statement.
func isNetworkError(err error) bool {
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
