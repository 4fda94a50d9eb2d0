package metricsapi

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the OpenAPI 3 description of the API, written by hand and
// kept true by TestOpenAPIMatchesRoutes.
//
//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3 document the API serves at
// /api/v1/openapi.json. The caller must not modify it.
func (a *API) OpenAPI() []byte { return a.openapi }

// serveOpenAPI serves GET /api/v1/openapi.json. It needs no token: it
// describes the API, not its data.
func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseParams(r); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.openapi)
	return nil
}
