package numbers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
// reload the state instead of missing a change.
type Watcher struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu      sync.Mutex
	subs    map[*watch]struct{}
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	ready   chan struct{} // closed once the first LISTEN is in place
}

type watch struct {
	tenantID, connectionID string
	ch                     chan sessions.Notice
}

// watchBuffer is how many notices a subscriber may lag behind. Notices only
// say "reload": when the buffer is full, one pending notice is as good as
// many, so a slow subscriber loses nothing it needs.
const watchBuffer = 16

// NewWatcher returns a Watcher that listens through a connection configured
// like pool's (not one of pool's: LISTEN holds its connection for good). It
// connects when the first subscriber arrives.
func NewWatcher(pool *pgxpool.Pool, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Watcher{pool: pool, log: log, subs: map[*watch]struct{}{}, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), ready: make(chan struct{})}
}

// Watch returns the notices of the tenant's connection and a function that
// ends the subscription (closing the channel). It waits up to the context's
// deadline, at most 5 s, for the LISTEN to be in place, so that a change
// made after Watch returns is not missed: read the state after Watch, then
// again on every notice. The channel is closed when the Watcher closes.
func (w *Watcher) Watch(ctx context.Context, tenantID, connectionID string) (<-chan sessions.Notice, func()) {
	sub := &watch{tenantID: tenantID, connectionID: connectionID, ch: make(chan sessions.Notice, watchBuffer)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	w.subs[sub] = struct{}{}
	if !w.started {
		w.started = true
		go w.run()
	}
	w.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-w.ready:
	case <-wait.Done():
	}
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			w.mu.Lock()
			if _, ok := w.subs[sub]; ok {
				delete(w.subs, sub)
				close(sub.ch)
			}
			w.mu.Unlock()
		})
	}
}

// Close stops listening and ends every subscription.
func (w *Watcher) Close() {
	w.mu.Lock()
	started := w.started
	w.closed, w.started = true, true
	w.mu.Unlock()
	w.cancel()
	if started {
		<-w.done
	}
	w.mu.Lock()
	for sub := range w.subs {
		delete(w.subs, sub)
		close(sub.ch)
	}
	w.mu.Unlock()
}

func (w *Watcher) run() {
	defer close(w.done)
	backoff := 100 * time.Millisecond
	listened := false
	for w.ctx.Err() == nil {
		err := w.listenOnce(&listened)
		if w.ctx.Err() != nil {
			return
		}
		w.log.Warn("session watcher: listening for notifications failed; reconnecting",
			slog.Any("error", err), slog.Duration("retry_in", backoff))
		select {
		case <-w.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (w *Watcher) listenOnce(listened *bool) error {
	conn, err := pgx.ConnectConfig(w.ctx, w.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(w.ctx))
	if _, err := conn.Exec(w.ctx, "LISTEN "+sessions.NotifyChannel); err != nil {
		return fmt.Errorf("listening on %s: %w", sessions.NotifyChannel, err)
	}
	if *listened {
		w.resync()
	} else {
		close(w.ready)
		*listened = true
	}
	for {
		n, err := conn.WaitForNotification(w.ctx)
		if err != nil {
			return fmt.Errorf("waiting for notification: %w", err)
		}
		var notice sessions.Notice
		if err := json.Unmarshal([]byte(n.Payload), &notice); err != nil || notice.ConnectionID == "" || notice.TenantID == "" {
			w.log.Warn("session watcher: ignoring a malformed notification", slog.Int("bytes", len(n.Payload)))
			continue
		}
		w.publish(notice)
	}
}

func (w *Watcher) publish(n sessions.Notice) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for sub := range w.subs {
		if sub.tenantID == n.TenantID && sub.connectionID == n.ConnectionID {
			deliver(sub, n)
		}
	}
}

func (w *Watcher) resync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for sub := range w.subs {
		deliver(sub, sessions.Notice{TenantID: sub.tenantID, ConnectionID: sub.connectionID, Kind: sessions.NoticeState})
	}
}

// deliver never blocks the listener. A full buffer already holds notices
// that make the subscriber reload the state; a state notice replaces the
// oldest pending one so that it is not the one lost.
func deliver(sub *watch, n sessions.Notice) {
	select {
	case sub.ch <- n:
		return
	default:
	}
	if n.Kind != sessions.NoticeState {
		return // a signal nobody had room for: signals are short-lived anyway
	}
	select {
	case <-sub.ch:
	default:
	}
	select {
	case sub.ch <- n:
	default:
	}
}
