package pgclient

import "runtime"

// runtimeCallers is runtime.Callers with skip counted from its caller.
//
//go:noinline
func runtimeCallers(skip int, pcs []uintptr) int { return runtime.Callers(skip+1, pcs) }
