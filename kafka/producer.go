package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// publishGrace is how long past DeliveryTimeout a Publish call lets the
// client's own record timeout fire (it carries the last retriable error)
// before canceling what is still outstanding.
const publishGrace = 500 * time.Millisecond

// abandonAfter is how long Publish waits, once its deadline has passed, for
// the client to fail the records it canceled. The client fails them almost at
// once; this is a backstop so that Publish's bound never depends on it.
const abandonAfter = 2 * time.Second

// MaxBatchBytes is the largest record batch the producer builds, before
// compression (franz-go's ProducerBatchMaxBytes, set to franz-go's default
// explicitly because Publish checks records against it). A record that does
// not fit in a batch of its own fails with ErrRecordTooLarge.
//
// It is not raised to fit the largest body the receiver accepts plus the
// envelope: the broker measures each (compressed) batch against the topic's
// max.message.bytes (the broker's message.max.bytes, 1,048,588 bytes by
// default), and with a producer limit above the broker's, batches of small
// records would grow past it (uncompressed, or not compressible enough) and be
// refused whole. At this limit a batch is never refused for its size unless
// the topic's limit was set lower, so keep max.message.bytes at 1,000,012 or
// more.
const MaxBatchBytes = 1_000_012

// batchHeaderBytes is the size of a record batch without its records as
// franz-go counts it: Kafka's 61-byte v2 batch header plus the 4-byte length
// that precedes the batch in a produce request.
const batchHeaderBytes = 65

// BatchBytes is the size of a record batch that holds m alone, before
// compression: the batch header plus m's encoding (key, value and headers
// with their varint lengths). Publish fails m with ErrRecordTooLarge if it
// exceeds MaxBatchBytes. It measures as franz-go does when it starts a new
// batch with m, so that the client never refuses a record Publish let
// through (TestBatchBytesMatchesClient pins that).
func BatchBytes(m Message) int {
	l := 1 + // attributes
		1 + // timestamp delta: 0 for a batch's first record
		1 + // offset delta: 0 likewise
		kbin.VarintLen(int32(len(m.Key))) + len(m.Key) +
		kbin.VarintLen(int32(len(m.Value))) + len(m.Value) +
		kbin.VarintLen(int32(len(m.Headers)))
	for _, h := range m.Headers {
		l += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) +
			kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return batchHeaderBytes + kbin.VarintLen(int32(l)) + l
}

