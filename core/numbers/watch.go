package numbers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/pgnotify"

	"github.com/ponte-hub/ponte/core/sessions"
)

// Watcher listens on sessions.NotifyChannel over one dedicated database
// connection and hands each notice to the in-process subscribers of its
// connection, so every node's API can follow a session that another node
// holds (a QR code shown in a browser served by any node) at the cost of one
// connection however many streams are open.
//
// LISTEN does not queue for absent listeners: after the Watcher reconnects
// it sends every subscriber a NoticeState notice of its own, so readers
// reload the state instead of missing a change. The listening itself is a
// [pgnotify.Listener]; Watcher adds the notice's payload, the per-connection
// filter and the state notice.
type Watcher struct {
	l *pgnotify.Listener[sessions.Notice]
}

// watchBuffer is how many notices a subscriber may lag behind. Notices only
// say "reload": when the buffer is full, one pending notice is as good as
// many, so a slow subscriber loses nothing it needs.
const watchBuffer = 16

// NewWatcher returns a Watcher that listens through a connection configured
// like pool's (not one of pool's: LISTEN holds its connection for good). It
// connects when the first subscriber arrives.
func NewWatcher(pool *pgxpool.Pool, log *slog.Logger) *Watcher {
	return &Watcher{l: pgnotify.New(pool.Config().ConnConfig, sessions.NotifyChannel, decodeNotice, log)}
}

// Watch returns the notices of the tenant's connection and a function that
// ends the subscription (closing the channel). It waits up to the context's
// deadline, at most 5 s, for the LISTEN to be in place, so that a change
// made after Watch returns is not missed: read the state after Watch, then
// again on every notice. The channel is closed when the Watcher closes.
//
// A full buffer already holds notices that make the subscriber reload the
// state: a state notice then replaces the oldest pending one so that it is
// not the one lost, and a signal nobody has room for is dropped (signals are
// short-lived anyway).
func (w *Watcher) Watch(ctx context.Context, tenantID, connectionID string) (<-chan sessions.Notice, func()) {
	return w.l.Subscribe(ctx, pgnotify.Subscription[sessions.Notice]{
		Match: func(n sessions.Notice) bool { return n.TenantID == tenantID && n.ConnectionID == connectionID },
		Lost: func() sessions.Notice {
			return sessions.Notice{TenantID: tenantID, ConnectionID: connectionID, Kind: sessions.NoticeState}
		},
		Disposable: func(n sessions.Notice) bool { return n.Kind != sessions.NoticeState },
		Buffer:     watchBuffer,
	})
}

// Close stops listening and ends every subscription.
func (w *Watcher) Close() { w.l.Close() }

func decodeNotice(payload string) (sessions.Notice, error) {
	var n sessions.Notice
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return sessions.Notice{}, fmt.Errorf("decoding session notice: %w", err)
	}
	if n.ConnectionID == "" || n.TenantID == "" {
		return sessions.Notice{}, errors.New("session notice lacks tenant_id or connection_id")
	}
	return n, nil
}
