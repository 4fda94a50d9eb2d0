//go:build !amd64

package pgclient

// callers is runtime.Callers: skip 0 is callers itself, 1 its caller.
//
//go:noinline
func callers(skip int, pcs []uintptr) int { return runtimeCallers(skip+1, pcs) }
