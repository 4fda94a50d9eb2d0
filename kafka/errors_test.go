package kafka

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestIsBrokerWide(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("kafka: publish: %w", context.Canceled), false},
		{errors.New("something nobody anticipated"), false},

		{context.DeadlineExceeded, true},
		{ErrDeliveryTimeout, true},
		{fmt.Errorf("x: %w: %w", ErrDeliveryTimeout, kgo.ErrRecordTimeout), true},
		{kgo.ErrRecordTimeout, true},
		{fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.MessageTooLarge), true},
		{kgo.ErrRecordRetries, true},
		{kgo.ErrClientClosed, true},
		{kgo.ErrMaxBuffered, true},
		{dial, true},
		{fmt.Errorf("unable to dial: %w", dial), true},
		{&net.DNSError{Err: "no such host", Name: "kafka", IsNotFound: true}, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{net.ErrClosed, true},
		{os.ErrDeadlineExceeded, true},
		{x509.UnknownAuthorityError{}, true},

		{kerr.NotLeaderForPartition, true},
		{kerr.LeaderNotAvailable, true},
		{kerr.NotEnoughReplicas, true},
		{kerr.NotEnoughReplicasAfterAppend, true},
		{kerr.RequestTimedOut, true},
		{kerr.BrokerNotAvailable, true},
		{kerr.NetworkException, true},
		{kerr.KafkaStorageError, true},
		{kerr.UnknownTopicOrPartition, true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.ClusterAuthorizationFailed, true},
		{kerr.SaslAuthenticationFailed, true},
		{kerr.UnknownServerError, true},
		{kerr.ThrottlingQuotaExceeded, true},
		{fmt.Errorf("wrapped: %w", kerr.NotLeaderForPartition), true},

		{kerr.MessageTooLarge, false},
		{fmt.Errorf("%w (uncompressed_bytes=%d)", kerr.MessageTooLarge, 2<<20), false},
		{kerr.RecordListTooLarge, false},
		{kerr.InvalidRecord, false},
		{kerr.CorruptMessage, false},
		{kerr.InvalidTimestamp, false},
		{kerr.PolicyViolation, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, IsBrokerWide(tc.err), "IsBrokerWide(%v)", tc.err)
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tooLarge := fmt.Errorf("kafka: publish: %w: 2000000 bytes: %w", ErrRecordTooLarge, kerr.MessageTooLarge)
	require.True(t, IsPermanent(tooLarge))
	require.False(t, IsBrokerWide(tooLarge))
	require.Equal(t, "MESSAGE_TOO_LARGE", failureReason(tooLarge))
	for _, err := range []error{
		nil,
		kerr.MessageTooLarge, // from the broker: a whole batch, maybe of small records
		fmt.Errorf("%w (uncompressed_bytes=%d, compressed_bytes=%d)", kerr.MessageTooLarge, 5000, 1200),
		kerr.InvalidRecord,
		kerr.PolicyViolation,
		kerr.NotEnoughReplicas,
		ErrDeliveryTimeout,
		context.Canceled,
		errors.New("something nobody anticipated"),
	} {
		require.False(t, IsPermanent(err), "IsPermanent(%v)", err)
	}
}

func TestFailureReason(t *testing.T) {
	t.Parallel()
	require.Equal(t, "MESSAGE_TOO_LARGE", failureReason(fmt.Errorf("x: %w", kerr.MessageTooLarge)))
	require.Equal(t, "delivery_timeout", failureReason(fmt.Errorf("%w: %w", ErrDeliveryTimeout, context.DeadlineExceeded)))
	require.Equal(t, "canceled", failureReason(context.Canceled))
	require.Equal(t, "client_closed", failureReason(kgo.ErrClientClosed))
	require.Equal(t, "network", failureReason(io.EOF))
	require.Equal(t, "tls", failureReason(x509.UnknownAuthorityError{}))
	require.Equal(t, "other", failureReason(errors.New("?")))
}
