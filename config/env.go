package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// applyEnv walks every exported, yaml-tagged field of c and sets it from the
// matching OMNIBRIDGE_* variable when that variable is set. Lists are
// comma-separated. Slices of structs and maps cannot be set this way; they come
// from the file only.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	var errs []string
	walkFields(reflect.ValueOf(c).Elem(), nil, func(path []string, v reflect.Value) {
		raw, ok := lookup(envName(path))
		if !ok {
			return
		}
		if err := setValue(v, raw); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(path), raw, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid environment:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// setPath sets the field at a dotted YAML path ("database.max_conns").
func setPath(c *Config, path, raw string) error {
	want := strings.Split(path, ".")
	found := false
	var err error
	walkFields(reflect.ValueOf(c).Elem(), nil, func(p []string, v reflect.Value) {
		if !found && slicesEqual(p, want) {
			found = true
			err = setValue(v, raw)
		}
	})
	if !found {
		return fmt.Errorf("unknown setting %q", path)
	}
	return err
}

// Paths lists every setting that environment variables and flags can set, as
// dotted YAML paths with their environment variable names.
func Paths() [][2]string {
	var out [][2]string
	var c Config
	walkFields(reflect.ValueOf(&c).Elem(), nil, func(p []string, _ reflect.Value) {
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
// structs, not a map) with its YAML path.
func walkFields(v reflect.Value, path []string, fn func([]string, reflect.Value)) {
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
		p := path
		if !inline {
			p = append(append([]string(nil), path...), name)
		}
		switch {
		case f.Type == durationType:
			fn(p, fv)
		case f.Type.Kind() == reflect.Struct:
			walkFields(fv, p, fn)
		case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Func,
			f.Type.Kind() == reflect.Interface, f.Type.Kind() == reflect.Pointer:
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String:
		default:
			fn(p, fv)
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

func setValue(v reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 30s, 5m): %w", err)
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
			return fmt.Errorf("not a boolean (true/false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer")
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a number")
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
		return fmt.Errorf("cannot be set from text")
	}
	return nil
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
	walkFields(reflect.ValueOf(&c).Elem(), nil, func(p []string, v reflect.Value) {
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
