package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is a record read back from the topic.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// tailFetchWait bounds how long a broker holds a fetch with nothing new; it
// only matters for how soon a quiet tail notices a closed cluster.
const tailFetchWait = time.Second

// Tail consumes cfg.Topic (every partition, no consumer group, nothing
// committed) and calls fn for each record, in offset order within a
// partition. With fromStart it begins at the oldest record, otherwise at the
// records published after Tail starts. It runs until ctx ends, returning nil,
// or until fn returns an error or the client meets one it cannot retry
// (authentication, authorization), returning that error. A cluster that is
// down is waited for, not reported.
func Tail(ctx context.Context, cfg Config, fromStart bool, fn func(Record) error) error {
	cfg, err := prepare(cfg)
	if err != nil {
		return err
	}
	opts, err := clientOpts(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	opts = append(opts,
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxWait(tailFetchWait),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: create the consumer: %w", err)
	}
	defer cl.Close()

	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("kafka: consume %q partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		var ferr error
		fetches.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			ferr = fn(toRecord(r))
		})
		if ferr != nil {
			return ferr
		}
	}
}

func toRecord(r *kgo.Record) Record {
	out := Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp,
	}
	if len(r.Headers) > 0 {
		out.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			out.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

// errEnough stops Tail inside ReadAll.
var errEnough = errors.New("enough records")

// ReadAll reads cfg.Topic from the start until it holds want records, and
// returns them in the order read (offset order within each partition). If
// ctx ends first it returns the records read so far and an error wrapping
// ctx's error that says how many were missing.
func ReadAll(ctx context.Context, cfg Config, want int) ([]Record, error) {
	if want <= 0 {
		return nil, nil
	}
	recs := make([]Record, 0, want)
	err := Tail(ctx, cfg, true, func(r Record) error {
		recs = append(recs, r)
		if len(recs) >= want {
			return errEnough
		}
		return nil
	})
	switch {
	case errors.Is(err, errEnough):
		return recs, nil
	case err != nil:
		return recs, err
	default:
		return recs, fmt.Errorf("kafka: read %d of %d records from %q: %w", len(recs), want, cfg.WithDefaults().Topic, ctx.Err())
	}
}
