package store

import (
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// auditLimiter bounds the audit rows of each key (a client address and an
// event type, say) with a token bucket per key. It remembers at most maxKeys
// keys; beyond that, new keys share one overflow bucket, so a flood from many
// addresses is bounded too. Idle keys (a full bucket, nothing suppressed) are
// forgotten by a sweep, at most once per sweepEvery.
type auditLimiter struct {
	every   rate.Limit
	burst   int
	maxKeys int

	mu        sync.Mutex
	keys      map[string]*limitEntry
	overflow  *limitEntry
	lastSweep time.Time
}

// limitEntry is one key's bucket and what it suppressed since its last row.
type limitEntry struct {
	lim        *rate.Limiter
	suppressed int
	last       AuditEvent // the latest suppressed event, for the summary row
}

const (
	sweepEvery = time.Second
	// SuppressedKey is the client_info member of a rate-limited audit row that
	// counts the events of its key that were not written since the key's
	// previous row.
	SuppressedKey = "suppressed"
)

func newAuditLimiter(every time.Duration, burst, maxKeys int) *auditLimiter {
	l := &auditLimiter{every: rate.Every(every), burst: burst, maxKeys: maxKeys, keys: make(map[string]*limitEntry)}
	l.overflow = l.newEntry()
	return l
}

func (l *auditLimiter) newEntry() *limitEntry {
	return &limitEntry{lim: rate.NewLimiter(l.every, l.burst)}
}

// admit decides whether ev, of key, is written. When it is, ev comes back with
// the number of events the key suppressed since its previous row added to its
// client info (a copy: the caller's map is not changed). When it is not, the
// event is counted and kept as the key's latest suppressed one.
func (l *auditLimiter) admit(key string, ev AuditEvent, now time.Time) (AuditEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= l.maxKeys && now.Sub(l.lastSweep) >= sweepEvery {
			l.sweep(now)
		}
		if len(l.keys) < l.maxKeys {
			e = l.newEntry()
			l.keys[key] = e
		} else {
			e = l.overflow
		}
	}
	if !e.lim.AllowN(now, 1) {
		e.suppressed++
		e.last = ev
		return AuditEvent{}, false
	}
	if e.suppressed > 0 {
		ev = withSuppressed(ev, e.suppressed)
		e.suppressed, e.last = 0, AuditEvent{}
	}
	return ev, true
}

// pending returns one summary row per key whose bucket has a token again and
// that suppressed events since its last row: the latest suppressed event,
// counting the others. So a flood that stops still leaves its size in the log.
func (l *auditLimiter) pending(now time.Time) []AuditEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []AuditEvent
	flush := func(e *limitEntry) {
		if e.suppressed > 0 && e.lim.AllowN(now, 1) {
			out = append(out, withSuppressed(e.last, e.suppressed-1))
			e.suppressed, e.last = 0, AuditEvent{}
		}
	}
	for _, e := range l.keys {
		flush(e)
	}
	flush(l.overflow)
	return out
}

// drain returns a summary row for every key that suppressed events, whatever
// its bucket holds; the writer calls it when it closes.
func (l *auditLimiter) drain() []AuditEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []AuditEvent
	for _, e := range append(slices.Collect(maps.Values(l.keys)), l.overflow) {
		if e.suppressed > 0 {
			out = append(out, withSuppressed(e.last, e.suppressed-1))
			e.suppressed, e.last = 0, AuditEvent{}
		}
	}
	return out
}

// sweep forgets idle keys. The caller holds l.mu.
func (l *auditLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, e := range l.keys {
		if e.suppressed == 0 && e.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.keys, k)
		}
	}
}

func withSuppressed(ev AuditEvent, n int) AuditEvent {
	info := make(map[string]any, len(ev.ClientInfo)+1)
	maps.Copy(info, ev.ClientInfo)
	info[SuppressedKey] = n
	ev.ClientInfo = info
	return ev
}
