package hookreceiver

import (
	"testing"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
