package hookreceiver

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/omnibridge/omnibridge/internal/fielderr"
	"github.com/omnibridge/omnibridge/store"
)

// Defaults and bounds of Config.
const (
	// BatchMaxSizeDefault is the default BatchConfig.MaxSize.
	BatchMaxSizeDefault = 256
	// BatchMaxSizeMax is the largest accepted BatchConfig.MaxSize.
	BatchMaxSizeMax = 5000
	// BatchMaxWaitDefault is the default BatchConfig.MaxWait.
	BatchMaxWaitDefault = time.Millisecond
	// BatchMaxWaitMax is the largest accepted BatchConfig.MaxWait.
	BatchMaxWaitMax = time.Second
	// QueueSizeDefault is the default BatchConfig.QueueSize.
	QueueSizeDefault = 10000
	// QueueBytesDefault is the default BatchConfig.QueueBytes: 128 MiB.
	QueueBytesDefault = 128 << 20
	// WritersDefault is the default BatchConfig.Writers.
	WritersDefault = 4
	// WritersMax is the largest accepted BatchConfig.Writers.
	WritersMax = 64
	// RetryAfterDefault is the default Config.RetryAfter.
	RetryAfterDefault = time.Second
	// CommitTimeoutDefault is the default Config.CommitTimeout.
	CommitTimeoutDefault = 10 * time.Second
)

// Config configures a Receiver. In the omnibridge configuration it is
// services.hook_receiver (next to the service's runtime settings).
type Config struct {
	// Sources are the webhook sources, each reached at POST /hooks/{name}.
	// Defaults to none: every request is then answered 404.
	Sources []SourceConfig `yaml:"sources"`

	// BodyLimit is the body limit of sources that set none of their own, in
	// bytes. Defaults to 1 MiB (BodyLimitDefault), at most 64 MiB.
	BodyLimit int64 `yaml:"body_limit"`

	// Batch tunes group commit.
	Batch BatchConfig `yaml:"batch"`

	// RetryAfter is what 503 answers (queue full, database unavailable,
	// shutting down) put in Retry-After, rounded up to whole seconds.
	// Defaults to 1s.
	RetryAfter time.Duration `yaml:"retry_after"`

	// CommitTimeout bounds one insert of a batch; requests of a batch that
	// runs out of time are answered 503. Defaults to 10s.
	CommitTimeout time.Duration `yaml:"commit_timeout"`
}

// BatchConfig tunes group commit: requests wait in one bounded queue, and
// writers take them from it in batches, each written in one transaction.
type BatchConfig struct {
	// MaxSize is the most events in one batch. Defaults to 256, at most
	// 5000.
	MaxSize int `yaml:"max_size"`

	// MaxWait is how long a writer that has taken fewer than MaxSize events
	// waits for more before it commits anyway. It waits only while another
	// writer is committing (under load); otherwise, and for whatever is
	// already queued, it commits at once. Defaults to 1ms; a negative value
	// never waits. At most 1s.
	MaxWait time.Duration `yaml:"max_wait"`

	// QueueSize is the most events waiting for a writer. A request that finds
	// the queue full is answered 503 with Retry-After at once. Defaults to
	// 10000.
	QueueSize int `yaml:"queue_size"`

	// QueueBytes bounds the memory held by queued and committing events
	// (their bodies and metadata), in bytes. A request that would pass it is
	// answered 503 at once, unless the queue is empty: one event of any size
	// is always taken. It must be at least the largest body limit.
	// Defaults to 128 MiB.
	QueueBytes int64 `yaml:"queue_bytes"`

	// Writers is the number of batches committed concurrently, each on its
	// own connection: batches fill while others commit, and their commits
	// share PostgreSQL's WAL flushes. Defaults to 4 (measured best with fsync
	// on; see docs/hookreceiver.md), at most 64. The service's pool needs
	// Writers connections plus one for NOTIFY.
	Writers int `yaml:"writers"`
}

