package pgclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestRetryPolicyBackoffAndBounds(t *testing.T) {
	t.Parallel()
	p := retryPolicy{kind: retryConnect, retries: 3, base: 4 * time.Millisecond, max: 10 * time.Millisecond, maxElapsed: time.Minute}
	var waits []time.Duration
	n, err := p.do(context.Background(), retryableConnect, func(ev retryEvent) {
		require.Equal(t, retryConnect, ev.kind)
		require.Equal(t, len(waits)+1, ev.attempt)
		waits = append(waits, ev.wait)
	}, func(int) error { return io.ErrUnexpectedEOF })
	require.Equal(t, 4, n, "one attempt and three retries")
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Len(t, waits, 3)
	// Nominal 4ms, 8ms, then capped at 10ms; each ±50%.
	for i, nominal := range []time.Duration{4 * time.Millisecond, 8 * time.Millisecond, 10 * time.Millisecond} {
		require.GreaterOrEqual(t, waits[i], nominal/2, "wait %d", i)
		require.LessOrEqual(t, waits[i], nominal*3/2, "wait %d", i)
	}
}

func TestRetryPolicyStopsOnPermanentErrors(t *testing.T) {
	t.Parallel()
	p := retryPolicy{retries: 5, base: time.Millisecond, max: time.Millisecond, maxElapsed: time.Minute}
	auth := &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	n, err := p.do(context.Background(), retryableConnect, nil, func(int) error { return fmt.Errorf("connect: %w", auth) })
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, auth)
	require.Equal(t, "connect: "+auth.Error(), err.Error(), "returned as is, not wrapped by the backoff library")

	// Success after two failures.
	n, err = p.do(context.Background(), retryableConnect, nil, func(attempt int) error {
		if attempt < 3 {
			return io.EOF
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// No retries configured: exactly one attempt.
	p.retries = -1
	n, err = p.do(context.Background(), retryableConnect, nil, func(int) error { return io.EOF })
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, io.EOF)
}

func TestRetryPolicyBoundedByContextAndMaxElapsed(t *testing.T) {
	t.Parallel()
	p := retryPolicy{retries: 100, base: time.Hour, max: time.Hour, maxElapsed: 10 * time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	n, err := p.do(ctx, retryableConnect, nil, func(int) error { return io.EOF })
	require.Less(t, time.Since(start), 30*time.Second)
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, err, io.EOF, "the last failure is kept")
	require.Equal(t, ClassCanceled, Classify(err))

	p = retryPolicy{retries: 100, base: time.Hour, max: time.Hour, maxElapsed: time.Second}
	start = time.Now()
	n, err = p.do(context.Background(), retryableConnect, nil, func(int) error { return io.EOF })
	require.Less(t, time.Since(start), 30*time.Second, "a wait that would end after max_elapsed is not started")
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, io.EOF)
}

func TestRetryableStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	idem := Idempotent(ctx)
	require.True(t, IsIdempotent(idem))
	require.False(t, IsIdempotent(ctx))

	sent := io.ErrUnexpectedEOF // lost after sending
	notSent := markNotSent(fmt.Errorf("acquire: %w", io.ErrUnexpectedEOF))
	require.True(t, pgconn.SafeToRetry(notSent))
	require.ErrorIs(t, notSent, io.ErrUnexpectedEOF)

	require.False(t, retryableStatement(ctx, sent), "may have reached the server")
	require.True(t, retryableStatement(idem, sent))
	require.True(t, retryableStatement(ctx, notSent))
	require.False(t, retryableStatement(idem, errUnique), "permanent")
	require.False(t, retryableStatement(idem, fmt.Errorf("x: %w", ErrPoolExhausted)), "another acquire timeout would only add to the wait")
	require.False(t, retryableStatement(idem, &UnavailableError{}), "the breaker is open")
	require.False(t, retryableStatement(idem, context.Canceled))
}

func TestRetryableTx(t *testing.T) {
	t.Parallel()
	serialization := &pgconn.PgError{Code: "40001"}
	for _, tc := range []struct {
		stage txStage
		err   error
		want  bool
	}{
		{txBody, serialization, true},
		{txCommit, serialization, true},
		{txBody, &pgconn.PgError{Code: "40P01"}, true},
		{txBody, &pgconn.PgError{Code: "55P03"}, true},
		{txBody, markNotSent(io.EOF), true},
		{txBody, io.EOF, false},
		{txCommit, markNotSent(io.EOF), false},
		{txCommit, io.EOF, false},
		{txBegin, io.EOF, false},
		{txBody, errUnique, false},
	} {
		err := fmt.Errorf("attempt: %w", &txFailure{stage: tc.stage, err: tc.err})
		require.Equal(t, tc.want, retryableTx(err), "stage %d err %v", tc.stage, tc.err)
	}
	require.False(t, retryableTx(serialization), "only txFailures")
}

func TestRetryConfigValidate(t *testing.T) {
	t.Parallel()
	d := RetryConfig{}.WithDefaults()
	require.NoError(t, d.Validate())
	require.Equal(t, 3, d.ConnectRetries)
	require.Equal(t, time.Second, d.ConnectRetryBase)
	err := RetryConfig{ConnectRetryBase: -1, ConnectRetryMax: time.Second, StatementRetryBase: time.Second, StatementRetryMax: time.Millisecond,
		TxRetryBase: time.Millisecond, TxRetryMax: time.Millisecond}.Validate()
	for _, f := range []string{"retry.connect_retry_base", "retry.statement_retry_max", "retry.max_elapsed"} {
		require.ErrorContains(t, err, f)
	}
	var ce *ConfigError
	require.True(t, errors.As(err, &ce))
}
