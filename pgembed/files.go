package pgembed

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Names of the files pgembed manages inside the data directory.
const (
	confFile      = "pgembed.conf"   // included from postgresql.conf, rewritten on every start
	logFile       = "pgembed.log"    // server log (pg_ctl -l)
	socketDirName = "pgembed_socket" // unix_socket_directories
	tlsDirName    = "pgembed_tls"    // generated certificates and keys
	includeLine   = "include_if_exists = '" + confFile + "'\t# managed by pgembed"
	// maxSocketDir keeps "<dir>/.s.PGSQL.65535" within the 107 bytes a unix
	// socket path may have.
	maxSocketDir = 107 - len("/.s.PGSQL.65535")
)

// quoteConf quotes a postgresql.conf value; every parameter type accepts the
// quoted form.
func quoteConf(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// serverSettings returns pgembed's parameters merged with the caller's.
func (c *Cluster) serverSettings() map[string]string {
	s := map[string]string{
		"listen_addresses":  "127.0.0.1",
		"max_connections":   strconv.Itoa(MaxConnectionsDefault),
		"logging_collector": "off",
		"wal_level":         "replica",
		"max_wal_senders":   "10",
		"hot_standby":       "on",
		"ssl":               "off",
	}
	if f := c.tlsFiles; f != nil {
		s["ssl"] = "on"
		s["ssl_cert_file"] = f.ServerCert
		s["ssl_key_file"] = f.ServerKey
		s["ssl_ca_file"] = f.CACert
		s["ssl_min_protocol_version"] = c.cfg.TLS.MinVersion
		if c.cfg.TLS.MaxVersion != "" {
			s["ssl_max_protocol_version"] = c.cfg.TLS.MaxVersion
		}
	}
	maps.Copy(s, c.cfg.Settings)
	// Managed last so nothing overrides them (Validate rejects them too).
	s["port"] = strconv.Itoa(c.port)
	s["unix_socket_directories"] = c.socketDir
	return s
}

// writeConfig writes pgembed.conf and makes sure postgresql.conf includes it.
func (c *Cluster) writeConfig() error {
	s := c.serverSettings()
	var b strings.Builder
	b.WriteString("# Written by pgembed on every start; edits are lost. Use ALTER SYSTEM or Config.Settings.\n")
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteConf(s[k]))
	}
	if err := c.writeFile(filepath.Join(c.dataDir, confFile), []byte(b.String()), 0o600); err != nil {
		return err
	}

	main := filepath.Join(c.dataDir, "postgresql.conf")
	cur, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("pgembed: read postgresql.conf: %w", err)
	}
	if bytes.Contains(cur, []byte(includeLine)) {
		return nil
	}
	if len(cur) > 0 && cur[len(cur)-1] != '\n' {
		cur = append(cur, '\n')
	}
	cur = append(cur, includeLine+"\n"...)
	return c.writeFile(main, cur, 0o600)
}

// hbaLines returns pg_hba.conf: the caller's lines first, then the client
// certificate rules, then the defaults for local, TCP and replication.
func (c *Cluster) hbaLines() []string {
	method := "trust"
	if c.cfg.Password != "" {
		method = "scram-sha-256"
	}
	tcp := "host"
	if c.cfg.TLS != nil && c.cfg.TLS.HostSSLOnly {
		tcp = "hostssl"
	}
	lines := []string{"# Written by pgembed on every start; use Config.HBA for extra rules.", "# caller's rules (Config.HBA)"}
	lines = append(lines, c.cfg.HBA...)
	if c.cfg.TLS != nil && c.cfg.TLS.ClientCertAuth {
		lines = append(lines, "# client certificate authentication (TLSConfig.ClientCertAuth)",
			"hostssl all all 127.0.0.1/32 cert",
			"hostssl all all ::1/128 cert",
			"hostssl replication all 127.0.0.1/32 cert",
			"hostssl replication all ::1/128 cert")
	}
	lines = append(lines, "# defaults",
		"local all all "+method,
		"local replication all "+method,
		tcp+" all all 127.0.0.1/32 "+method,
		tcp+" all all ::1/128 "+method,
		tcp+" replication all 127.0.0.1/32 "+method,
		tcp+" replication all ::1/128 "+method)
	return lines
}

func (c *Cluster) writeHBA() error {
	return c.writeFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(strings.Join(c.hbaLines(), "\n")+"\n"), 0o600)
}

// writeFile writes a file in the data directory and gives it to the server user.
func (c *Cluster) writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	return c.id.chown(path)
}

// logSize returns the current size of the server log, so that a failed start
// can report only what it wrote.
func (c *Cluster) logSize() int64 {
	fi, err := os.Stat(filepath.Join(c.dataDir, logFile))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns at most the last 4 KiB the server logged after offset.
func (c *Cluster) logSince(offset int64) string {
	f, err := os.Open(filepath.Join(c.dataDir, logFile))
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	const maxTail = 4 << 10
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	offset = max(offset, fi.Size()-maxTail, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
