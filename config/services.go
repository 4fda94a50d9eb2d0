package config

import (
	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/metricsapi"
	"github.com/omnibridge/omnibridge/service"
)

// Service names, as `serve --services` takes them and as sessions, pools
// (application_name) and metrics name them.
const (
	HookReceiverName        = "hook-receiver"
	WorkflowCoordinatorName = "workflow-coordinator"
	ModelMetricsName        = "model-metrics"
)

// Default listen addresses of the services.
const (
	HookReceiverAddr        = ":8080"
	WorkflowCoordinatorAddr = ":8081"
	ModelMetricsAddr        = ":8082"
)

// ServicesConfig holds each service's settings: its runtime (address, own pool,
// HTTP limits, heartbeats) and its own behaviour, side by side in one section.
type ServicesConfig struct {
	HookReceiver        HookReceiverConfig        `yaml:"hook_receiver"`
	WorkflowCoordinator WorkflowCoordinatorConfig `yaml:"workflow_coordinator"`
	ModelMetrics        ModelMetricsConfig        `yaml:"model_metrics"`
}

// HookReceiverConfig configures the HookReceiver. Its runtime defaults to
// listening on :8080.
type HookReceiverConfig struct {
	Runtime  service.Config      `yaml:",inline"`
	Receiver hookreceiver.Config `yaml:",inline"`
}

// WorkflowCoordinatorConfig configures the WorkflowCoordinator. Its runtime
// defaults to listening on :8081.
type WorkflowCoordinatorConfig struct {
	Runtime     service.Config     `yaml:",inline"`
	Coordinator coordinator.Config `yaml:",inline"`
}

// ModelMetricsConfig configures the ModelMetrics API. Its runtime defaults to
// listening on :8082.
type ModelMetricsConfig struct {
	Runtime service.Config    `yaml:",inline"`
	API     metricsapi.Config `yaml:",inline"`
}

// WithDefaults fills every service's defaults.
func (s ServicesConfig) WithDefaults() ServicesConfig {
	s.HookReceiver.Runtime = s.HookReceiver.Runtime.WithDefaults(HookReceiverAddr)
	s.HookReceiver.Receiver = s.HookReceiver.Receiver.WithDefaults()
	s.WorkflowCoordinator.Runtime = s.WorkflowCoordinator.Runtime.WithDefaults(WorkflowCoordinatorAddr)
	s.WorkflowCoordinator.Coordinator = s.WorkflowCoordinator.Coordinator.WithDefaults()
	s.ModelMetrics.Runtime = s.ModelMetrics.Runtime.WithDefaults(ModelMetricsAddr)
	s.ModelMetrics.API = s.ModelMetrics.API.WithDefaults()
	return s
}

// validate reports every invalid field of every service. Whether the services
// have what they need to run is checked when they start: serve refuses an API
// without a token, and a receiver without sources starts with a warning (it
// answers every webhook 404); dev provides a token-less API and a source.
func (s ServicesConfig) validate() []error {
	var errs []error
	errs = append(errs, prefixed("services.hook_receiver", s.HookReceiver.Runtime.Validate())...)
	errs = append(errs, prefixed("services.hook_receiver", s.HookReceiver.Receiver.Validate())...)
	errs = append(errs, prefixed("services.workflow_coordinator", s.WorkflowCoordinator.Runtime.Validate())...)
	errs = append(errs, prefixed("services.workflow_coordinator", s.WorkflowCoordinator.Coordinator.Validate())...)
	errs = append(errs, prefixed("services.model_metrics", s.ModelMetrics.Runtime.Validate())...)
	errs = append(errs, prefixed("services.model_metrics", s.ModelMetrics.API.Validate())...)
	return errs
}