// metadataMinAge is the shortest interval between two metadata refreshes:
// short enough that records held back by a retriable error are retried (or
// failed at their deadline) a few times within the delivery timeout.
func metadataMinAge(deliveryTimeout time.Duration) time.Duration {
	return max(100*time.Millisecond, min(time.Second, deliveryTimeout/4))
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one record to publish to the configured topic. Records with the
// same Key go to the same partition, in order.
type Message struct {
	Key     []byte
	Value   []byte
	Headers []Header
}

// Producer publishes messages to the configured topic with an idempotent
// franz-go producer that requires acknowledgement from all in-sync replicas.
// It is safe for concurrent use.
type Producer struct {
	cfg     Config
	log     *slog.Logger
	client  *kgo.Client
	metrics *metrics

	// lastConnErr is the latest failure to open a broker connection, so
	// that a Ping that times out can say why.
	lastConnErr atomic.Pointer[connFailure]

	closeOnce sync.Once
}

type connFailure struct {
	at  time.Time
	err error
}

func (p *Producer) onBrokerConnect(err error) {
	if err != nil {
		p.lastConnErr.Store(&connFailure{time.Now(), err})
	}
}

// NewProducer returns a producer for cfg (after WithDefaults), with metrics
// registered on reg unless reg is nil. It fails on an invalid configuration
// (a *FieldError list, ErrNoBrokers, an unreadable TLS file) or if reg
// already holds a producer's metrics.
//
// A cluster that cannot be reached does not make NewProducer fail: the
// producer comes up, NewProducer logs a warning, Ping reports the problem
// (for /readyz) and Publish fails with broker-wide errors until the cluster
// answers, exactly as during an outage later on. NewProducer tries the
// cluster once, bounded by ctx and DialTimeout plus RequestTimeout.
//
// The producer is idempotent (no duplicates from its own retries, order kept
// per partition), waits for acks from all in-sync replicas, and bounds each
// record's delivery by DeliveryTimeout. To keep that bound, a record whose
// request is already on the wire may be given up on at the deadline; if the
// broker did write it, publishing it again creates a duplicate, which
// at-least-once delivery allows.
func NewProducer(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	cfg, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := clientOpts(cfg, log)
	if err != nil {
		return nil, err
	}
	c, _ := codec(cfg.Compression) // validated
	linger := max(cfg.Linger, 0)
	opts = append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProduceRequestTimeout(cfg.RequestTimeout),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerBatchMaxBytes(MaxBatchBytes),
		kgo.ProducerBatchCompression(c, kgo.NoCompression()),
		// A retriable produce error (a leader moved, too few replicas)
		// waits for fresh metadata before the records are retried or
		// failed; franz-go's default of at most one refresh per 5s would
		// stall them past a short DeliveryTimeout.
		kgo.MetadataMinAge(metadataMinAge(cfg.DeliveryTimeout)),
	)
	if cfg.SASL.Mechanism == SASLPlain && !cfg.TLS.Enabled {
		log.Warn("kafka: SASL PLAIN without TLS sends the password in clear text; set kafka.tls.enabled")
	}

	p := &Producer{cfg: cfg, log: log}
	p.metrics = newMetrics(reg, func() float64 { return float64(p.client.BufferedProduceRecords()) })
	opts = append(opts, kgo.WithHooks(hooks{m: p.metrics, onConnect: p.onBrokerConnect}))
	if p.client, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka: create the client: %w", err)
	}
	if err := p.metrics.register(); err != nil {
		p.client.Close()
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		log.Warn("kafka: cluster not reachable yet; publishing fails until it is",
			"brokers", strings.Join(cfg.Brokers, ","), "topic", cfg.Topic, "err", err)
	}
	return p, nil
}

// Config returns the producer's configuration with defaults filled in.
func (p *Producer) Config() Config { return p.cfg }

