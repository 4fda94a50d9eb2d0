package metricsapi

// RoutePatterns returns the ServeMux patterns of every endpoint, for the
// OpenAPI test.
func (a *API) RoutePatterns() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " " + rt.path
	}
	return out
}
