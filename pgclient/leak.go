package pgclient

import (
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Leak detection follows HikariCP: remember who acquired a connection, report
// it once when it is held past LeakThreshold, and report again when it comes
// back. The stack is captured by frame pointers at every acquire (tens of
// nanoseconds, see BenchmarkStackCapture) and formatted only when reported.

const maxStackDepth = 32

// Hold states. A hold moves from held to exactly one of reported or returned;
// reported holds move on to returned. The compare-and-swap from held decides
// whether the releaser or the leak scan got there first.
const (
	holdHeld int32 = iota
	holdReported
	holdReturned
)

// hold records one acquisition of a connection.
type hold struct {
	at     time.Time
	pid    uint32
	status atomic.Int32
	n      int
	pcs    [maxStackDepth]uintptr
}

func newHold(st *connState) *hold {
	h := &hold{at: time.Now(), pid: st.pid}
	h.n = callers(2, h.pcs[:]) // from newHold's caller; the client's frames are dropped when formatting
	return h
}

// endHold ends the current hold of st, if any. A hold already reported as a
// potential leak is logged as returned and leaves the current-leaks gauge.
func (c *Client) endHold(st *connState, how string) {
	if c.leakThreshold <= 0 {
		return
	}
	h := st.hold.Swap(nil)
	if h == nil || h.status.CompareAndSwap(holdHeld, holdReturned) {
		return
	}
	h.status.Store(holdReturned)
	c.stats.currentLeaks.Add(-1)
	c.log.Info("pgclient: previously reported leaked connection returned",
		slog.String("how", how),
		slog.Uint64("backend_pid", uint64(h.pid)),
		slog.Duration("held_for", time.Since(h.at)))
}

// scanLeaks reports every connection held past the threshold that has not
// been reported yet.
func (c *Client) scanLeaks(now time.Time) {
	if c.leakThreshold <= 0 {
		return
	}
	var found []*hold
	c.conns.each(func(st *connState) {
		h := st.hold.Load()
		if h == nil || now.Sub(h.at) < c.leakThreshold || h.status.Load() != holdHeld {
			return
		}
		// Count first, so the gauge cannot go negative if the releaser wins
		// the race right after our swap.
		c.stats.currentLeaks.Add(1)
		if !h.status.CompareAndSwap(holdHeld, holdReported) {
			c.stats.currentLeaks.Add(-1)
			return
		}
		c.stats.potentialLeaks.Add(1)
		found = append(found, h)
	})
	for _, h := range found {
		c.log.Warn("pgclient: potential connection leak: connection held longer than leak_threshold",
			slog.Duration("held_for", now.Sub(h.at)),
			slog.Duration("leak_threshold", c.leakThreshold),
			slog.Uint64("backend_pid", uint64(h.pid)),
			slog.String("acquired_by", h.stack()))
	}
}

// logHeld logs every connection still held, for Close.
func (c *Client) logHeld(msg string) {
	n := 0
	c.conns.each(func(st *connState) {
		if h := st.hold.Load(); h != nil {
			n++
			c.log.Warn(msg, slog.Uint64("backend_pid", uint64(h.pid)),
				slog.Duration("held_for", time.Since(h.at)), slog.String("acquired_by", h.stack()))
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

// stack formats the acquirer's stack, starting at the first frame outside
// the runtime, pgx, puddle and this package's non-test code.
func (h *hold) stack() string {
	var b strings.Builder
	frames := runtime.CallersFrames(h.pcs[:h.n])
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
