package pgclient

import (
	"context"
	"sync"
)

// permits admits at most MaxConns holders of the client's connections, in
// arrival order, in front of the pool. Waiting here rather than inside
// pgxpool lets a wait end on the caller's context or the acquire deadline,
// whichever comes first, without a deadline context or a timer of its own:
// the deadline is a shared slot's (acquireDeadlines). A timer per
// acquisition is costly beyond its own work: adding one can wake an idle P
// of the Go scheduler to spin, and on a busy machine that cost ten percent of
// a point query's throughput (bench pool). golang.org/x/sync/semaphore
// takes a single context, which would need a derived one per wait.
//
// A permit is taken before pgxpool's Acquire and given back after the
// connection is released (Client.release), so a caller holding one finds a
// connection idle, or room to open one, in the pool, unless connections are
// held outside the client's methods (see Client.acquireContext for the waits
// that remain inside pgxpool).
type permits struct {
	mu      sync.Mutex
	free    int
	closed  bool
	waiters []*permitWaiter // FIFO; granted or abandoned waiters are removed
}

type permitWaiter struct {
	ready   chan struct{} // closed when the permit is handed over
	granted bool          // under permits.mu
}

func newPermits(n int) *permits { return &permits{free: n} }

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

// acquire waits for a permit until ctx ends or expired is closed. It returns
// ctx's error, errAcquireTimedOut, ErrClosed, or nil with a permit.
func (p *permits) acquire(ctx context.Context, expired <-chan struct{}) error {
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
	w := &permitWaiter{ready: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	var err error
	select {
	case <-w.ready:
		if !w.granted { // woken by close; granted is not written after close
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = errAcquireTimedOut
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.granted {
		// Handed over as the wait ended: pass it on.
		p.releaseLocked()
		return err
	}
	if p.closed {
		return ErrClosed
	}
	for i, q := range p.waiters {
		if q == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			break
		}
	}
	return err
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
	for _, w := range p.waiters {
		close(w.ready)
	}
	p.waiters = nil
}
