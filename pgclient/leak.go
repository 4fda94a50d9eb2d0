package pgclient

import (
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Leak detection follows HikariCP: remember who acquired a connection, report
// it once when it is held past LeakThreshold, and report again when it comes
// back. The stack is captured by frame pointers at every acquire (tens of
// nanoseconds, see BenchmarkStackCapture) and formatted only when reported.

const maxStackDepth = 32

// hold records the current acquisition of a connection. It lives in the
// connection's state, so acquiring costs no allocation; its mutex is only
// contended when the leak scan looks at the connection.
type hold struct {
	mu       sync.Mutex
	held     bool
	reported bool
	n        int
	pcs      [maxStackDepth]uintptr
	// at is when the connection was acquired (monotonic, see
	// Client.monotonic), set by the acquirer after the pool hands the
	// connection over; 0 until then. A connection taken from Pool() directly
	// gets the time of the first scan that sees it held.
	at atomic.Int64
}

// beginHold records that st was just acquired, with the acquirer's stack.
func (c *Client) beginHold(st *connState) {
	h := &st.hold
	h.mu.Lock()
	h.held, h.reported = true, false
	h.at.Store(0)
	h.n = callers(2, h.pcs[:]) // from beginHold's caller; the client's frames are dropped when formatting
	h.mu.Unlock()
}

// endHold ends the current hold of st, if any. A hold reported as a
// potential leak is logged as returned and leaves the current-leaks gauge.
func (c *Client) endHold(st *connState, how string) {
	if c.leakThreshold <= 0 {
		return
	}
	h := &st.hold
	h.mu.Lock()
	reported, at := h.held && h.reported, h.at.Load()
	h.held, h.reported = false, false
	h.mu.Unlock()
	if !reported {
		return
	}
	c.stats.currentLeaks.Add(-1)
	c.log.Info("pgclient: previously reported leaked connection returned",
		slog.String("how", how),
		slog.Uint64("backend_pid", uint64(st.pid)),
		slog.Duration("held_for", c.since(at)))
}

// leakReport is what the scan logs about one connection.
type leakReport struct {
	pid     uint32
	heldFor time.Duration
	pcs     []uintptr
}

// scanLeaks reports every connection held past the threshold that has not
// been reported yet.
func (c *Client) scanLeaks() {
	if c.leakThreshold <= 0 {
		return
	}
	now := c.monotonic()
	var found []leakReport
	c.conns.each(func(st *connState) {
		h := &st.hold
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.held || h.reported {
			return
		}
		at := h.at.Load()
		if at == 0 && h.at.CompareAndSwap(0, now) {
			return
		}
		held := time.Duration(now - h.at.Load())
		if held < c.leakThreshold {
			return
		}
		h.reported = true
		c.stats.currentLeaks.Add(1)
		c.stats.potentialLeaks.Add(1)
		found = append(found, leakReport{pid: st.pid, heldFor: held, pcs: slices.Clone(h.pcs[:h.n])})
	})
	for _, r := range found {
		c.log.Warn("pgclient: potential connection leak: connection held longer than leak_threshold",
			slog.Duration("held_for", r.heldFor),
			slog.Duration("leak_threshold", c.leakThreshold),
			slog.Uint64("backend_pid", uint64(r.pid)),
			slog.String("acquired_by", formatStack(r.pcs)))
	}
}

// logHeld logs every connection still held, for Close.
func (c *Client) logHeld(msg string) {
	n := 0
	c.conns.each(func(st *connState) {
		h := &st.hold
		h.mu.Lock()
		held, at, pcs := h.held, h.at.Load(), slices.Clone(h.pcs[:h.n])
		h.mu.Unlock()
		if held {
			n++
			var heldFor time.Duration
			if at > 0 {
				heldFor = c.since(at)
			}
			c.log.Warn(msg, slog.Uint64("backend_pid", uint64(st.pid)),
				slog.Duration("held_for", heldFor), slog.String("acquired_by", formatStack(pcs)))
		}
	})
	if n == 0 {
		c.log.Warn(msg, slog.Int("acquired", int(c.pool.Stat().AcquiredConns())))
	}
}

// pkgDir is this package's source directory: frames from its non-test files
// are the client's own and are left out of reported stacks.
var pkgDir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}()

// formatStack formats an acquirer's stack, leaving out frames of the runtime,
// pgx, puddle and this package's non-test code.
func formatStack(pcs []uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if !internalFrame(f) {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(f.Function)
			b.WriteString("\n\t")
			b.WriteString(f.File)
			b.WriteString(":")
			b.WriteString(strconv.Itoa(f.Line))
		}
		if !more {
			break
		}
	}
	return b.String()
}

func internalFrame(f runtime.Frame) bool {
	switch {
	case strings.HasPrefix(f.Function, "runtime."),
		strings.HasPrefix(f.Function, "github.com/jackc/"):
		return true
	case filepath.Dir(f.File) == pkgDir && !strings.HasSuffix(f.File, "_test.go"):
		return true
	}
	return false
}
