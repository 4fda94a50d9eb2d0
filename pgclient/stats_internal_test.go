package pgclient

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistBuckets(t *testing.T) {
	bounds := bucketBounds(.001, .01, 1)
	var h hist
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 10 * time.Millisecond, time.Second, 2 * time.Second, time.Hour} {
		h.observe(bounds, d)
	}
	var tot histTotals
	tot.add(&h)
	tot.add(&h) // two connections with the same samples
	n, cum := tot.cumulative(bounds)
	require.EqualValues(t, 14, n)
	// Upper bounds are inclusive, as in Prometheus.
	require.Equal(t, map[float64]uint64{.001: 4, .01: 8, 1: 10}, cum)
	require.Equal(t, 2*int64(time.Millisecond+time.Millisecond+1+10*time.Millisecond+time.Second+2*time.Second+time.Hour), tot.nanos)
}
