package pgclient

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Client is a supervised PostgreSQL connection pool. It is safe for concurrent
// use. Open one per service; Close it when done.
type Client struct {
	cfg        Config
	pool       *pgxpool.Pool
	connConfig *pgx.ConnConfig // for Health's out-of-pool connection
	log        *slog.Logger

	queryTimeout   time.Duration
	acquireTimeout time.Duration
	maxQueries     int64         // ≤ 0: no limit
	leakThreshold  time.Duration // ≤ 0: leak detection off
	prepared       map[string]bool
	execMode       pgx.QueryExecMode

	epoch     time.Time // for monotonic statement start times
	deadlines *acquireDeadlines
	permits   *permits

	tls *builtTLS   // the TLS settings, files read
	res *resilience // breaker, retry policies, event delivery

	stats   counters
	metrics *metrics // nil without a Registerer
	conns   registry
	closed  atomic.Bool

	stop      chan struct{}
	wg        sync.WaitGroup // supervisor, degradation callbacks, health checks
	bgMu      sync.Mutex
	bgClosed  bool // no more background work once Close began
	closeOnce sync.Once
}

// Open validates cfg (after WithDefaults), checks that the server can be
// reached and the credentials work with one connection (retried under the
// connect policy when the failure is transient, never when authentication
// or TLS fails), creates the pool and returns once MinConns connections are
// established, each with Role set and the PrepareOnConnect statements
// prepared. It fails if the server cannot be reached before ctx ends (or
// within 30s when ctx has no deadline).
func Open(ctx context.Context, cfg Config) (*Client, error) {
	given := cfg
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pgclient: invalid config: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgclient: parse url: %w", err)
	}
	logger := cmpLogger(cfg.Logger).With(slog.String("component", "pgclient"), slog.String("service", cfg.ServiceName))
	if params, err := urlParams(cfg.URL); err == nil {
		_, overridden, _ := applyURLParams(given, params)
		for _, k := range overridden {
			logger.Warn("pgclient: config field overrides URL parameter", slog.String("param", k))
		}
	}

	epoch := time.Now()
	c := &Client{
		cfg:            cfg,
		log:            logger,
		queryTimeout:   cfg.QueryTimeout,
		acquireTimeout: cfg.AcquireTimeout,
		maxQueries:     cfg.MaxQueriesPerConn,
		leakThreshold:  cfg.LeakThreshold,
		prepared:       make(map[string]bool, len(cfg.PrepareOnConnect)),
		execMode:       execModes[normalizeExecMode(cfg.ExecMode)],
		stop:           make(chan struct{}),
		epoch:          epoch,
		deadlines:      newAcquireDeadlines(cfg.AcquireTimeout, epoch),
		permits:        newPermits(int(cfg.MaxConns), epoch),
	}
	for name := range cfg.PrepareOnConnect {
		c.prepared[name] = true
	}
	if c.tls, err = cfg.TLS.build(); err != nil {
		return nil, fmt.Errorf("pgclient: invalid config: %w", err)
	}
	c.configurePool(pcfg)
	c.connConfig = pcfg.ConnConfig.Copy()
	c.connConfig.Tracer = nil
	c.res = newResilience(cfg, &pcfg.ConnConfig.Config, logger)

	if cfg.Registerer != nil {
		c.metrics = newMetrics(c)
		if err := cfg.Registerer.Register(c.metrics); err != nil {
			c.res.close()
			return nil, fmt.Errorf("pgclient: register metrics: %w", err)
		}
	}
	if err := c.res.probe(ctx, pcfg.ConnConfig); err != nil {
		c.unregister()
		c.res.close()
		return nil, err
	}
	c.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		c.unregister()
		c.res.close()
		return nil, fmt.Errorf("pgclient: create pool: %w", err)
	}
	if err := c.warmUp(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

func cmpLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// configurePool applies c.cfg to the pool configuration parsed from the URL.
func (c *Client) configurePool(p *pgxpool.Config) {
	cfg := c.cfg
	p.MinConns = max(cfg.MinConns, 0)
	p.MaxConns = cfg.MaxConns
	p.MaxConnLifetime = max(cfg.ConnMaxAge, 0)
	p.MaxConnLifetimeJitter = max(cfg.ConnMaxAgeJitter, 0)
	p.MaxConnIdleTime = cfg.ConnMaxIdle
	if cfg.ConnMaxIdle < 0 {
		p.MaxConnIdleTime = math.MaxInt64
	}
	p.HealthCheckPeriod = cfg.HealthCheckPeriod
	p.BeforeConnect = c.beforeConnect
	p.AfterConnect = c.afterConnect
	p.BeforeClose = c.beforeClose

	cc := p.ConnConfig
	for k := range cc.RuntimeParams {
		if strings.HasPrefix(k, ownPrefix) {
			delete(cc.RuntimeParams, k)
		}
	}
	cc.RuntimeParams["application_name"] = cfg.ServiceName
	if _, set := cc.RuntimeParams["statement_timeout"]; !set && cfg.StatementTimeout > 0 {
		cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	cc.StatementCacheCapacity = cfg.StatementCacheCapacity
	if params, err := urlParams(cfg.URL); err == nil {
		if _, set := params["description_cache_capacity"]; !set {
			cc.DescriptionCacheCapacity = cfg.StatementCacheCapacity
		}
	}
	cc.DefaultQueryExecMode = c.execMode
	if grace := cfg.CancelGrace; grace > 0 {
		// pgx's default handler closes the socket at once, abandoning the
		// statement on the server. Ask the server to cancel it instead, and
		// keep the connection if the server confirms within the grace period.
		cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
			return &cancelWatcher{CancelRequestContextWatcherHandler: pgconn.CancelRequestContextWatcherHandler{
				Conn: pc, DeadlineDelay: grace}}
		}
	}
	cc.Tracer = &tracer{c: c}
	c.configureConnect(&cc.Config)
}

// afterConnect prepares a new connection and starts tracking it.
func (c *Client) afterConnect(ctx context.Context, conn *pgx.Conn) error {
	if c.cfg.Role != "" {
		if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{c.cfg.Role}.Sanitize()); err != nil {
			return fmt.Errorf("pgclient: set role %q: %w", c.cfg.Role, err)
		}
	}
	for name, sql := range c.cfg.PrepareOnConnect {
		if _, err := conn.Prepare(ctx, name, sql); err != nil {
			return fmt.Errorf("pgclient: prepare %q on connect: %w", name, err)
		}
	}
	st := &connState{createdAt: time.Now(), pid: conn.PgConn().PID(), pg: conn.PgConn(), cancelDone: make(chan struct{}, 1)}
	conn.PgConn().CustomData()[stateKey] = st
	c.conns.add(st)
	return nil
}

