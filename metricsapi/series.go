package metricsapi

import "github.com/omnibridge/omnibridge/store"

// Series is the body of GET /api/v1/performance/series: the store's
// performance series (store.Store.PerformanceSeries).
type Series = store.Series

// Bucket is one bucket of a Series.
type Bucket = store.SeriesBucket
