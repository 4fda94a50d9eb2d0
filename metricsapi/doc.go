// Package metricsapi is the ModelMetrics API: read-only JSON views of event
// processing (performance over a window and as a time series), connection
// pools, service sessions, hook events and the security audit log, an OpenAPI
// 3 description of itself, and a dashboard page embedded in the binary.
//
// Every /api/v1 endpoint except the OpenAPI document requires a bearer token
// (Config.Token), compared in constant time. Each refused request is counted
// (omnibridge_metricsapi_auth_failures_total) and written to the security
// audit log through a rate-limited store.AuditWriter, so a flood of bad
// tokens writes a bounded number of rows.
//
// Errors are JSON, {"error": "...", "code": "..."}, plus "parameter" when a
// query parameter is at fault: 400 for a bad or unknown parameter, 401
// without a valid token, 404 for an unknown path or event, 405 for a method
// the path does not serve, 503 when the database is unavailable or too slow.
//
// The dashboard at GET / is public: it holds no data of its own. It asks for
// the token, keeps it in the tab's sessionStorage, and sends it with each of
// its API calls; a link of the form /#token=… hands it the token directly
// (the fragment never reaches the server, and the page removes it from the
// address bar). docs/api.md describes the endpoints.
//
// The service runtime mounts the API on its mux:
//
//	api, err := metricsapi.New(cfg, metricsapi.Deps{Store: rt.Store, Audit: audit, Logger: rt.Log, Registerer: rt.Registry})
//	if err != nil { ... }
//	api.Register(rt.Mux)
package metricsapi
