// Package fielderr is the one error type for an invalid configuration
// field, shared by every package that validates configuration (config,
// pgclient, kafka, coordinator, metricsapi), each of which exports it under
// its own name. Validation reports every invalid field at once, as these
// errors joined with errors.Join.
package fielderr

import "fmt"

// Error names an invalid configuration field (by its YAML key, or its path
// within a section) and its value.
type Error struct {
	Field  string
	Value  any
	Reason string
	// Err is the underlying cause, such as the error opening a TLS file; nil
	// when Reason says it all.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: invalid value %q: %s", e.Field, fmt.Sprint(e.Value), e.Reason)
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error for field.
func New(field string, value any, reason string) error {
	return &Error{Field: field, Value: value, Reason: reason}
}

// Within returns e with section. put before its field.
func (e *Error) Within(section string) *Error {
	out := *e
	out.Field = section + "." + e.Field
	return &out
}
