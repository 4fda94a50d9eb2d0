package main

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// The checks below refuse a flag value before a command connects anywhere,
// naming the flag. A command joins them (errors.Join) to report every bad
// flag at once.

// between refuses an integer flag outside lo..hi.
func between(flag string, n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("%s %d: must be between %d and %d", flag, n, lo, hi)
	}
	return nil
}

// atLeast refuses an integer flag below lo.
func atLeast(flag string, n, lo int) error {
	if n < lo {
		return fmt.Errorf("%s %d: must be at least %d", flag, n, lo)
	}
	return nil
}

// positive refuses a zero or negative duration flag.
func positive(flag string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %s: must be positive (e.g. 30s, 5m, 1h)", flag, d)
	}
	return nil
}

// notNegative refuses a negative duration flag; 0 keeps its documented
// meaning (no filter, or the default).
func notNegative(flag string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s %s: must not be negative", flag, d)
	}
	return nil
}

// storable refuses a text flag that PostgreSQL cannot hold, so cannot match:
// invalid UTF-8 or a NUL byte.
func storable(flag, s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q: not valid UTF-8", flag, s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s %q: holds a NUL byte", flag, s)
	}
	return nil
}

// finiteRate refuses a negative, infinite or NaN rate flag.
func finiteRate(flag string, r float64) error {
	if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return fmt.Errorf("%s %v: must be a finite number of events per second, 0 or more", flag, r)
	}
	return nil
}
