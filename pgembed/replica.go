package pgembed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StartReplica creates a streaming replica of the running cluster c with
// pg_basebackup -R (over c's unix socket) and starts it as a hot standby on
// its own port. cfg is treated like Start's, except that: User and Password
// are c's (the replica is a copy of c); BinDir defaults to c's; Settings are
// c's merged with cfg.Settings (a standby needs max_connections and similar
// limits at least as high as its primary's); cfg.DataDir, when set, must be
// empty or already hold a replica of c. The replica has no replication slot,
// so one that falls far behind may need to be recreated.
func (c *Cluster) StartReplica(ctx context.Context, cfg Config) (*Cluster, error) {
	if !c.Running() {
		return nil, errors.New("pgembed: StartReplica: the primary is not running (Start it first)")
	}
	cfg.User, cfg.Password = c.cfg.User, c.cfg.Password
	cfg.BinDir = cmp.Or(cfg.BinDir, c.binDir)
	settings := maps.Clone(c.cfg.Settings)
	if settings == nil {
		settings = map[string]string{}
	}
	maps.Copy(settings, cfg.Settings)
	cfg.Settings = settings

	r, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkBinDir(r.binDir); err != nil {
		r.removeTemp()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	if _, err := os.Stat(filepath.Join(r.dataDir, "PG_VERSION")); err != nil {
		if err := c.baseBackup(ctx, r); err != nil {
			r.removeTemp()
			return nil, err
		}
	}
	if err := r.initialise(ctx); err != nil {
		r.removeTemp() // a server running there is not ours
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		r.discard()
		return nil, err
	}
	return r, nil
}

// baseBackup copies c into r's empty data directory and configures it as a
// standby (standby.signal and primary_conninfo in postgresql.auto.conf).
func (c *Cluster) baseBackup(ctx context.Context, r *Cluster) error {
	entries, err := os.ReadDir(r.dataDir)
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("pgembed: replica data directory %s is neither empty nor a PostgreSQL cluster; choose an empty or new directory", r.dataDir)
	}
	if err := r.id.chown(r.dataDir); err != nil {
		return err
	}
	bin := filepath.Join(r.binDir, "pg_basebackup")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w: %s", ErrBinariesNotFound, err)
	}
	conninfo := []string{
		"host=" + quoteConninfo(c.socketDir),
		"port=" + strconv.Itoa(c.port),
		"user=" + quoteConninfo(c.cfg.User),
		"application_name=" + quoteConninfo("pgembed_replica_"+strconv.Itoa(os.Getpid())),
	}
	if c.cfg.Password != "" {
		conninfo = append(conninfo, "password="+quoteConninfo(c.cfg.Password))
	}
	args := []string{"-D", r.dataDir, "-d", strings.Join(conninfo, " "), "-R", "-X", "stream", "-c", "fast"}
	if r.tempData {
		args = append(args, "--no-sync")
	}
	begin := time.Now()
	if err := r.id.run(ctx, bin, args...); err != nil {
		return err
	}
	// The copy carries the primary's log, TLS material and socket lock
	// files; the replica gets its own.
	for _, name := range []string{logFile, tlsDirName, socketDirName} {
		_ = os.RemoveAll(filepath.Join(r.dataDir, name))
	}
	r.log.Info("pgembed: base backup done", "primary_port", c.port, "data_dir", r.dataDir,
		"duration", time.Since(begin).Round(time.Millisecond))
	return nil
}

// quoteConninfo quotes a libpq keyword/value connection string value.
func quoteConninfo(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
