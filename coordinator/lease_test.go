package coordinator

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

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

// lossyDB is the pool with the replies of the first completions (lose) and
// failures (loseFail) lost: the statement commits but the caller gets an
// error, as when the connection drops right after the commit.
type lossyDB struct {
	store.DB
	lose     atomic.Int32
	loseFail atomic.Int32
}

func (d *lossyDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.DB.Query(ctx, sql, args...)
	if err != nil || !strings.Contains(sql, "SET retry_count = e.retry_count + 1") || d.loseFail.Add(-1) < 0 {
		return rows, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("failed %d events, then the reply was lost: %w", n, io.ErrUnexpectedEOF)
}

func (d *lossyDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	row := d.DB.QueryRow(ctx, sql, args...)
	if !strings.Contains(sql, "SET status = 'processed'") || d.lose.Add(-1) < 0 {
		return row
	}
	var n int
	if err := row.Scan(&n); err != nil {
		return errRow{err}
	}
	return errRow{fmt.Errorf("completed %d events, then the reply was lost: %w", n, io.ErrUnexpectedEOF)}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// A completion commits but its reply is lost: the retry finds nothing left to
// complete, which is no expired claim (the events are not published again).
func TestLostCompleteReplyIsNotStale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	db := &lossyDB{DB: b.db}
	db.lose.Store(1)
	b.st = store.New(db)
	const n = 20
	b.insert(t, n, 4)

	c := b.newCoordinator(t, testConfig(), b.producer(t, b.kafkaConfig()), true)
	r := start(t, c)
	final := b.waitSettled(t)
	require.Equal(t, n, final[store.EventProcessed])
	// The events are processed once the lost reply's statement committed;
	// wait for the retry, and for the finisher to be done with it.
	waitFor(t, "the completion retried", func() bool { return db.lose.Load() < 0 })
	r.stop(t)
	require.Equal(t, 1.0, value(t, c.m.dbErrors.WithLabelValues("complete")))
	require.Equal(t, float64(n), value(t, c.m.published))
	require.Zero(t, value(t, c.m.stale), "the completion committed; only its reply was lost")
	b.readRecords(t, n)
}

// A fail statement that made events dead commits but its reply is lost: the
// retry finds the events no longer held, and still counts them as dead.
func TestLostFailReplyStillCountsDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	db := &lossyDB{DB: b.db}
	db.loseFail.Store(1)
	b.st = store.New(db)
	fault := b.broker.Cluster().Fault(kfake.Fault{
		Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.DefaultTopic, Err: kerr.InvalidRecord, Count: -1,
	})
	defer fault.Remove()
	const n = 12
	b.insert(t, n, 3)

	cfg := testConfig()
	cfg.Retry.MaxAttempts = 1
	c := b.newCoordinator(t, cfg, b.producer(t, b.kafkaConfig()), true)
	r := start(t, c)
	final := b.waitSettled(t)
	require.Equal(t, n, final[store.EventDead])
	waitFor(t, "the failure retried", func() bool { return db.loseFail.Load() < 0 })
	r.stop(t)
	require.Equal(t, 1.0, value(t, c.m.dbErrors.WithLabelValues("fail")))
	require.Equal(t, float64(n), value(t, c.m.failed))
	require.Equal(t, float64(n), value(t, c.m.dead), "the lost reply's events died all the same")
	require.Zero(t, value(t, c.m.stale))
}

// expiringPublisher gives its first batch's claim back behind the
// coordinator's back, as the reaper does once a lease expired, and then fails
// every record of that batch for a reason of the record.
type expiringPublisher struct {
	*kafka.Producer
	db      store.DB
	expired atomic.Bool
	err     error
}

func (p *expiringPublisher) Publish(ctx context.Context, msgs []kafka.Message) []error {
	if !p.expired.CompareAndSwap(false, true) {
		return p.Producer.Publish(ctx, msgs)
	}
	_, p.err = p.db.Exec(ctx, `
UPDATE omnibridge.hook_events SET status = 'pending', claimed_at = NULL, claim_id = NULL
WHERE status = 'processing'`)
	errs := make([]error, len(msgs))
	for i := range errs {
		errs[i] = fmt.Errorf("kafka: publish: %w", kerr.InvalidRecord)
	}
	return errs
}

// Failed attempts recorded after the claim expired are ignored, spend no
// attempt, and are counted as stale claims like late completions.
func TestFailAfterLeaseExpiredIsStale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 10
	ids := b.insert(t, n, 2)
	pub := &expiringPublisher{Producer: b.producer(t, b.kafkaConfig()), db: b.db}
	c := b.newCoordinator(t, testConfig(), pub, true)
	start(t, c)
	final := b.waitSettled(t)
	require.NoError(t, pub.err)
	require.Equal(t, n, final[store.EventProcessed])
	require.Equal(t, float64(n), value(t, c.m.stale))
	require.Zero(t, value(t, c.m.dead))
	for _, id := range ids {
		e, err := b.st.GetEvent(testContext(t), id)
		require.NoError(t, err)
		require.Zero(t, e.RetryCount, "the ignored failure spent no attempt")
	}
}
