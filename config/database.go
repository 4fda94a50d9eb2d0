package config

// DatabaseConfig is the primary database connection.
type DatabaseConfig struct {
	// URL is the PostgreSQL connection URL. Falls back to DATABASE_URL. No default:
	// every command but `dev` needs it.
	URL string `yaml:"url"`
}

// WithDefaults returns d with defaults filled in.
func (d DatabaseConfig) WithDefaults() DatabaseConfig { return d }

// Validate reports invalid fields.
func (d DatabaseConfig) Validate() error { return nil }
