package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds what tests wait for; generous for a shared, noisy machine.
const testTimeout = 60 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs warnings and errors through t, so failures show the
// client's view.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("KAFKA_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func startBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	b, err := StartBroker(opts...)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

// newProducer starts a producer on cfg and closes it at cleanup. Close runs
// before the broker's cleanup, as cleanups run last-in first-out.
func newProducer(t testing.TB, cfg Config) *Producer {
	t.Helper()
	p, err := NewProducer(testContext(t), cfg, testLogger(t), nil)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// messages makes n messages spread over keys, each with a sequence header.
func messages(n, keys int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{
			Key:   fmt.Appendf(nil, "key-%d", i%keys),
			Value: fmt.Appendf(nil, `{"seq":%d,"payload":"value-%d"}`, i, i),
			Headers: []Header{
				{Key: "seq", Value: fmt.Appendf(nil, "%d", i)},
				{Key: "source", Value: []byte("test")},
			},
		}
	}
	return msgs
}

func requireAllNil(t testing.TB, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "message %d", i)
	}
}

// produceFault answers produce requests with code for every partition, once
// or (keep) until the returned stop function is called. hits counts the
// requests answered.
type produceFault struct {
	mu      sync.Mutex
	stopped bool
	hits    int
}

func (f *produceFault) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
}

func (f *produceFault) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// failProduce installs a ControlKey on produce requests that fails every
// partition of each request with code. A code of -1 leaves the request
// unanswered (a broker that hangs). With keep it stays until Stop.
func failProduce(c *kfake.Cluster, code int16, keep bool) *produceFault {
	f := new(produceFault)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.stopped {
			c.DropControl()
			return nil, nil, false
		}
		if keep {
			c.KeepControl()
		}
		f.hits++
		if code == -1 {
			return nil, nil, true
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return f
}
