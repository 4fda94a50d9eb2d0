package pgclient

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// The TLS settings of a connection string are consumed by pgconn.ParseConfig
// and not exposed, so the client reads the few it needs itself, with libpq's
// syntax and precedence: the connection string, then the PG* environment
// variable, then the default.

// connEnv maps the connection parameters the client reads to their
// environment variables.
var connEnv = map[string]string{
	"connect_timeout":          "PGCONNECT_TIMEOUT",
	"sslmode":                  "PGSSLMODE",
	"sslrootcert":              "PGSSLROOTCERT",
	"sslcert":                  "PGSSLCERT",
	"sslkey":                   "PGSSLKEY",
	"ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
	"ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
	"require_auth":             "PGREQUIREAUTH",
	"channel_binding":          "PGCHANNELBINDING",
}

// connSetting returns the value of parameter key in settings (parsed by
// connStringSettings), else of its environment variable, else "".
func connSetting(settings map[string]string, key string) string {
	if v, ok := settings[key]; ok {
		return v
	}
	if env, ok := connEnv[key]; ok {
		return os.Getenv(env)
	}
	return ""
}

// connStringSettings parses the parameters of a connection string: the query
// of a postgres:// or postgresql:// URL, or the pairs of libpq's
// keyword/value form. Only parameters are returned; the host, user and
// database parts of a URL are not needed here.
func connStringSettings(s string) (map[string]string, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, query, _ := strings.Cut(s, "?")
		query, _, _ = strings.Cut(query, "#")
		values, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("parse URL parameters: %w", err)
		}
		out := make(map[string]string, len(values))
		for k, v := range values {
			out[k] = v[len(v)-1]
		}
		return out, nil
	}
	return parseKeywordValue(s)
}

// parseKeywordValue parses libpq's "key=value key='quoted \' value'" form.
func parseKeywordValue(s string) (map[string]string, error) {
	out := map[string]string{}
	rest := s
	for {
		rest = strings.TrimLeft(rest, " \t\n\r\v\f")
		if rest == "" {
			return out, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return nil, errors.New("invalid keyword/value connection string: missing '='")
		}
		key := strings.TrimSpace(rest[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n\r\v\f") {
			return nil, fmt.Errorf("invalid keyword/value connection string: bad keyword %q", key)
		}
		rest = strings.TrimLeft(rest[eq+1:], " \t\n\r\v\f")
		var val strings.Builder
		if strings.HasPrefix(rest, "'") {
			rest = rest[1:]
			closed := false
			for i := 0; i < len(rest); i++ {
				switch rest[i] {
				case '\\':
					if i+1 < len(rest) {
						i++
						val.WriteByte(rest[i])
					}
				case '\'':
					rest, closed = rest[i+1:], true
				default:
					val.WriteByte(rest[i])
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, fmt.Errorf("invalid keyword/value connection string: unterminated quote in %q", key)
			}
		} else {
			i := 0
			for ; i < len(rest) && !isSpace(rest[i]); i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++ // an escaped character, space included
				}
				val.WriteByte(rest[i])
			}
			rest = rest[i:]
		}
		out[key] = val.String()
	}
}

func isSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}
