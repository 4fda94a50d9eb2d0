package pgclient

import (
	"context"
	"slices"
	"sync"
	"time"
)

// permits admits at most MaxConns holders of the client's connections, in
// arrival order, in front of the pool. Waiting here rather than inside
// pgxpool lets a wait end on the caller's context or the acquire deadline,
// whichever comes first, without a deadline context or a timer per wait: one
// timer per queue, armed for the oldest waiter's deadline, expires the waits
// that ran out (all waits get the same timeout, so deadlines grow along the
// queue). In steady use it fires about once per AcquireTimeout. A timer per
// acquisition is costly beyond its own work: adding one can wake an idle P of
// the Go scheduler to spin, and on a busy machine that cost ten percent of a
// point query's throughput (bench pool). golang.org/x/sync/semaphore takes a
// single context, which would need a derived one per wait.
//
// A permit is taken before pgxpool's Acquire and given back after the
// connection is released (Client.release), so a caller holding one finds a
// connection idle, or room to open one, in the pool, unless connections are
// held outside the client's methods (see Client.acquireContext for the waits
// that remain inside pgxpool).
type permits struct {
	epoch time.Time // of the monotonic deadlines (see Client.monotonic)

	mu      sync.Mutex
	free    int
	closed  bool
	waiters []*permitWaiter // FIFO; granted, expired or abandoned waiters are removed
	timer   *time.Timer     // expires waiters; armed when armed is true
	armed   bool
}

type permitWaiter struct {
	ready    chan struct{} // closed when the permit is handed over or the wait expires
	deadline int64         // monotonic; 0 for none
	granted  bool          // under permits.mu
	expired  bool          // under permits.mu
}

func newPermits(n int, epoch time.Time) *permits {
	p := &permits{free: n, epoch: epoch}
	p.timer = time.AfterFunc(time.Hour, p.expire)
	p.timer.Stop()
	return p
}

// now is the monotonic time of the deadlines.
func (p *permits) now() int64 { return int64(time.Since(p.epoch)) + 1 }

// tryAcquire takes a permit if one is free and nobody is waiting.
func (p *permits) tryAcquire() bool {
	p.mu.Lock()
	ok := p.free > 0 && len(p.waiters) == 0
	if ok {
		p.free--
	}
	p.mu.Unlock()
	return ok
}

// acquire waits for a permit until ctx ends or the monotonic deadline passes
// (0: no deadline). It returns ctx's error, errAcquireTimedOut, ErrClosed, or
// nil with a permit.
func (p *permits) acquire(ctx context.Context, deadline int64) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.free > 0 && len(p.waiters) == 0 {
		p.free--
		p.mu.Unlock()
		return nil
	}
	w := &permitWaiter{ready: make(chan struct{}), deadline: deadline}
	p.waiters = append(p.waiters, w)
	if deadline > 0 && !p.armed {
		p.arm(deadline)
	}
	p.mu.Unlock()

	select {
	case <-w.ready:
		switch {
		case w.granted:
			return nil
		case w.expired:
			return errAcquireTimedOut
		default: // woken by close; nothing is written after close
			return ErrClosed
		}
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case w.granted:
		// Handed over as the wait ended: pass it on.
		p.releaseLocked()
		return ctx.Err()
	case w.expired:
		return errAcquireTimedOut
	case p.closed:
		return ErrClosed
	}
	p.remove(w)
	return ctx.Err()
}

// arm sets the timer for deadline. Under p.mu.
func (p *permits) arm(deadline int64) {
	p.armed = true
	p.timer.Reset(time.Duration(deadline - p.now()))
}

// expire ends the waits whose deadline has passed and arms the timer for the
// next one.
func (p *permits) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.closed {
		return
	}
	now := p.now()
	kept := p.waiters[:0]
	next := int64(0)
	for _, w := range p.waiters {
		switch {
		case w.deadline > 0 && w.deadline <= now:
			w.expired = true
			close(w.ready)
			continue
		case w.deadline > 0 && next == 0:
			next = w.deadline
		}
		kept = append(kept, w)
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
	if next > 0 {
		p.arm(next)
	}
}

// remove takes an abandoned waiter out of the queue. Under p.mu.
func (p *permits) remove(w *permitWaiter) {
	if i := slices.Index(p.waiters, w); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
	}
}

// release gives a permit back, to the longest waiter if any.
func (p *permits) release() {
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *permits) releaseLocked() {
	if len(p.waiters) == 0 {
		p.free++
		return
	}
	w := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	w.granted = true
	close(w.ready)
}

// close wakes every waiter with ErrClosed and refuses new ones.
func (p *permits) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.timer.Stop()
	for _, w := range p.waiters {
		close(w.ready)
	}
	p.waiters = nil
}
