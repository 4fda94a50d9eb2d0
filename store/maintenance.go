package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maintenanceLockSQL names the session-level advisory lock that makes one
// instance the maintenance leader (a key of its own, apart from the
// transaction-level lock of the partition functions).
const maintenanceLockSQL = `SELECT pg_try_advisory_lock(hashtextextended('omnibridge.maintenance', 0))`

// ConnOpener opens a connection for the Maintainer's leader lock. The
// Maintainer owns the connection: it holds the lock on it, uses it for nothing
// else, and closes it when it gives up leadership (a session-level advisory
// lock must never go back to a pool, where another caller would inherit it).
//
// A pool's DB interface cannot hand out one connection for that long, so the
// opener is separate: PoolConnOpener takes a connection out of a pgxpool pool
// for good; ConfigConnOpener dials a new one.
type ConnOpener func(ctx context.Context) (*pgx.Conn, error)

// PoolConnOpener opens leader connections by taking them out of p (the pool
// opens a replacement when it needs one).
func PoolConnOpener(p *pgxpool.Pool) ConnOpener {
	return func(ctx context.Context) (*pgx.Conn, error) {
		c, err := p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return c.Hijack(), nil
	}
}

// ConfigConnOpener opens leader connections with pgx.ConnectConfig on a copy
// of cfg.
func ConfigConnOpener(cfg *pgx.ConnConfig) ConnOpener {
	return func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg.Copy()) }
}

// DefaultLeaderCheck is how often a running leader checks its lock connection.
const DefaultLeaderCheck = 10 * time.Second

// MaintainerConfig configures a Maintainer.
type MaintainerConfig struct {
	// Policy is the retention applied on every run; its Interval is the time
	// between runs. Zero fields take their defaults.
	Policy RetentionPolicy
	// Open opens the leader lock connection. Required.
	Open ConnOpener
	// LeaderCheck is how often the leader checks, during a run, that its lock
	// connection is alive; a run whose lock is lost is cancelled. Defaults to
	// DefaultLeaderCheck.
	LeaderCheck time.Duration
	// Logger defaults to the store's logger.
	Logger *slog.Logger
	// OnRun, when set, is called after each run of this instance with its
	// report and error.
	OnRun func(RetentionReport, error)
}

// ErrNoConnOpener is returned when a Maintainer has no way to open its lock
// connection.
var ErrNoConnOpener = errors.New("store: maintenance needs a dedicated connection for its leader lock " +
	"(set MaintainerConfig.Open, e.g. to PoolConnOpener(pool) or ConfigConnOpener(cfg))")

// Maintainer runs retention periodically on exactly one instance at a time. On
// every tick an instance that is not the leader tries to take a session-level
// advisory lock on a connection of its own; the one that gets it is the leader
// and keeps the lock, and the connection, until it stops or the connection
// breaks. The others skip the tick. A leader whose connection dies (the server
// restarted, the backend was terminated) cancels its run, closes the
// connection, and tries again on the next tick like everyone else; since the
// server released the lock with the session, another instance may lead by then.
type Maintainer struct {
	store *Store
	cfg   MaintainerConfig
	log   *slog.Logger

	mu     sync.Mutex
	conn   *pgx.Conn // the lock connection while leading
	leader atomic.Bool
	runs   atomic.Int64
}

// NewMaintainer checks cfg and returns a Maintainer; Run starts it.
func NewMaintainer(s *Store, cfg MaintainerConfig) (*Maintainer, error) {
	cfg.Policy = cfg.Policy.WithDefaults()
	cfg.LeaderCheck = cmp.Or(cfg.LeaderCheck, DefaultLeaderCheck)
	var errs []error
	if cfg.Open == nil {
		errs = append(errs, ErrNoConnOpener)
	}
	if err := cfg.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.LeaderCheck < 0 {
		errs = append(errs, fmt.Errorf("leader_check: invalid value %q: must be positive", cfg.LeaderCheck))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("store: maintainer: %w", err)
	}
	return &Maintainer{store: s, cfg: cfg, log: cmp.Or(cfg.Logger, s.log)}, nil
}

