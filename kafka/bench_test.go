package kafka

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// benchMessages makes n hook-event-like messages of about 500 bytes: a JSON
// envelope with random ids and a payload, keyed by one of 64 resources, with
// the headers the coordinator sets.
func benchMessages(n int) []Message {
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]Message, n)
	for i := range msgs {
		id := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		resource := fmt.Sprintf("repo-%d", rng.IntN(64))
		value := fmt.Appendf(nil, `{"id":"%s","source":"github","action":"opened","resource":"pull_request",`+
			`"resource_id":"%s","created_at":"2026-01-02T15:04:05.%06dZ","attempt":1,`+
			`"payload":{"number":%d,"title":"Fix flaky test in %s","user":{"login":"dev-%d","id":%d},`+
			`"head":{"sha":"%016x%016x"},"base":{"ref":"main"},"draft":false,"additions":%d,"deletions":%d,`+
			`"body":"%016x"},"metadata":{"delivery_id":"%016x","user_agent":"GitHub-Hookshot/abc123"}}`,
			id, resource, rng.IntN(1e6), rng.IntN(1e5), resource, rng.IntN(1000), rng.IntN(1e7),
			rng.Uint64(), rng.Uint64(), rng.IntN(500), rng.IntN(500),
			rng.Uint64(), rng.Uint64())
		msgs[i] = Message{
			Key:   []byte(resource),
			Value: value,
			Headers: []Header{
				{Key: "event-id", Value: []byte(id)},
				{Key: "source", Value: []byte("github")},
				{Key: "action", Value: []byte("opened")},
				{Key: "attempt", Value: []byte("1")},
			},
		}
	}
	return msgs
}

// BenchmarkPublish measures Publish throughput to the in-process broker in
// batches of 500 messages of about 500 bytes, by compression codec, linger
// and number of concurrent callers.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 3s ./kafka/
func BenchmarkPublish(b *testing.B) {
	const batch = 500
	msgs := benchMessages(batch)
	size := 0
	for _, m := range msgs {
		size += len(m.Value)
	}
	b.Logf("batch of %d messages, %d value bytes on average", batch, size/batch)

	type variant struct {
		compression string
		linger      time.Duration
		callers     int
	}
	var variants []variant
	for _, c := range []string{CompressionNone, CompressionSnappy, CompressionLZ4, CompressionZstd, CompressionGzip} {
		variants = append(variants, variant{c, DefaultLinger, 1})
	}
	for _, l := range []time.Duration{-1, time.Millisecond, 10 * time.Millisecond} {
		variants = append(variants, variant{DefaultCompression, l, 1})
	}
	for _, l := range []time.Duration{-1, DefaultLinger} {
		variants = append(variants, variant{DefaultCompression, l, 4})
	}

	for _, v := range variants {
		linger := v.linger.String()
		if v.linger < 0 {
			linger = "0"
		}
		b.Run(fmt.Sprintf("compression=%s/linger=%s/callers=%d", v.compression, linger, v.callers), func(b *testing.B) {
			br := startBroker(b)
			cfg := br.Config()
			cfg.Compression, cfg.Linger = v.compression, v.linger
			p := newProducer(b, cfg)
			ctx := testContext(b)
			requireAllNil(b, p.Publish(ctx, msgs)) // connect, learn partitions, get a producer ID

			b.ReportAllocs()
			b.SetBytes(int64(size))
			start := time.Now()
			published := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for range v.callers {
					wg.Go(func() {
						for i, err := range p.Publish(ctx, msgs) {
							if err != nil {
								b.Errorf("message %d: %v", i, err)
								return
							}
						}
					})
				}
				wg.Wait()
				published += batch * v.callers
			}
			b.ReportMetric(float64(published)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
