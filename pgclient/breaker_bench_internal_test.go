package pgclient

import "testing"

// BenchmarkBreakerAllow measures the breaker's cost per successful
// operation: the fast path (consecutive-failure mode, closed and clean) and
// gobreaker itself (FailureRatio on, every outcome counted).
func BenchmarkBreakerAllow(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  BreakerConfig
	}{
		{"consecutive", BreakerConfig{}},
		{"ratio", BreakerConfig{FailureRatio: 0.5}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := newBreaker(bc.cfg.WithDefaults(), "bench", nil)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					done, err := br.allow()
					if err != nil {
						b.Fatal(err)
					}
					done(nil)
				}
			})
		})
	}
}
