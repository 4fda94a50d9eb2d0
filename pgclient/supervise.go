package pgclient

import (
	"log/slog"
	"time"
)

// DegradationKindHighUtilization is the Kind of a DegradationEvent about pool
// utilization staying above UtilizationWarn.
const DegradationKindHighUtilization = "high_utilization"

// DegradationEvent reports the start or the end of a degradation episode.
type DegradationEvent struct {
	// Service is Config.ServiceName.
	Service string `json:"service"`
	// Component is always "database".
	Component string `json:"component"`
	// Kind is DegradationKindHighUtilization.
	Kind string `json:"kind"`
	// Recovered is false when the episode starts and true when it ends.
	Recovered bool `json:"recovered"`
	// UtilizationPercent is the utilization measured at At.
	UtilizationPercent float64 `json:"utilization_percent"`
	// ThresholdPercent is UtilizationWarn × 100.
	ThresholdPercent float64 `json:"threshold_percent"`
	// Since is when utilization first went above the threshold.
	Since time.Time `json:"since"`
	// At is when the event was raised.
	At time.Time `json:"at"`
}

// Supervisor intervals: a twentieth of the query timeout (so statements end
// within 5% of it) and a quarter of the other thresholds, within bounds.
const (
	minSuperviseInterval = 5 * time.Millisecond
	maxSuperviseInterval = 250 * time.Millisecond
)

func (c *Client) superviseInterval() time.Duration {
	d := min(c.queryTimeout/20, c.cfg.UtilizationWarnAfter/4)
	if c.leakThreshold > 0 {
		d = min(d, c.leakThreshold/4)
	}
	return min(max(d, minSuperviseInterval), maxSuperviseInterval)
}

// supervise enforces QueryTimeout, scans for leaks and watches utilization
// until Close.
func (c *Client) supervise() {
	defer c.wg.Done()
	t := time.NewTicker(c.superviseInterval())
	defer t.Stop()
	var u utilizationWatch
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.scanStatements()
			c.scanLeaks()
			c.watchUtilization(&u, now)
		}
	}
}

// utilizationWatch is the state of the current high-utilization episode.
type utilizationWatch struct {
	highSince time.Time // zero when utilization is at or below the threshold
	warned    bool
}

func (c *Client) watchUtilization(u *utilizationWatch, now time.Time) {
	threshold := c.cfg.UtilizationWarn
	if threshold <= 0 {
		return
	}
	s := c.pool.Stat()
	util := float64(s.AcquiredConns()) / float64(s.MaxConns())
	ev := DegradationEvent{
		Service: c.cfg.ServiceName, Component: "database", Kind: DegradationKindHighUtilization,
		UtilizationPercent: util * 100, ThresholdPercent: threshold * 100, At: now,
	}
	switch {
	case util > threshold && u.highSince.IsZero():
		u.highSince = now
	case util > threshold && !u.warned && now.Sub(u.highSince) >= c.cfg.UtilizationWarnAfter:
		u.warned = true
		ev.Since = u.highSince
		c.log.Warn("pgclient: high connection pool utilization",
			slog.Float64("utilization_percent", ev.UtilizationPercent),
			slog.Float64("threshold_percent", ev.ThresholdPercent),
			slog.Duration("for", now.Sub(u.highSince)),
			slog.Int("in_use", int(s.AcquiredConns())), slog.Int("max", int(s.MaxConns())),
			slog.Int("waiting", int(c.stats.waiting.Load())))
		c.emit(ev)
	case util <= threshold && !u.highSince.IsZero():
		if u.warned {
			ev.Since, ev.Recovered = u.highSince, true
			c.log.Info("pgclient: connection pool utilization back to normal",
				slog.Float64("utilization_percent", ev.UtilizationPercent),
				slog.Duration("episode", now.Sub(u.highSince)))
			c.emit(ev)
		}
		*u = utilizationWatch{}
	}
}

// emit delivers ev to OnDegradation on its own goroutine, so a slow callback
// cannot stall supervision.
func (c *Client) emit(ev DegradationEvent) {
	fn := c.cfg.OnDegradation
	if fn == nil {
		return
	}
	c.background(func() { fn(ev) })
}
