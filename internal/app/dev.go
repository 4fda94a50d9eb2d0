package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omnibridge/omnibridge/config"
	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

// DevOptions tune the development environment.
type DevOptions struct {
	// Fresh deletes the kept data directory first.
	Fresh bool
	// Out receives the human-readable banner. Defaults to os.Stdout.
	Out io.Writer
	// Version is recorded in the service sessions.
	Version string
}

// DevDatabase is the database `omnibridge dev` creates in its embedded cluster.
const DevDatabase = "omnibridge"

// DevSourceName is the webhook source `dev` adds when none is configured.
const DevSourceName = "dev"

// Dev is the all-in-one development environment: an embedded PostgreSQL and an
// in-process Kafka broker (unless the configuration names real ones) and the
// three services.
type Dev struct {
	Config   config.Config
	Logger   *slog.Logger
	Services *Services
	// Curl is a ready-to-paste command that sends a signed webhook.
	Curl    string
	cluster *pgembed.Cluster
	broker  *kafka.Broker
	dbURL   string
}

// StartDev brings the development environment up and returns once every
// service is ready to serve; Run serves until its context ends.
func StartDev(ctx context.Context, cfg config.Config, log *slog.Logger, opts DevOptions) (*Dev, error) {
	out := opts.Out
	if out == nil {
		out = os.Stdout
	}
	d := &Dev{Config: cfg, Logger: log, dbURL: cfg.Database.URL}
	if err := d.startDatabase(ctx, opts.Fresh); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	if err := d.migrate(ctx, out); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	d.Config.Database.URL = d.dbURL
	if len(d.Config.Kafka.Brokers) == 0 {
		b, err := kafka.StartBroker(kafka.WithTopics(d.Config.Kafka.Topic), kafka.WithBrokerLogger(log))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("start in-process Kafka: %w", err), d.Close())
		}
		d.broker = b
		d.Config.Kafka.Brokers = b.Addrs()
	}
	if err := d.addDevSource(); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	s, err := StartServices(ctx, d.Config, log, AllServices, ServeOptions{Version: opts.Version, AllowNoToken: true})
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	d.Services = s
	if err := d.buildCurl(); err != nil {
		return nil, errors.Join(err, s.abort(), d.Close())
	}
	d.banner(out)
	return d, nil
}

func (d *Dev) startDatabase(ctx context.Context, fresh bool) error {
	if d.dbURL != "" {
		return nil
	}
	dir, err := filepath.Abs(d.Config.Dev.DataDir)
	if err != nil {
		return err
	}
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	d.Logger.Info("dev: starting embedded PostgreSQL", "data_dir", dir)
	cl, err := pgembed.Start(ctx, pgembed.Config{DataDir: dir, Logger: d.Logger})
	if errors.Is(err, pgembed.ErrAlreadyRunning) {
		return fmt.Errorf("the development database in %s is in use, most likely by another omnibridge dev: "+
			"stop that one (Ctrl-C), or give this one its own directory with OMNIBRIDGE_DEV_DATA_DIR (%w)", dir, err)
	}
	if err != nil {
		return fmt.Errorf("start embedded PostgreSQL: %w", err)
	}
	d.cluster = cl
	if err := ensureDatabase(ctx, cl.URL("postgres"), DevDatabase); err != nil {
		return err
	}
	d.dbURL = cl.URL(DevDatabase)
	return nil
}

// ensureDatabase creates the named database unless it exists.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	err := adminExec(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

func (d *Dev) migrate(ctx context.Context, out io.Writer) error {
	db, err := migrations.OpenDB(ctx, d.dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := migrations.Up(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range applied {
		fmt.Fprintf(out, "migrated: %05d %s (%s)\n", r.Version, r.Name, r.Duration.Round(time.Millisecond))
	}
	return nil
}

// addDevSource gives the receiver a signed development source when the
// configuration has none. Its secret is kept next to the data directory so
// that a pasted curl keeps working across restarts.
func (d *Dev) addDevSource() error {
	rc := &d.Config.Services.HookReceiver.Receiver
	if len(rc.Sources) > 0 {
		return nil
	}
	secret, err := devSecret(filepath.Join(filepath.Dir(d.Config.Dev.DataDir), "dev-webhook-secret"))
	if err != nil {
		return err
	}
	rc.Sources = []hookreceiver.SourceConfig{{
		Name: DevSourceName, Verifier: "hmac-sha256", Secrets: []string{secret},
		Header: "X-Signature", Encoding: "hex", Prefix: "sha256=",
	}}
	return nil
}

func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= hookreceiver.MinSecretLen {
		return strings.TrimSpace(string(b)), nil
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	secret := "dev_" + hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the development webhook secret: %w", err)
	}
	return secret, nil
}

// DevSampleBody is the event the printed curl sends.
const DevSampleBody = `{"action":"opened","resource":"pull_request","resource_id":"42",` +
	`"payload":{"title":"Hello from omnibridge dev"},"metadata":{"sender":"curl"}}`

// buildCurl signs DevSampleBody for the first source and renders a curl.
func (d *Dev) buildCurl() error {
	r := d.Services.Receiver
	name := r.Sources()[0]
	src := r.Source(name)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	// A delivery id of its own per run: the data directory is kept between
	// runs, and the first send of this run should be stored, not a duplicate.
	now := time.Now()
	id := "dev-" + now.UTC().Format("20060102T150405")
	h.Set("Idempotency-Key", id)
	h.Set("webhook-id", id)
	if err := src.SignRequest(h, []byte(DevSampleBody), now); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "curl -i -X POST %s/hooks/%s", d.URL(config.HookReceiverName), name)
	for _, k := range []string{"Content-Type", "Idempotency-Key", "X-Signature"} {
		if v := h.Get(k); v != "" {
			fmt.Fprintf(&b, " \\\n  -H '%s: %s'", k, v)
		}
	}
	fmt.Fprintf(&b, " \\\n  --data-binary '%s'", DevSampleBody)
	d.Curl = b.String()
	return nil
}

