package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// outageShare is the share of a batch's records that must fail with
// broker-wide errors for the batch to count as a Kafka outage. See
// docs/coordinator.md ("Kafka outages") for the whole rule.
const outageShare = 0.5

// isOutage applies the rule: a batch is an outage when at least half its
// records failed with broker-wide errors.
func isOutage(brokerWide, total int) bool {
	return brokerWide > 0 && float64(brokerWide) >= outageShare*float64(total)
}

// outage is the coordinator's broker backoff state. An outage starts with a
// batch that isOutage and lasts until a batch that is not, or until the
// claimer, let through after the cluster answered, finds nothing to probe
// with: meanwhile the claimer waits at a gate, which opens for one probe batch
// each time the cluster answers a ping, and the delay between probes grows.
type outage struct {
	mu      sync.Mutex
	gate    chan struct{} // non-nil while the claimer must wait; closed to let it go
	ongoing bool
	since   time.Time
	bo      *backoff.ExponentialBackOff
	// opened counts the gate's openings, so that an empty claim can tell
	// whether the gate it passed is still the open one: a claim that
	// raced with a failing probe says nothing about the cluster.
	opened uint64
}

func (o *outage) init(cfg BackoffConfig) {
	o.bo = newBackoff(cfg)
}

func newBackoff(cfg BackoffConfig) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     cfg.Initial,
		RandomizationFactor: 0.25,
		Multiplier:          2,
		MaxInterval:         cfg.Max,
	}
	b.Reset()
	return b
}

// start closes the gate after a batch that was an outage. It reports
// whether this starts a new outage (rather than a failed probe), and since
// when the outage lasts.
func (o *outage) start() (first bool, since time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate == nil {
		o.gate = make(chan struct{})
	}
	if !o.ongoing {
		o.ongoing, o.since, first = true, time.Now(), true
	}
	return first, o.since
}

// next returns the next delay before a probe.
func (o *outage) next() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bo.NextBackOff()
}

// probe opens the gate: the cluster answered a ping, the next batch is the
// probe. The outage goes on until a batch is not an outage, or the claimer
// finds nothing to probe with (nothingToProbe).
func (o *outage) probe() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate != nil {
		close(o.gate)
		o.gate = nil
		o.opened++
	}
}

// probing reports whether the claimer is let through for a probe (an outage
// is going on and the gate is open), and which opening of the gate that is,
// for nothingToProbe.
func (o *outage) probing() (opening uint64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.opened, o.ongoing && o.gate == nil
}

// nothingToProbe ends the outage after the claimer, let through at opening,
// found nothing to claim: the cluster answered the ping and no batch is left
// to prove otherwise. Without it the outage (and ErrBrokerBackoff, and the
// broker_backoff gauge) would last until the next event arrives, forever if
// another coordinator drained the backlog. It does nothing if a probe failed
// since (the gate closed, or was opened again for a later probe). It reports
// whether the outage ended, and its length.
func (o *outage) nothingToProbe(opening uint64) (ended bool, lasted time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ongoing || o.gate != nil || o.opened != opening {
		return false, 0
	}
	o.ongoing = false
	o.bo.Reset()
	return true, time.Since(o.since)
}

// succeeded ends the outage, if any, after a batch that was not an outage,
// and resets the delay. It reports whether an outage ended, and its length.
func (o *outage) succeeded() (ended bool, lasted time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ongoing {
		return false, 0
	}
	o.ongoing = false
	o.bo.Reset()
	return true, time.Since(o.since)
}

// active reports whether an outage is going on (probes included).
func (o *outage) active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ongoing
}

// wait blocks while the gate is closed; it returns ctx's error if ctx ends
// first.
func (o *outage) wait(ctx context.Context) error {
	o.mu.Lock()
	ch := o.gate
	o.mu.Unlock()
	if ch == nil {
		return ctx.Err()
	}
	select {
	case <-ch:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep waits d or until ctx ends, and reports whether the whole d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
