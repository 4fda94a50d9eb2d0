package pgclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
)

const (
	leakReported = "potential connection leak"
	leakReturned = "previously reported leaked connection returned"
)

func TestLeakDetectionReportsOnceWithStackAndClears(t *testing.T) {
	t.Parallel()
	const threshold = 150 * time.Millisecond
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, LeakThreshold: threshold})
	c, ctx := b.client, ctxT(t)

	conn, err := c.Acquire(ctx) // the leak: held well past the threshold
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(b.log.String(), leakReported) },
		10*time.Second, 10*time.Millisecond)
	time.Sleep(4 * threshold) // several more scans

	log := b.log.String()
	require.Equal(t, 1, strings.Count(log, leakReported), "reported once")
	require.Contains(t, log, "TestLeakDetectionReportsOnceWithStackAndClears", "the acquirer's stack")
	require.Contains(t, log, "leak_test.go")
	require.NotContains(t, log, "pgclient.(*Client).acquire", "the client's own frames are left out")
	s := c.Stats()
	require.EqualValues(t, 1, s.PotentialLeaks)
	require.EqualValues(t, 1, s.CurrentLeaks)

	conn.Release()
	require.Contains(t, b.log.String(), leakReturned)
	s = c.Stats()
	require.EqualValues(t, 1, s.PotentialLeaks, "cumulative")
	require.EqualValues(t, 0, s.CurrentLeaks)

	// A short hold is not a leak.
	_, err = c.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	time.Sleep(3 * threshold)
	require.EqualValues(t, 1, c.Stats().PotentialLeaks)
}

func TestLeakDetectionUnclosedRows(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, LeakThreshold: 100 * time.Millisecond})
	rows, err := b.client.Query(ctxT(t), "SELECT generate_series(1, 3)")
	require.NoError(t, err)
	require.True(t, rows.Next()) // read one row and forget the rest
	// The scan counts the leak, then logs it: wait for both.
	require.Eventually(t, func() bool {
		return b.client.Stats().CurrentLeaks == 1 && strings.Contains(b.log.String(), leakReported)
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, b.log.String(), "TestLeakDetectionUnclosedRows")
	rows.Close()
	require.Zero(t, b.client.Stats().CurrentLeaks)
	require.Contains(t, b.log.String(), leakReturned)
}

func TestLeakDetectionDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2, LeakThreshold: -1})
	conn, err := b.client.Acquire(ctxT(t))
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	conn.Release()
	require.Zero(t, b.client.Stats().PotentialLeaks)
	require.NotContains(t, b.log.String(), leakReported)
}
