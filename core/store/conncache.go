package store

import (
	"context"
	"sync"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// DefaultConnectionCacheTTL is how long a [ConnectionCache] reuses a resolved
// connection unless told otherwise.
const DefaultConnectionCacheTTL = 2 * time.Second

// ConnectionResolver looks a connection up by id, in any tenant, with its
// decrypted configuration. *Store and *ConnectionCache implement it.
type ConnectionResolver interface {
	ResolvedConnection(ctx context.Context, id string) (Connection, sdk.Config, error)
}

// ConnectionCache is a ConnectionResolver that reuses each resolved
// connection for a short time. Webhook ingress and connector invocation both
// resolve the connection on every request; at thousands of requests a second
// the query and the decryption of its secrets would cost more than the work
// itself. The price is that a connection disabled, deleted or reconfigured
// is seen by a cache up to its TTL later.
//
// Only successful lookups are cached, so a connection created a moment ago is
// found at once and a flood of requests for unknown ids cannot fill memory.
// It is safe for concurrent use.
type ConnectionCache struct {
	next ConnectionResolver
	ttl  time.Duration
	now  func() time.Time

	mu      sync.RWMutex
	entries map[string]cachedConnection
}

type cachedConnection struct {
	conn    Connection
	cfg     sdk.Config
	expires time.Time
}

// NewConnectionCache caches next's answers for ttl.
func NewConnectionCache(next ConnectionResolver, ttl time.Duration) *ConnectionCache {
	return &ConnectionCache{next: next, ttl: ttl, now: time.Now, entries: map[string]cachedConnection{}}
}

// ResolvedConnection implements ConnectionResolver. The configuration
// returned is shared between callers: treat it as read-only.
func (c *ConnectionCache) ResolvedConnection(ctx context.Context, id string) (Connection, sdk.Config, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.conn, e.cfg, nil
	}
	conn, cfg, err := c.next.ResolvedConnection(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.entries, id)
		return conn, cfg, err
	}
	// Sweep expired entries now and then so deleted connections do not stay
	// in memory; the map is as large as the set of live connections.
	if len(c.entries) > 0 && len(c.entries)%256 == 0 {
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[id] = cachedConnection{conn: conn, cfg: cfg, expires: now.Add(c.ttl)}
	return conn, cfg, nil
}
