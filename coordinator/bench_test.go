package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/internal/bench"
	"github.com/omnibridge/omnibridge/internal/testdb"
)

// BenchmarkDrain drains a backlog of pending events (about 500 bytes each)
// through pgclient, the coordinator and the production producer into an
// in-process Kafka, at several batch sizes, and reports events/s from
// starting the coordinator until the last event is marked processed, next
// to the rate of a bare store Claim + Complete loop on the same backlog in
// the same iteration (store-events/s), which bounds it. Each iteration works
// on a fresh database.
func BenchmarkDrain(b *testing.B) {
	const events = 20_000
	for _, size := range []int{100, 500, 2000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var rate, storeRate float64
			runs := 0
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				res, err := bench.Drain(ctx, testdb.New(b), events, bench.DrainConfig{
					Coordinator: coordinator.Config{BatchSize: size},
				})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				rate += res.Rate
				storeRate += res.StoreRate
				runs++
			}
			b.ReportMetric(rate/float64(runs), "events/s")
			b.ReportMetric(storeRate/float64(runs), "store-events/s")
		})
	}
}
