package pgembed

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Port:     70000,
		User:     "bad user",
		Settings: map[string]string{"port": "5432", "bad key": "x", "work_mem": "1MB\nfsync=off"},
		HBA:      []string{"host all all 0.0.0.0/0 trust\nlocal all all trust"},
		TLS:      &TLSConfig{MinVersion: "SSLv3", MaxVersion: "TLSv9"},
	}.WithDefaults()
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"Port 70000", `User "bad user"`, `Settings key "port" is managed`, `Settings key "bad key"`,
		`Settings["work_mem"]`, "HBA[0]", `TLS.MinVersion "SSLv3"`, `TLS.MaxVersion "TLSv9"`,
	} {
		require.ErrorContains(t, err, want)
	}
}

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	cfg := Config{TLS: &TLSConfig{}}.WithDefaults()
	require.Equal(t, UserDefault, cfg.User)
	require.Equal(t, StartTimeoutDefault, cfg.StartTimeout)
	require.NotNil(t, cfg.Logger)
	require.Equal(t, TLSMinVersionDefault, cfg.TLS.MinVersion)
	require.Equal(t, []string{"localhost", "127.0.0.1", "::1"}, cfg.TLS.ServerNames)
	require.NoError(t, cfg.Validate())
}

func TestBinariesMissing(t *testing.T) {
	empty := t.TempDir()

	_, err := Start(testContext(t), Config{BinDir: empty})
	require.ErrorIs(t, err, ErrBinariesNotFound)
	require.ErrorContains(t, err, "install the postgresql package or set OMNIBRIDGE_PG_BINDIR")
	require.ErrorContains(t, err, empty)

	t.Setenv(EnvBinDir, empty)
	_, err = FindBinDir()
	require.ErrorIs(t, err, ErrBinariesNotFound)
	require.ErrorContains(t, err, EnvBinDir+"="+empty)
}

func TestFindBinDir(t *testing.T) {
	t.Setenv(EnvBinDir, "")
	dir, err := FindBinDir()
	require.NoError(t, err)
	require.NoError(t, checkBinDir(dir))

	t.Setenv(EnvBinDir, dir)
	got, err := FindBinDir()
	require.NoError(t, err)
	require.Equal(t, dir, got)
}

func TestVersionMismatch(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(searchableTempDir(t), "data")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("9.6\n"), 0o600))

	_, err := Start(testContext(t), Config{DataDir: dir})
	require.ErrorIs(t, err, ErrVersionMismatch)
	require.ErrorContains(t, err, "created by PostgreSQL 9.6")
	_, statErr := os.Stat(filepath.Join(dir, "PG_VERSION"))
	require.NoError(t, statErr, "a persistent data directory is never removed")
}

func TestDataDirNotACluster(t *testing.T) {
	t.Parallel()
	dir := searchableTempDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600))
	_, err := Start(testContext(t), Config{DataDir: dir})
	require.ErrorContains(t, err, "neither empty nor a PostgreSQL cluster")
}

func TestDataDirNotSearchableByServerUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data directory to another OS user")
	}
	dir := t.TempDir() // mode 0700, owned by root
	_, err := Start(testContext(t), Config{DataDir: filepath.Join(dir, "data")})
	require.ErrorContains(t, err, "is not searchable by the \"postgres\" OS user")
}

func TestStartFailureReportsServerLog(t *testing.T) {
	t.Parallel()
	_, err := Start(testContext(t), Config{Settings: map[string]string{"shared_buffers": "lots"}})
	require.Error(t, err)
	require.ErrorContains(t, err, `invalid value for parameter "shared_buffers"`)
	require.False(t, errors.Is(err, ErrPortInUse))
}