// Publish produces every message to the configured topic and waits until
// each is acknowledged by all in-sync replicas or has failed. It returns one
// error per message, in order: nil means the broker acknowledged that
// record; an error means it did not (it may still have been written, as with
// any timeout). Publish never reports success for an unacknowledged record.
//
// Publish returns within DeliveryTimeout, or shortly after ctx ends if that
// is sooner (the backstop adds at most 2.5s to either); records still
// outstanding then fail with ErrDeliveryTimeout or ctx's error. Records it
// gave up on may stay in the client until they fail or are written, so do not
// modify the bytes of msgs after Publish returns.
//
// Order per key: when a batch of a partition fails (the broker refused it, or
// its delivery timed out), the client fails every record it holds for that
// partition at that moment, so a record is not acknowledged after an earlier
// record of its key that was buffered with it failed. A record too large for
// a batch of its own is the exception: it fails alone with ErrRecordTooLarge
// and is never handed to the client, so later records of its key are
// published and may be acknowledged. Records handed to the client after a
// failure (by a later call, or by this one while it waited for buffer room)
// are not failed with it either.
//
// Use IsBrokerWide to tell a cluster outage from a bad record, and
// IsPermanent to tell a record that can never be published.
func (p *Producer) Publish(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.DeliveryTimeout+publishGrace)
	defer cancel()

	type result struct {
		i   int
		err error
	}
	// Buffered for every record, so that a promise never blocks, even one
	// that arrives after Publish gave up waiting.
	results := make(chan result, len(msgs))
	start := time.Now()
	pending := len(msgs)
	done := make([]bool, len(msgs))
	for i, m := range msgs {
		// The client would refuse it too, with a bare MESSAGE_TOO_LARGE
		// that reads like the broker's (which may concern a whole batch):
		// refusing it here says which limit it broke and that retrying
		// cannot help.
		if n := BatchBytes(m); n > MaxBatchBytes {
			errs[i] = fmt.Errorf("kafka: publish to %q: %w: %d bytes as a batch of its own, over the producer's limit of %d bytes: %w",
				p.cfg.Topic, ErrRecordTooLarge, n, MaxBatchBytes, kerr.MessageTooLarge)
			p.metrics.record(errs[i], 0)
			done[i] = true
			pending--
			continue
		}
		rec := &kgo.Record{Key: m.Key, Value: m.Value}
		if len(m.Headers) > 0 {
			rec.Headers = make([]kgo.RecordHeader, len(m.Headers))
			for j, h := range m.Headers {
				rec.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		p.client.Produce(pctx, rec, func(_ *kgo.Record, err error) {
			results <- result{i, err}
		})
	}

	// Every record is buffered: send them now instead of lingering. Flush
	// stops lingering while it runs and returns when canceled.
	flushCtx, stopFlush := context.WithCancel(pctx)
	defer stopFlush()
	go func() { _ = p.client.Flush(flushCtx) }()

	deadline := pctx.Done()
	var abandon <-chan time.Time
	for pending > 0 {
		select {
		case r := <-results:
			done[r.i] = true
			pending--
			if r.err != nil {
				errs[r.i] = p.publishError(ctx, r.err)
			}
			p.metrics.record(errs[r.i], time.Since(start))
		case <-deadline:
			deadline = nil
			t := time.NewTimer(abandonAfter)
			defer t.Stop()
			abandon = t.C
		case <-abandon:
			err := p.publishError(ctx, pctx.Err())
			for i := range errs {
				if !done[i] {
					errs[i] = err
					p.metrics.record(err, 0)
				}
			}
			p.log.Warn("kafka: gave up waiting for the client to fail records past their deadline",
				"records", pending, "topic", p.cfg.Topic)
			return errs
		}
	}
	return errs
}

// publishError gives a failed record's error its context. ctx is the
// caller's: a deadline of Publish's own (not the caller's) is a delivery
// timeout.
func (p *Producer) publishError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("kafka: publish to %q: %w", p.cfg.Topic, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("kafka: publish to %q: %w (%s): %w", p.cfg.Topic, ErrDeliveryTimeout, p.cfg.DeliveryTimeout, err)
	default:
		return fmt.Errorf("kafka: publish to %q: %w", p.cfg.Topic, err)
	}
}

// Ping checks that a broker answers and knows the topic: it asks for the
// topic's metadata, bounded by ctx and DialTimeout plus RequestTimeout. It
// returns the network, TLS or SASL error if no broker answers, and a
// kerr error (UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED, ...)
// if the broker refuses the topic. Every such error satisfies IsBrokerWide.
func (p *Producer) Ping(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout+p.cfg.RequestTimeout)
	defer cancel()
	err := pingTopic(ctx, p.client, p.cfg.Topic)
	if err == nil {
		return nil
	}
	brokers := strings.Join(p.cfg.Brokers, ",")
	// The client retries failed connections until the deadline, which
	// then hides why they failed: name the last failure.
	if f := p.lastConnErr.Load(); f != nil && !f.at.Before(start) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kafka: ping %s: %w (last connection error: %w)", brokers, err, f.err)
	}
	return fmt.Errorf("kafka: ping %s: %w", brokers, err)
}

func pingTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, rt := range resp.Topics {
		if rt.Topic != nil && *rt.Topic == topic {
			if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
				return fmt.Errorf("topic %q: %w", topic, err)
			}
			return nil
		}
	}
	return fmt.Errorf("topic %q: %w", topic, kerr.UnknownTopicOrPartition)
}

// Close waits for buffered records to be acknowledged, at most
// DeliveryTimeout, fails any that remain with kgo.ErrClientClosed, closes
// the connections and unregisters the metrics. Publish after Close fails
// every record. Close is idempotent.
func (p *Producer) Close() {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DeliveryTimeout)
		defer cancel()
		if err := p.client.Flush(ctx); err != nil {
			p.log.Warn("kafka: closing with records not yet acknowledged", "records", p.client.BufferedProduceRecords(), "err", err)
		}
		p.client.Close()
		p.metrics.unregister()
	})
}
