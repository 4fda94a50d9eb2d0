package metricsapi

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// maxCacheEntries bounds the cache: clients choose the keys (any window and
// step), so a full cache stops storing rather than growing.
const maxCacheEntries = 256

// resultCache shares the expensive reports (performance and series, whose
// cost grows with the rows in the window) between concurrent and closely
// following requests: one computation per key runs at a time, and its
// encoded result is reused for ttl. Errors are not kept.
type resultCache struct {
	ttl   time.Duration // <= 0: every request computes
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	body    []byte
	expires time.Time
}

func newResultCache(ttl time.Duration) *resultCache {
	return &resultCache{ttl: ttl, now: time.Now, entries: make(map[string]cacheEntry)}
}

// get returns the JSON encoding of compute's result for key, computing it
// unless a fresh one is kept. compute runs under its own context, bounded by
// timeout and detached from ctx, so that a waiter who leaves does not fail
// the others; get itself returns when ctx ends.
func (c *resultCache) get(ctx context.Context, key string, timeout time.Duration, compute func(context.Context) (any, error)) ([]byte, error) {
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.body, nil
		}
	}
	ch := c.group.DoChan(key, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		v, err := compute(cctx)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		c.put(key, body)
		return body, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *resultCache) put(key string, body []byte) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			return
		}
	}
	c.entries[key] = cacheEntry{body: body, expires: now.Add(c.ttl)}
}
