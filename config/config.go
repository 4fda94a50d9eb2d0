// Package config loads the omnibridge configuration: a YAML file, overridden by
// OMNIBRIDGE_* environment variables, overridden by command-line flags.
//
// Every field documents its default. Load fills defaults, applies the sources in
// order and validates the result, reporting every invalid field at once.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnibridge/omnibridge/hookreceiver"
	"github.com/omnibridge/omnibridge/internal/connstr"
	"github.com/omnibridge/omnibridge/internal/fielderr"
	"github.com/omnibridge/omnibridge/kafka"
	"github.com/omnibridge/omnibridge/store"
)

// EnvPrefix prefixes every environment variable that overrides a field, e.g.
// OMNIBRIDGE_DATABASE_URL for database.url.
const EnvPrefix = "OMNIBRIDGE_"

// Environments accepted by Config.Environment.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Config is the whole omnibridge configuration. The YAML keys are the snake_case
// names in the struct tags; the environment variable for a key is EnvPrefix plus
// the upper-cased path joined by underscores (database.max_conns →
// OMNIBRIDGE_DATABASE_MAX_CONNS).
type Config struct {
	// Environment is "development" or "production". Production refuses settings
	// that are only acceptable on a developer machine. Defaults to "development".
	Environment string `yaml:"environment"`

	// Log configures the process logger.
	Log LogConfig `yaml:"log"`

	// Database is the primary PostgreSQL. Its URL falls back to DATABASE_URL.
	// It is kept as given: pgclient fills its defaults when a pool opens,
	// because some of them (TLS mode, pool sizes) come from the URL, which
	// `dev` and each service's override may still replace.
	Database DatabaseConfig `yaml:"database"`

	// Services configures each service.
	Services ServicesConfig `yaml:"services"`

	// Retention is how long data is kept and how maintenance runs.
	Retention store.RetentionPolicy `yaml:"retention"`

	// Kafka is where the WorkflowCoordinator publishes events. `dev` starts an
	// in-process broker when no brokers are set.
	Kafka kafka.Config `yaml:"kafka"`

	// Dev configures `omnibridge dev`.
	Dev DevConfig `yaml:"dev"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Defaults to "info".
	Level string `yaml:"level"`
	// Format is text or json. Defaults to "text".
	Format string `yaml:"format"`
}

// DevConfig configures the all-in-one development mode.
type DevConfig struct {
	// DataDir keeps the embedded PostgreSQL cluster between runs.
	// Defaults to ".omnibridge/pgdata" under the working directory.
	DataDir string `yaml:"data_dir"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{}.WithDefaults()
}

// WithDefaults returns a copy of c with every unset field given its default.
func (c Config) WithDefaults() Config {
	c.Environment = cmp.Or(c.Environment, EnvDevelopment)
	c.Log.Level = cmp.Or(c.Log.Level, "info")
	c.Log.Format = cmp.Or(c.Log.Format, "text")
	c.Kafka = c.Kafka.WithDefaults()
	c.Retention = c.Retention.WithDefaults()
	c.Services = c.Services.WithDefaults()
	c.Dev.DataDir = cmp.Or(c.Dev.DataDir, ".omnibridge/pgdata")
	return c
}

// Validate reports every invalid field at once, each naming the field and its value.
func (c Config) Validate() error {
	var errs []error
	switch c.Environment {
	case EnvDevelopment, EnvProduction:
	default:
		errs = append(errs, fieldError("environment", c.Environment, "must be development or production"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fieldError("log.level", c.Log.Level, "must be debug, info, warn or error"))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fieldError("log.format", c.Log.Format, "must be text or json"))
	}
	errs = append(errs, prefixed("database", validateDatabase(c.Database))...)
	if c.Environment == EnvProduction && c.Database.URL != "" {
		// TLS weaker than verify-full is for development only.
		errs = append(errs, prefixed("database", c.Database.WithDefaults().CheckProduction())...)
	}
	errs = append(errs, prefixed("kafka", c.Kafka.Validate())...)
	errs = append(errs, prefixed("retention", c.Retention.Validate())...)
	errs = append(errs, c.Services.validate()...)
	return errors.Join(errs...)
}

