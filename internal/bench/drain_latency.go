package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/kafka"
)

// ackRecorder is the coordinator's publisher seen from outside: it counts
// acknowledged records and, while recording, the latency from each event's
// created_at (read from the record's envelope) to the return of the Publish
// call that carried it.
type ackRecorder struct {
	coordinator.Publisher
	acked atomic.Int64

	mu        sync.Mutex
	recordFor time.Time // events created from then on are measured; zero: none
	latencies []time.Duration
}

func (r *ackRecorder) Publish(ctx context.Context, msgs []kafka.Message) []error {
	errs := r.Publisher.Publish(ctx, msgs)
	now := time.Now()
	var acked int64
	r.mu.Lock()
	from := r.recordFor
	r.mu.Unlock()
	var lats []time.Duration
	for i, err := range errs {
		if err != nil {
			continue
		}
		acked++
		if from.IsZero() {
			continue
		}
		var env struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if json.Unmarshal(msgs[i].Value, &env) == nil && !env.CreatedAt.Before(from) {
			lats = append(lats, now.Sub(env.CreatedAt))
		}
	}
	if len(lats) > 0 {
		r.mu.Lock()
		r.latencies = append(r.latencies, lats...)
		r.mu.Unlock()
	}
	r.acked.Add(acked)
	return errs
}

func (r *ackRecorder) record(from time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordFor = from
	r.latencies = r.latencies[:0]
}

func (r *ackRecorder) recorded() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.latencies)
}

// drainIngestTick is how often the latency phase stores the events due: a
// receiver's group commit gathers the requests of a few milliseconds.
const drainIngestTick = 5 * time.Millisecond

// latency ingests events at cfg.LatencyRate for cfg.LatencyDuration, each
// tick's events in one transaction followed by a NOTIFY, and measures the
// latency of those created after the warm-up. already is the number of
// records acknowledged before.
func (r *drainRun) latency(ctx context.Context, already int64) (DrainLatency, error) {
	cfg := r.cfg
	began := time.Now()
	r.pub.record(began.Add(cfg.LatencyWarmup))
	t := time.NewTicker(drainIngestTick)
	defer t.Stop()
	inserted := 0
	for seed := 0; ; seed++ {
		elapsed := time.Since(began)
		if elapsed >= cfg.LatencyDuration {
			break
		}
		due := int(cfg.LatencyRate*elapsed.Seconds()) - inserted
		if due > 0 {
			events := freshCopy(newEvents(due, 1_000_000+seed))
			if _, err := r.st.InsertEvents(ctx, events); err != nil {
				return DrainLatency{}, fmt.Errorf("bench drain: ingest: %w", err)
			}
			if err := r.st.Notify(ctx); err != nil {
				return DrainLatency{}, fmt.Errorf("bench drain: ingest: %w", err)
			}
			inserted += due
		}
		select {
		case <-ctx.Done():
			return DrainLatency{}, ctx.Err()
		case <-t.C:
		}
	}
	ingestTook := time.Since(began)
	if err := r.waitDrained(ctx, already+int64(inserted)); err != nil {
		return DrainLatency{}, err
	}
	lats := r.pub.recorded()
	slices.Sort(lats)
	out := DrainLatency{TargetRate: cfg.LatencyRate, Rate: float64(inserted) / ingestTook.Seconds(), Events: len(lats)}
	if len(lats) > 0 {
		out.P50Ms = ms(percentile(lats, 0.50))
		out.P99Ms = ms(percentile(lats, 0.99))
		out.MaxMs = ms(lats[len(lats)-1])
	}
	return out, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
