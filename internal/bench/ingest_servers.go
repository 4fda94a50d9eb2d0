package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/service"
	"github.com/omnibridge/omnibridge/store"
)

// ingestSource is the benchmark's source: GitHub signatures and mapping.
func ingestSource(name string) hookreceiver.SourceConfig {
	return hookreceiver.SourceConfig{Name: name, Verifier: hookreceiver.VerifierGitHub, Secrets: []string{ingestSecret}}
}

// server is a running server under test.
type server struct {
	name     string // "naive" or "hook_receiver"; also the delivery id prefix
	source   string // the events' source
	addr     string // host:port
	path     string // where to POST
	stop     func() error
	avgBatch func() float64 // mean group-commit batch; 0 for the naive server
}

// startNaive starts the naive server: for each request the same checks,
// verification and mapping as the receiver, then one Store.InsertEvent on a
// bare pgxpool, answered when it returns.
func startNaive(ctx context.Context, dbURL string, opts IngestOptions) (*server, error) {
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("bench ingest: %w", err)
	}
	pcfg.MaxConns, pcfg.MinConns = opts.NaiveConns, opts.NaiveConns
	pcfg.ConnConfig.RuntimeParams["application_name"] = "omnibridge_bench_naive"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("bench ingest: naive pool: %w", err)
	}
	src, err := hookreceiver.NewSource(ingestSource("bench-naive"))
	if err != nil {
		pool.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return nil, err
	}
	srv := &http.Server{
		Handler:           &naiveHandler{src: src, store: store.New(pool)},
		ReadHeaderTimeout: service.DefaultReadHeaderTimeout, ReadTimeout: service.DefaultReadTimeout,
		WriteTimeout: service.DefaultWriteTimeout, IdleTimeout: service.DefaultIdleTimeout,
		MaxHeaderBytes: service.DefaultMaxHeaderBytes,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return &server{
		name: "naive", source: "bench-naive", addr: ln.Addr().String(), path: "/hooks/bench-naive",
		avgBatch: func() float64 { return 0 },
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := srv.Shutdown(ctx)
			if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
			pool.Close()
			if err != nil {
				return fmt.Errorf("bench ingest: naive server: %w", err)
			}
			return nil
		},
	}, nil
}

// naiveHandler is what a webhook server without group commit does.
type naiveHandler struct {
	src   *hookreceiver.Source
	store *store.Store
}

func (h *naiveHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q,"code":%q}`+"\n", http.StatusText(status), code)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		fail(http.StatusUnsupportedMediaType, "unsupported_media_type")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, hookreceiver.BodyLimitDefault))
	if err != nil {
		fail(http.StatusRequestEntityTooLarge, "body_too_large")
		return
	}
	if err := h.src.Verify(r.Header, body, time.Now()); err != nil {
		fail(http.StatusUnauthorized, hookreceiver.AuthCode(err))
		return
	}
	ev, err := h.src.Extract(r.Header, body)
	if err != nil {
		fail(http.StatusBadRequest, hookreceiver.PayloadCode(err))
		return
	}
	meta, err := json.Marshal(ev.Metadata)
	if err != nil {
		fail(http.StatusInternalServerError, "internal_error")
		return
	}
	id, dup, err := h.store.InsertEvent(r.Context(), store.NewEvent{
		Source: ev.Source, Action: ev.Action, Resource: ev.Resource, ResourceID: ev.ResourceID,
		DeliveryID: ev.DeliveryID, Payload: ev.Payload, Metadata: meta,
	})
	if err != nil {
		fail(http.StatusServiceUnavailable, "database_unavailable")
		return
	}
	status := http.StatusAccepted
	if dup {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"id":%q,"duplicate":%t}`+"\n", id, dup)
}

// startReceiver starts the HookReceiver, wired as `omnibridge serve` wires
// it: a service runtime (its own pgclient pool, audit writer and metrics) with
// the receiver mounted on it.
func startReceiver(ctx context.Context, dbURL string, opts IngestOptions) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rt, err := service.New(ctx, service.Options{
		Name:     hookreceiver.ServiceName,
		Version:  "bench",
		Config:   service.Config{}.WithDefaults(ln.Addr().String()),
		Database: pgclient.Config{URL: dbURL, MinConns: opts.OurConns, MaxConns: opts.OurConns},
		Logger:   opts.Logger,
		Listener: ln,
	})
	if err != nil {
		return nil, fmt.Errorf("bench ingest: receiver runtime: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	srv := &server{
		name: "hook_receiver", source: "bench-ours", addr: rt.Addr(), path: "/hooks/bench-ours",
		avgBatch: func() float64 { return histogramMean(rt, "omnibridge_hookreceiver_batch_size") },
		stop: func() error {
			stop()
			if err := <-done; err != nil {
				return fmt.Errorf("bench ingest: receiver: %w", err)
			}
			return nil
		},
	}
	recv, err := hookreceiver.New(hookreceiver.Config{Sources: []hookreceiver.SourceConfig{ingestSource(srv.source)}, Batch: opts.Batch},
		hookreceiver.Deps{Store: rt.Store, Audit: rt.Audit, Logger: rt.Log, Registerer: rt.Registry})
	if err == nil {
		recv.Mount(rt)
	}
	// Run also when the receiver could not be built: it is what closes the
	// runtime's pool and listener.
	go func() { done <- rt.Run(runCtx) }()
	if err == nil {
		err = waitReady(ctx, "http://"+rt.Addr())
	}
	if err != nil {
		return nil, errors.Join(err, srv.stop())
	}
	return srv, nil
}

// waitReady waits until base/readyz answers 200, for at most a minute.
func waitReady(ctx context.Context, base string) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench ingest: receiver not ready after a minute (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// histogramMean returns sum/count of a histogram in the runtime's registry.
func histogramMean(rt *service.Runtime, name string) float64 {
	mfs, err := rt.Registry.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) == 0 {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() > 0 {
			return h.GetSampleSum() / float64(h.GetSampleCount())
		}
	}
	return 0
}

// resetPeakRSS returns memory to the OS and resets the process's peak RSS
// (VmHWM) to its current RSS, so that the next peakRSS covers what follows.
// It reports whether the reset worked (Linux 4.0 and later).
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns VmHWM of /proc/self/status in bytes, or -1.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
