package bench

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ingestSecret signs the benchmark's webhooks (verifier github).
const ingestSecret = "bench-ingest-secret-0123456789"

// target is one server under load and what its senders measured.
type target struct {
	srv     *server
	senders []*sender

	sent      int64 // 2xx answers in the whole run
	refused   int64 // other answers and transport errors
	seconds   float64
	latencies []time.Duration // of the measured 2xx answers
	peakRSS   int64
	rssReset  bool
	// CPU used during the measured turns, and the 2xx answers it bought.
	cpuEvents  int64
	processCPU time.Duration
	pgCPU      time.Duration
	pgCPUKnown bool
}

func newTarget(srv *server, opts IngestOptions) *target {
	t := &target{srv: srv, peakRSS: -1, rssReset: true, pgCPUKnown: true}
	for i := range opts.Concurrency {
		t.senders = append(t.senders, &sender{id: i, addr: srv.addr, path: srv.path, prefix: srv.name,
			mac: hmac.New(sha256.New, []byte(ingestSecret)), bodySize: opts.BodySize})
	}
	return t
}

func (t *target) close() {
	for _, s := range t.senders {
		s.disconnect()
	}
}

// rotate warms each target up, then measures them in turns: Duration (or
// Count) split into slices, the order alternating every round.
func rotate(ctx context.Context, pool *pgxpool.Pool, targets []*target, opts IngestOptions) error {
	for _, t := range targets {
		opts.Progress("warm-up: " + t.srv.name)
		switch {
		case opts.Warmup < 0:
		case opts.Count > 0:
			var tickets atomic.Int64
			warm := int64(min(opts.Count/10, 2000))
			t.phase(ctx, false, func() bool { return tickets.Add(1) <= warm })
		default:
			until := time.Now().Add(opts.Warmup)
			t.phase(ctx, false, func() bool { return time.Now().Before(until) })
		}
	}
	rounds, per := 1, opts.Count
	if opts.Count > 0 {
		rounds = (opts.Count + ingestSliceCount - 1) / ingestSliceCount
		per = opts.Count / rounds
	} else {
		rounds = max(1, int((opts.Duration+opts.Slice/2)/opts.Slice))
	}
	slice := opts.Duration / time.Duration(rounds)
	opts.Progress("measuring both servers in turns")
	for round := range rounds {
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			n := int64(per)
			if opts.Count > 0 && round == rounds-1 {
				n = int64(opts.Count - per*(rounds-1))
			}
			reset := resetPeakRSS()
			sent0, proc0 := t.sent, processCPU()
			pg0, pgOK0 := postgresCPU(ctx, pool)
			start := time.Now()
			if opts.Count > 0 {
				var tickets atomic.Int64
				t.phase(ctx, true, func() bool { return tickets.Add(1) <= n })
			} else {
				until := start.Add(slice)
				t.phase(ctx, true, func() bool { return time.Now().Before(until) })
			}
			t.seconds += time.Since(start).Seconds()
			proc1 := processCPU()
			pg1, pgOK1 := postgresCPU(ctx, pool)
			t.cpuEvents += t.sent - sent0
			t.processCPU += proc1 - proc0
			t.pgCPU += pg1 - pg0
			t.pgCPUKnown = t.pgCPUKnown && pgOK0 && pgOK1
			t.rssReset = t.rssReset && reset
			t.peakRSS = max(t.peakRSS, peakRSS())
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// phase runs every sender of t until more returns false, each sending its
// next webhook when the previous one is answered.
func (t *target) phase(ctx context.Context, measure bool, more func() bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range t.senders {
		wg.Go(func() {
			var sent, refused int64
			var lat []time.Duration
			for more() && ctx.Err() == nil {
				start := time.Now()
				if !s.send(ctx) {
					refused++
					time.Sleep(time.Millisecond) // do not spin on a failing server
					continue
				}
				sent++
				if measure {
					lat = append(lat, time.Since(start))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.sent += sent
			t.refused += refused
			t.latencies = append(t.latencies, lat...)
		})
	}
	wg.Wait()
}

// run returns t's figures.
func (t *target) run() IngestRun {
	slices.Sort(t.latencies)
	run := IngestRun{
		Name:         t.srv.name,
		Acknowledged: int64(len(t.latencies)),
		Seconds:      t.seconds,
		P50Ms:        percentileMs(t.latencies, 0.50),
		P99Ms:        percentileMs(t.latencies, 0.99),
		MaxMs:        percentileMs(t.latencies, 1),
		Refused:      t.refused,
		Sent:         t.sent,
		PeakRSSBytes: t.peakRSS,
		PeakRSSReset: t.rssReset && t.peakRSS > 0,
	}
	if t.seconds > 0 {
		run.Rate = float64(run.Acknowledged) / t.seconds
	}
	run.ProcessCPUPerEventUs, run.PostgresCPUPerEventUs = -1, -1
	if t.cpuEvents > 0 {
		perEvent := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(t.cpuEvents) }
		run.ProcessCPUPerEventUs = perEvent(t.processCPU)
		if t.pgCPUKnown {
			run.PostgresCPUPerEventUs = perEvent(t.pgCPU)
		}
	}
	return run
}

// sender posts webhooks one after another on one kept-alive HTTP/1.1
// connection. It writes each request in one piece and reads the answer with
// http.ReadResponse: a lighter client than http.Client (no transport
// goroutines), so that the load generator takes as little as possible of the
// CPU it shares with the servers and the database.
type sender struct {
	id       int
	addr     string // host:port
	path     string
	prefix   string
	mac      hash.Hash
	bodySize int
	seq      int
	conn     net.Conn
	rd       *bufio.Reader
	req      []byte
}

// senderTimeout bounds one request and its answer.
const senderTimeout = 30 * time.Second

// send posts the sender's next webhook and reports whether it was
// acknowledged (2xx). Any failure closes the connection; the next send opens
// a new one.
func (s *sender) send(ctx context.Context) bool {
	s.seq++
	body := s.body()
	s.mac.Reset()
	s.mac.Write(body)
	r := append(s.req[:0], "POST "...)
	r = append(r, s.path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, s.addr...)
	r = append(r, "\r\nContent-Type: application/json\r\nUser-Agent: GitHub-Hookshot/omnibridge-bench\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: "...)
	r = append(r, s.prefix...)
	r = append(r, '-')
	r = strconv.AppendInt(r, int64(s.id), 10)
	r = append(r, '-')
	r = strconv.AppendInt(r, int64(s.seq), 10)
	r = append(r, "\r\nX-Hub-Signature-256: sha256="...)
	r = hex.AppendEncode(r, s.mac.Sum(nil))
	r = append(r, "\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, body...)
	s.req = r
	if s.conn == nil {
		d := net.Dialer{Timeout: senderTimeout}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return false
		}
		s.conn, s.rd = c, bufio.NewReaderSize(c, 4096)
	}
	_ = s.conn.SetDeadline(time.Now().Add(senderTimeout))
	if _, err := s.conn.Write(r); err != nil {
		s.disconnect()
		return false
	}
	resp, err := http.ReadResponse(s.rd, nil)
	if err != nil {
		s.disconnect()
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		s.disconnect()
	}
	return resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK
}

func (s *sender) disconnect() {
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.rd = nil, nil
	}
}

// body is a GitHub issues event padded to bodySize bytes, in a fresh slice
// (the transport may still hold the previous one).
func (s *sender) body() []byte {
	b := make([]byte, 0, s.bodySize+64)
	b = append(b, `{"action":"opened","issue":{"number":`...)
	b = strconv.AppendInt(b, int64(s.seq), 10)
	b = append(b, `,"title":"Benchmark issue from sender `...)
	b = strconv.AppendInt(b, int64(s.id), 10)
	b = append(b, `","body":"`...)
	const tail = `"},"repository":{"id":4242,"full_name":"acme/widgets"},"sender":{"login":"octocat"}}`
	for len(b) < s.bodySize-len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// percentileMs returns the p-quantile (0 < p ≤ 1) of sorted durations in
// milliseconds, nearest rank.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}
