package pgembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnvBinDir names the environment variable that points pgembed at a directory
// holding initdb, pg_ctl and postgres.
const EnvBinDir = "OMNIBRIDGE_PG_BINDIR"

var (
	// ErrBinariesNotFound means no usable PostgreSQL server binaries were found.
	ErrBinariesNotFound = errors.New("pgembed: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install the postgresql package or set " + EnvBinDir)
	// ErrPortInUse means the requested TCP port is taken by another process;
	// choose another Config.Port or leave it 0 for a free one.
	ErrPortInUse = errors.New("pgembed: port in use (choose another Config.Port, or 0 for a free port)")
	// ErrVersionMismatch means the data directory was created by a different
	// major version than the binaries; use matching binaries (Config.BinDir or
	// OMNIBRIDGE_PG_BINDIR) or another data directory.
	ErrVersionMismatch = errors.New("pgembed: data directory belongs to another PostgreSQL major version (point Config.BinDir/" + EnvBinDir + " at matching binaries, or use another data directory)")
	// ErrAlreadyRunning means a server already runs on the data directory
	// (another process's); Start leaves it alone.
	ErrAlreadyRunning = errors.New("pgembed: a server is already running on the data directory")
)

// requiredBinaries must all exist in a bin directory for it to be usable.
// pg_basebackup is only needed by StartReplica and checked there.
var requiredBinaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinDir locates the PostgreSQL server binaries: the directory named by
// OMNIBRIDGE_PG_BINDIR if set (it must hold them; there is no fallback), else
// `pg_config --bindir` when pg_config is on PATH and its directory holds
// them, else the newest /usr/lib/postgresql/<major>/bin. The error wraps
// ErrBinariesNotFound and lists where it looked.
func FindBinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %w", ErrBinariesNotFound, EnvBinDir, dir, err)
		}
		return dir, nil
	}
	var tried []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
			if checkBinDir(dir) == nil {
				return dir, nil
			}
			tried = append(tried, dir)
		}
	} else {
		tried = append(tried, "pg_config (not on PATH)")
	}
	for _, dir := range debianBinDirs("/usr/lib/postgresql") {
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	tried = append(tried, "/usr/lib/postgresql/*/bin")
	return "", fmt.Errorf("%w (looked in %s)", ErrBinariesNotFound, strings.Join(tried, ", "))
}

// debianBinDirs returns root/<major>/bin for every numeric major version
// directory under root, newest first.
func debianBinDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type ver struct {
		n    float64
		name string
	}
	var vs []ver
	for _, e := range entries {
		if n, err := strconv.ParseFloat(e.Name(), 64); err == nil {
			vs = append(vs, ver{n, e.Name()})
		}
	}
	slices.SortFunc(vs, func(a, b ver) int { return -cmpFloat(a.n, b.n) })
	dirs := make([]string, 0, len(vs))
	for _, v := range vs {
		dirs = append(dirs, filepath.Join(root, v.name, "bin"))
	}
	return dirs
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkBinDir reports whether dir holds executable initdb, pg_ctl and postgres.
func checkBinDir(dir string) error {
	var missing []string
	for _, name := range requiredBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// binaryMajor returns the major version of the postgres binary in binDir as
// PG_VERSION spells it ("15", or "9.6" for old releases).
func binaryMajor(ctx context.Context, binDir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pgembed: run %s --version: %w", filepath.Join(binDir, "postgres"), err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("pgembed: cannot parse postgres --version output %q", strings.TrimSpace(string(out)))
	}
	if major, _ := strconv.Atoi(m[1]); major < 10 && m[2] != "" {
		return m[1] + "." + m[2], nil
	}
	return m[1], nil
}
