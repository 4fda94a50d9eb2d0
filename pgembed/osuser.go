package pgembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ServerOSUser is the operating-system account that runs PostgreSQL when the
// calling process is root (PostgreSQL refuses to run as root).
const ServerOSUser = "postgres"

// osIdentity is who runs the PostgreSQL programs. When switch is false they
// run as the calling process itself.
type osIdentity struct {
	switchUser bool
	uid, gid   int
	home       string
	name       string
}

// currentIdentity picks the identity for the server programs: the postgres OS
// user when running as root, the caller otherwise.
func currentIdentity() (osIdentity, error) {
	if os.Geteuid() != 0 {
		return osIdentity{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(ServerOSUser)
	if err != nil {
		return osIdentity{}, fmt.Errorf("pgembed: running as root, but PostgreSQL must run as the %q OS user, which cannot be looked up (install the postgresql package, which creates it, or run as a non-root user): %w", ServerOSUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return osIdentity{}, fmt.Errorf("pgembed: OS user %q has a non-numeric uid/gid: %w", ServerOSUser, err)
	}
	if uid == 0 {
		return osIdentity{}, fmt.Errorf("pgembed: OS user %q has uid 0; PostgreSQL refuses to run as root", ServerOSUser)
	}
	return osIdentity{switchUser: true, uid: uid, gid: gid, home: u.HomeDir, name: u.Username}, nil
}

// command builds an exec.Cmd that runs as id, in its own process group so that
// a Ctrl-C delivered to the caller's terminal group never reaches it, with a
// C locale so that server messages are predictable.
func (id osIdentity) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		// PG* variables (PGDATA, PGPORT, PGHOST, ...) would silently change
		// what the programs do; locale variables change message texts.
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		if id.switchUser && (strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=")) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	if id.switchUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(id.uid), Gid: uint32(id.gid)}
		env = append(env, "HOME="+id.home, "USER="+id.name, "LOGNAME="+id.name)
		// The caller's working directory (often /root) is not accessible to
		// the server user.
		cmd.Dir = "/"
	}
	cmd.Env = env
	return cmd
}

// run runs the program and returns its combined output in the error.
func (id osIdentity) run(ctx context.Context, path string, args ...string) error {
	cmd := id.command(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("pgembed: %s %s: %w: %s", filepath.Base(path), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// chownTree gives every file under dir to id; a no-op unless id switches user.
func (id osIdentity) chownTree(dir string) error {
	if !id.switchUser {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, id.uid, id.gid); err != nil {
			return fmt.Errorf("pgembed: give %s to OS user %s: %w", path, id.name, err)
		}
		return nil
	})
}

// chown gives one file to id; a no-op unless id switches user.
func (id osIdentity) chown(path string) error {
	if !id.switchUser {
		return nil
	}
	if err := os.Lchown(path, id.uid, id.gid); err != nil {
		return fmt.Errorf("pgembed: give %s to OS user %s: %w", path, id.name, err)
	}
	return nil
}

// checkTraversable reports a clear error when some ancestor of path cannot be
// searched by id (e.g. a data directory under /root while the server runs as
// postgres): the server would otherwise fail with a bare "permission denied".
func (id osIdentity) checkTraversable(path string) error {
	if !id.switchUser {
		return nil
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgembed: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			perm := fi.Mode().Perm()
			can := perm&0o001 != 0 ||
				(int(st.Uid) == id.uid && perm&0o100 != 0) ||
				(int(st.Gid) == id.gid && perm&0o010 != 0)
			if !can {
				return fmt.Errorf("pgembed: directory %s (mode %s) is not searchable by the %q OS user that runs PostgreSQL under root: choose a data directory under a world-searchable directory, or chmod o+x %s", dir, perm, id.name, dir)
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}
