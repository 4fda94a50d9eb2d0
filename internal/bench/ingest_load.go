package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ingestSecret signs the benchmark's webhooks (verifier github).
const ingestSecret = "bench-ingest-secret-0123456789"

// loadResult is what the senders measured against one server.
type loadResult struct {
	measured  int64           // 2xx answers in the measured phase
	sent      int64           // 2xx answers in the whole run
	refused   int64           // other answers and transport errors
	seconds   float64         // length of the measured phase
	latencies []time.Duration // of the measured phase's 2xx answers
}

// sender posts webhooks one after another.
type sender struct {
	id        int
	url       string
	prefix    string
	client    *http.Client
	mac       hash.Hash
	bodySize  int
	seq       int
	sig       []byte
	latencies []time.Duration
}

// runLoad sends to url from opts.Concurrency senders: a warm-up, then the
// measured phase (for opts.Duration, or until opts.Count answers).
func runLoad(ctx context.Context, url, prefix string, opts IngestOptions) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: opts.Concurrency, DisableCompression: true, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	senders := make([]*sender, opts.Concurrency)
	for i := range senders {
		senders[i] = &sender{id: i, url: url, prefix: prefix, client: client,
			mac: hmac.New(sha256.New, []byte(ingestSecret)), bodySize: opts.BodySize}
	}
	var res loadResult
	var sent, refused atomic.Int64
	phase := func(measure bool, more func() bool) {
		var wg sync.WaitGroup
		for _, s := range senders {
			wg.Go(func() {
				for more() && ctx.Err() == nil {
					start := time.Now()
					ok := s.send(ctx)
					if !ok {
						refused.Add(1)
						time.Sleep(time.Millisecond) // do not spin on a failing server
						continue
					}
					sent.Add(1)
					if measure {
						s.latencies = append(s.latencies, time.Since(start))
					}
				}
			})
		}
		wg.Wait()
	}

	switch {
	case opts.Count > 0:
		warm := int64(min(opts.Count/10, 2000))
		if opts.Warmup < 0 {
			warm = 0
		}
		var tickets atomic.Int64
		phase(false, func() bool { return tickets.Add(1) <= warm })
		tickets.Store(0)
		start := time.Now()
		phase(true, func() bool { return tickets.Add(1) <= int64(opts.Count) })
		res.seconds = time.Since(start).Seconds()
	default:
		if opts.Warmup > 0 {
			until := time.Now().Add(opts.Warmup)
			phase(false, func() bool { return time.Now().Before(until) })
		}
		start := time.Now()
		until := start.Add(opts.Duration)
		phase(true, func() bool { return time.Now().Before(until) })
		res.seconds = time.Since(start).Seconds()
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, s := range senders {
		res.latencies = append(res.latencies, s.latencies...)
	}
	slices.Sort(res.latencies)
	res.measured = int64(len(res.latencies))
	res.sent, res.refused = sent.Load(), refused.Load()
	return res, nil
}

// send posts the sender's next webhook and reports whether it was
// acknowledged (2xx).
func (s *sender) send(ctx context.Context) bool {
	s.seq++
	body := s.body()
	s.mac.Reset()
	s.mac.Write(body)
	s.sig = append(s.sig[:0], "sha256="...)
	s.sig = hex.AppendEncode(s.sig, s.mac.Sum(nil))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"GitHub-Hookshot/omnibridge-bench"}
	h["X-Github-Event"] = []string{"issues"}
	h["X-Github-Delivery"] = []string{s.prefix + "-" + strconv.Itoa(s.id) + "-" + strconv.Itoa(s.seq)}
	h["X-Hub-Signature-256"] = []string{string(s.sig)}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK
}

// body is a GitHub issues event padded to bodySize bytes. It is a fresh
// slice: the server may hold it until the answer.
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

// fill sets the measured figures of run from the load.
func (run *IngestRun) fill(l loadResult) {
	run.Acknowledged = l.measured
	run.Seconds = l.seconds
	if l.seconds > 0 {
		run.Rate = float64(l.measured) / l.seconds
	}
	run.P50Ms = percentileMs(l.latencies, 0.50)
	run.P99Ms = percentileMs(l.latencies, 0.99)
	run.MaxMs = percentileMs(l.latencies, 1)
	run.Refused = l.refused
	run.Sent = l.sent
}

func (run IngestRun) String() string {
	return fmt.Sprintf("%s: %.0f events/s, p50 %.2f ms, p99 %.2f ms, lost %d", run.Name, run.Rate, run.P50Ms, run.P99Ms, run.Lost)
}
