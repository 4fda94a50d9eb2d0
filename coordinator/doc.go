// Package coordinator is the WorkflowCoordinator: it delivers the hook events
// stored by the HookReceiver to Kafka, at least once.
//
// Run claims due pending events in batches (store.Claim, FOR UPDATE SKIP
// LOCKED, so any number of coordinators can run at once), publishes each as one
// Kafka record (key resource_id, headers event-id, source, action and attempt,
// value the JSON Envelope), and only after the broker acknowledged a record
// marks its event processed, with its event_metrics row written in the same
// statement (store.Complete). A record the broker refuses counts as a failed
// attempt (store.Fail: the error appended, a jittered exponential backoff, dead
// after the last attempt); one that can never be published (too large) is dead
// at once. A broker-wide failure does not count: the events are
// released with their attempts untouched and the whole coordinator backs off
// until the cluster answers again (see docs/coordinator.md for the exact rule).
//
// The work runs as a three-stage pipeline (claim, publish, finish) so that the
// database statements of one batch overlap the publication of the next, while
// batches are still published one after the other in claim order, which keeps
// the order of a resource's events on its partition when nothing is retried.
//
// The coordinator wakes when the receiver NOTIFYs store.NotifyChannel, on a
// dedicated connection outside the pool (so it also works through PgBouncer in
// transaction pooling mode), reconnecting with backoff when it drops, and it
// polls every PollInterval regardless. A lease reaper gives back the claims of
// coordinators that crashed. When Run's context ends it finishes the Publish in
// flight (bounded by DrainTimeout), records its outcome and releases every
// other event it holds.
package coordinator
