package coordinator

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/omnibridge/omnibridge/store"
)

// Shutdown while the broker never answers: the Publish in flight is given
// DrainTimeout, then canceled; Run returns, and every claimed event is
// pending again with its attempts untouched.
func TestShutdownReleasesClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 130
	b.insert(t, n, 10)
	var hits atomic.Int64
	cluster := b.broker.Cluster()
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		hits.Add(1)
		return nil, nil, true // swallow the request: no answer
	})
	kc := b.kafkaConfig()
	kc.DeliveryTimeout, kc.RequestTimeout = 30*time.Second, 30*time.Second
	cfg := testConfig()
	cfg.DrainTimeout = 500 * time.Millisecond
	cfg.LeaseTimeout = time.Minute
	c := b.newCoordinator(t, cfg, b.producer(t, kc), true)
	r := start(t, c)

	// One batch in flight, one claimed ahead.
	waitFor(t, "a batch in flight and one claimed ahead", func() bool {
		return hits.Load() > 0 && b.counts(t)[store.EventProcessing] == 2*cfg.BatchSize
	})
	began := time.Now()
	r.stop(t)
	t.Logf("Run returned %s after its context ended", time.Since(began).Round(time.Millisecond))

	final := b.counts(t)
	require.Equal(t, map[store.EventStatus]int{store.EventPending: n}, final)
	var retried int
	require.NoError(t, b.db.QueryRow(testContext(t),
		`SELECT count(*) FROM omnibridge.hook_events WHERE retry_count > 0 OR claim_id IS NOT NULL`).Scan(&retried))
	require.Zero(t, retried)
	require.Equal(t, float64(2*cfg.BatchSize), value(t, c.m.released.WithLabelValues(releaseShutdown)))
}

// Shutdown while the broker is merely slow: the Publish in flight finishes
// within DrainTimeout and its events are processed; the batch claimed ahead
// is released.
func TestShutdownFinishesInFlightPublish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 130
	b.insert(t, n, 10)
	var hits atomic.Int64
	release := make(chan struct{})
	cluster := b.broker.Cluster()
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		hits.Add(1)
		cluster.SleepControl(func() { <-release })
		return nil, nil, false // then handle it normally
	})
	cfg := testConfig()
	cfg.DrainTimeout = time.Minute // generous: the publish must finish, not be cut
	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
	r := start(t, c)
	waitFor(t, "a batch in flight and one claimed ahead", func() bool {
		return hits.Load() > 0 && b.counts(t)[store.EventProcessing] == 2*cfg.BatchSize
	})
	r.cancel()
	time.Sleep(200 * time.Millisecond) // shutdown has begun; the broker answers now
	close(release)
	r.stop(t)

	final := b.counts(t)
	require.Equal(t, cfg.BatchSize, final[store.EventProcessed], "the batch in flight was completed")
	require.Equal(t, n-cfg.BatchSize, final[store.EventPending], "the rest is pending")
	require.Equal(t, float64(cfg.BatchSize), value(t, c.m.released.WithLabelValues(releaseShutdown)))
	b.readRecords(t, cfg.BatchSize)
}

// Run can be called only once.
func TestRunTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.newCoordinator(t, testConfig(), b.producer(t, b.kafkaConfig()), false)
	r := start(t, c)
	waitFor(t, "Run started", c.running.Load)
	require.ErrorIs(t, c.Run(testContext(t)), ErrAlreadyRunning)
	r.stop(t)
}
