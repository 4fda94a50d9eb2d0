package metricsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// TestClassify: failures of the path to the database are 503s that say to
// retry, a statement cut short is a 503 timeout, and only what the server
// refused for the statement itself is a 500.
func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("store: list events: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"query timeout", pgclient.ErrQueryTimeout, http.StatusServiceUnavailable, CodeTimeout},
		{"request deadline", context.DeadlineExceeded, http.StatusServiceUnavailable, CodeTimeout},
		{"statement cancelled", pg("57014"), http.StatusServiceUnavailable, CodeTimeout},
		{"server shutting down", pg("57P01"), http.StatusServiceUnavailable, CodeUnavailable},
		{"server starting", pg("57P03"), http.StatusServiceUnavailable, CodeUnavailable},
		{"too many connections", pg("53300"), http.StatusServiceUnavailable, CodeUnavailable},
		{"failover", pg("25006"), http.StatusServiceUnavailable, CodeUnavailable},
		{"serialization", pg("40001"), http.StatusServiceUnavailable, CodeUnavailable},
		{"connection lost", fmt.Errorf("store: x: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable, CodeUnavailable},
		{"breaker open", pgclient.ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable},
		{"pool exhausted", pgclient.ErrPoolExhausted, http.StatusServiceUnavailable, CodeUnavailable},
		{"client closed", pgclient.ErrClosed, http.StatusServiceUnavailable, CodeUnavailable},
		{"cannot connect", &pgconn.ConnectError{}, http.StatusServiceUnavailable, CodeUnavailable},
		{"no such event", store.ErrEventNotFound, http.StatusNotFound, CodeEventNotFound},
		{"missing table", pg("42P01"), http.StatusInternalServerError, CodeInternal},
		{"bad data", pg("22P02"), http.StatusInternalServerError, CodeInternal},
		{"unknown", errors.New("boom"), http.StatusInternalServerError, CodeInternal},
	} {
		ae := classify(tc.err)
		require.Equal(t, tc.status, ae.status, tc.name)
		require.Equal(t, tc.code, ae.body.Code, tc.name)
		if tc.status == http.StatusServiceUnavailable {
			require.Equal(t, "5", ae.retryAfter, tc.name)
		}
	}
}
