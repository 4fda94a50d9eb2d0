package hookreceiver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnibridge/omnibridge/store"
)

// pending is one verified event waiting for its batch to commit.
type pending struct {
	ev store.NewEvent
	// size is what the event counts against BatchConfig.QueueBytes.
	size int64
	// done receives the outcome exactly once; it has room for it, so the
	// writer never blocks on a request that has gone away.
	done     chan outcome
	enqueued time.Time
}

// outcome is what a writer tells a waiting request.
type outcome struct {
	res store.InsertResult
	err *hookError // nil: committed (res says whether as a duplicate)
}

// pendingOverhead is what an event costs besides its body and metadata (the
// request's state, the event's fields, the batch's column slices), in bytes,
// for the queue's byte budget.
const pendingOverhead = 512

// queueState is the life cycle of the queue.
type queueState int

const (
	queueIdle    queueState = iota // Run not called yet: nothing is accepted
	queueRunning                   // accepting
	queueClosed                    // Drain called or Run ended: nothing is accepted
)

// queue is the bounded intake of the writers: at most cap(ch) events and
// maxBytes bytes (or one event of any size). offer never blocks; once closed, nothing more enters, so
// the writers can empty it and be sure that every accepted event has been
// answered.
type queue struct {
	ch       chan *pending
	maxBytes int64
	bytes    atomic.Int64

	mu    sync.RWMutex // guards state against offers
	state queueState
	ran   bool // Run started the writers
}

func newQueue(size int, maxBytes int64) *queue {
	return &queue{ch: make(chan *pending, size), maxBytes: maxBytes}
}

// offer queues p, or returns the error that the request is answered with.
func (q *queue) offer(p *pending) *hookError {
	q.mu.RLock()
	defer q.mu.RUnlock()
	switch q.state {
	case queueIdle:
		return errNotRunning
	case queueClosed:
		return errShuttingDown
	}
	if n := q.bytes.Add(p.size); n > q.maxBytes && n != p.size {
		// Over the budget, unless the queue held nothing: an event larger
		// than the budget (body limit + metadata + overhead may be) is taken
		// alone rather than never.
		q.bytes.Add(-p.size)
		return errQueueFull
	}
	select {
	case q.ch <- p:
		return nil
	default:
		q.bytes.Add(-p.size)
		return errQueueFull
	}
}

// saturated reports whether an event of n bytes would find the queue full,
// so that a request can be refused before its body is read.
func (q *queue) saturated(n int64) bool {
	b := q.bytes.Load()
	return len(q.ch) == cap(q.ch) || (b > 0 && b+n > q.maxBytes)
}

// answer gives p its outcome and returns its bytes to the budget.
func (q *queue) answer(p *pending, o outcome) {
	q.bytes.Add(-p.size)
	p.done <- o
}

// start moves an idle queue to running and returns the state it was in.
func (q *queue) start() queueState {
	q.mu.Lock()
	defer q.mu.Unlock()
	prev := q.state
	if prev == queueIdle {
		q.state = queueRunning
		q.ran = true
	}
	return prev
}

// close stops the intake. It reports whether writers were ever started (by
// start). Once it returns, no offer can add to the channel.
func (q *queue) close() (ran bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.state = queueClosed
	return q.ran
}

// current returns the state.
func (q *queue) current() queueState {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.state
}

// take returns a queued event without waiting, or nil.
func (q *queue) take() *pending {
	select {
	case p := <-q.ch:
		return p
	default:
		return nil
	}
}
