// Package connstr finds the secrets of PostgreSQL connection strings, in both
// forms libpq and pgx accept, so that a string can be printed or logged with
// them masked. config, pgclient and the coordinator share it.
package connstr

import (
	"regexp"
	"slices"
	"strings"
)

// Redacted replaces every secret.
const Redacted = "REDACTED"

// Redact masks every secret in a connection string and leaves the rest as
// written. It accepts both forms libpq and pgx accept:
//
//   - a URL (postgres://user:password@host:5432/db?sslpassword=…): the
//     password in the user information, and the value of every query
//     parameter named password or sslpassword, in any letter case and even
//     when the name is percent-encoded (pass%77ord);
//   - a keyword/value string (host=db password='my \'pw' sslpassword=x):
//     the value of every password or sslpassword keyword, quoted or not, with
//     its backslash escapes.
//
// A malformed URL is redacted on a best-effort basis that masks more rather
// than less: where libpq and Go's URL parser would read the user information
// differently, both readings are masked. Strings that are neither form are
// returned unchanged.
func Redact(s string) string {
	var spans [][2]int
	if start, ok := urlAuthority(s); ok {
		spans = urlSecrets(s, start)
	} else {
		spans = keywordSecrets(s)
	}
	return maskSpans(s, spans)
}

// embeddedURL finds a URL inside text: a scheme, "://", and everything up to
// the next space or quote.
var embeddedURL = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^ \t\n\r\v\f`'\"]*")

// RedactText masks the secrets of connection strings quoted inside text, such
// as an error message: every password or sslpassword keyword's value, and the
// secrets of every URL (see Redact).
func RedactText(s string) string {
	spans := keywordSecrets(s)
	for _, loc := range embeddedURL.FindAllStringIndex(s, -1) {
		start, _ := urlAuthority(s[loc[0]:loc[1]])
		for _, sp := range urlSecrets(s[loc[0]:loc[1]], start) {
			spans = append(spans, [2]int{loc[0] + sp[0], loc[0] + sp[1]})
		}
	}
	return maskSpans(s, spans)
}

// secretParam reports whether a connection parameter's value is a secret:
// libpq's password and sslpassword (the passphrase of the client key).
// libpq's names are lower-case; other spellings are masked too.
func secretParam(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "password", "sslpassword":
		return true
	}
	return false
}

var urlScheme = regexp.MustCompile(`^[ \t\n\r\v\f]*[A-Za-z][A-Za-z0-9+.-]*://`)

// urlAuthority returns where the part after "scheme://" starts, if s is a URL.
func urlAuthority(s string) (int, bool) {
	loc := urlScheme.FindStringIndex(s)
	if loc == nil {
		return 0, false
	}
	return loc[1], true
}

// urlSecrets returns the byte ranges of s that hold secrets, s being a URL
// whose authority starts at start.
func urlSecrets(s string, start int) [][2]int {
	var spans [][2]int
	p := s[start:]

	// User information. libpq (and pgx) end it at the first '@' before any
	// '/'; Go's url.Parse at the last '@' of the authority. Host names never
	// hold '@', so take the last '@' before the first '/': it covers both,
	// including a password with an unencoded '@', '?' or '#' in it.
	slash := strings.IndexByte(p, '/')
	if slash < 0 {
		slash = len(p)
	}
	rest := 0 // where the host list starts, within p
	if at := strings.LastIndexByte(p[:slash], '@'); at >= 0 {
		if colon := strings.IndexByte(p[:at], ':'); colon >= 0 {
			spans = append(spans, [2]int{start + colon + 1, start + at})
		}
		rest = at + 1
	}

	// A password with an unencoded '/' strands its '@' after the first '/'
	// (postgres://user:pass/word@host/db), where libpq reads a port that is
	// not a number, or a database name with an '@'. When what follows the
	// user information is malformed like that, mask from its first ':' to
	// its last '@'.
	if hosts := p[rest:]; !wellFormedHosts(hosts) {
		colon, at := strings.IndexByte(hosts, ':'), strings.LastIndexByte(hosts, '@')
		if colon >= 0 && colon < at {
			spans = append(spans, [2]int{start + rest + colon + 1, start + rest + at})
		}
	}

	// Query parameters. libpq's query starts at the first '?' after the
	// database name, Go's at the first '?' of all, and either may have one
	// inside a stranded password; a value runs to the next '&' in both.
	// Reading the parameters after every '?' masks every reading's secrets.
	for i := start; i < len(s); i++ {
		if s[i] != '?' {
			continue
		}
		pos := i + 1
		for _, pair := range strings.Split(s[i+1:], "&") {
			if key, _, ok := strings.Cut(pair, "="); ok && secretParam(percentDecode(key)) && len(pair) > len(key)+1 {
				spans = append(spans, [2]int{pos + len(key) + 1, pos + len(pair)})
			}
			pos += len(pair) + 1
		}
	}
	return spans
}

