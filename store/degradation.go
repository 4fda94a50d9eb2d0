package store

import (
	"context"
	"maps"
	"time"
)

// DegradationPrefix starts the event type of every degradation record.
const DegradationPrefix = "degradation."

// Degradation is a moment when a component of a service ran degraded: the
// pool near exhaustion, the circuit breaker open, suspected connection leaks,
// Kafka unreachable (ADR-016's record_degradation_event).
//
// Degradation records go to the security audit log, with event type
// "degradation.<component>.<kind>", rather than to a table of their own: they
// are rare (callers rate-limit them through AuditWriter.WriteLimited with
// Key), they need the same guarantees (append-only, kept 180 days, dropped
// with whole partitions), and the audit listing already filters them by type
// ("degradation.*") and time. A table of their own would add a migration, a
// retention rule, grants and an API for the same rows.
type Degradation struct {
	// Component is the part that degraded, e.g. "pool", "breaker", "kafka".
	// Lower-case letters, digits and underscores.
	Component string
	// Kind is what happened, e.g. "high_utilization", "open", "leak_suspected";
	// same alphabet as Component.
	Kind string
	// Details is free-form context (utilization, thresholds, error text).
	Details map[string]any
	// Recovered marks the end of a degradation; it is stored as success, so
	// the audit view's success=false filter shows the degradations only.
	Recovered bool
	// At is when it happened; the time of the call when zero.
	At time.Time
}

// Type is the audit event type of d: "degradation.<component>.<kind>".
func (d Degradation) Type() string { return DegradationPrefix + d.Component + "." + d.Kind }

// Key is the rate-limit key of d for AuditWriter.WriteLimited: one bucket per
// component and kind.
func (d Degradation) Key() string { return d.Type() }

func (d Degradation) check() *InputError {
	for _, f := range []struct{ name, v string }{{"component", d.Component}, {"kind", d.Kind}} {
		if f.v == "" {
			return inputError("degradation", f.name, "is required")
		}
		for _, c := range f.v {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				return inputError("degradation", f.name, "%q may hold lower-case letters, digits and underscores only", f.v)
			}
		}
	}
	if n := len(d.Type()); n > MaxAuditTypeLength {
		return inputError("degradation", "kind", "event type %q has %d characters, at most %d allowed", d.Type(), n, MaxAuditTypeLength)
	}
	return nil
}

// AuditEvent is d as an audit event: client_info holds the details plus
// "component" and "kind".
func (d Degradation) AuditEvent() AuditEvent {
	info := make(map[string]any, len(d.Details)+2)
	maps.Copy(info, d.Details)
	info["component"] = d.Component
	info["kind"] = d.Kind
	return AuditEvent{Type: d.Type(), ClientInfo: info, Success: d.Recovered, CreatedAt: d.At}
}

// RecordDegradation writes d to the security audit log now (see Degradation
// for why there). A bad component or kind returns an *InputError. A hot path
// should rather call AuditWriter.WriteLimited(d.Key(), d.AuditEvent()), which
// neither waits nor floods the log.
func (s *Store) RecordDegradation(ctx context.Context, d Degradation) error {
	if e := d.check(); e != nil {
		return e
	}
	if d.At.IsZero() {
		d.At = s.now()
	}
	return s.AppendAudit(ctx, d.AuditEvent())
}
