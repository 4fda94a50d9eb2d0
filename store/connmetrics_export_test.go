package store

// LatestConnectionMetricsSQL exposes the query for a plan check.
func LatestConnectionMetricsSQL() string { return latestConnectionMetricsSQL }
