package hookreceiver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/store"
)

// noDB is a store that is never used: the tests below do not run the writers
// against a database.
var noDB = store.New(nil)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := hookreceiver.Config{Sources: []hookreceiver.SourceConfig{{Name: "a"}, {Name: "b", BodyLimit: 10}}, BodyLimit: 2048}.WithDefaults()
	require.Equal(t, int64(2048), c.Sources[0].BodyLimit, "a source without a limit takes the receiver's")
	require.Equal(t, int64(10), c.Sources[1].BodyLimit)
	require.Equal(t, hookreceiver.BatchMaxSizeDefault, c.Batch.MaxSize)
	require.Equal(t, hookreceiver.BatchMaxWaitDefault, c.Batch.MaxWait)
	require.Equal(t, hookreceiver.QueueSizeDefault, c.Batch.QueueSize)
	require.Equal(t, int64(hookreceiver.QueueBytesDefault), c.Batch.QueueBytes)
	require.Equal(t, hookreceiver.WritersDefault, c.Batch.Writers)
	require.Equal(t, time.Second, c.RetryAfter)
	require.Equal(t, 10*time.Second, c.CommitTimeout)

	d := hookreceiver.Config{}.WithDefaults()
	require.Equal(t, int64(hookreceiver.BodyLimitDefault), d.BodyLimit)
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	c := hookreceiver.Config{
		Sources: []hookreceiver.SourceConfig{
			{Name: "unsigned"}, // no verifier
			{Name: "deep", Verifier: hookreceiver.VerifierBearer, Secrets: []string{internalToken}, MaxDepth: 100},
		},
		Batch:         hookreceiver.BatchConfig{MaxSize: 100000, MaxWait: time.Hour, QueueSize: -1, QueueBytes: 100, Writers: 1000},
		RetryAfter:    -time.Second,
		CommitTimeout: -time.Second,
	}.WithDefaults()
	err := c.Validate()
	require.Error(t, err)
	require.ErrorIs(t, err, hookreceiver.ErrNoVerifier)
	for _, field := range []string{"batch.max_size", "batch.max_wait", "batch.queue_size", "batch.queue_bytes",
		"batch.writers", "retry_after", "commit_timeout", "sources[1].max_depth", "source unsigned"} {
		require.Contains(t, err.Error(), field)
	}
	require.NoError(t, hookreceiver.Config{Sources: testSources()}.WithDefaults().Validate())
}

func TestConfigFromYAML(t *testing.T) {
	t.Parallel()
	const doc = `
body_limit: 65536
retry_after: 2s
commit_timeout: 5s
batch: {max_size: 128, max_wait: 2ms, queue_size: 5000, queue_bytes: 33554432, writers: 3}
sources:
  - name: github
    verifier: github
    secrets: ["It's a Secret to Everybody"]
`
	var c hookreceiver.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	c = c.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, hookreceiver.BatchConfig{MaxSize: 128, MaxWait: 2 * time.Millisecond, QueueSize: 5000, QueueBytes: 32 << 20, Writers: 3}, c.Batch)
	require.Equal(t, int64(65536), c.Sources[0].BodyLimit)
}

func TestNewRefusesToStartWithoutAVerifier(t *testing.T) {
	t.Parallel()
	_, err := hookreceiver.New(hookreceiver.Config{Sources: []hookreceiver.SourceConfig{{Name: "x", Secrets: []string{internalToken}}}},
		hookreceiver.Deps{Store: noDB})
	require.ErrorIs(t, err, hookreceiver.ErrNoVerifier)

	_, err = hookreceiver.New(hookreceiver.Config{Sources: []hookreceiver.SourceConfig{{Name: "x", Verifier: hookreceiver.VerifierNone}}},
		hookreceiver.Deps{Store: noDB})
	require.ErrorContains(t, err, "allow_unsigned", "verifier none needs allow_unsigned: true")

	_, err = hookreceiver.New(hookreceiver.Config{Sources: testSources()}, hookreceiver.Deps{})
	require.ErrorIs(t, err, hookreceiver.ErrNoStore)
}

func TestNewRegistersMetricsOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r, err := hookreceiver.New(hookreceiver.Config{Sources: testSources()}, hookreceiver.Deps{Store: noDB, Registerer: reg})
	require.NoError(t, err)
	require.Equal(t, []string{"billing", "github", "internal", "limited", "open", "shop", "small"}, r.Sources())
	require.NotNil(t, r.Source("github"))
	require.Nil(t, r.Source("nope"))
	_, err = hookreceiver.New(hookreceiver.Config{Sources: testSources()}, hookreceiver.Deps{Store: noDB, Registerer: reg})
	require.ErrorContains(t, err, "own registry")
}

func TestLifecycleWithoutDatabase(t *testing.T) {
	t.Parallel()
	r, err := hookreceiver.New(hookreceiver.Config{Sources: testSources()}, hookreceiver.Deps{Store: noDB})
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorContains(t, r.Ready(ctx), "not started")
	// Drain before Run: Run then returns at once, and nothing is accepted.
	require.NoError(t, r.Drain(ctx))
	require.NoError(t, r.Run(ctx))
	require.ErrorContains(t, r.Ready(ctx), "draining")
	require.NoError(t, r.Drain(ctx), "Drain twice is harmless")
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	err := b.recv.Run(context.Background())
	require.True(t, errors.Is(err, hookreceiver.ErrAlreadyRunning))
}
