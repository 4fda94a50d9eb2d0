package pgembed_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/pgembed"
)

func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := pgembed.Start(ctx, pgembed.Config{
		Settings: map[string]string{"max_connections": "300"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }() // stops the server, removes the temporary data directory

	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		log.Fatal(err)
	}
	fmt.Println("PostgreSQL", version, "on port", c.Port())
}

func ExampleCluster_Kill() {
	ctx := context.Background()
	c, err := pgembed.Start(ctx, pgembed.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	// Simulate a crash, then recover: committed data is still there.
	if err := c.Kill(); err != nil {
		log.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
}

func ExampleTLSConfig() {
	ctx := context.Background()
	c, err := pgembed.Start(ctx, pgembed.Config{TLS: &pgembed.TLSConfig{HostSSLOnly: true}})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	// URL uses sslmode=disable; a TLS client verifies the generated CA itself.
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {c.TLSFiles().CACert}}
	u := url.URL{Scheme: "postgres", User: url.User(c.User()), Host: fmt.Sprintf("localhost:%d", c.Port()), Path: "/postgres", RawQuery: q.Encode()}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		log.Fatal(err)
	}
	_ = conn.Close(ctx)
}

func ExampleCluster_StartReplica() {
	ctx := context.Background()
	primary, err := pgembed.Start(ctx, pgembed.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = primary.Close() }()

	replica, err := primary.StartReplica(ctx, pgembed.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = replica.Close() }()
	fmt.Println("hot standby at", replica.URL("postgres"))
}
