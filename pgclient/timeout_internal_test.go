package pgclient

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAcquireDeadlineSlots: every acquisition's shared deadline lies within
// [start + timeout, start + timeout + slot width], also when it asks for its
// slot after a newer one was made (an acquisition that waited).
func TestAcquireDeadlineSlots(t *testing.T) {
	epoch := time.Now()
	d := newAcquireDeadlines(time.Second, epoch)
	defer d.close()
	check := func(start int64) {
		t.Helper()
		dl, ok := d.slot(start).ctx.Deadline()
		require.True(t, ok)
		at := epoch.Add(time.Duration(start))
		require.False(t, dl.Before(at.Add(time.Second)), "not before start + timeout")
		require.False(t, dl.After(at.Add(time.Second+d.slotWidth)), "at most one slot width after start + timeout")
	}
	ms := int64(time.Millisecond)
	check(1)
	check(3 * ms) // the same slot
	check(900 * ms)
	check(5 * ms) // older than the current slot: not the current one
	check(905 * ms)
}
