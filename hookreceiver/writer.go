package hookreceiver

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// writer is one group-commit loop: it takes a batch from the queue, inserts
// it with one store.InsertEvents (one transaction) and answers each request of
// the batch. Several writers share the queue, so one batch fills while another
// commits.
type writer struct {
	r      *Receiver
	batch  []*pending
	events []store.NewEvent
	timer  *time.Timer
}

func newWriter(r *Receiver) *writer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &writer{
		r:      r,
		batch:  make([]*pending, 0, r.cfg.Batch.MaxSize),
		events: make([]store.NewEvent, 0, r.cfg.Batch.MaxSize),
		timer:  t,
	}
}

// loop commits batches until ctx ends or Drain is called; then it closes the
// queue and commits what is left in it.
func (w *writer) loop(ctx context.Context) {
	q := w.r.queue
	for {
		select {
		case p := <-q.ch:
			w.write(w.gather(p, ctx.Done()))
		case <-ctx.Done():
			w.flush()
			return
		case <-w.r.draining:
			w.flush()
			return
		}
	}
}

// gather returns a batch that starts with first: whatever is queued, then,
// while the batch is not full and another writer is committing, what arrives
// within MaxWait (unless stop is closed meanwhile). When no commit is in
// flight the batch goes at once: waiting would only add latency, since
// nothing delays the database.
func (w *writer) gather(first *pending, stop <-chan struct{}) []*pending {
	q, limit := w.r.queue, w.r.cfg.Batch.MaxSize
	b := append(w.batch[:0], first)
	for len(b) < limit {
		p := q.take()
		if p == nil {
			break
		}
		b = append(b, p)
	}
	wait := w.r.cfg.Batch.MaxWait
	if len(b) >= limit || wait <= 0 || w.r.committing.Load() == 0 {
		return b
	}
	w.timer.Reset(wait)
	defer w.timer.Stop()
	for len(b) < limit {
		select {
		case p := <-q.ch:
			b = append(b, p)
		case <-w.timer.C:
			return b
		case <-stop:
			return b
		case <-w.r.draining:
			return b
		}
	}
	return b
}

// flush closes the queue and commits everything in it. Once a batch fails
// because the database is unavailable, the rest is answered 503 at once:
// shutting down must not wait a commit timeout per batch.
func (w *writer) flush() {
	q := w.r.queue
	q.close()
	down := false
	for {
		b := w.batch[:0]
		for len(b) < w.r.cfg.Batch.MaxSize {
			p := q.take()
			if p == nil {
				break
			}
			b = append(b, p)
		}
		if len(b) == 0 {
			return
		}
		if down {
			w.failAll(b, errUnavailable)
			continue
		}
		down = w.write(b)
	}
}

// write commits a batch and answers its requests. It reports whether an
// insert found the database unavailable.
func (w *writer) write(b []*pending) (down bool) {
	w.r.metrics.batchSize.Observe(float64(len(b)))
	down = w.commit(b)
	clear(w.batch[:cap(w.batch)])
	return down
}

