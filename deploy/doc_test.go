// Package deploy_test checks the deployment files beside it: that every
// metric the Grafana dashboard and the Prometheus rules name is exported by
// the services (started as `omnibridge serve` starts them), that the rules
// are well formed, that the example configuration loads, and that the
// systemd unit gives the services time to shut down.
package deploy_test

import (
	"testing"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
