package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/omnibridge/omnibridge/store"
)

// InsertOneResult is the latency of single-event inserts: ours
// (Store.InsertEvent, validated and deduplicated on its delivery id) against
// a bare single-row INSERT, alternating.
type InsertOneResult struct {
	Count         int     `json:"count"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	BaselineP50Ms float64 `json:"baseline_p50_ms"`
	BaselineP99Ms float64 `json:"baseline_p99_ms"`
	// Rate and BaselineRate are sequential inserts per second.
	Rate         float64 `json:"rate"`
	BaselineRate float64 `json:"baseline_rate"`
	// Ratio is Rate ÷ BaselineRate.
	Ratio float64 `json:"ratio"`
}

// ClaimCompleteResult is the throughput of draining events by Claim and
// Complete (each completion also records its event_metrics row).
type ClaimCompleteResult struct {
	Events  int     `json:"events"`
	Batch   int     `json:"batch"`
	Workers int     `json:"workers"`
	Seconds float64 `json:"seconds"`
	// Rate is events per second.
	Rate float64 `json:"rate"`
}

func (b *bulkBench) insertOne(ctx context.Context) (InsertOneResult, error) {
	if err := b.truncate(ctx); err != nil {
		return InsertOneResult{}, err
	}
	n := b.cfg.InsertOne
	template := newEvents(1, 0)
	ours := make([]time.Duration, 0, n)
	bare := make([]time.Duration, 0, n)
	for i := -bulkInsertOneWarmup; i < n; i++ {
		events := freshCopy(template)
		row := eventRows(events)[0]
		runOurs := func() (time.Duration, error) {
			start := time.Now()
			_, _, err := b.store.InsertEvent(ctx, events[0])
			return time.Since(start), err
		}
		runBare := func() (time.Duration, error) {
			start := time.Now()
			_, err := b.pool.Exec(ctx, bareInsertSQL, row...)
			return time.Since(start), err
		}
		first, second := runOurs, runBare
		if i%2 != 0 {
			first, second = runBare, runOurs
		}
		d1, err := first()
		if err != nil {
			return InsertOneResult{}, fmt.Errorf("bench bulk: insert one: %w", err)
		}
		d2, err := second()
		if err != nil {
			return InsertOneResult{}, fmt.Errorf("bench bulk: insert one: %w", err)
		}
		if i < 0 {
			continue
		}
		if i%2 != 0 {
			d1, d2 = d2, d1
		}
		ours = append(ours, d1)
		bare = append(bare, d2)
	}
	r := InsertOneResult{Count: n}
	r.P50Ms, r.P99Ms, r.Rate = latencies(ours)
	r.BaselineP50Ms, r.BaselineP99Ms, r.BaselineRate = latencies(bare)
	r.Ratio = r.Rate / r.BaselineRate
	return r, nil
}

// latencies returns the median and 99th percentile in milliseconds and the
// sequential rate per second.
func latencies(ds []time.Duration) (p50, p99, rate float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(s[len(s)/2]), ms(s[min(len(s)*99/100, len(s)-1)]), float64(len(s)) / total.Seconds()
}

func (b *bulkBench) claimComplete(ctx context.Context) (ClaimCompleteResult, error) {
	if err := b.truncate(ctx); err != nil {
		return ClaimCompleteResult{}, err
	}
	total := b.cfg.ClaimEvents
	for seeded := 0; seeded < total; seeded += bulkClaimSeedBatchSize {
		events := freshCopy(newEvents(min(bulkClaimSeedBatchSize, total-seeded), seeded))
		if _, err := b.store.BulkInsertEventsWith(ctx, b.cfg.Bulk, events); err != nil {
			return ClaimCompleteResult{}, fmt.Errorf("bench bulk: seed claim events: %w", err)
		}
	}
	if _, err := b.pool.Exec(ctx, `ANALYZE omnibridge.hook_events`); err != nil {
		return ClaimCompleteResult{}, fmt.Errorf("bench bulk: analyze: %w", err)
	}

	var mu sync.Mutex
	var firstErr error
	completed := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range b.cfg.ClaimWorkers {
		wg.Go(func() {
			n, err := b.drain(ctx)
			mu.Lock()
			defer mu.Unlock()
			completed += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return ClaimCompleteResult{}, firstErr
	}
	if completed != total {
		return ClaimCompleteResult{}, fmt.Errorf("bench bulk: claim + complete finished %d events of %d", completed, total)
	}
	return ClaimCompleteResult{Events: total, Batch: b.cfg.ClaimBatch, Workers: b.cfg.ClaimWorkers,
		Seconds: elapsed.Seconds(), Rate: float64(total) / elapsed.Seconds()}, nil
}

// drain claims and completes until nothing is due, returning how many events
// it completed.
func (b *bulkBench) drain(ctx context.Context) (int, error) {
	done := 0
	for {
		events, claimID, err := b.store.Claim(ctx, b.cfg.ClaimBatch)
		if err != nil {
			return done, fmt.Errorf("bench bulk: claim: %w", err)
		}
		if len(events) == 0 {
			return done, nil
		}
		completions := make([]store.Completion, len(events))
		for i, e := range events {
			completions[i] = store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: 1}
		}
		n, err := b.store.Complete(ctx, claimID, completions)
		if err != nil {
			return done, fmt.Errorf("bench bulk: complete: %w", err)
		}
		done += n
	}
}
