package pgclient

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// resilienceDefaults fills the connection, TLS, authentication, breaker and
// retry fields: from the URL's libpq parameters where they have one, then
// from the defaults.
func (c Config) resilienceDefaults() Config {
	settings, err := connStringSettings(c.URL)
	if err != nil {
		settings = map[string]string{}
	}
	if c.ConnectTimeout == 0 {
		if secs, err := strconv.Atoi(strings.TrimSpace(connSetting(settings, "connect_timeout"))); err == nil && secs > 0 {
			c.ConnectTimeout = time.Duration(secs) * time.Second
		}
	}
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.TLS = c.TLS.WithDefaults(c.URL)
	c.RequireAuth = cmp.Or(c.RequireAuth, connSetting(settings, "require_auth"))
	c.ChannelBinding = cmp.Or(c.ChannelBinding, connSetting(settings, "channel_binding"), "prefer")
	c.Breaker = c.Breaker.WithDefaults()
	c.Retry = c.Retry.WithDefaults()
	return c
}

// validateResilience reports the invalid fields among those
// resilienceDefaults fills.
func (c Config) validateResilience() []error {
	var errs []error
	if c.ConnectTimeout <= 0 {
		errs = append(errs, configError("connect_timeout", c.ConnectTimeout, "must be positive"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := validateRequireAuth(c.RequireAuth); err != nil {
		errs = append(errs, configError("require_auth", c.RequireAuth, err.Error()))
	}
	switch c.ChannelBinding {
	case "disable", "prefer":
	case "require":
		if c.TLS.Mode == TLSModeDisable {
			errs = append(errs, configError("channel_binding", c.ChannelBinding, "require needs TLS (tls.mode is disable)"))
		}
	default:
		errs = append(errs, configError("channel_binding", c.ChannelBinding, "must be disable, prefer or require"))
	}
	if err := c.Breaker.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// CheckProduction reports what makes c unfit for production: TLS weaker
// than verify-full to a TCP host (unix sockets pass). The omnibridge
// configuration calls it when environment is production, so such a process
// refuses to start. It applies WithDefaults first, so URL parameters count.
func (c Config) CheckProduction() error {
	c = c.WithDefaults()
	if err := c.TLS.CheckProduction(c.URL); err != nil {
		return fmt.Errorf("pgclient: not fit for production: %w", err)
	}
	return nil
}
