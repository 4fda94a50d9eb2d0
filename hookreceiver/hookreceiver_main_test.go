package hookreceiver

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. The tests of this
// file's package need no database.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
