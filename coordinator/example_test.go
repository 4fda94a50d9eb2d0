package coordinator_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnibridge/omnibridge/coordinator"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// The wiring of a WorkflowCoordinator: the service's own pool, a producer,
// a dedicated LISTEN connection on the same DSN, and Run until interrupted.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.Default()
	reg := prometheus.NewRegistry()
	dsn := os.Getenv("OMNIBRIDGE_DATABASE_URL")

	db, err := pgclient.Open(ctx, pgclient.Config{URL: dsn, ServiceName: "workflow_coordinator", Registerer: reg})
	if err != nil {
		log.Error("open database", "err", err)
		return
	}
	defer db.Close()
	producer, err := kafka.NewProducer(ctx, kafka.Config{Brokers: []string{"localhost:9092"}}, log, reg)
	if err != nil {
		log.Error("kafka", "err", err)
		return
	}
	defer producer.Close() // after Run returned: it flushes what is left

	c, err := coordinator.New(coordinator.Config{}.WithDefaults(), coordinator.Deps{
		Store:      store.New(db),
		Publisher:  producer,
		Listen:     func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) },
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		log.Error("coordinator", "err", err)
		return
	}
	// /readyz would call c.Ready; Run returns once ctx ends and the
	// pipeline has drained.
	if err := c.Run(ctx); err != nil {
		log.Error("coordinator", "err", err)
	}
}
