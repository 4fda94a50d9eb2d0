package hookreceiver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQueueTakesOneEventLargerThanItsBudget: body limit + metadata + overhead
// may exceed queue_bytes (validation only asks for the body limit); an empty
// queue still takes such an event, which would otherwise be refused 503
// forever.
func TestQueueTakesOneEventLargerThanItsBudget(t *testing.T) {
	t.Parallel()
	const limit = 4096
	b := startBundle(t, func(o *options) {
		o.cfg.BodyLimit = limit
		o.cfg.Batch.QueueBytes = limit
	})
	body := []byte(`{"action":"created","resource":"order","resource_id":"o-1","delivery_id":"qb-1",` +
		`"payload":{"note":"` + strings.Repeat("y", 3900) + `"}}`)
	require.Less(t, len(body), limit)
	rep := b.post(t, "internal", body, bearer(internalToken))
	require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)
	require.Equal(t, 0.0, b.metric(t, `omnibridge_hookreceiver_queue_bytes`), "answered events give their bytes back")
}
