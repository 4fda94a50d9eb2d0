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
//   - refused for good (kafka.IsPermanent: too large to ever be published):
//     rejected, dead at once, since every retry would fail the same way;
//   - canceled by shutdown: released;
//   - refused for a reason of the record (not kafka.IsBrokerWide): failed,
//     the attempt counts;
//   - failed broker-wide: if they are at least half the batch (rejected
//     records aside, which never reached the client), the batch is an
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
		case kafka.IsPermanent(err):
			b.rejected = append(b.rejected, store.Failure{ID: e.ID, Err: err.Error(), ProcessingTimeMS: ms})
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
	// Rejected records never reached the client: they say nothing about
	// the cluster either way.
	if isOutage(len(brokerWide), len(errs)-len(b.rejected)) {
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

// lastAttempt is the retry policy of events that can never be published: the
// attempt that failed is their last, so store.Fail makes them dead at once.
var lastAttempt = store.RetryPolicy{MaxAttempts: 1}

// finish records the outcome of a batch: completions, failures and releases,
// each in one statement, retried while the claim is still valid (until
// shutdown's stop). A statement that cannot be recorded leaves the events
// processing until the lease reaper gives them back; they are then
// published again.
//
// An outcome is ignored for the events the claim no longer holds, because its
// lease expired and the reaper gave them back: acknowledged and failed ones
// are counted as stale claims (they are published again). A retried statement
// cannot tell those from events its previous try already recorded, if that
// try committed and only its reply was lost; so it checks: completed events
// keep their claim id, and so do events that died (store.DeadBy). Events
// that an earlier try made pending again do not, so those a retried fail
// cannot see are counted neither as stale nor as retried.
func (c *Coordinator) finish(s *stopping, b *batch) {
	if len(b.done) > 0 {
		c.m.published.Add(float64(len(b.done)))
		c.retryDB(s, b, "complete", func(ctx context.Context, retry bool) error {
			n, err := c.st.Complete(ctx, b.claimID, b.done)
			if err == nil && n < len(b.done) && retry {
				n, err = c.st.CompletedBy(ctx, b.claimID, b.done)
			}
			if err == nil && n < len(b.done) {
				c.m.stale.Add(float64(len(b.done) - n))
				c.log.Warn("coordinator: published events whose claim had expired; they will be published again",
					"events", len(b.done)-n, "claim_id", b.claimID, "held_for", time.Since(b.claimedAt).Round(time.Millisecond),
					"lease_timeout", c.cfg.LeaseTimeout)
			}
			return err
		})
	}
	c.fail(s, b, b.failed, c.retry, "coordinator: event dead-lettered after its last attempt (replay it with `omnibridge events replay`)")
	c.fail(s, b, b.rejected, lastAttempt, "coordinator: event dead-lettered without retries: its record can never be published as it is (see err)")
	if len(b.release) > 0 {
		c.retryDB(s, b, "release", func(ctx context.Context, _ bool) error {
			n, err := c.st.Release(ctx, b.claimID, b.release...)
			if err == nil {
				c.m.released.WithLabelValues(b.releaseReason).Add(float64(n))
			}
			return err
		})
	}
}

// fail records failed attempts of events of b under policy, and counts and
// logs the outcome; deadMsg is logged for each event that died.
func (c *Coordinator) fail(s *stopping, b *batch, failed []store.Failure, policy store.RetryPolicy, deadMsg string) {
	if len(failed) == 0 {
		return
	}
	c.m.failed.Add(float64(len(failed)))
	c.retryDB(s, b, "fail", func(ctx context.Context, retry bool) error {
		res, err := c.st.Fail(ctx, b.claimID, failed, policy)
		if err != nil {
			return err
		}
		if len(res) < len(failed) && retry {
			// An earlier try may have committed, its reply lost: the events
			// it made dead still carry this claim's id.
			// The failures are recorded by now: if this lookup fails, those
			// events are only left uncounted (below), not recorded again.
			dead, err := c.st.DeadBy(ctx, b.claimID, unseen(failed, res))
			if err != nil {
				c.log.Warn("coordinator: could not look up the events a lost fail reply made dead", "claim_id", b.claimID, "err", err)
			}
			res = append(res, dead...)
		}
		switch missing := len(failed) - len(res); {
		case missing > 0 && retry:
			c.log.Warn("coordinator: a retried fail statement did not see some events: an earlier try whose reply was lost made them pending again, or their claim expired; counted neither as stale nor as retried",
				"events", missing, "claim_id", b.claimID)
		case missing > 0:
			c.m.stale.Add(float64(missing))
			c.log.Warn("coordinator: failed attempts of events whose claim had expired are not counted; the events will be published again",
				"events", missing, "claim_id", b.claimID, "held_for", time.Since(b.claimedAt).Round(time.Millisecond),
				"lease_timeout", c.cfg.LeaseTimeout)
		}
		c.logFailures(failed, res, deadMsg)
		return nil
	})
}

// unseen returns the ids of failed that have no result in res.
func unseen(failed []store.Failure, res []store.FailResult) []uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(res))
	for _, r := range res {
		seen[r.ID] = true
	}
	var ids []uuid.UUID
	for _, f := range failed {
		if !seen[f.ID] {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

func (c *Coordinator) logFailures(failed []store.Failure, res []store.FailResult, deadMsg string) {
	errOf := make(map[uuid.UUID]string, len(failed))
	for _, f := range failed {
		errOf[f.ID] = f.Err
	}
	retried := 0
	for _, r := range res {
		if r.Dead {
			c.m.dead.Inc()
			c.log.Warn(deadMsg, "event_id", r.ID, "attempts", r.Attempt, "err", errOf[r.ID])
			continue
		}
		retried++
	}
	if retried > 0 {
		c.log.Info("coordinator: publication failed; events will be retried", "events", retried,
			"err", failed[0].Err)
	}
}

// retryDB runs a finishing statement until it succeeds, the claim's lease has
// passed (the reaper owns the events then) or shutdown's stop ends the
// retries; each try is bounded by DatabaseTimeout and by shutdown's final.
// fn is told whether a previous try failed: that try may have committed all
// the same, its reply lost.
func (c *Coordinator) retryDB(s *stopping, b *batch, op string, fn func(ctx context.Context, retry bool) error) {
	bo := newBackoff(dbBackoff)
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(s.final, c.cfg.DatabaseTimeout)
		err := fn(ctx, try > 0)
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