// commit inserts b in one transaction and answers every request of b. (A
// batch holding duplicates of earlier deliveries takes a second statement, to
// look up their events; should that one fail, the events the first one
// committed are answered as stored — store.PartialInsertError — and only the
// rest as below.)
//
// Poison rows are isolated rather than failing the batch with them:
//   - a row the store refuses before writing (*store.ValidationError, which
//     names its index) is answered 400 and the rest is inserted again;
//   - a data error of the database (SQLSTATE classes 22, 23, 54) names no
//     row, so the batch is split in halves, each inserted on its own,
//     recursively, until the bad row is alone: it is answered 400
//     (rejected_by_database) and every other row is written. That costs
//     about 2·log2(n) extra inserts per bad row.
//
// Any other failure is no row's fault: the whole batch is answered 503 with
// Retry-After, and the senders retry (deduplicated by delivery id). commit
// reports whether the database was found unavailable.
func (w *writer) commit(b []*pending) (down bool) {
	for len(b) > 0 {
		results, err := w.insert(b)
		if err == nil {
			w.ack(b, results)
			return false
		}
		if pe, ok := errors.AsType[*store.PartialInsertError](err); ok {
			// Some events were committed before the failure (the insert
			// commits before the lookup of its duplicates): answer them as
			// stored, or a sender would store them again, and treat the rest
			// as the whole batch would have been.
			b = w.ackDone(b, pe)
			err = pe.Err
		}
		if i, ve := validationIndex(err, len(b)); i >= 0 {
			w.r.metrics.rejectedRows.Inc()
			w.r.log.Warn("hookreceiver: event refused by the store", "source", b[i].ev.Source,
				"delivery_id", b[i].ev.DeliveryID, "field", ve.Field, "code", ve.Code, "reason", ve.Reason)
			w.r.queue.answer(b[i], outcome{err: &hookError{kind: kindInvalid, code: string(ve.Code), msg: ve.Field + ": " + ve.Reason}})
			b = slices.Delete(b, i, i+1)
			continue
		}
		switch classify(err) {
		case failRows:
			if len(b) == 1 {
				w.r.metrics.rejectedRows.Inc()
				w.r.log.Warn("hookreceiver: event refused by the database", "source", b[0].ev.Source,
					"delivery_id", b[0].ev.DeliveryID, "err", err)
				w.r.queue.answer(b[0], outcome{err: &hookError{kind: kindInvalid, code: CodeRejected,
					msg: "the database refused this event: " + err.Error()}})
				return false
			}
			w.r.metrics.batchFailures.WithLabelValues("rows").Inc()
			mid := len(b) / 2
			first := w.commit(b[:mid])
			second := w.commit(b[mid:])
			return first || second
		case failUnavailable:
			w.r.metrics.batchFailures.WithLabelValues("unavailable").Inc()
			w.r.log.Warn("hookreceiver: batch not written: database unavailable", "events", len(b), "err", err)
			e := errUnavailable
			if d, open := pgclient.RetryAfter(err); open {
				// The breaker is open: refuse at once until it lets
				// requests through again.
				w.r.markDown(d)
				e = &hookError{kind: kindUnavailable, code: CodeUnavailable, msg: errUnavailable.msg, retry: d}
			}
			w.failAll(b, e)
			return true
		default:
			w.r.metrics.batchFailures.WithLabelValues("database_error").Inc()
			w.r.log.Error("hookreceiver: batch not written: database error", "events", len(b), "err", err)
			w.failAll(b, errDatabase)
			return false
		}
	}
	return false
}

// insert runs one store.InsertEvents for b within CommitTimeout. Its context
// does not end with Run's: a batch that started is finished.
func (w *writer) insert(b []*pending) ([]store.InsertResult, error) {
	ev := w.events[:0]
	for _, p := range b {
		ev = append(ev, p.ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.r.cfg.CommitTimeout)
	defer cancel()
	start := time.Now()
	w.r.committing.Add(1)
	res, err := w.r.store.InsertEvents(ctx, ev)
	w.r.committing.Add(-1)
	clear(ev)
	if err == nil {
		w.r.metrics.commitDuration.Observe(time.Since(start).Seconds())
	}
	return res, err
}

// ack answers the requests of a committed batch and wakes the notifier when
// it stored a new event.
func (w *writer) ack(b []*pending, results []store.InsertResult) {
	stored := false
	for i, p := range b {
		stored = stored || !results[i].Duplicate
		w.r.queue.answer(p, outcome{res: results[i]})
	}
	if stored {
		w.wake()
	}
}

// wake tells the notifier that new events were committed.
func (w *writer) wake() {
	select {
	case w.r.notify <- struct{}{}:
	default: // a NOTIFY is already due: it covers this batch too
	}
}

// ackDone answers the requests of b that pe reports done and returns the
// others, in order (reusing b's array).
func (w *writer) ackDone(b []*pending, pe *store.PartialInsertError) []*pending {
	rest := b[:0]
	stored := false
	for i, p := range b {
		if !pe.Done[i] {
			rest = append(rest, p)
			continue
		}
		stored = stored || !pe.Results[i].Duplicate
		w.r.queue.answer(p, outcome{res: pe.Results[i]})
	}
	if stored {
		w.wake()
	}
	return rest
}

func (w *writer) failAll(b []*pending, e *hookError) {
	for _, p := range b {
		w.r.queue.answer(p, outcome{err: e})
	}
}

// notifyTimeout bounds one NOTIFY.
const notifyTimeout = 5 * time.Second

// notifyLoop sends one NOTIFY (store.Notify) for each wake-up from ack. A
// wake-up that comes while a NOTIFY is due or being sent is folded into it,
// so there is at most one NOTIFY per batch and far fewer under load. It
// returns when done is closed, after a last NOTIFY if one is due.
func (r *Receiver) notifyLoop(done <-chan struct{}) {
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		if err := r.store.Notify(ctx); err != nil {
			r.metrics.notifyFailures.Inc()
			r.log.Debug("hookreceiver: notify failed; the coordinator will find the events by polling", "err", err)
		}
	}
	for {
		select {
		case <-r.notify:
			send()
		case <-done:
			select {
			case <-r.notify:
				send()
			default:
			}
			return
		}
	}
}
