package hookreceiver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/store"
)

// TestPendingCountsTheBodyItKeeps: an envelope's payload is a slice of its
// body, which keeps the whole body's array alive while the event waits, so
// the queue's byte budget counts the body, not the payload.
func TestPendingCountsTheBodyItKeeps(t *testing.T) {
	src, err := NewSource(SourceConfig{Name: "env", Verifier: VerifierBearer, Secrets: []string{"token-0123456789abcdef"}})
	require.NoError(t, err)
	body := []byte(`{"action":"created","resource":"order","resource_id":"o-1","payload":{"amount":1},"pad":"` +
		strings.Repeat("x", 1<<20) + `"}`)
	ev, err := src.Extract(http.Header{}, body)
	require.NoError(t, err)
	require.Less(t, len(ev.Payload), 100, "the payload is a small slice of the body")
	r, err := New(Config{}, Deps{Store: store.New(nil)})
	require.NoError(t, err)
	p, herr := r.newPending(ev, body)
	require.Nil(t, herr)
	require.GreaterOrEqual(t, p.size, int64(cap(body)))
}
