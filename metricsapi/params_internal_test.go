package metricsapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFormatDurationParsesBack(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Second:                   "1s",
		90 * time.Second:              "1m30s",
		15 * time.Minute:              "15m",
		time.Hour:                     "1h",
		90 * time.Minute:              "1h30m",
		time.Hour + time.Second:       "1h0m1s",
		24 * time.Hour:                "1d",
		31 * 24 * time.Hour:           "31d",
		25 * time.Hour:                "25h",
		1500 * time.Millisecond:       "1.5s",
		24*time.Hour + 30*time.Minute: "24h30m",
	} {
		got := formatDuration(d)
		require.Equal(t, want, got)
		back, ok := parseDuration(got)
		require.True(t, ok, got)
		require.Equal(t, d, back, got)
	}
}

func TestDefaultStep(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Minute, defaultStep(time.Hour, 60))
	require.Equal(t, time.Second, defaultStep(10*time.Second, 60), "at least a second")
	require.Equal(t, 2*time.Second, defaultStep(61*time.Second, 60), "rounded up to whole seconds")
	require.Equal(t, 60, bucketCount(time.Hour, time.Minute))
	require.Equal(t, 2, bucketCount(90*time.Second, time.Minute))
}
