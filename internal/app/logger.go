// Package app wires omnibridge's parts into the programs the command line runs:
// the development environment, the services, and the operator commands. The
// cmd package only parses flags and calls in here.
package app

import (
	"io"
	"log/slog"

	"github.com/omnibridge/omnibridge/config"
)

// NewLogger builds the process logger from the log configuration.
func NewLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
