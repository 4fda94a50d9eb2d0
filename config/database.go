package config

import (
	"errors"

	"github.com/omnibridge/omnibridge/pgclient"
)

// DatabaseConfig is the shared database configuration: pgclient's, under
// `database:`. Each service opens its own pool from it (see service.Config for
// the per-service overrides).
type DatabaseConfig = pgclient.Config

// validateDatabase validates the database section. An empty URL is allowed
// here: `dev` starts its own database, and the commands that need one say so.
func validateDatabase(d DatabaseConfig) error {
	d = d.WithDefaults()
	err := d.Validate()
	if err == nil || d.URL != "" {
		return err
	}
	var keep []error
	for _, e := range unwrapJoined(err) {
		var ce *pgclient.ConfigError
		if errors.As(e, &ce) && ce.Field == "url" {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
