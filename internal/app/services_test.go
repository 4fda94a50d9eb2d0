package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/internal/app"
)

func TestParseServices(t *testing.T) {
	t.Parallel()
	for list, want := range map[string][]string{
		"":                                app.AllServices,
		"  ":                              app.AllServices,
		"model-metrics":                   {"model-metrics"},
		" model-metrics , hook-receiver ": {"model-metrics", "hook-receiver"},
		"hook-receiver,hook-receiver":     {"hook-receiver"},
		"model-metrics,hook-receiver,model-metrics": {"model-metrics", "hook-receiver"},
	} {
		got, err := app.ParseServices(list)
		require.NoError(t, err, "%q", list)
		require.Equal(t, want, got, "%q", list)
	}
	for list, want := range map[string]string{
		"kafka":                        `unknown service "kafka": choose from hook-receiver, workflow-coordinator, model-metrics`,
		"Hook-Receiver":                `unknown service "Hook-Receiver"`,
		"hook_receiver":                `unknown service "hook_receiver"`,
		"hook-receiver;model-metrics":  `unknown service "hook-receiver;model-metrics"`,
		"hook-receiver\x1b[2J":         `unknown service "hook-receiver\x1b[2J"`,
		"hook-receiver,,model-metrics": `empty service name in "hook-receiver,,model-metrics": separate names with single commas`,
		",":                            `empty service name in ","`,
		"hook-receiver,":               `empty service name in "hook-receiver,"`,
	} {
		_, err := app.ParseServices(list)
		require.ErrorContains(t, err, want, "%q", list)
	}
}
