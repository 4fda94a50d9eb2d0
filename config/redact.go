package config

import (
	"reflect"

	"github.com/omnibridge/omnibridge/internal/connstr"
)

// RedactedText replaces every secret in printed configuration.
const RedactedText = connstr.Redacted

// Redacted returns a copy of c in which every field tagged `secret:"true"` is
// replaced by RedactedText, and every password inside a URL or key=value DSN is
// masked. The copy is safe to print or log.
func Redacted(c Config) Config {
	v := reflect.ValueOf(&c).Elem()
	redactValue(v, false)
	return c
}

// RedactURL masks every secret in a connection string (a URL or the
// keyword/value form) and leaves the rest as written; see connstr.Redact.
func RedactURL(s string) string { return connstr.Redact(s) }

func redactValue(v reflect.Value, secret bool) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			// A secret struct keeps all its fields secret.
			redactValue(v.Field(i), secret || t.Field(i).Tag.Get("secret") == "true")
		}
	case reflect.String:
		if v.String() == "" {
			return
		}
		if secret {
			v.SetString(RedactedText)
		} else {
			v.SetString(RedactURL(v.String()))
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		// Copy so the caller's slice is untouched.
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		v.Set(cp)
		for i := range cp.Len() {
			redactValue(cp.Index(i), secret)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		cp := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(iter.Value())
			redactValue(e, secret)
			cp.SetMapIndex(iter.Key(), e)
		}
		v.Set(cp)
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		e := reflect.New(v.Type().Elem())
		e.Elem().Set(v.Elem())
		redactValue(e.Elem(), secret)
		v.Set(e)
	}
}