// WithDefaults returns a copy of c with every unset field given its default.
// Sources without a body limit get BodyLimit; the sources' other defaults are
// filled when the receiver builds them (SourceConfig.WithDefaults).
func (c Config) WithDefaults() Config {
	c.BodyLimit = cmp.Or(c.BodyLimit, BodyLimitDefault)
	c.Sources = append([]SourceConfig(nil), c.Sources...)
	for i := range c.Sources {
		c.Sources[i].BodyLimit = cmp.Or(c.Sources[i].BodyLimit, c.BodyLimit)
	}
	c.Batch.MaxSize = cmp.Or(c.Batch.MaxSize, BatchMaxSizeDefault)
	c.Batch.MaxWait = cmp.Or(c.Batch.MaxWait, BatchMaxWaitDefault)
	c.Batch.QueueSize = cmp.Or(c.Batch.QueueSize, QueueSizeDefault)
	c.Batch.QueueBytes = cmp.Or(c.Batch.QueueBytes, QueueBytesDefault)
	c.Batch.Writers = cmp.Or(c.Batch.Writers, WritersDefault)
	c.RetryAfter = cmp.Or(c.RetryAfter, RetryAfterDefault)
	c.CommitTimeout = cmp.Or(c.CommitTimeout, CommitTimeoutDefault)
	return c
}

// Validate reports every invalid field at once (errors.Join): the receiver's
// own fields, each naming the field and its value, and every invalid source
// (as *ConfigError values, secrets redacted). It expects defaults to be
// filled (WithDefaults).
func (c Config) Validate() error {
	_, err := c.build()
	return err
}

// build validates c and builds its sources.
func (c Config) build() (map[string]*Source, error) {
	errs := c.validateOwn()
	srcs, err := NewSources(c.Sources)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return srcs, nil
}

// validateOwn checks the receiver's fields other than the sources'.
func (c Config) validateOwn() []error {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, fielderr.New(field, value, reason))
	}
	if c.BodyLimit < 1 || c.BodyLimit > BodyLimitMax {
		bad("body_limit", c.BodyLimit, fmt.Sprintf("must be between 1 and %d bytes", BodyLimitMax))
	}
	b := c.Batch
	if b.MaxSize < 1 || b.MaxSize > BatchMaxSizeMax {
		bad("batch.max_size", b.MaxSize, fmt.Sprintf("must be between 1 and %d", BatchMaxSizeMax))
	}
	if b.MaxWait > BatchMaxWaitMax {
		bad("batch.max_wait", b.MaxWait, fmt.Sprintf("must be at most %s (negative: never wait)", BatchMaxWaitMax))
	}
	if b.QueueSize < 1 {
		bad("batch.queue_size", b.QueueSize, "must be positive")
	}
	largest := c.BodyLimit
	for i, s := range c.Sources {
		largest = max(largest, s.BodyLimit)
		if s.MaxDepth > store.MaxJSONDepth {
			bad(fmt.Sprintf("sources[%d].max_depth", i), s.MaxDepth,
				fmt.Sprintf("must be at most %d: the store refuses JSON nested deeper", store.MaxJSONDepth))
		}
	}
	if b.QueueBytes < largest {
		bad("batch.queue_bytes", b.QueueBytes, fmt.Sprintf("must be at least the largest body limit (%d bytes), or the queue would hold no more than one such body at a time", largest))
	}
	if b.Writers < 1 || b.Writers > WritersMax {
		bad("batch.writers", b.Writers, fmt.Sprintf("must be between 1 and %d", WritersMax))
	}
	if c.RetryAfter <= 0 {
		bad("retry_after", c.RetryAfter, "must be positive")
	}
	if c.CommitTimeout <= 0 {
		bad("commit_timeout", c.CommitTimeout, "must be positive")
	}
	return errs
}

// retryAfterSeconds is d as a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
