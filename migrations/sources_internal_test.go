package migrations

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestCollectRefusesGapsDuplicatesAndMisnamedFiles(t *testing.T) {
	t.Parallel()
	file := &fstest.MapFile{Data: []byte("-- +goose Up\n")}
	good := fstest.MapFS{"sql/00001_schema.sql": file, "sql/00002_more_things.sql": file}
	got, err := collect(good, "sql")
	require.NoError(t, err)
	require.Equal(t, []source{
		{version: 1, name: "schema", file: "00001_schema.sql"},
		{version: 2, name: "more_things", file: "00002_more_things.sql"},
	}, got)

	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"sql/00001_a.sql": file, "sql/00003_c.sql": file},
		"duplicate": {"sql/00001_a.sql": file, "sql/00001_b.sql": file},
		"no first":  {"sql/00002_b.sql": file},
		"misnamed":  {"sql/00001_a.sql": file, "sql/2_b.sql": file},
		"empty":     {"sql": &fstest.MapFile{Mode: fs.ModeDir}},
	} {
		_, err := collect(fsys, "sql")
		require.Error(t, err, name)
	}
}

func TestEmbeddedMigrationsAreWellFormed(t *testing.T) {
	t.Parallel()
	srcs, err := sources()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(srcs), 4)
	require.Equal(t, "schema", srcs[0].name)
}
