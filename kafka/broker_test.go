package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStartBrokerOptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, WithTopics("events.a", "events.b"), WithPartitions(5), WithNodes(3),
		WithBrokerLogger(slog.New(slog.DiscardHandler)))
	require.Len(t, b.Addrs(), 3)
	require.Equal(t, []string{"events.a", "events.b"}, b.Topics())
	require.Equal(t, "events.a", b.Config().Topic)
	require.Equal(t, b.Addrs(), b.Config().Brokers)

	ctx := testContext(t)
	for _, topic := range b.Topics() {
		cfg := b.Config()
		cfg.Topic = topic
		p := newProducer(t, cfg)
		require.NoError(t, p.Ping(ctx))
		msgs := messages(60, 60)
		requireAllNil(t, p.Publish(ctx, msgs))
		recs, err := ReadAll(ctx, cfg, len(msgs))
		require.NoError(t, err)
		parts := map[int32]bool{}
		for _, r := range recs {
			require.Equal(t, topic, r.Topic)
			parts[r.Partition] = true
		}
		require.Len(t, parts, 5, "60 keys spread over every partition")
	}
	b.Close()
	b.Close() // idempotent
}

func TestStartBrokerRejectsBadOptions(t *testing.T) {
	t.Parallel()
	_, err := StartBroker(WithTopics("bad topic"), WithPartitions(0), WithNodes(0))
	require.Error(t, err)
	require.ErrorContains(t, err, `"bad topic"`)
	require.ErrorContains(t, err, "partitions 0")
	require.ErrorContains(t, err, "nodes 0")

	_, err = StartBroker(WithTopics())
	require.ErrorContains(t, err, "at least one topic")
}

func TestTailFromEndSeesOnlyNewRecords(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, []Message{{Key: []byte("k"), Value: []byte("old")}}))

	tailCtx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan Record, 10)
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- Tail(tailCtx, b.Config(), false, func(r Record) error {
			got <- r
			return nil
		})
	}()

	// Tail starts at the end once it has learned the partitions; publish
	// until a new record shows up, then check it never saw the old one.
	var first Record
	deadline := time.After(testTimeout)
	for i := 0; first.Value == nil; i++ {
		requireAllNil(t, p.Publish(ctx, []Message{{Key: []byte("k"), Value: fmt.Appendf(nil, "new-%d", i)}}))
		select {
		case first = <-got:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("tail saw nothing")
		}
	}
	require.NotEqual(t, "old", string(first.Value))
	stop()
	require.NoError(t, <-tailDone, "a tail stopped by its context returns nil")
}

func TestTailReturnsCallbackError(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	ctx := testContext(t)
	requireAllNil(t, p.Publish(ctx, messages(10, 1)))

	boom := errors.New("boom")
	n := 0
	err := Tail(ctx, b.Config(), true, func(Record) error {
		n++
		if n == 3 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 3, n, "no record after the error")
}

func TestReadAllStopsAtContext(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	p := newProducer(t, b.Config())
	requireAllNil(t, p.Publish(testContext(t), messages(4, 2)))

	ctx, cancel := context.WithTimeout(testContext(t), 2*time.Second)
	defer cancel()
	recs, err := ReadAll(ctx, b.Config(), 10)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "read 4 of 10")
	require.Len(t, recs, 4)

	recs, err = ReadAll(testContext(t), b.Config(), 0)
	require.NoError(t, err)
	require.Empty(t, recs)
}

func TestConsumeNeedsBrokers(t *testing.T) {
	t.Parallel()
	_, err := ReadAll(testContext(t), Config{}, 1)
	require.ErrorIs(t, err, ErrNoBrokers)
	err = Tail(testContext(t), Config{Brokers: []string{"127.0.0.1:1"}, Topic: "bad topic"}, true, nil)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "topic", fe.Field)
}
