package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ErrNoBrokers is returned by NewProducer, Tail and ReadAll for a
// configuration without brokers.
var ErrNoBrokers = errors.New("kafka: no brokers configured: set kafka.brokers (OMNIBRIDGE_KAFKA_BROKERS, comma-separated host:port) " +
	"to the cluster's bootstrap addresses, or use `omnibridge dev`, which starts an in-process broker")

// prepare fills defaults, validates and insists on brokers: the common start
// of everything that connects.
func prepare(cfg Config) (Config, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("kafka: invalid configuration: %w", err)
	}
	if len(cfg.Brokers) == 0 {
		return cfg, ErrNoBrokers
	}
	return cfg, nil
}

// clientOpts are the kgo options shared by the producer and the consumers:
// where to connect, how (TLS, SASL), timeouts and logging.
func clientOpts(cfg Config, log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.DialTimeout),
		// Requests without a timeout of their own (metadata, ApiVersions,
		// init producer ID) get RequestTimeout; produce requests get it on
		// top of the timeout they carry.
		kgo.RequestTimeoutOverhead(cfg.RequestTimeout),
		kgo.WithLogger(slogAdapter{log}),
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.load()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := cfg.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// load builds the tls.Config, reading the CA bundle and client key pair.
func (t TLSConfig) load() (*tls.Config, error) {
	minVersion, err := tlsVersion(t.MinVersion)
	if err != nil {
		return nil, fmt.Errorf("kafka: tls.min_version %q: %w", t.MinVersion, err)
	}
	tc := &tls.Config{MinVersion: minVersion, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls.ca_file: read the CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: tls.ca_file %q holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls.cert_file %q / tls.key_file %q: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// mechanism returns the SASL mechanism, or nil without one. The configuration
// has been validated.
func (s SASLConfig) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	default:
		return nil
	}
}

// codec maps a Config.Compression name to franz-go's codec.
func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case CompressionNone:
		return kgo.NoCompression(), nil
	case CompressionGzip:
		return kgo.GzipCompression(), nil
	case CompressionSnappy:
		return kgo.SnappyCompression(), nil
	case CompressionLZ4:
		return kgo.Lz4Compression(), nil
	case CompressionZstd:
		return kgo.ZstdCompression(), nil
	default:
		return kgo.CompressionCodec{}, errors.New("must be none, gzip, snappy, lz4 or zstd")
	}
}

// slogAdapter sends franz-go's log lines to slog. franz-go's info level
// (connections, metadata, producer ID changes) is chatty in normal operation,
// so it goes to slog's debug level; its debug level (every request) is never
// enabled.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case a.log.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case a.log.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	a.log.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}
