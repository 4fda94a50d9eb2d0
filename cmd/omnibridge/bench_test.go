package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

// TestBenchBulkSmoke runs the bulk benchmark once at tiny sizes: a check that
// it works end to end, not a measurement.
func TestBenchBulkSmoke(t *testing.T) {
	t.Parallel()
	out, err := run(t, "bench", "bulk", "--quick", "--sizes", "10,300", "--json", "--database-url", testdb.AdminURL(t))
	require.NoError(t, err)
	var rep struct {
		Sizes []struct {
			Rows         int     `json:"rows"`
			Method       string  `json:"method"`
			Rate         float64 `json:"rate"`
			BaselineRate float64 `json:"baseline_rate"`
			Ratio        float64 `json:"ratio"`
		} `json:"sizes"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Len(t, rep.Sizes, 2)
	for _, s := range rep.Sizes {
		require.Positive(t, s.Rate)
		require.Positive(t, s.BaselineRate)
		require.InDelta(t, s.Rate/s.BaselineRate, s.Ratio, 1e-9)
	}
}

// ratioOf decodes the JSON of a bench command and checks its ratio is ours ÷
// baseline.
func ratioOf(t *testing.T, out string) {
	t.Helper()
	var r struct {
		Rate         float64 `json:"rate"`
		BaselineRate float64 `json:"baseline_rate"`
		IngestRate   float64 `json:"ingest_rate"`
		Ratio        float64 `json:"ratio"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Positive(t, r.Rate)
	base := r.BaselineRate
	if base == 0 {
		base = r.IngestRate
	}
	require.Positive(t, base)
	require.Positive(t, r.Ratio)
}

func TestBenchPoolSmoke(t *testing.T) {
	t.Parallel()
	out, err := run(t, "bench", "pool", "--workers", "4", "--duration", "300ms", "--json", "--database-url", testdb.AdminURL(t))
	require.NoError(t, err)
	ratioOf(t, out)
}

func TestBenchIngestSmoke(t *testing.T) {
	t.Parallel()
	out, err := run(t, "bench", "ingest", "--concurrency", "8", "--count", "300", "--json", "--database-url", testdb.AdminURL(t))
	require.NoError(t, err)
	ratioOf(t, out)
}

func TestBenchDrainSmoke(t *testing.T) {
	t.Parallel()
	out, err := run(t, "bench", "drain", "--events", "500", "--ingest-rate", "1000", "--latency-duration", "2s",
		"--json", "--database-url", testdb.AdminURL(t))
	require.NoError(t, err)
	ratioOf(t, out)
}
