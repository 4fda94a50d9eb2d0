package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/omnibridge/omnibridge/store"
)

// reapLoop gives back, every ReclaimInterval, the events of claims older than
// LeaseTimeout: their holder crashed or hangs. Every coordinator runs it; SKIP
// LOCKED keeps them from getting in each other's way. Reclaimed events are
// claimable at once, so the claimer is woken.
func (c *Coordinator) reapLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.DatabaseTimeout)
		n, err := c.st.ReclaimExpired(rctx, c.cfg.LeaseTimeout)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			c.m.dbErrors.WithLabelValues("reclaim").Inc()
			c.log.Warn("coordinator: reclaiming expired leases failed; trying again next interval", "err", err)
		case n > 0:
			c.log.Warn("coordinator: reclaimed events of expired claims; they are published again",
				"events", n, "lease_timeout", c.cfg.LeaseTimeout)
			c.poke()
		}
	}
}

// lagLoop refreshes the lag and backlog gauges every LagInterval, starting at
// once.
func (c *Coordinator) lagLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		p, err := c.backlog(ctx)
		switch {
		case err == nil:
			c.m.lag.Set(p.OldestPendingAge.Seconds())
			c.m.backlog.WithLabelValues(string(store.EventPending)).Set(float64(p.Pending))
			c.m.backlog.WithLabelValues(string(store.EventProcessing)).Set(float64(p.Processing))
			c.m.backlog.WithLabelValues(string(store.EventDead)).Set(float64(p.Dead))
		case ctx.Err() == nil:
			c.m.dbErrors.WithLabelValues("lag").Inc()
			c.log.Warn("coordinator: measuring the lag failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backlog reads the backlog with Store.Backlog, not PerformanceReport: the
// report also reads event_metrics, which the coordinator's role may only
// insert into.
func (c *Coordinator) backlog(ctx context.Context) (store.Backlog, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DatabaseTimeout)
	defer cancel()
	b, err := c.st.Backlog(ctx)
	if err != nil {
		return store.Backlog{}, fmt.Errorf("coordinator: lag: %w", err)
	}
	return b, nil
}
