package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrDeliveryTimeout is returned by Publish for a record the broker did not
// acknowledge within Config.DeliveryTimeout. The record may or may not have
// been written; publish it again (consumers deduplicate on the event id). If
// it happens under normal load, check the cluster's health or raise
// kafka.delivery_timeout.
var ErrDeliveryTimeout = errors.New("kafka: record not acknowledged within kafka.delivery_timeout; " +
	"the cluster is unreachable or overloaded (check the brokers, or raise kafka.delivery_timeout)")

// ErrRecordTooLarge is returned by Publish for a record that does not fit in
// a record batch on its own (BatchBytes over MaxBatchBytes). Publish never
// hands it to the client, and it fails the same way every time: the event is
// too large to be published by this producer at all. The error wraps
// kerr.MessageTooLarge too. IsPermanent reports it.
var ErrRecordTooLarge = errors.New("kafka: record too large to be published, ever")

// recordErrors are the broker errors that concern the record itself: another
// record can succeed where this one fails, so retrying the same record cannot
// help and the caller should count it against that record.
var recordErrors = map[int16]bool{
	kerr.CorruptMessage.Code:     true,
	kerr.MessageTooLarge.Code:    true,
	kerr.RecordListTooLarge.Code: true,
	kerr.InvalidRecord.Code:      true,
	kerr.InvalidTimestamp.Code:   true,
	kerr.PolicyViolation.Code:    true,
}

// IsBrokerWide reports whether err means the cluster (or the way we reach
// it) is unavailable rather than that something is wrong with one record. A
// caller that gets a broker-wide error should back off as a whole and retry
// later without counting the attempt against the record; any other error
// counts against the record (and is as likely to recur on a retry).
//
// Broker-wide: dial and network failures, TLS failures, timeouts
// (ErrDeliveryTimeout, context.DeadlineExceeded, REQUEST_TIMED_OUT), leader
// and replica errors (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE,
// NOT_ENOUGH_REPLICAS, ...), authentication and authorization failures, an
// unknown topic, a closed producer, and every other Kafka error that would
// fail any record alike. Per record: CORRUPT_MESSAGE, MESSAGE_TOO_LARGE,
// RECORD_LIST_TOO_LARGE, INVALID_RECORD, INVALID_TIMESTAMP and
// POLICY_VIOLATION, whether the broker reports them or Publish does (a record
// over the batch size limit: ErrRecordTooLarge, which IsPermanent reports).
//
// IsBrokerWide(nil) is false, and so is IsBrokerWide(context.Canceled): a
// canceled publish says nothing about the broker nor the record, so callers
// check their own context first. Errors we cannot classify count as per
// record, so an unexpected failure eventually dead-letters the event with
// its error recorded instead of stalling the pipeline.
func IsBrokerWide(err error) bool {
	if err == nil {
		return false
	}
	// Timeouts first: they wrap the last retriable error, which may be
	// anything.
	if errors.Is(err, ErrDeliveryTimeout) ||
		errors.Is(err, kgo.ErrRecordTimeout) ||
		errors.Is(err, kgo.ErrRecordRetries) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return !recordErrors[ke.Code]
	}
	switch {
	case errors.Is(err, kgo.ErrClientClosed),
		errors.Is(err, kgo.ErrMaxBuffered),
		errors.Is(err, kgo.ErrAborting),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		return true
	}
	if isTLSError(err) {
		return true
	}
	return kgo.IsRetryableBrokerErr(err)
}

// IsPermanent reports whether err means that this record can never be
// published as it is: publishing it again fails the same way, so the caller
// should give up on it at once (dead-letter it) instead of spending retries on
// it. Only ErrRecordTooLarge is permanent. MESSAGE_TOO_LARGE from the broker
// is not: the broker refuses a whole batch, which may hold records that pass
// on their own, and a topic's max.message.bytes can be raised meanwhile.
// Other per-record errors (INVALID_RECORD, POLICY_VIOLATION, ...) depend on
// the broker's configuration and stay retriable too.
//
// A permanent error is never broker-wide.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrRecordTooLarge)
}

func isTLSError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	return false
}

// failureReason is the bounded label value that the failed-records metric
// uses for err: the Kafka error name, or one of a few client-side kinds.
func failureReason(err error) string {
	switch {
	case errors.Is(err, ErrDeliveryTimeout), errors.Is(err, kgo.ErrRecordTimeout):
		return "delivery_timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries_exhausted"
	case errors.Is(err, kgo.ErrClientClosed):
		return "client_closed"
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Message
	}
	if isTLSError(err) {
		return "tls"
	}
	if IsBrokerWide(err) {
		return "network"
	}
	return "other"
}
