package metricsapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxParamBytes bounds a query parameter's value; longer values are refused
// before any parsing.
const maxParamBytes = 256

// params are the validated query parameters of one request.
type params struct {
	v url.Values
}

// parseParams parses the query string and refuses it when it does not parse,
// names a parameter that is not in allowed (a typo must not silently widen a
// filter), repeats one, or has an empty, overlong or non-UTF-8 value.
func parseParams(r *http.Request, allowed ...string) (params, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return params{}, paramError("query", "the query string does not parse: %v", err)
	}
	for _, name := range sortedKeys(v) {
		if !slices.Contains(allowed, name) {
			e := paramError(name, "unknown parameter (this endpoint accepts: %s)", acceptedList(allowed))
			e.body.Code = CodeUnknownParameter
			return params{}, e
		}
		vals := v[name]
		switch {
		case len(vals) > 1:
			return params{}, paramError(name, "given %d times, want at most once", len(vals))
		case vals[0] == "":
			return params{}, paramError(name, "is empty (omit it for the default)")
		case len(vals[0]) > maxParamBytes:
			return params{}, paramError(name, "is %d bytes, want at most %d", len(vals[0]), maxParamBytes)
		case !utf8.ValidString(vals[0]):
			return params{}, paramError(name, "is not valid UTF-8")
		}
	}
	return params{v: v}, nil
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func acceptedList(allowed []string) string {
	if len(allowed) == 0 {
		return "no parameters"
	}
	return strings.Join(allowed, ", ")
}

// get returns the parameter's value, "" when absent.
func (p params) get(name string) string { return p.v.Get(name) }

// duration parses a positive duration in Go syntax ("90s", "15m", "1h30m")
// or in days ("7d"), between min and max; def when absent.
func (p params) duration(name string, def, minimum, maximum time.Duration) (time.Duration, error) {
	s := p.get(name)
	if s == "" {
		return def, nil
	}
	d, ok := parseDuration(s)
	if !ok {
		return 0, paramError(name, "%q is not a duration (e.g. 15m, 1h, 7d)", s)
	}
	if d < minimum || d > maximum {
		return 0, paramError(name, "%s is outside %s to %s", formatDuration(d), formatDuration(minimum), formatDuration(maximum))
	}
	return d, nil
}

// parseDuration accepts time.ParseDuration's syntax and whole days ("7d").
func parseDuration(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 || n > 10000 {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d, true
}

// formatDuration prints whole days as "7d" and everything else as Go does,
// without zero minutes and seconds ("1h", not "1h0m0s"), so that it parses
// back with parseDuration.
func formatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// limit parses a page size between 1 and maximum; def when absent.
func (p params) limit(def, maximum int) (int, error) {
	s := p.get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maximum {
		return 0, paramError("limit", "%q is not a whole number between 1 and %d", s, maximum)
	}
	return n, nil
}

// time parses an instant: an RFC 3339 timestamp ("2024-05-01T12:00:00Z"), or
// a duration before now ("24h", "7d"). The zero time when absent.
func (p params) time(name string, now time.Time) (time.Time, error) {
	s := p.get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1970 || t.Year() > 9999 {
			return time.Time{}, paramError(name, "%q is outside the years 1970 to 9999", s)
		}
		return t, nil
	}
	if d, ok := parseDuration(s); ok && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, paramError(name, "%q is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor a duration before now (24h, 7d)", s)
}

// timeRange parses since and until and checks that since comes first.
func (p params) timeRange(now time.Time) (since, until time.Time, err error) {
	if since, err = p.time("since", now); err != nil {
		return
	}
	if until, err = p.time("until", now); err != nil {
		return
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		err = paramError("until", "%s is not after since (%s)", until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	return
}

// oneOf parses a value from a fixed set; "" when absent.
func (p params) oneOf(name string, values ...string) (string, error) {
	s := p.get(name)
	if s == "" || slices.Contains(values, s) {
		return s, nil
	}
	return "", paramError(name, "%q is not one of %s", s, strings.Join(values, ", "))
}

// boolean parses true or false; nil when absent.
func (p params) boolean(name string) (*bool, error) {
	switch s := p.get(name); s {
	case "":
		return nil, nil
	case "true":
		return new(true), nil
	case "false":
		return new(false), nil
	default:
		return nil, paramError(name, "%q is not true or false", s)
	}
}
