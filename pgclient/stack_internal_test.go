package pgclient

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func frameNames(pcs []uintptr) []string {
	var names []string
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		// Compiler-generated wrappers, which runtime.Callers leaves out.
		if !strings.Contains(f.Function, ".gowrap") {
			names = append(names, f.Function)
		}
		if !more {
			return names
		}
	}
}

//go:noinline
func captureBoth(skip int) (walked, unwound []string) {
	a := make([]uintptr, 16)
	b := make([]uintptr, 16)
	n := callers(skip, a)
	m := runtime.Callers(skip, b)
	return frameNames(a[:n]), frameNames(b[:m])
}

// inlinedCapture is inlined into its callers: its frame exists only in the
// inlining tables.
func inlinedCapture(skip int) ([]string, []string) { return captureBoth(skip) }

func TestCallersMatchesRuntimeCallers(t *testing.T) {
	// skip counts physical frames: it matches runtime.Callers as long as
	// no inlined frame is skipped.
	for skip := 1; skip <= 2; skip++ {
		walked, unwound := inlinedCapture(skip)
		require.NotEmpty(t, walked)
		require.Equal(t, unwound, walked, "skip %d", skip)
	}
	walked, _ := inlinedCapture(0)
	require.Equal(t, "github.com/omnibridge/omnibridge/pgclient.callers", walked[0], "skip 0 is callers itself")
	walked, _ = inlinedCapture(1)
	require.Equal(t, "github.com/omnibridge/omnibridge/pgclient.inlinedCapture", walked[1], "inlined frames are kept")
	require.Contains(t, walked, "github.com/omnibridge/omnibridge/pgclient.TestCallersMatchesRuntimeCallers")
}

func BenchmarkStackCapture(b *testing.B) {
	pcs := make([]uintptr, maxStackDepth)
	b.Run("frame_pointers", func(b *testing.B) {
		for b.Loop() {
			callers(2, pcs)
		}
	})
	b.Run("runtime.Callers", func(b *testing.B) {
		for b.Loop() {
			runtime.Callers(2, pcs)
		}
	})
}
