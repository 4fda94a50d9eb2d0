// Package pgembed runs a local PostgreSQL server from the installed binaries,
// for `omnibridge dev`, tests and benchmarks.
//
// Start finds initdb, pg_ctl and postgres (see FindBinDir), creates a cluster
// in a temporary or given data directory, starts it on a free 127.0.0.1 port
// with its unix socket inside the data directory, and returns once it accepts
// connections:
//
//	c, err := pgembed.Start(ctx, pgembed.Config{})
//	if err != nil {
//		return err
//	}
//	defer c.Close() // stops the server and removes the temporary data directory
//	conn, err := pgx.Connect(ctx, c.URL("postgres"))
//
// PostgreSQL refuses to run as root; when the caller is root, pgembed runs
// every PostgreSQL program as the "postgres" OS user and gives it the data
// directory.
package pgembed
