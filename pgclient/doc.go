// Package pgclient is omnibridge's PostgreSQL client: a pgxpool connection
// pool under supervision. It adds what pgxpool lacks and ADR-016 asks for:
//
//   - warm-up: Open returns once MinConns connections are established;
//   - an acquire timeout that fails with ErrPoolExhausted and is counted;
//   - a per-statement QueryTimeout, cancelled on the server (not just
//     abandoned), with statement_timeout as a server-side backstop;
//   - MaxQueriesPerConn and ConnMaxAge (with jitter) recycling;
//   - leak detection in HikariCP's manner, with the acquirer's stack;
//   - per-service application_name and optional SET ROLE;
//   - statement cache hit and miss counts, pipelined batches and COPY;
//   - Stats and Snapshot with ADR-016's fields, a Prometheus collector, a
//     high-utilization warning with a degradation callback, and Health;
//   - one classification of errors (Classify, IsTransient, IsRetryableTx,
//     IsPermanent) that callers use instead of matching messages;
//   - a circuit breaker (ErrUnavailable, RetryAfter) around connecting and
//     every operation, counting only transient failures;
//   - retries with exponential backoff and jitter: connecting, statements
//     that were not sent or are marked Idempotent, and whole transactions in
//     InTx after serialization failures and deadlocks;
//   - TLS built from TLSConfig (no plaintext fallback), require_auth and
//     channel binding for SCRAM, and SecurityEvents for failed connections
//     and breaker transitions.
//
// Every operation goes through one internal path (Client.run), where the
// circuit breaker and the retry policy apply.
//
// Configuration comes from Config, whose unset fields are filled from
// parameters in the connection URL and then from defaults:
//
//	client, err := pgclient.Open(ctx, pgclient.Config{
//		URL:         "postgres://app@db:5432/omnibridge?pool_max_conns=20&omnibridge_query_timeout=5s",
//		ServiceName: "hook-receiver",
//	})
//	if err != nil { ... }
//	defer client.Close()
//	var n int
//	err = client.QueryRow(ctx, "SELECT count(*) FROM omnibridge.hook_events WHERE source = $1", "github").Scan(&n)
//
// docs/pgclient.md lists every option, URL parameter, metric and health rule;
// docs/resilience.md and docs/security.md describe the breaker, retries, TLS
// and authentication.
package pgclient
