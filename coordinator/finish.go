package coordinator

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// settle sorts the events of a published batch by their Publish error (one
// per event, in order; ackedAt is when Publish returned):
//
//   - acknowledged: completed, with the time from claim to ack;
//   - canceled by shutdown: released;
//   - refused for a reason of the record (not kafka.IsBrokerWide): failed,
//     the attempt counts;
//   - failed broker-wide: if they are at least half the batch, the batch is an
//     outage, they are released and the coordinator backs off; if they are
//     fewer (the cluster serves the rest, say one partition has no leader),
//     they fail like the previous kind, so that a broken partition does not
//     hold up every batch for a whole delivery timeout.
func (c *Coordinator) settle(b *batch, errs []error, ackedAt time.Time, canceled bool) {
	ms := float64(ackedAt.Sub(b.claimedAt)) / float64(time.Millisecond)
	ms = max(ms, 0)
	var brokerWide []int
	for i, err := range errs {
		e := &b.events[i]
		switch {
		case err == nil:
			b.done = append(b.done, store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: ms})
			c.m.ackLatency.Observe(ms / 1000)
			c.m.deliveryLag.Observe(max(ackedAt.Sub(e.CreatedAt), 0).Seconds())
		case canceled:
			b.release = append(b.release, e.ID)
			b.releaseReason = releaseShutdown
		case kafka.IsBrokerWide(err):
			brokerWide = append(brokerWide, i)
		default:
			b.failed = append(b.failed, store.Failure{ID: e.ID, Err: err.Error(), ProcessingTimeMS: ms})
		}
	}
	if len(brokerWide) == 0 {
		return
	}
	if isOutage(len(brokerWide), len(errs)) {
		b.outage = true
		b.releaseReason = releaseBroker
		for _, i := range brokerWide {
			b.release = append(b.release, b.events[i].ID)
		}
		c.log.Warn("coordinator: Kafka outage: releasing the batch's events without spending attempts",
			"failed_broker_wide", len(brokerWide), "batch", len(errs), "err", errs[brokerWide[0]])
		return
	}
	for _, i := range brokerWide {
		e := &b.events[i]
		b.failed = append(b.failed, store.Failure{ID: e.ID, Err: errs[i].Error(), ProcessingTimeMS: ms})
	}
}

// finish records the outcome of a batch: completions, failures and releases,
// each in one statement, retried while the claim is still valid (until
// shutdown's stop). A statement that cannot be recorded leaves the events
// processing until the lease reaper gives them back; they are then
// published again.
func (c *Coordinator) finish(s *stopping, b *batch) {
	if len(b.done) > 0 {
		c.m.published.Add(float64(len(b.done)))
		c.retryDB(s, b, "complete", func(ctx context.Context) error {
			n, err := c.st.Complete(ctx, b.claimID, b.done)
			if err == nil && n < len(b.done) {
				c.m.stale.Add(float64(len(b.done) - n))
				c.log.Warn("coordinator: published events whose claim had expired; they will be published again",
					"events", len(b.done)-n, "claim_id", b.claimID, "held_for", time.Since(b.claimedAt).Round(time.Millisecond),
					"lease_timeout", c.cfg.LeaseTimeout)
			}
			return err
		})
	}
	if len(b.failed) > 0 {
		c.m.failed.Add(float64(len(b.failed)))
		c.retryDB(s, b, "fail", func(ctx context.Context) error {
			res, err := c.st.Fail(ctx, b.claimID, b.failed, c.retry)
			if err != nil {
				return err
			}
			c.logFailures(b, res)
			return nil
		})
	}
	if len(b.release) > 0 {
		c.retryDB(s, b, "release", func(ctx context.Context) error {
			n, err := c.st.Release(ctx, b.claimID, b.release...)
			if err == nil {
				c.m.released.WithLabelValues(b.releaseReason).Add(float64(n))
			}
			return err
		})
	}
}

func (c *Coordinator) logFailures(b *batch, res []store.FailResult) {
	errOf := make(map[uuid.UUID]string, len(b.failed))
	for _, f := range b.failed {
		errOf[f.ID] = f.Err
	}
	retried := 0
	for _, r := range res {
		if r.Dead {
			c.m.dead.Inc()
			c.log.Warn("coordinator: event dead-lettered after its last attempt (replay it with `omnibridge events replay`)",
				"event_id", r.ID, "attempts", r.Attempt, "err", errOf[r.ID])
			continue
		}
		retried++
	}
	if retried > 0 {
		c.log.Info("coordinator: publication failed; events will be retried", "events", retried,
			"err", b.failed[0].Err)
	}
}

// retryDB runs a finishing statement until it succeeds, the claim's lease has
// passed (the reaper owns the events then) or shutdown's stop ends the
// retries; each try is bounded by DatabaseTimeout and by shutdown's final.
func (c *Coordinator) retryDB(s *stopping, b *batch, op string, fn func(context.Context) error) {
	bo := newBackoff(dbBackoff)
	for {
		ctx, cancel := context.WithTimeout(s.final, c.cfg.DatabaseTimeout)
		err := fn(ctx)
		cancel()
		if err == nil {
			return
		}
		c.m.dbErrors.WithLabelValues(op).Inc()
		d := bo.NextBackOff()
		expired := time.Since(b.claimedAt)+d >= c.cfg.LeaseTimeout
		if expired || s.stop.Err() != nil {
			c.log.Error("coordinator: could not record a batch's outcome; its events stay claimed until the lease reaper gives them back, then they are published again",
				"op", op, "claim_id", b.claimID, "events", len(b.events), "err", err)
			return
		}
		c.log.Warn("coordinator: could not record a batch's outcome; retrying", "op", op, "claim_id", b.claimID, "err", err, "retry_in", d)
		if !sleep(s.stop, d) {
			c.log.Error("coordinator: shut down before a batch's outcome was recorded; its events stay claimed until the lease reaper gives them back",
				"op", op, "claim_id", b.claimID, "events", len(b.events))
			return
		}
	}
}
