package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/config"
)

func TestReaperWaitsForTheSlowestHeartbeat(t *testing.T) {
	t.Parallel()
	s := config.Default().Services
	s.HookReceiver.Runtime.HeartbeatInterval = time.Minute
	s.WorkflowCoordinator.Runtime.HeartbeatInterval = 10 * time.Second
	require.Equal(t, time.Minute, maxHeartbeat(s))
}
