package pgclient

// fpWalk is implemented in stack_amd64.s.
func fpWalk(skip int, pcs []uintptr) int

// callers is runtime.Callers by frame pointers: skip 0 is callers itself, 1
// its caller. skip counts physical frames (an inlined call shares its
// caller's), so it agrees with runtime.Callers unless it skips past an
// inlined call. Go keeps frame pointers on amd64, and following them costs a
// few nanoseconds per frame where runtime.Callers, which decodes each
// frame's metadata, costs a few hundred: it is what makes stack capture at
// every acquire affordable. The result feeds runtime.CallersFrames as
// runtime.Callers' does.
//
//go:noinline
func callers(skip int, pcs []uintptr) int {
	if skip < 1 {
		// Frame 0 is callers itself, which the walk (starting at the
		// caller's frame) cannot produce; runtime.Callers can.
		return runtimeCallers(skip+1, pcs)
	}
	return fpWalk(skip-1, pcs)
}