// wellFormedHosts reports whether the part of a URL after its user
// information reads cleanly as libpq reads it: host[:port] elements separated
// by commas (a host in brackets for IPv6), each port a number or empty, then
// an optional /database name without '@', then an optional query of
// key=value pairs separated by '&'.
func wellFormedHosts(p string) bool {
	i := 0
	for {
		if i < len(p) && p[i] == '[' {
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return false
			}
			i += end + 1
		}
		for i < len(p) && strings.IndexByte(":/?,", p[i]) < 0 {
			i++
		}
		if i < len(p) && p[i] == ':' {
			i++
			for ; i < len(p) && strings.IndexByte("/?,", p[i]) < 0; i++ {
				if (p[i] < '0' || p[i] > '9') && p[i] != ' ' {
					return false
				}
			}
		}
		if i < len(p) && p[i] == ',' {
			i++
			continue
		}
		break
	}
	if i < len(p) && p[i] == '/' {
		db, _, _ := strings.Cut(p[i:], "?")
		if strings.Contains(db, "@") {
			return false
		}
		i += len(db)
	}
	if i < len(p) && p[i] == '?' {
		for pair := range strings.SplitSeq(p[i+1:], "&") {
			if strings.Count(pair, "=") != 1 {
				return false
			}
		}
	}
	return true
}

// percentDecode decodes %XX escapes, leaving malformed ones as they are, the
// way a connection-string parser would read a parameter name.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// keywordSecrets returns the byte ranges of the secret values in a
// keyword/value connection string, read as libpq reads it: a keyword, '='
// with optional spaces around it, then a value that is either single-quoted
// (\' and \\ escaped) or runs to the next unescaped space. An unterminated
// quote runs to the end. Words that are not followed by '=' are skipped, so
// text that is no connection string is left alone.
func keywordSecrets(s string) [][2]int {
	var spans [][2]int
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		keyStart := i
		for i < len(s) && !isSpace(s[i]) && s[i] != '=' {
			i++
		}
		key := s[keyStart:i]
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			if i == keyStart { // cannot happen: a space or '=' was skipped
				i++
			}
			continue
		}
		j++
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		valStart := j
		if j < len(s) && s[j] == '\'' {
			for j++; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			j++ // the closing quote
		} else {
			for ; j < len(s) && !isSpace(s[j]); j++ {
				if s[j] == '\\' {
					j++
				}
			}
		}
		j = min(j, len(s))
		if secretParam(key) && j > valStart {
			spans = append(spans, [2]int{valStart, j})
		}
		i = j
	}
	return spans
}

// maskSpans replaces each byte range of s (merged where they overlap) with
// Redacted.
func maskSpans(s string, spans [][2]int) string {
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		from, to := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] <= to; i++ {
			to = max(to, spans[i][1])
		}
		b.WriteString(s[last:from])
		b.WriteString(Redacted)
		last = to
	}
	b.WriteString(s[last:])
	return b.String()
}
