package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux platform Go supports).
const clockTicks = 100

// postgresCPU returns the CPU time used so far by the server processes of
// the benchmark's database, read from /proc/<pid>/stat, or false when they
// cannot be read: the server is not on this machine, or /proc is not there.
func postgresCPU(ctx context.Context, pool *pgxpool.Pool) (time.Duration, bool) {
	var local bool
	if err := pool.QueryRow(ctx, `SELECT coalesce(host(inet_server_addr()) IN ('127.0.0.1', '::1'), true)`).Scan(&local); err != nil || !local {
		return 0, false
	}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return 0, false
	}
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			return 0, false
		}
		pids = append(pids, pid)
	}
	rows.Close()
	if rows.Err() != nil || len(pids) == 0 {
		return 0, false
	}
	var total time.Duration
	for _, pid := range pids {
		ticks, err := procCPUTicks(pid)
		if err != nil {
			continue // a backend that ended meanwhile
		}
		total += time.Duration(ticks) * time.Second / clockTicks
	}
	return total, true
}

// procCPUTicks returns utime + stime of a postgres process, in clock ticks.
func procCPUTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || !strings.HasPrefix(s[open+1:end], "postgres") {
		return 0, fmt.Errorf("pid %d is not a postgres process", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: unreadable /proc stat", pid)
	}
	return utime + stime, nil
}
