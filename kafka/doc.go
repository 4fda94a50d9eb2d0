// Package kafka publishes hook events to Kafka and runs an in-process Kafka
// for development and tests.
//
// Producer is the production publisher on franz-go: idempotent, acks from all
// in-sync replicas, a bounded delivery time per record, TLS and SASL
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) from Config. Publish hands a batch
// of messages to the client at once and reports, per message, whether the
// broker acknowledged it; IsBrokerWide tells a cluster outage (back off,
// don't count the attempt) from a record the broker refuses (count it), and
// IsPermanent a record that can never be published (too large for a batch of
// its own: give up at once).
//
// Broker is franz-go's kfake cluster on 127.0.0.1 with the topic created. It
// speaks the Kafka protocol, so `omnibridge dev` and the tests run the very
// same Producer against it, and its control functions inject broker errors.
// Tail and ReadAll read the topic back.
//
// The delivery guarantee is at least once: a record Publish reports as
// failed may still have been written (a timeout cannot tell), so the caller
// publishes it again and consumers deduplicate on the event id header.
package kafka
