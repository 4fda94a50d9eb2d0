package pgclient

import (
	"context"
	"fmt"
	"slices"
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
	// through the bare pgxpool: the median over the rounds.
	Rate         float64 `json:"rate"`
	BaselineRate float64 `json:"baseline_rate"`
	// Ratio is the median over the rounds of pgclient's rate ÷ the bare
	// pool's rate in the round next to it: robust against load from
	// elsewhere on the machine, which comes and goes between rounds.
	Ratio float64 `json:"ratio"`
	// Queries and BaselineQueries are the totals; Rounds and RoundSeconds say
	// how they were run.
	Queries         int64   `json:"queries"`
	BaselineQueries int64   `json:"baseline_queries"`
	Rounds          int     `json:"rounds"`
	RoundSeconds    float64 `json:"round_seconds"`
}

// BenchPool runs `SELECT $1::int` from workers goroutines through a Client
// opened with cfg and through a bare pgxpool on the same URL and pool size,
// for about duration each, in alternating rounds of 250ms (A B, B A, …).
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
	const round = 250 * time.Millisecond
	res.Rounds = max(int(duration/round), 1)
	res.RoundSeconds = round.Seconds()
	for _, warm := range []func(context.Context, int) (int, error){theirs, ours} {
		if _, err := benchRound(ctx, warm, workers, round); err != nil {
			return res, err
		}
	}
	rates := make([]float64, 0, res.Rounds)
	baseRates := make([]float64, 0, res.Rounds)
	ratios := make([]float64, 0, res.Rounds)
	for r := range res.Rounds {
		var n, base int64
		first, second := &n, &base
		fns := [2]func(context.Context, int) (int, error){ours, theirs}
		if r%2 == 1 {
			first, second, fns[0], fns[1] = &base, &n, theirs, ours
		}
		if *first, err = benchRound(ctx, fns[0], workers, round); err != nil {
			return res, err
		}
		if *second, err = benchRound(ctx, fns[1], workers, round); err != nil {
			return res, err
		}
		res.Queries += n
		res.BaselineQueries += base
		rates = append(rates, float64(n)/round.Seconds())
		baseRates = append(baseRates, float64(base)/round.Seconds())
		if base > 0 {
			ratios = append(ratios, float64(n)/float64(base))
		}
	}
	res.Rate, res.BaselineRate, res.Ratio = median(rates), median(baseRates), median(ratios)
	return res, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
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
