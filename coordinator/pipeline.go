package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// batch is one claim on its way through the pipeline. A batch without events
// is the claimer's word that it found nothing to probe with during an outage,
// at the gate's opening `opening`; it goes to the publisher only, in order
// behind the batches claimed before it, so that a probe still in flight is
// judged first.
type batch struct {
	events    []store.HookEvent
	claimID   uuid.UUID
	claimedAt time.Time
	opening   uint64

	// The outcome, filled in by the publisher and recorded by the finisher.
	done          []store.Completion
	failed        []store.Failure
	rejected      []store.Failure // can never be published: dead at once
	release       []uuid.UUID
	releaseReason string
	outage        bool
}

// releaseAll marks every event of b to be released.
func (b *batch) releaseAll(reason string) {
	b.release = make([]uuid.UUID, len(b.events))
	for i := range b.events {
		b.release[i] = b.events[i].ID
	}
	b.releaseReason = reason
}

// stopping bounds the pipeline's shutdown. stop ends DrainTimeout after the
// run context: it cancels the Publish in flight and ends retries of database
// statements. final ends DatabaseTimeout later and bounds every statement
// still running, so that Run returns by then.
type stopping struct {
	stop, final context.Context
	cleanup     func()
}

func newStopping(ctx context.Context, drain, db time.Duration) *stopping {
	stop, cancelStop := context.WithCancel(context.WithoutCancel(ctx))
	final, cancelFinal := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timers []*time.Timer
	unhook := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timers = append(timers, time.AfterFunc(drain, cancelStop), time.AfterFunc(drain+db, cancelFinal))
	})
	return &stopping{stop: stop, final: final, cleanup: func() {
		unhook()
		mu.Lock()
		for _, t := range timers {
			t.Stop()
		}
		mu.Unlock()
		cancelStop()
		cancelFinal()
	}}
}

// runPipeline runs the claim, publish and finish stages until ctx ends and
// everything claimed has been finished or released.
func (c *Coordinator) runPipeline(ctx context.Context) {
	s := newStopping(ctx, c.cfg.DrainTimeout, c.cfg.DatabaseTimeout)
	defer s.cleanup()

	// Unbuffered: at most one batch is claimed ahead of the one being
	// published, and one is being finished behind it.
	claimed := make(chan *batch)
	published := make(chan *batch)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(claimed)
		c.claimLoop(ctx, s, claimed)
	})
	wg.Go(func() {
		defer close(published)
		c.publishLoop(ctx, s, claimed, published)
	})
	for b := range published {
		c.finish(s, b)
	}
	wg.Wait()
}

