package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/omnibridge/omnibridge/internal/connstr"
)

var durationType = reflect.TypeFor[time.Duration]()

// applyEnv walks every exported, yaml-tagged field of c and sets it from the
// matching OMNIBRIDGE_* variable when that variable is set. Lists are
// comma-separated. Slices of structs and maps cannot be set this way; they come
// from the file only. A value that does not parse is recorded in pe, and the
// field keeps its earlier value.
func applyEnv(c *Config, lookup func(string) (string, bool), pe *parseErrors) {
	walkFields(reflect.ValueOf(c).Elem(), nil, false, func(path []string, v reflect.Value, secret bool) {
		name := envName(path)
		raw, ok := lookup(name)
		if !ok {
			return
		}
		pe.set(strings.Join(path, "."), v, raw, secret, "from "+name)
	})
}

// setPath sets the field at a dotted YAML path ("database.max_conns") from a
// flag. A value that does not parse is recorded in pe; an unknown path is
// returned.
func setPath(c *Config, path, raw string, pe *parseErrors) error {
	want := strings.Split(path, ".")
	found := false
	walkFields(reflect.ValueOf(c).Elem(), nil, false, func(p []string, v reflect.Value, secret bool) {
		if !found && slicesEqual(p, want) {
			found = true
			pe.set(path, v, raw, secret, "from a flag")
		}
	})
	if !found {
		return fmt.Errorf("unknown setting %q", path)
	}
	return nil
}

// parseErrors collects the values that do not parse, from every source, so
// that Load reports them together with the validation errors.
type parseErrors struct {
	errs []error
	// failed holds the dotted paths whose last source failed to parse: their
	// fields do not hold the value that was meant, so validating them would
	// report a value nobody wrote.
	failed map[string]bool
}

// set parses raw into v, the field at path, and records a failure as a
// *FieldError naming path, with where the value came from (from) in its
// reason. A secret value is not repeated in the error.
func (pe *parseErrors) set(path string, v reflect.Value, raw string, secret bool, from string) {
	err := setValue(v, raw)
	if err == nil {
		delete(pe.failed, path)
		return
	}
	shown := any(raw)
	if secret {
		shown, err = RedactedText, nil
	}
	pe.add(&FieldError{Field: path, Value: shown, Reason: valueReason(v.Type(), err) + " (" + from + ")", Err: err})
}

// add records err; a *FieldError marks its field as failed.
func (pe *parseErrors) add(err error) {
	pe.errs = append(pe.errs, err)
	if fe, ok := errors.AsType[*FieldError](err); ok {
		// A connection string in the error is shown as config print shows
		// it, like the validation errors' (see prefixed).
		if v, ok := fe.Value.(string); ok {
			fe.Value = RedactURL(v)
		}
		fe.Reason = connstr.RedactText(fe.Reason)
		if pe.failed == nil {
			pe.failed = map[string]bool{}
		}
		pe.failed[fe.Field] = true
	}
}

// masks reports whether a validation error on field is explained by a value
// that did not parse: the field itself or one inside it failed, or the
// reason names a failed field next to it ("must not exceed max_conns (25)").
func (pe *parseErrors) masks(field, reason string) bool {
	parent, _ := splitLast(field)
	for f := range pe.failed {
		if field == f || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return true
		}
		if fp, name := splitLast(f); fp == parent && mentions(reason, name) {
			return true
		}
	}
	return false
}

// splitLast splits a dotted path into its parent and its last name.
func splitLast(path string) (parent, name string) {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

// mentions reports whether text holds name as a whole word of a YAML key.
func mentions(text, name string) bool {
	isKey := func(c byte) bool {
		return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(name)
		if (j == 0 || !isKey(text[j-1])) && (end == len(text) || !isKey(text[end])) {
			return true
		}
		i = j + 1
	}
}

// Paths lists every setting that environment variables and flags can set, as
// dotted YAML paths with their environment variable names.
func Paths() [][2]string {
	var out [][2]string
	var c Config
	walkFields(reflect.ValueOf(&c).Elem(), nil, false, func(p []string, _ reflect.Value, _ bool) {
		out = append(out, [2]string{strings.Join(p, "."), envName(p)})
	})
	return out
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// walkFields calls fn for every settable leaf field (not a struct, not a slice of
// structs, not a map) with its YAML path and whether it is secret (tagged
// secret:"true", or inside a field that is).
func walkFields(v reflect.Value, path []string, secret bool, fn func([]string, reflect.Value, bool)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, inline := yamlName(f)
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		sec := secret || f.Tag.Get("secret") == "true"
		p := path
		if !inline {
			p = append(append([]string(nil), path...), name)
		}
		switch {
		case f.Type == durationType:
			fn(p, fv, sec)
		case f.Type.Kind() == reflect.Struct:
			walkFields(fv, p, sec, fn)
		case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Func,
			f.Type.Kind() == reflect.Interface, f.Type.Kind() == reflect.Pointer:
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String:
		default:
			fn(p, fv, sec)
		}
	}
}

func yamlName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("yaml")
	parts := strings.Split(tag, ",")
	for _, opt := range parts[1:] {
		if opt == "inline" {
			return "", true
		}
	}
	if parts[0] == "" {
		return strings.ToLower(f.Name), false
	}
	return parts[0], false
}

// setValue parses raw into v. Its errors are the parsers'; valueReason says
// what was expected.
func setValue(v reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		return errors.ErrUnsupported
	}
	return nil
}

// valueReason says why a value does not fit type t, err being the parser's
// error (or nil).
func valueReason(t reflect.Type, err error) string {
	if errors.Is(err, strconv.ErrRange) {
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return fmt.Sprintf("out of range for a %d-bit integer", t.Bits())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return fmt.Sprintf("out of range for a %d-bit unsigned integer", t.Bits())
		}
		return "out of range"
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return "cannot be set from text"
	}
	return "not " + typeNoun(t)
}

// typeNoun names what a field of type t holds, with its article.
func typeNoun(t reflect.Type) string {
	if t == durationType {
		return "a duration (e.g. 30s, 5m)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeNoun(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true/false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + plural(typeNoun(t.Elem()))
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// plural turns "a non-negative integer" into "non-negative integers", "a
// duration (e.g. 30s)" into "durations (e.g. 30s)".
func plural(noun string) string {
	noun = strings.TrimPrefix(strings.TrimPrefix(noun, "an "), "a ")
	if rest, ok := strings.CutPrefix(noun, "list of "); ok {
		return "lists of " + rest
	}
	head, paren, _ := strings.Cut(noun, " (")
	if paren != "" {
		paren = " (" + paren
	}
	return head + "s" + paren
}

// Setting is one configurable value, for the reference documentation.
type Setting struct {
	Path    string // dotted YAML path
	Env     string // environment variable
	Default string // the default, as it would be written in the file
}

// Settings lists every setting that environment variables and flags can set,
// with its default.
func Settings() []Setting {
	var out []Setting
	c := Default()
	c.Database = c.Database.WithDefaults()
	walkFields(reflect.ValueOf(&c).Elem(), nil, false, func(p []string, v reflect.Value, _ bool) {
		out = append(out, Setting{Path: strings.Join(p, "."), Env: envName(p), Default: formatDefault(v)})
	})
	return out
}

func formatDefault(v reflect.Value) string {
	if v.Type() == durationType {
		if v.Int() == 0 {
			return ""
		}
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	case reflect.String:
		return v.String()
	default:
		if v.IsZero() {
			return ""
		}
		return fmt.Sprint(v.Interface())
	}
}
