package pgclient

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolBenchResult compares point-query throughput through a Client with a
// bare pgxpool of the same size, measured in the same run.
type PoolBenchResult struct {
	Workers int `json:"workers"`
	// Rate and BaselineRate are queries per second through pgclient and
	// through the bare pgxpool.
	Rate         float64 `json:"rate"`
	BaselineRate float64 `json:"baseline_rate"`
	// Ratio is Rate ÷ BaselineRate.
	Ratio float64 `json:"ratio"`
	// Queries and BaselineQueries are the totals behind the rates.
	Queries         int64   `json:"queries"`
	BaselineQueries int64   `json:"baseline_queries"`
	Seconds         float64 `json:"seconds_each"`
}

// BenchPool runs `SELECT $1::int` from workers goroutines through a Client
// opened with cfg and through a bare pgxpool on the same URL and pool size,
// for about duration each. The two alternate in short rounds (A B B A …) so
// that load from elsewhere on the machine falls on both alike.
func BenchPool(ctx context.Context, cfg Config, workers int, duration time.Duration) (PoolBenchResult, error) {
	res := PoolBenchResult{Workers: workers}
	if workers < 1 || duration <= 0 {
		return res, fmt.Errorf("pgclient: bench: need at least one worker and a positive duration")
	}
	client, err := Open(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer client.Close()
	pcfg, err := pgxpool.ParseConfig(client.cfg.URL)
	if err != nil {
		return res, err
	}
	pcfg.MinConns, pcfg.MaxConns = max(client.cfg.MinConns, 0), client.cfg.MaxConns
	bare, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return res, err
	}
	defer bare.Close()

	ours := func(ctx context.Context, i int) (n int, err error) {
		return n, client.QueryRow(ctx, "SELECT $1::int", i).Scan(&n)
	}
	theirs := func(ctx context.Context, i int) (n int, err error) {
		return n, bare.QueryRow(ctx, "SELECT $1::int", i).Scan(&n)
	}
	rounds := max(int(duration/(200*time.Millisecond)), 1)
	slice := duration / time.Duration(rounds)
	if _, err := benchRound(ctx, theirs, workers, slice/4); err != nil { // warm both up
		return res, err
	}
	if _, err := benchRound(ctx, ours, workers, slice/4); err != nil {
		return res, err
	}
	for r := range rounds {
		order := []*int64{&res.Queries, &res.BaselineQueries}
		fns := []func(context.Context, int) (int, error){ours, theirs}
		if r%2 == 1 {
			order[0], order[1], fns[0], fns[1] = order[1], order[0], fns[1], fns[0]
		}
		for i := range fns {
			n, err := benchRound(ctx, fns[i], workers, slice)
			if err != nil {
				return res, err
			}
			*order[i] += n
		}
	}
	res.Seconds = (slice * time.Duration(rounds)).Seconds()
	res.Rate = float64(res.Queries) / res.Seconds
	res.BaselineRate = float64(res.BaselineQueries) / res.Seconds
	if res.BaselineRate > 0 {
		res.Ratio = res.Rate / res.BaselineRate
	}
	return res, nil
}

// benchRound runs query from workers goroutines for d and counts successes.
func benchRound(ctx context.Context, query func(context.Context, int) (int, error), workers int, d time.Duration) (int64, error) {
	var done atomic.Bool
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	timer := time.AfterFunc(d, func() { done.Store(true) })
	defer timer.Stop()
	for w := range workers {
		wg.Go(func() {
			var n int64
			for i := w; !done.Load(); i += workers {
				if _, err := query(ctx, i); err != nil {
					once.Do(func() { firstErr = err })
					done.Store(true)
					break
				}
				n++
			}
			total.Add(n)
		})
	}
	wg.Wait()
	return total.Load(), firstErr
}
