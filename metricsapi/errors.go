package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/store"
)

// Error codes of the JSON error body. They are stable: clients may branch on
// them.
const (
	CodeInvalidParameter = "invalid_parameter"
	CodeUnknownParameter = "unknown_parameter"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeEventNotFound    = "event_not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "database_unavailable"
	CodeTimeout          = "timeout"
	CodeInternal         = "internal"
)

// errorBody is the JSON form of every error the API returns.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Parameter names the query or path parameter at fault, for 400s.
	Parameter string `json:"parameter,omitempty"`
}

// apiError is an error with its HTTP form.
type apiError struct {
	status     int
	body       errorBody
	retryAfter string
	cause      error // logged for 5xx, never sent
}

func (e *apiError) Error() string { return e.body.Error }

// paramError reports a bad query or path parameter.
func paramError(name, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, body: errorBody{
		Error: name + ": " + fmt.Sprintf(format, args...), Code: CodeInvalidParameter, Parameter: name,
	}}
}

// classify maps an error from a handler to its HTTP form: one table for every
// endpoint. Errors it does not know are internal (500, logged).
func classify(err error) *apiError {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae
	}
	var (
		ie *store.InputError
		ce *pgconn.ConnectError
		pe *pgconn.PgError
	)
	switch {
	case errors.Is(err, store.ErrEventNotFound):
		return &apiError{status: http.StatusNotFound, body: errorBody{
			Error: "no event has this id (processed events leave after the retention period)", Code: CodeEventNotFound}}
	case errors.As(err, &ie):
		// The handlers validate first; this is a limit the store enforces.
		return paramError(ie.Field, "%s", ie.Reason)
	case errors.Is(err, pgclient.ErrQueryTimeout), errors.Is(err, context.DeadlineExceeded), errors.As(err, &pe) && pe.Code == "57014":
		// 57014: the statement was cancelled, by pgx when the request's
		// query timeout passed or by the server's statement_timeout.
		return &apiError{status: http.StatusServiceUnavailable, retryAfter: "5", cause: err, body: errorBody{
			Error: "the database did not answer in time; try again, or a shorter window", Code: CodeTimeout}}
	case errors.Is(err, pgclient.ErrClosed), errors.As(err, &ce), pgclient.IsTransient(err), pgclient.IsRetryableTx(err):
		// The path to the database failed (a lost connection, a restart,
		// an open breaker, an exhausted pool), not the request.
		return &apiError{status: http.StatusServiceUnavailable, retryAfter: "5", cause: err, body: errorBody{
			Error: "the database is unavailable or overloaded; try again shortly", Code: CodeUnavailable}}
	default:
		return &apiError{status: http.StatusInternalServerError, cause: err, body: errorBody{
			Error: "internal error (the server log has the details)", Code: CodeInternal}}
	}
}

// writeError writes err's JSON form; server-side failures are logged.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	if ae.status >= 500 && r.Context().Err() == nil {
		a.log.Error("metricsapi: request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", ae.status), slog.Any("error", ae.cause))
	}
	if ae.retryAfter != "" {
		w.Header().Set("Retry-After", ae.retryAfter)
	}
	writeJSON(w, ae.status, ae.body)
}

// writeRawJSON writes an encoded JSON body with status 200.
func writeRawJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
}

// writeJSON writes v with status. API responses are never cached: they hold
// security data and change with every refresh.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
