// Package pgembed runs a local PostgreSQL server from the installed binaries,
// for `omnibridge dev`, tests and benchmarks.
//
// Start finds initdb, pg_ctl and postgres (see FindBinDir), creates a cluster
// in a temporary or given data directory (or reuses one), starts it on a free
// 127.0.0.1 port and returns once it accepts connections:
//
//	c, err := pgembed.Start(ctx, pgembed.Config{})
//	if err != nil {
//		return err
//	}
//	defer c.Close() // stops the server and removes the temporary data directory
//	conn, err := pgx.Connect(ctx, c.URL("postgres"))
//
// A Cluster can be stopped (smart, fast or immediate), restarted on the same
// port, killed with SIGKILL to simulate a crash, and copied into a streaming
// hot standby with StartReplica. TLSConfig turns on TLS with a CA, server
// and client certificates generated at start.
//
// Besides PostgreSQL's own files, the data directory holds what pgembed
// manages: pgembed.conf (included from postgresql.conf and rewritten on every
// start with Config.Settings), pg_hba.conf (rewritten on every start),
// pgembed.log (the server log), pgembed_socket/ (the unix socket) and
// pgembed_tls/ (certificates and keys).
//
// PostgreSQL refuses to run as root. When the caller is root, pgembed runs
// initdb, pg_ctl, postgres and pg_basebackup as the "postgres" OS user and
// gives it the data directory; every directory above the data directory must
// be searchable by that user. The server runs in its own session, so a Ctrl-C
// sent to the caller's terminal does not stop it: call Stop or Close.
package pgembed
