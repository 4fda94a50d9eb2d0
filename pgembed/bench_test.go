package pgembed

import (
	"context"
	"testing"
	"time"
)

// BenchmarkStartClose measures a full temporary cluster: initdb, start until
// connections are accepted, fast stop and removal.
func BenchmarkStartClose(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		begin := time.Now()
		c, err := Start(ctx, Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(begin)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/cluster")
}

// BenchmarkRestart measures Restart (stop, start, first connection) per mode.
func BenchmarkRestart(b *testing.B) {
	ctx := context.Background()
	c, err := Start(ctx, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for _, mode := range []StopMode{StopFast, StopImmediate} {
		b.Run(mode.String(), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				begin := time.Now()
				if err := c.Restart(ctx, mode); err != nil {
					b.Fatal(err)
				}
				total += time.Since(begin)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/restart")
		})
	}
}