// FieldError names an invalid configuration field and its value.
type FieldError = fielderr.Error

func fieldError(field string, value any, reason string) error {
	return fielderr.New(field, value, reason)
}

// prefixed splits a joined validation error of a section into its parts and puts
// the section name before each field.
func prefixed(section string, err error) []error {
	if err == nil {
		return nil
	}
	parts := unwrapJoined(err)
	out := make([]error, 0, len(parts))
	for _, p := range parts {
		// Every package's field error is a *fielderr.Error.
		if fe, ok := errors.AsType[*FieldError](p); ok {
			fe = fe.Within(section)
			// A connection string in an error is shown as config print
			// shows it.
			if v, ok := fe.Value.(string); ok {
				fe.Value = RedactURL(v)
			}
			fe.Reason = connstr.RedactText(fe.Reason)
			out = append(out, fe)
		} else {
			out = append(out, fmt.Errorf("%s: %w", section, p))
		}
	}
	return out
}

// Source says where Load reads from. Zero values mean "none".
type Source struct {
	// File is a YAML file path; empty means no file.
	File string
	// Env looks up environment variables; nil means os.LookupEnv.
	Env func(string) (string, bool)
	// Flags are overrides applied last, keyed by YAML path ("database.url").
	Flags map[string]string
}

// Load reads the file, applies environment and flag overrides, fills defaults and
// validates. Unknown YAML keys are errors, so a typo never passes silently.
//
// Every problem is reported at once: values that do not parse (each a
// *FieldError naming its full path and saying where the value came from),
// unknown keys and unknown flags, and the validation errors of the result. A
// field whose value did not parse keeps its earlier value, so validation
// errors about it (or naming it, such as "must not exceed max_conns") are left
// out. Only a file that cannot be read, or read as YAML, stops Load early.
func Load(src Source) (Config, error) {
	var c Config
	var pe parseErrors
	if src.File != "" {
		raw, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, fmt.Errorf("read config file: %w", err)
		}
		if err := decodeFile(src.File, raw, &c, &pe); err != nil {
			return Config{}, err
		}
	}
	env := src.Env
	if env == nil {
		env = os.LookupEnv
	}
	applyEnv(&c, env, &pe)
	if c.Database.URL == "" {
		if v, ok := env("DATABASE_URL"); ok {
			c.Database.URL = v
		}
	}
	for _, path := range slices.Sorted(maps.Keys(src.Flags)) {
		if err := setPath(&c, path, src.Flags[path], &pe); err != nil {
			pe.add(fmt.Errorf("flag for %s: %w", path, err))
		}
	}
	c = c.WithDefaults()
	errs := pe.errs
	for _, e := range unwrapJoined(c.Validate()) {
		if e != nil && !c.explainedBy(&pe, e) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return c, nil
}

// explainedBy reports whether validation error e is about a field whose value
// did not parse (see parseErrors.masks), so that only the parse error is
// reported for it.
func (c Config) explainedBy(pe *parseErrors, e error) bool {
	if fe, ok := errors.AsType[*FieldError](e); ok {
		return pe.masks(fe.Field, fe.Reason)
	}
	// A webhook source's errors name the source rather than its index.
	if se, ok := errors.AsType[*hookreceiver.ConfigError](e); ok {
		for i, s := range c.Services.HookReceiver.Receiver.Sources {
			path := fmt.Sprintf("services.hook_receiver.sources[%d].%s", i, se.Field)
			if s.Name == se.Source && pe.masks(path, se.Reason) {
				return true
			}
		}
	}
	return false
}

// YAML renders c as YAML with secrets redacted and the database defaults
// filled in, as a pool opened from it would see them.
func (c Config) YAML() ([]byte, error) {
	c.Database = c.Database.WithDefaults()
	r := Redacted(c)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// envName returns the environment variable for a YAML path.
func envName(path []string) string {
	return EnvPrefix + strings.ToUpper(strings.Join(path, "_"))
}
