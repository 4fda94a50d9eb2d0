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
// batch that isOutage and lasts until a batch that is not: meanwhile the
// claimer waits at a gate, which opens for one probe batch each time the
// cluster answers a ping, and the delay between probes grows.
type outage struct {
	mu      sync.Mutex
	gate    chan struct{} // non-nil while the claimer must wait; closed to let it go
	ongoing bool
	since   time.Time
	bo      *backoff.ExponentialBackOff
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
// probe. The outage goes on until a batch is not an outage.
func (o *outage) probe() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gate != nil {
		close(o.gate)
		o.gate = nil
	}
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
