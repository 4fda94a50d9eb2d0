package pgclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HealthStatus is the overall verdict of Health.
type HealthStatus string

// Health statuses, from best to worst.
const (
	StatusHealthy   HealthStatus = "healthy"
	StatusDegraded  HealthStatus = "degraded"
	StatusUnhealthy HealthStatus = "unhealthy"
)

func (s HealthStatus) rank() int {
	switch s {
	case StatusHealthy:
		return 0
	case StatusDegraded:
		return 1
	}
	return 2
}

// Worse returns the worse of s and o.
func (s HealthStatus) Worse(o HealthStatus) HealthStatus {
	if o.rank() > s.rank() {
		return o
	}
	return s
}

// HealthResult is the outcome of Health, in ADR-016's shape.
type HealthResult struct {
	Status         HealthStatus `json:"status"`
	ConnectionPool PoolHealth   `json:"connection_pool"`
	QueryTest      QueryTest    `json:"query_test"`
	// Breaker is the circuit breaker's state.
	Breaker BreakerStatus `json:"breaker"`
	// Reasons explains every rule that made the status worse than healthy;
	// empty when healthy.
	Reasons   []string  `json:"reasons"`
	CheckedAt time.Time `json:"checked_at"`
}

// PoolHealth is the pool part of HealthResult.
type PoolHealth struct {
	Size               int32   `json:"size"`
	InUse              int32   `json:"in_use"`
	Idle               int32   `json:"idle"`
	Max                int32   `json:"max"`
	UtilizationPercent float64 `json:"utilization_percent"`
	// PotentialLeaks is cumulative, as in Stats; CurrentLeaks are the
	// reported connections still held.
	PotentialLeaks int64 `json:"potential_leaks"`
	CurrentLeaks   int64 `json:"current_leaks"`
	Waiting        int32 `json:"waiting"`
}

// QueryTest is the test query part of HealthResult.
type QueryTest struct {
	OK bool `json:"ok"`
	// ResponseTimeMS is the round trip of the test query itself.
	ResponseTimeMS float64 `json:"response_time_ms"`
	// AcquireMS is how long the check waited for a pooled connection.
	AcquireMS float64 `json:"acquire_ms"`
	// OutOfPool is true when the pool had no free connection in time and the
	// test ran on a connection of its own.
	OutOfPool bool   `json:"out_of_pool,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Health checks the database and the pool and returns within HealthTimeout
// (or ctx's deadline, if sooner), however busy the pool is. Rules:
//
//   - unhealthy: the client is closed, the circuit breaker is open, or the
//     test query (SELECT 1) failed or got no answer in time;
//   - degraded: the circuit breaker is half-open (probing); utilization ≥
//     UtilizationWarn; connections currently held
//     past LeakThreshold; callers waiting for a connection; no pooled
//     connection free within half of HealthTimeout (the test then runs on a
//     connection of its own); the test query, or the wait for its
//     connection, took longer than HealthSlowQuery;
//   - healthy otherwise.
func (c *Client) Health(ctx context.Context) HealthResult {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HealthTimeout)
	defer cancel()
	res := HealthResult{Status: StatusHealthy, Reasons: []string{}, CheckedAt: time.Now()}
	flag := func(s HealthStatus, format string, args ...any) {
		res.Status = res.Status.Worse(s)
		res.Reasons = append(res.Reasons, fmt.Sprintf(format, args...))
	}
	if c.closed.Load() {
		flag(StatusUnhealthy, "client is closed")
		return res
	}

	qt := make(chan QueryTest, 1)
	if !c.background(func() { qt <- c.testQuery(ctx) }) {
		flag(StatusUnhealthy, "client is closed")
		return res
	}
	select {
	case res.QueryTest = <-qt:
	case <-ctx.Done():
		res.QueryTest = QueryTest{Error: "no answer within the health timeout"}
	}

	s := c.Stats()
	res.ConnectionPool = PoolHealth{
		Size: s.Size, InUse: s.InUse, Idle: s.Idle, Max: s.Max,
		UtilizationPercent: s.PoolUtilizationPercent,
		PotentialLeaks:     s.PotentialLeaks, CurrentLeaks: s.CurrentLeaks,
		Waiting: s.Waiting,
	}

	res.Breaker = c.BreakerStatus()
	switch b := res.Breaker; b.State {
	case BreakerOpen:
		flag(StatusUnhealthy, "circuit breaker open since %s, next probe at %s: %s",
			b.Since.Format(time.RFC3339), b.RetryAt.Format(time.RFC3339), b.Reason)
	case BreakerHalfOpen:
		flag(StatusDegraded, "circuit breaker half-open, probing the database after: %s", b.Reason)
	}

	q := res.QueryTest
	switch {
	case !q.OK:
		flag(StatusUnhealthy, "test query failed: %s", q.Error)
	case float64(c.cfg.HealthSlowQuery.Milliseconds()) < q.ResponseTimeMS:
		flag(StatusDegraded, "test query took %.1fms (health_slow_query %s)", q.ResponseTimeMS, c.cfg.HealthSlowQuery)
	}
	if q.OutOfPool {
		flag(StatusDegraded, "pool exhausted: no connection free within %.0fms", q.AcquireMS)
	} else if float64(c.cfg.HealthSlowQuery.Milliseconds()) < q.AcquireMS {
		flag(StatusDegraded, "waited %.1fms for a connection (health_slow_query %s)", q.AcquireMS, c.cfg.HealthSlowQuery)
	}
	if w := c.cfg.UtilizationWarn; w > 0 && s.PoolUtilizationPercent >= w*100 {
		flag(StatusDegraded, "pool utilization %.0f%% (utilization_warn %.0f%%)", s.PoolUtilizationPercent, w*100)
	}
	if s.CurrentLeaks > 0 {
		flag(StatusDegraded, "%d connections held longer than leak_threshold %s", s.CurrentLeaks, c.cfg.LeakThreshold)
	}
	if s.Waiting > 0 {
		flag(StatusDegraded, "%d callers waiting for a connection", s.Waiting)
	}
	return res
}

const healthQuery = "SELECT 1"

// testQuery runs the test query on a pooled connection, or, when none is free
// within half the remaining time, on a connection of its own.
func (c *Client) testQuery(ctx context.Context) QueryTest {
	var qt QueryTest
	dl, _ := ctx.Deadline()
	actx, cancel := context.WithTimeoutCause(ctx, time.Until(dl)/2, errAcquireTimedOut)
	start := time.Now()
	pc, err := c.pool.Acquire(actx)
	cancel()
	qt.AcquireMS = ms(time.Since(start))
	if err == nil {
		defer pc.Release()
		qt.ResponseTimeMS, err = timed(func() error { _, err := pc.Exec(ctx, healthQuery); return err })
		return qt.result(err)
	}
	if ctx.Err() != nil || !errors.Is(context.Cause(actx), errAcquireTimedOut) {
		return qt.result(err)
	}
	qt.OutOfPool = true
	conn, err := pgx.ConnectConfig(ctx, c.connConfig)
	if err != nil {
		return qt.result(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	qt.ResponseTimeMS, err = timed(func() error { _, err := conn.Exec(ctx, healthQuery); return err })
	return qt.result(err)
}

func (q QueryTest) result(err error) QueryTest {
	q.OK = err == nil
	if err != nil {
		q.Error = err.Error()
	}
	return q
}

func timed(fn func() error) (float64, error) {
	start := time.Now()
	err := fn()
	return ms(time.Since(start)), err
}

// background runs fn on a goroutine that Close waits for. It returns false,
// without running fn, once Close has begun.
func (c *Client) background(fn func()) bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgClosed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}