// RunMaintenance runs a Maintainer with policy every interval (overriding
// policy.Interval when positive) until ctx ends. The leader lock's connection
// is taken out of the store's pool: a *pgxpool.Pool, or a pool that exposes
// one with a Pool() method (*pgclient.Client). For any other DB it returns
// ErrNoConnOpener: use NewMaintainer with MaintainerConfig.Open.
func (s *Store) RunMaintenance(ctx context.Context, policy RetentionPolicy, interval time.Duration) error {
	var pool *pgxpool.Pool
	switch db := s.db.(type) {
	case *pgxpool.Pool:
		pool = db
	case interface{ Pool() *pgxpool.Pool }:
		pool = db.Pool()
	}
	if pool == nil {
		return ErrNoConnOpener
	}
	if interval > 0 {
		policy.Interval = interval
	}
	m, err := NewMaintainer(s, MaintainerConfig{Policy: policy, Open: PoolConnOpener(pool)})
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// IsLeader reports whether this instance holds the leader lock now.
func (m *Maintainer) IsLeader() bool { return m.leader.Load() }

// Runs counts the retention runs this instance made.
func (m *Maintainer) Runs() int64 { return m.runs.Load() }

// Run ticks every Policy.Interval, the first tick at once, until ctx ends; then
// it releases leadership and returns nil.
func (m *Maintainer) Run(ctx context.Context) error {
	defer m.resign(slog.LevelInfo, "stopped")
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m.tick(ctx)
		t.Reset(m.cfg.Policy.Interval)
	}
}

// tick runs retention if this instance leads or can become the leader.
func (m *Maintainer) tick(ctx context.Context) {
	if m.IsLeader() && !m.alive(ctx) {
		m.resign(slog.LevelWarn, "lock connection lost")
	}
	if !m.IsLeader() && !m.tryLead(ctx) {
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	lost := make(chan struct{})
	watchDone := make(chan struct{})
	go m.watch(runCtx, cancel, lost, watchDone)
	rep, err := m.store.RunRetention(runCtx, m.cfg.Policy, false)
	cancel()
	<-watchDone
	m.runs.Add(1)
	select {
	case <-lost:
		m.resign(slog.LevelWarn, "lock connection lost during a run: the run was cancelled")
	default:
	}
	// RunRetention logged a failed run.
	if m.cfg.OnRun != nil {
		m.cfg.OnRun(rep, err)
	}
}

// watch checks the lock connection every LeaderCheck while a run lasts; when
// the connection is gone it cancels the run and closes lost.
func (m *Maintainer) watch(ctx context.Context, cancel context.CancelFunc, lost chan<- struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(m.cfg.LeaderCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !m.alive(ctx) && ctx.Err() == nil {
				close(lost)
				cancel()
				return
			}
		}
	}
}

// alive pings the lock connection. Only one goroutine at a time uses it: tick
// before and after a run, watch during it. The ping ignores ctx's cancellation
// (pgx closes a connection whose query is interrupted, which would drop the
// lock) and is bounded by its own timeout instead.
func (m *Maintainer) alive(ctx context.Context) bool {
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	if conn == nil {
		return false
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(m.cfg.LeaderCheck, 5*time.Second))
	defer cancel()
	return conn.Ping(pctx) == nil
}

// tryLead opens a lock connection and tries the lock; it keeps the connection
// when it got the lock and closes it otherwise.
func (m *Maintainer) tryLead(ctx context.Context) bool {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := m.cfg.Open(octx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("store: maintenance: open lock connection", slog.String("error", err.Error()))
		}
		return false
	}
	var got bool
	if err := conn.QueryRow(octx, maintenanceLockSQL).Scan(&got); err != nil || !got {
		if err != nil && ctx.Err() == nil {
			m.log.Warn("store: maintenance: try leader lock", slog.String("error", err.Error()))
		}
		closeConn(conn)
		return false
	}
	m.mu.Lock()
	m.conn = conn
	m.mu.Unlock()
	m.leader.Store(true)
	m.log.Info("store: maintenance: leading", slog.Uint64("backend_pid", uint64(conn.PgConn().PID())))
	return true
}

// resign gives up leadership: closing the connection ends the session, which
// releases the lock on the server. A lost lock connection is logged as a
// warning: it cancelled the run (whose own error says only "context
// canceled") or says the database went away.
func (m *Maintainer) resign(level slog.Level, why string) {
	m.mu.Lock()
	conn := m.conn
	m.conn = nil
	m.mu.Unlock()
	if conn == nil {
		return
	}
	m.leader.Store(false)
	closeConn(conn)
	m.log.Log(context.Background(), level, "store: maintenance: no longer leading", slog.String("reason", why))
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
