package coordinator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// heldPublisher is the real producer behind a door: Publish waits until the
// door opens, as a coordinator that hangs (a long GC pause, a frozen VM)
// would.
type heldPublisher struct {
	*kafka.Producer
	entered chan struct{}
	door    chan struct{}
}

func (p *heldPublisher) Publish(ctx context.Context, msgs []kafka.Message) []error {
	select {
	case p.entered <- struct{}{}:
	default:
	}
	<-p.door
	return p.Producer.Publish(ctx, msgs)
}

// A coordinator that hangs with a batch in flight past its lease: another
// coordinator reclaims and delivers the events; when the first one wakes up
// its late publication makes duplicates (the only way two coordinators publish
// the same event), and its outcome is ignored.
func TestLeaseExpiredWhileHeld(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 30
	ids := b.insert(t, n, 6)
	kc := b.kafkaConfig()
	kc.DeliveryTimeout = time.Second

	held := &heldPublisher{Producer: b.producer(t, kc), entered: make(chan struct{}, 1), door: make(chan struct{})}
	cfgA := testConfig()
	cfgA.LeaseTimeout = 5 * time.Second
	cfgA.PollInterval, cfgA.ReclaimInterval = 10*time.Minute, 5*time.Second // claims once, at start
	a := b.newCoordinator(t, cfgA, held, false)
	ra := start(t, a)
	open := sync.OnceFunc(func() { close(held.door) })
	defer open()
	<-held.entered

	cfgB := testConfig()
	cfgB.LeaseTimeout = 5 * time.Second
	cfgB.ReclaimInterval = 250 * time.Millisecond
	cb := b.newCoordinator(t, cfgB, b.producer(t, kc), false)
	rb := start(t, cb)
	waitFor(t, "the second coordinator delivering after the lease expired", func() bool {
		return b.counts(t)[store.EventProcessed] == n
	})
	rb.stop(t)

	open()
	waitFor(t, "the first coordinator's late outcome", func() bool { return value(t, a.m.stale) >= n })
	ra.stop(t)
	// Everything the first coordinator published came too late. (Its own
	// reaper may have given its stuck claim back and it may have claimed the
	// events again meanwhile, so it can have published them twice.)
	latePublished := value(t, a.m.published)
	require.Equal(t, latePublished, value(t, a.m.stale))
	require.Equal(t, float64(n), value(t, cb.m.published))

	recs := b.readRecords(t, n+int(latePublished))
	copies := map[string]int{}
	for _, r := range recs {
		copies[header(r, HeaderEventID)]++
	}
	for _, id := range ids {
		require.GreaterOrEqual(t, copies[id.String()], 2, "event %s", id)
		e, err := b.st.GetEvent(testContext(t), id)
		require.NoError(t, err)
		require.Equal(t, store.EventProcessed, e.Status)
		require.Zero(t, e.RetryCount, "an expired lease spends no attempt")
		require.NotEmpty(t, e.ProcessingErrors)
		for _, msg := range e.ProcessingErrors {
			require.Contains(t, msg, "lease expired")
		}
		// Only the valid claim's completion wrote metrics.
		require.Len(t, b.eventMetrics(t, id), 1)
	}
}
