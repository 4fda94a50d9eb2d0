package hookreceiver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/testdb"
	"github.com/omnibridge/omnibridge/migrations"
	"github.com/omnibridge/omnibridge/pgembed"
)

// The crash tests check the promise itself: while PostgreSQL restarts, while
// it is killed, and while the receiver process is killed, every event that
// got a 2xx is stored exactly once, nothing is stored that was not sent, and
// senders that retry every other answer get all their events in.
const (
	crashEvents  = 10000
	crashSenders = 32
	crashSource  = "crash"
	crashToken   = "crash-token-0123456789abcdef"
	// crashChildEnv carries the child receiver's settings (JSON); its
	// presence makes TestCrashChild run the receiver.
	crashChildEnv = "HOOKRECEIVER_CRASH_CHILD"
)

func crashConfig() hookreceiver.Config {
	return hookreceiver.Config{
		Sources:       []hookreceiver.SourceConfig{{Name: crashSource, Verifier: hookreceiver.VerifierBearer, Secrets: []string{crashToken}}},
		CommitTimeout: 5 * time.Second,
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests start their own PostgreSQL and send 10k webhooks per fault")
	}
	t.Parallel() // its own cluster: the other tests are not affected by its faults
	cl := testdb.NewCluster(t, pgembed.Config{})
	newDB := crashDatabases(t, cl)

	t.Run("database_down", func(t *testing.T) {
		b := startBundle(t, func(o *options) { o.dbURL = newDB(t); o.cfg = crashConfig() })
		tok := bearer(crashToken)
		rep := b.post(t, crashSource, envelope("d-before"), tok)
		require.Equal(t, http.StatusAccepted, rep.Status, rep.Raw)

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, cl.Stop(ctx, pgembed.StopFast))
		for range 3 { // broken pooled connections, then refused new ones
			rep = b.post(t, crashSource, envelope("d-down"), tok)
			require.Equal(t, http.StatusServiceUnavailable, rep.Status, rep.Raw)
			require.Equal(t, hookreceiver.CodeUnavailable, rep.Code)
			secs, err := strconv.Atoi(rep.RetryAfter)
			require.NoError(t, err)
			require.GreaterOrEqual(t, secs, 1)
		}
		resp, err := b.client.Get(b.base + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

		require.NoError(t, cl.Start(ctx))
		require.Eventually(t, func() bool {
			rep = b.post(t, crashSource, envelope("d-down"), tok)
			return rep.Status == http.StatusAccepted
		}, time.Minute, 50*time.Millisecond, "the event refused while the database was down goes in once it is back")
		require.Equal(t, 1, b.countEvents(t, crashSource, "d-down"))
	})

	inProcess := func(fault func(ctx context.Context) error) func(t *testing.T) {
		return func(t *testing.T) {
			b := startBundle(t, func(o *options) { o.dbURL = newDB(t); o.cfg = crashConfig(); o.poolMax = 16 })
			res := runCrashLoad(t, b.base, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				return fault(ctx)
			})
			checkCrashResult(t, b.dbURL, res)
		}
	}
	t.Run("postgres_restart", inProcess(func(ctx context.Context) error {
		return cl.Restart(ctx, pgembed.StopFast)
	}))
	t.Run("postgres_kill", inProcess(func(ctx context.Context) error {
		if err := cl.Kill(); err != nil {
			return err
		}
		return cl.Start(ctx)
	}))
	t.Run("receiver_sigkill", func(t *testing.T) {
		dbURL := newDB(t)
		addr := freeAddr(t)
		child, err := startChild(t, cl.URL("postgres"), dbURL, addr)
		require.NoError(t, err)
		res := runCrashLoad(t, "http://"+addr, func() error {
			if err := child.kill(); err != nil {
				return err
			}
			child, err = startChild(t, cl.URL("postgres"), dbURL, addr)
			return err
		})
		require.NoError(t, child.terminate())
		checkCrashResult(t, dbURL, res)
	})
}

// crashDatabases migrates a template database in cl and returns a function
// that creates a fresh copy of it for a test.
func crashDatabases(t *testing.T, cl *pgembed.Cluster) func(t *testing.T) string {
	admin := func(t *testing.T, sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, cl.URL("postgres"))
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	admin(t, "CREATE DATABASE crash_template")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := migrations.OpenDB(ctx, cl.URL("crash_template"))
	require.NoError(t, err)
	_, err = migrations.Up(ctx, db)
	require.NoError(t, db.Close())
	require.NoError(t, err)
	n := 0
	return func(t *testing.T) string {
		n++
		name := fmt.Sprintf("crash_%d", n)
		admin(t, "CREATE DATABASE "+name+" TEMPLATE crash_template")
		return cl.URL(name)
	}
}

