package metricsapi

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
)

// dashboardFS holds the dashboard: one page, its script and its style sheet.
// Nothing is loaded from elsewhere, so it works offline.
//
//go:embed dashboard
var dashboardFS embed.FS

// dashboardCSP lets the page load only its own script and style sheet and
// talk only to its own origin: the audit log it shows holds text that
// attackers chose (paths, user agents), which the script inserts as text only.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// renderDashboard renders the page with the configured refresh interval and
// default window.
func renderDashboard(cfg Config) ([]byte, error) {
	tmpl, err := template.ParseFS(dashboardFS, "dashboard/index.html")
	if err != nil {
		return nil, fmt.Errorf("metricsapi: dashboard template: %w", err)
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, map[string]any{
		"RefreshMS":     cfg.RefreshInterval.Milliseconds(),
		"DefaultWindow": formatDuration(cfg.DefaultWindow),
		"TokenRequired": cfg.Token != "",
	})
	if err != nil {
		return nil, fmt.Errorf("metricsapi: dashboard template: %w", err)
	}
	return buf.Bytes(), nil
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// serveDashboard serves GET /, the dashboard page.
func (a *API) serveDashboard(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseParams(r); err != nil {
		return err
	}
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.page)
	return nil
}

// serveAsset serves GET /dashboard/{file}: the page's script and style sheet.
func (a *API) serveAsset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "index.html" || path.Ext(name) == "" {
		return &apiError{status: http.StatusNotFound, body: errorBody{Error: "no such file", Code: CodeNotFound}}
	}
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		return err
	}
	if _, err := fs.Stat(sub, name); err != nil {
		return &apiError{status: http.StatusNotFound, body: errorBody{Error: "no such file", Code: CodeNotFound}}
	}
	setPageHeaders(w.Header())
	http.ServeFileFS(w, r, sub, name)
	return nil
}
