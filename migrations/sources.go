package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"sync"
)

//go:embed sql/*.sql
var embedded embed.FS

// source is one embedded migration file.
type source struct {
	version int64
	name    string // without number and extension
	file    string // base name
}

var fileName = regexp.MustCompile(`^([0-9]{5})_([a-z0-9_]+)\.sql$`)

// sources lists the embedded migrations once, and fails if a file is misnamed
// or a number is skipped or duplicated: a gap would otherwise let goose apply
// a later version while an earlier one is missing.
var sources = sync.OnceValues(func() ([]source, error) {
	return collect(embedded, "sql")
})

func collect(fsys fs.FS, dir string) ([]source, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: read embedded %s: %w", dir, err)
	}
	out := make([]source, 0, len(entries))
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: file %q is not named NNNNN_name.sql", path.Join(dir, e.Name()))
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migrations: file %q: %w", e.Name(), err)
		}
		// fs.ReadDir sorts by name, and the numbers have a fixed width.
		if want := int64(len(out) + 1); v != want {
			return nil, fmt.Errorf("migrations: file %q has version %d, want %d: versions must run 1, 2, 3… without gaps or duplicates", e.Name(), v, want)
		}
		out = append(out, source{version: v, name: m[2], file: e.Name()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("migrations: no migration files in embedded %s", dir)
	}
	return out, nil
}

// nameOf returns the name of version v, or "" if there is none.
func nameOf(srcs []source, v int64) string {
	if v >= 1 && v <= int64(len(srcs)) {
		return srcs[v-1].name
	}
	return ""
}