// crashResult is what the senders saw.
type crashResult struct {
	acked      map[string]string // delivery id → event id of its 2xx
	duplicates int               // 2xx answers that were redeliveries of a lost answer
	retries    int
	statuses   map[int]int // non-2xx answers; -1: transport errors
}

// runCrashLoad sends crashEvents events from crashSenders senders, each
// retrying every non-2xx with the same delivery id, and runs fault once a
// third of the events have been acknowledged.
func runCrashLoad(t *testing.T, base string, fault func() error) crashResult {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: crashSenders}}
	defer client.CloseIdleConnections()
	var acks atomic.Int64
	var mu sync.Mutex
	res := crashResult{acked: make(map[string]string, crashEvents), statuses: map[int]int{}}
	deadline := time.Now().Add(3 * time.Minute)
	faultDone := make(chan error, 1)
	sendersDone := make(chan struct{})
	go func() {
		for acks.Load() < crashEvents/3 {
			select {
			case <-sendersDone:
				faultDone <- fmt.Errorf("the senders stopped after %d acknowledgements, before the fault", acks.Load())
				return
			case <-time.After(time.Millisecond):
			}
		}
		start := time.Now()
		err := fault()
		t.Logf("fault injected after %d acknowledgements, recovered in %s", crashEvents/3, time.Since(start).Round(time.Millisecond))
		faultDone <- err
	}()

	var wg sync.WaitGroup
	errs := make(chan error, crashSenders)
	for s := range crashSenders {
		wg.Go(func() {
			tok := bearer(crashToken)
			for i := s; i < crashEvents; i += crashSenders {
				delivery := fmt.Sprintf("s%02d-%05d", s, i)
				body := bodyWithPayload(delivery, map[string]any{"sender": s, "n": i})
				for attempt := 0; ; attempt++ {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("sender %d: %s not acknowledged before the deadline", s, delivery)
						return
					}
					rep, err := postTo(client, base, crashSource, body, tok)
					if err == nil && (rep.Status == http.StatusAccepted || rep.Status == http.StatusOK) {
						mu.Lock()
						res.acked[delivery] = rep.ID
						if rep.Duplicate {
							res.duplicates++
						}
						res.retries += attempt
						mu.Unlock()
						acks.Add(1)
						break
					}
					status := -1
					if err == nil {
						status = rep.Status
						if status != http.StatusServiceUnavailable {
							errs <- fmt.Errorf("sender %d: %s answered %d: %s", s, delivery, status, rep.Raw)
							return
						}
					}
					mu.Lock()
					res.statuses[status]++
					mu.Unlock()
					time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond << min(attempt, 5))
				}
			}
		})
	}
	wg.Wait()
	close(sendersDone)
	if err := <-faultDone; err != nil {
		t.Errorf("fault: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("acknowledged %d events (%d as redeliveries of a lost answer) after %d retries; refusals: %v",
		len(res.acked), res.duplicates, res.retries, res.statuses)
	return res
}

// checkCrashResult compares the stored events with what was acknowledged.
func checkCrashResult(t *testing.T, dbURL string, res crashResult) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT delivery_id, id::text, payload FROM omnibridge.hook_events WHERE source = $1`, crashSource)
	require.NoError(t, err)
	stored := map[string]string{}
	var delivery, id string
	var payload struct {
		Sender int `json:"sender"`
		N      int `json:"n"`
	}
	_, err = pgx.ForEachRow(rows, []any{&delivery, &id, &payload}, func() error {
		if _, dup := stored[delivery]; dup {
			return fmt.Errorf("delivery %s is stored twice", delivery)
		}
		if want := fmt.Sprintf("s%02d-%05d", payload.Sender, payload.N); want != delivery {
			return fmt.Errorf("stored event %s has delivery id %s but payload of %s: it was never sent", id, delivery, want)
		}
		stored[delivery] = id
		return nil
	})
	require.NoError(t, err)
	for d, ackedID := range res.acked {
		got, ok := stored[d]
		require.True(t, ok, "acknowledged event %s is missing", d)
		require.Equal(t, ackedID, got, "acknowledged id of %s", d)
	}
	require.Len(t, res.acked, crashEvents, "every sender got every event in")
	require.Len(t, stored, crashEvents, "nothing stored that was never sent")
	var deliveries int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM omnibridge.hook_event_deliveries WHERE source = $1`, crashSource).Scan(&deliveries))
	require.Equal(t, crashEvents, deliveries)
}
