package hookreceiver_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/hookreceiver"
)

func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	b := startBundle(t, func(o *options) { o.svc.ReadHeaderTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", b.base[len("http://"):])
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /hooks/internal HTTP/1.1\r\nHost: test\r\n")
	require.NoError(t, err)

	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	// A slowloris client: a header line every 50ms, never the blank line.
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-closed:
			// Cut off; the server still serves others.
			rep := b.post(t, "internal", envelope("d-after-slow"), bearer(internalToken))
			require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)
			return
		case <-deadline:
			t.Fatal("the server kept a connection whose headers never ended for 30s")
		case <-time.After(50 * time.Millisecond):
			if _, err := io.WriteString(conn, "X-Slow-"+strconv.Itoa(i)+": a\r\n"); err != nil {
				<-closed
			}
		}
	}
}

func TestBodyReadStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	b := startBundle(t, nil)
	// A chunked body (no Content-Length) that offers limit+64 KiB and then
	// blocks: the answer can only come if the server stops reading at the
	// limit.
	body := &blockingBody{left: smallBodyLimit + 64<<10, release: make(chan struct{})}
	defer close(body.release)
	req, err := http.NewRequest(http.MethodPost, b.base+"/hooks/small", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+internalToken)
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	rep, err := readReply(resp)
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestEntityTooLarge, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeBodyTooLarge, rep.Code)
}

func TestOversizedBodyIsNotReadOnAfterTheAnswer(t *testing.T) {
	t.Parallel()
	b := startBundle(t, func(o *options) { o.svc.ReadTimeout = 2 * time.Minute })
	for _, declared := range []int64{smallBodyLimit + 100<<10, 10 << 20} { // under and over net/http's 256 KiB drain
		conn, err := net.Dial("tcp", b.base[len("http://"):])
		require.NoError(t, err)
		_, err = io.WriteString(conn, "POST /hooks/small HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"+
			"Authorization: Bearer "+internalToken+"\r\nContent-Length: "+strconv.FormatInt(declared, 10)+"\r\n\r\n")
		require.NoError(t, err)
		// Send a little more than the limit, then nothing: a server that
		// went on reading the body would wait for the rest until its read
		// timeout.
		_, err = conn.Write(make([]byte, smallBodyLimit+1000))
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		rep, err := readReply(resp)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestEntityTooLarge, rep.Status, rep.Raw)
		require.True(t, resp.Close, "the answer announces that the connection closes")
		closed := make(chan error, 1)
		go func() {
			_, err := conn.Read(make([]byte, 1))
			closed <- err
		}()
		select {
		case err := <-closed:
			require.Error(t, err, "the server closed the connection (EOF, or a reset for the unread bytes)")
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "declared %d: %v", declared, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("declared %d: the server kept reading the refused body", declared)
		}
		conn.Close()
	}
}

// blockingBody yields left bytes of 'x', then blocks until release.
type blockingBody struct {
	left    int64
	release chan struct{}
}