// claimLoop claims batches and hands them to the publisher, waiting while
// Kafka is down, and for a wake-up or the poll interval when it claimed less
// than a full batch.
func (c *Coordinator) claimLoop(ctx context.Context, s *stopping, out chan<- *batch) {
	dbRetry := newBackoff(dbBackoff)
	for {
		if err := c.outage.wait(ctx); err != nil {
			return
		}
		opening, probing := c.outage.probing()
		b, err := c.claim(ctx, s)
		if err != nil {
			c.m.dbErrors.WithLabelValues("claim").Inc()
			d := dbRetry.NextBackOff()
			c.log.Warn("coordinator: claim failed; retrying", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		dbRetry.Reset()
		if b == nil {
			if probing {
				select {
				case out <- &batch{opening: opening}:
				case <-ctx.Done():
					return
				}
			}
			if !c.idle(ctx) {
				return
			}
			continue
		}
		select {
		case out <- b:
		case <-ctx.Done():
			b.releaseAll(releaseShutdown)
			c.finish(s, b)
			return
		}
		if len(b.events) < c.cfg.BatchSize && !c.idle(ctx) {
			return
		}
	}
}

// dbBackoff paces retries of failed database statements.
var dbBackoff = BackoffConfig{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// claim takes the next batch, nil when nothing is due. The statement does not
// see ctx's cancellation (only its own deadline), so that a claim that
// committed is never lost to a shutdown: the events are released instead.
func (c *Coordinator) claim(ctx context.Context, s *stopping) (*batch, error) {
	cctx, cancel := context.WithTimeout(s.final, c.cfg.DatabaseTimeout)
	defer cancel()
	events, claimID, err := c.st.Claim(cctx, c.cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	c.m.batchSize.Observe(float64(len(events)))
	b := &batch{events: events, claimID: claimID, claimedAt: time.Now()}
	if ctx.Err() != nil {
		b.releaseAll(releaseShutdown)
		c.finish(s, b)
		return nil, nil
	}
	return b, nil
}

// idle waits for a wake-up or the poll interval; false when ctx ended.
func (c *Coordinator) idle(ctx context.Context) bool {
	t := time.NewTimer(c.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-c.wake:
		return true
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// publishLoop publishes batches one after the other, in claim order, and
// backs the whole coordinator off after a batch that was an outage.
func (c *Coordinator) publishLoop(ctx context.Context, s *stopping, in <-chan *batch, out chan<- *batch) {
	for b := range in {
		if len(b.events) == 0 {
			if ended, lasted := c.outage.nothingToProbe(b.opening); ended {
				c.outageOver(lasted, "coordinator: Kafka answers again and no event is due to probe it with; outage over")
			}
			continue
		}
		if ctx.Err() != nil {
			b.releaseAll(releaseShutdown)
			out <- b
			continue
		}
		c.publish(s.stop, b)
		if !b.outage {
			out <- b
			if len(b.done) == 0 && len(b.failed) == 0 {
				// Canceled by shutdown, or only records too large to
				// hand to the client: says nothing about Kafka.
				continue
			}
			if ended, lasted := c.outage.succeeded(); ended {
				c.outageOver(lasted, "coordinator: Kafka outage over; publishing again")
			}
			continue
		}
		// Close the gate before the claimer can take another batch.
		first, since := c.outage.start()
		if first {
			c.m.outages.Inc()
			c.m.brokerBackoff.Set(1)
		}
		out <- b
		c.backOff(ctx, since, in, out)
	}
}

// outageOver resets the outage gauges once the outage ended and logs msg.
func (c *Coordinator) outageOver(lasted time.Duration, msg string) {
	c.m.brokerBackoff.Set(0)
	c.m.backoffDelay.Set(0)
	c.log.Info(msg, "outage_for", lasted.Round(time.Millisecond))
}

// publish sends b's events and sorts them into done, failed, rejected and
// released.
func (c *Coordinator) publish(stop context.Context, b *batch) {
	msgs := make([]kafka.Message, 0, len(b.events))
	idx := make([]int, 0, len(b.events)) // msgs[j] is b.events[idx[j]]
	errs := make([]error, len(b.events))
	for i := range b.events {
		m, err := message(&b.events[i])
		if err != nil {
			errs[i] = err
			continue
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	perrs := c.pub.Publish(stop, msgs)
	if len(perrs) != len(msgs) {
		// A broken Publisher: never take a missing result for an ack.
		err := fmt.Errorf("coordinator: the publisher returned %d results for %d records", len(perrs), len(msgs))
		c.log.Error(err.Error())
		perrs = make([]error, len(msgs))
		for j := range perrs {
			perrs[j] = err
		}
	}
	for j, err := range perrs {
		errs[idx[j]] = err
	}
	c.settle(b, errs, time.Now(), stop.Err() != nil)
}

// backOff holds the claimer back while Kafka is down: it waits the growing
// delay, then pings the cluster, until a ping succeeds, and opens the gate for
// the probe batch. Batches claimed meanwhile are released.
func (c *Coordinator) backOff(ctx context.Context, since time.Time, in <-chan *batch, out chan<- *batch) {
	defer c.outage.probe()
	for {
		d := c.outage.next()
		c.m.backoffDelay.Set(d.Seconds())
		c.log.Warn("coordinator: Kafka unavailable; backing off without spending attempts", "retry_in", d,
			"outage_for", time.Since(since).Round(time.Millisecond))
		t := time.NewTimer(d)
	wait:
		for {
			select {
			case <-t.C:
				break wait
			case b, ok := <-in:
				if !ok {
					t.Stop()
					return
				}
				if len(b.events) == 0 {
					continue // an empty claim from before this outage's gate closed
				}
				b.releaseAll(releaseBroker)
				out <- b
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		err := c.pub.Ping(ctx)
		if err == nil {
			c.log.Info("coordinator: Kafka answers again; probing with the next batch")
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("coordinator: Kafka still unavailable", "err", err)
	}
}