// beforeClose stops tracking a connection the pool is closing.
func (c *Client) beforeClose(conn *pgx.Conn) {
	st := stateOf(conn)
	if st == nil {
		return
	}
	c.conns.remove(st)
	c.endHold(st, "closed")
}

// warmUp returns once MinConns connections are established. pgxpool opens
// them in the background and swallows errors; when it stops short, the
// missing ones are opened here (ping), which surfaces the error if they
// cannot be.
func (c *Client) warmUp(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	target := max(c.cfg.MinConns, 0)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	stalled := 0
	for {
		s := c.pool.Stat()
		ready := s.TotalConns() - s.ConstructingConns()
		if ready >= target {
			if target == 0 {
				return c.ping(ctx, 1)
			}
			return nil
		}
		if s.ConstructingConns() == 0 {
			stalled++
		} else {
			stalled = 0
		}
		if stalled >= 4 { // nothing under construction for 20ms: the background gave up
			stalled = 0
			if err := c.ping(ctx, int(target)); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgclient: warm-up: %d of %d connections established: %w", ready, target, ctx.Err())
		case <-tick.C:
		}
	}
}

// ping takes n pooled connections at once, so that the pool opens those it
// lacks, and pings the server on each, retried under the connect policy.
// Taking one idle connection would not do for the warm-up: after a failed
// background connect the pool waits for its next health check to try again.
func (c *Client) ping(ctx context.Context, n int) error {
	return c.res.retry(ctx, retryConnect, retryableConnect, func(int) error {
		return c.res.guard(func() error {
			held := make([]*pgxpool.Conn, 0, n)
			defer func() {
				for _, pc := range held {
					pc.Release()
				}
			}()
			for range n {
				pc, err := c.pool.Acquire(ctx)
				if err != nil {
					return fmt.Errorf("pgclient: connect: %w", err)
				}
				held = append(held, pc)
				if err := pc.Ping(ctx); err != nil {
					return fmt.Errorf("pgclient: connect: %w", err)
				}
			}
			return nil
		})
	})
}

// Close stops the supervisor and closes the pool. Like pgxpool, it waits for
// every acquired connection to be released; while it waits it logs, every 10s,
// how many are still out (with the acquirer's stack when leak detection is
// on). Close is safe to call more than once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.permits.close()
		c.bgMu.Lock()
		c.bgClosed = true
		c.bgMu.Unlock()
		close(c.stop)
		c.wg.Wait()
		if c.pool != nil {
			done := make(chan struct{})
			go func() {
				c.pool.Close()
				close(done)
			}()
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
		wait:
			for {
				select {
				case <-done:
					break wait
				case <-t.C:
					c.logHeld("pgclient: close is waiting for acquired connections")
				}
			}
		}
		c.deadlines.close()
		c.unregister()
		c.res.close() // delivers the events raised so far
	})
}

func (c *Client) unregister() {
	if c.metrics != nil && c.cfg.Registerer != nil {
		c.cfg.Registerer.Unregister(c.metrics)
	}
}

// Pool returns the underlying pgxpool. Work done on it directly bypasses the
// client's query and acquire timeouts, ErrPoolExhausted and the resilience
// policy; statement counts, MaxQueriesPerConn, acquire/release counts and leak
// detection still apply, since they hook into the connections themselves.
// A connection held from it is not counted against the client's own
// admission (see permits): while such connections fill the pool, the
// client's callers wait inside pgxpool, still bounded by AcquireTimeout but
// not ended early by their own cancellation. Hijacking a connection
// from it is not supported.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// Config returns the effective configuration (defaults and URL parameters
// applied).
func (c *Client) Config() Config { return c.cfg }
