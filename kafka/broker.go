package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultBrokerPartitions is the partition count of the topics StartBroker
// creates unless WithPartitions says otherwise.
const DefaultBrokerPartitions = 3

// Broker is an in-process Kafka cluster (franz-go's kfake) listening on
// 127.0.0.1, for `omnibridge dev` and tests. It speaks the real protocol, so
// the production Producer runs against it unchanged. Records live in memory
// and are lost on Close.
type Broker struct {
	cluster *kfake.Cluster
	topics  []string
}

type brokerConfig struct {
	topics     []string
	partitions int32
	nodes      int
	ports      []int
	log        *slog.Logger
	extra      []kfake.Opt
}

// BrokerOption configures StartBroker.
type BrokerOption func(*brokerConfig)

// WithTopics sets the topics created at start, replacing the default
// DefaultTopic.
func WithTopics(topics ...string) BrokerOption {
	return func(c *brokerConfig) { c.topics = slices.Clone(topics) }
}

// WithPartitions sets the partition count of the created topics. Defaults to
// DefaultBrokerPartitions.
func WithPartitions(n int32) BrokerOption {
	return func(c *brokerConfig) { c.partitions = n }
}

// WithNodes sets how many broker nodes the cluster has, each on its own
// port; partition leadership is spread over them. Defaults to 1.
func WithNodes(n int) BrokerOption {
	return func(c *brokerConfig) { c.nodes = n }
}

// WithPorts listens on the given ports of 127.0.0.1, one node per port
// (overriding WithNodes), so that tools outside the process can be pointed
// at a known address. Defaults to free ports chosen by the system.
func WithPorts(ports ...int) BrokerOption {
	return func(c *brokerConfig) { c.ports = slices.Clone(ports) }
}

// WithBrokerLogger sends the cluster's own log lines to log. Defaults to
// discarding them.
func WithBrokerLogger(log *slog.Logger) BrokerOption {
	return func(c *brokerConfig) { c.log = log }
}

// WithClusterOptions passes options straight to kfake.NewCluster, after the
// ones StartBroker sets, for what the other options do not cover (TLS, SASL
// users, ACLs, broker configs).
func WithClusterOptions(opts ...kfake.Opt) BrokerOption {
	return func(c *brokerConfig) { c.extra = append(c.extra, opts...) }
}

// StartBroker starts an in-process cluster on free ports of 127.0.0.1 with
// the topics already created (DefaultTopic with DefaultBrokerPartitions
// partitions unless told otherwise). Topics are not created on demand, as in
// a well-run production cluster. Close stops it.
func StartBroker(opts ...BrokerOption) (*Broker, error) {
	bc := brokerConfig{topics: []string{DefaultTopic}, partitions: DefaultBrokerPartitions, nodes: 1}
	for _, o := range opts {
		o(&bc)
	}
	var errs []error
	if len(bc.topics) == 0 {
		errs = append(errs, errors.New("kafka: StartBroker needs at least one topic"))
	}
	for _, t := range bc.topics {
		if err := validateTopic(t); err != nil {
			errs = append(errs, fmt.Errorf("kafka: StartBroker topic %q: %w", t, err))
		}
	}
	if bc.partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka: StartBroker partitions %d: must be at least 1", bc.partitions))
	}
	if bc.nodes < 1 && len(bc.ports) == 0 {
		errs = append(errs, fmt.Errorf("kafka: StartBroker nodes %d: must be at least 1", bc.nodes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(bc.nodes),
		kfake.SeedTopics(bc.partitions, bc.topics...),
		kfake.ClusterID("omnibridge-dev"),
	}
	if len(bc.ports) > 0 {
		kopts = append(kopts, kfake.Ports(bc.ports...))
	}
	if bc.log != nil {
		kopts = append(kopts, kfake.WithLogger(kfakeLogger{bc.log}))
	}
	kopts = append(kopts, bc.extra...)
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start the in-process broker: %w", err)
	}
	return &Broker{cluster: cluster, topics: bc.topics}, nil
}

// Addrs returns the host:port of every node, for Config.Brokers.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Topics returns the topics created at start.
func (b *Broker) Topics() []string { return slices.Clone(b.topics) }

// Config returns a client configuration for this broker and its first topic,
// with defaults filled in.
func (b *Broker) Config() Config {
	return Config{Brokers: b.Addrs(), Topic: b.topics[0]}.WithDefaults()
}

// Cluster returns the underlying kfake cluster, for tests that inject faults
// (Cluster().Fault, ControlKey) or move partitions.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the cluster: connections are closed and the records are gone.
// Clients see the brokers as unreachable. Close is idempotent.
func (b *Broker) Close() { b.cluster.Close() }

// kfakeLogger adapts slog to kfake's printf-style logger; kfake's info level
// logs every request, so it goes to debug.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	if !l.log.Enabled(context.Background(), lvl) {
		return
	}
	l.log.Log(context.Background(), lvl, "kafka broker: "+fmt.Sprintf(format, args...))
}