func (r *blockingBody) Read(p []byte) (int, error) {
	if r.left == 0 {
		<-r.release
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range n {
		p[i] = 'x'
	}
	r.left -= n
	return int(n), nil
}

// lockDeliveries holds a lock that makes every insert of an event with a
// delivery id wait, until the returned function is called.
func lockDeliveries(t *testing.T, b *bundle) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE omnibridge.hook_event_deliveries IN SHARE MODE`)
	require.NoError(t, err)
	var once sync.Once
	release = func() { once.Do(func() { require.NoError(t, tx.Rollback(ctx)) }) }
	t.Cleanup(release)
	return release
}

// waitLockWaiters waits until n statements wait for a lock.
func waitLockWaiters(t *testing.T, b *bundle, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting int
		err := b.db.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_locks WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).
			Scan(&waiting)
		return err == nil && waiting >= n
	}, 30*time.Second, 5*time.Millisecond)
}

// postAsync sends in the background; the reply arrives on the channel.
func (b *bundle) postAsync(source string, body []byte, h http.Header) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		rep, err := postTo(b.client, b.base, source, body, h)
		if err != nil {
			rep.Status, rep.Error = -1, err.Error()
		}
		ch <- rep
	}()
	return ch
}

func TestQueueFullIsAnswered503AtOnce(t *testing.T) {
	t.Parallel()
	b := startBundle(t, func(o *options) {
		o.cfg.Batch = hookreceiver.BatchConfig{QueueSize: 1, MaxSize: 1, Writers: 1, MaxWait: -1}
		o.cfg.CommitTimeout = time.Minute
		o.cfg.RetryAfter = 2 * time.Second
	})
	release := lockDeliveries(t, b)
	tok := bearer(internalToken)
	first := b.postAsync("internal", envelope("d-q1"), tok)
	waitLockWaiters(t, b, 1) // the writer holds the first event
	second := b.postAsync("internal", envelope("d-q2"), tok)
	require.Eventually(t, func() bool { return b.metric(t, "omnibridge_hookreceiver_queue_depth") == 1 },
		30*time.Second, 5*time.Millisecond)

	rep := b.post(t, "internal", envelope("d-q3"), tok)
	require.Equal(t, http.StatusServiceUnavailable, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeQueueFull, rep.Code)
	require.Equal(t, "2", rep.RetryAfter)
	resp, err := b.client.Get(b.base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a saturated queue is not ready")

	release()
	for _, ch := range []<-chan reply{first, second} {
		rep := <-ch
		require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw+rep.Error)
	}
	require.Equal(t, 2, b.countEvents(t, "internal", ""))
	rep = b.post(t, "internal", envelope("d-q3"), tok)
	require.Equal(t, http.StatusAccepted, rep.Status, "the refused event goes in when resent")
}

func TestShutdownAnswersInFlightEvents(t *testing.T) {
	t.Parallel()
	b := startBundle(t, func(o *options) {
		o.cfg.Batch = hookreceiver.BatchConfig{MaxSize: 2, Writers: 1, MaxWait: -1}
	})
	release := lockDeliveries(t, b)
	tok := bearer(internalToken)
	var replies []<-chan reply
	replies = append(replies, b.postAsync("internal", envelope("d-s0"), tok))
	waitLockWaiters(t, b, 1)
	for i := 1; i < 5; i++ {
		replies = append(replies, b.postAsync("internal", envelope("d-s"+strconv.Itoa(i)), tok))
	}
	require.Eventually(t, func() bool { return b.metric(t, "omnibridge_hookreceiver_queue_depth") == 4 },
		30*time.Second, 5*time.Millisecond)

	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }() // SIGTERM
	select {
	case err := <-stopped:
		t.Fatalf("shutdown finished before the in-flight events were committed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	require.NoError(t, <-stopped)
	for _, ch := range replies {
		rep := <-ch
		require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw+rep.Error)
	}
	require.Equal(t, 5, b.countEvents(t, "internal", ""))
	_, err := net.DialTimeout("tcp", b.base[len("http://"):], time.Second)
	require.Error(t, err, "the listener is closed after shutdown")
}

// poisonTrigger makes the database refuse events whose payload has the key
// "poison" with a data exception (22023), and those with "broken" with an
// error that is no row's fault (P0001).
const poisonTrigger = `
CREATE FUNCTION omnibridge.test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload ? 'poison' THEN
        RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22023';
    END IF;
    IF NEW.payload ? 'broken' THEN
        RAISE EXCEPTION 'broken database';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_poison BEFORE INSERT ON omnibridge.hook_events
    FOR EACH ROW EXECUTE FUNCTION omnibridge.test_poison();`

func bodyWithPayload(delivery string, payload map[string]any) []byte {
	return mustJSON(map[string]any{"action": "a", "resource": "r", "resource_id": "1", "delivery_id": delivery, "payload": payload})
}

func TestPoisonRowIsIsolatedFromItsBatch(t *testing.T) {
	t.Parallel()
	b := startBundle(t, func(o *options) {
		o.cfg.Batch = hookreceiver.BatchConfig{MaxSize: 64, Writers: 1, MaxWait: 50 * time.Millisecond}
	})
	_, err := b.db.Exec(context.Background(), poisonTrigger)
	require.NoError(t, err)

	release := lockDeliveries(t, b)
	tok := bearer(internalToken)
	blocker := b.postAsync("internal", envelope("d-blocker"), tok)
	waitLockWaiters(t, b, 1)
	const n = 12
	replies := make([]<-chan reply, n)
	for i := range n {
		payload := map[string]any{"i": i}
		if i == 7 {
			payload["poison"] = true
		}
		replies[i] = b.postAsync("internal", bodyWithPayload("d-p"+strconv.Itoa(i), payload), tok)
	}
	require.Eventually(t, func() bool { return b.metric(t, "omnibridge_hookreceiver_queue_depth") == n },
		30*time.Second, 5*time.Millisecond)
	release()

	require.Equal(t, http.StatusAccepted, (<-blocker).Status)
	for i, ch := range replies {
		rep := <-ch
		if i == 7 {
			require.Equal(t, http.StatusBadRequest, rep.Status, rep.Raw)
			require.Equal(t, hookreceiver.CodeRejected, rep.Code)
			continue
		}
		require.Equal(t, http.StatusAccepted, rep.Status, "innocent event %d: %s", i, rep.Raw)
	}
	require.Equal(t, n, b.countEvents(t, "internal", ""), "the blocker and every innocent event")
	require.Zero(t, b.countEvents(t, "internal", "d-p7"))
	require.Equal(t, 1.0, b.metric(t, "omnibridge_hookreceiver_rejected_rows_total"))
	require.GreaterOrEqual(t, b.metric(t, `omnibridge_hookreceiver_batch_failures_total{reason="rows"}`), 1.0)

	// An error that is no row's fault fails its batch with 503, not 400.
	rep := b.post(t, "internal", bodyWithPayload("d-broken", map[string]any{"broken": true}), tok)
	require.Equal(t, http.StatusServiceUnavailable, rep.Status, rep.Raw)
	require.Equal(t, hookreceiver.CodeDatabaseError, rep.Code)
	require.NotEmpty(t, rep.RetryAfter)
}