// CLIEnv is the environment that points the omnibridge CLI at this stack, as
// shell assignments to put before a command (not to export: dev itself would
// then take the database URL for an external database on its next run). A
// database URL with a password is left out rather than printed: it is the
// caller's own, already in their environment or configuration.
func (d *Dev) CLIEnv() string {
	brokers := "OMNIBRIDGE_KAFKA_BROKERS=" + shellQuote(strings.Join(d.Config.Kafka.Brokers, ","))
	if config.RedactURL(d.dbURL) != d.dbURL {
		return brokers
	}
	return "OMNIBRIDGE_DATABASE_URL=" + shellQuote(d.dbURL) + " " + brokers
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// URL is the base URL of a running service.
func (d *Dev) URL(service string) string {
	host, port, _ := net.SplitHostPort(d.Services.Runtimes[service].Addr())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (d *Dev) banner(out io.Writer) {
	fmt.Fprintf(out, "\nomnibridge dev is running.\n\n")
	fmt.Fprintf(out, "  hook receiver:         %s/hooks/{source}\n", d.URL(config.HookReceiverName))
	fmt.Fprintf(out, "  workflow coordinator:  %s/readyz\n", d.URL(config.WorkflowCoordinatorName))
	fmt.Fprintf(out, "  model metrics API:     %s/api/v1/performance\n", d.URL(config.ModelMetricsName))
	dashboard := d.URL(config.ModelMetricsName) + "/"
	if tok := d.Config.Services.ModelMetrics.API.Token; tok != "" {
		dashboard += "#token=" + tok // the fragment never reaches the server
	}
	fmt.Fprintf(out, "  dashboard:             %s\n", dashboard)
	fmt.Fprintf(out, "  database:              %s\n", config.RedactURL(d.dbURL))
	if d.cluster != nil {
		fmt.Fprintf(out, "  data dir:              %s (kept between runs; --fresh starts over)\n", d.cluster.DataDir())
	}
	kafkaNote := ""
	if d.broker != nil {
		kafkaNote = " (in-process)"
	}
	fmt.Fprintf(out, "  kafka:                 %s topic %s%s\n", strings.Join(d.Config.Kafka.Brokers, ","), d.Config.Kafka.Topic, kafkaNote)
	if d.Config.Services.ModelMetrics.API.Token == "" {
		fmt.Fprintf(out, "  API token:             none (dev only; serve refuses to start without one)\n")
	}
	fmt.Fprintf(out, "\nSend a signed webhook (the same command again is answered as a duplicate):\n\n%s\n", d.Curl)
	fmt.Fprintf(out, "\nRun the CLI against this stack (its ports change on every run):\n\n  %s omnibridge health\n", d.CLIEnv())
	fmt.Fprintf(out, "\nPress Ctrl-C to stop.\n")
}

// Tail prints every record published to the topic until ctx ends.
func (d *Dev) Tail(ctx context.Context, out io.Writer) error {
	return kafka.Tail(ctx, d.Config.Kafka, true, func(r kafka.Record) error {
		fmt.Fprintf(out, "kafka: %s[%d]@%d key=%s %s\n", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
		return nil
	})
}

// Run serves until ctx ends, then stops the services (ending their sessions),
// the broker and the database.
func (d *Dev) Run(ctx context.Context) error {
	err := d.Services.Run(ctx)
	return errors.Join(err, d.Close())
}

// DatabaseURL is the URL of the development database.
func (d *Dev) DatabaseURL() string { return d.dbURL }

// Close stops the broker and the database StartDev started. It is safe to call
// more than once.
func (d *Dev) Close() error {
	if d.broker != nil {
		d.broker.Close()
		d.broker = nil
	}
	if d.cluster == nil {
		return nil
	}
	d.Logger.Info("dev: stopping embedded PostgreSQL")
	err := d.cluster.Stop(context.Background(), pgembed.StopFast)
	d.cluster = nil
	return err
}
