// Package pgnotify fans the notifications of one Postgres LISTEN channel out
// to in-process subscribers, so that any number of them (the API's event
// streams, a browser following a pairing) cost one database connection.
//
// LISTEN/NOTIFY does not queue for absent listeners, and a subscriber that
// reads too slowly cannot be allowed to hold up the others: in both cases
// notifications are lost. A [Listener] never hides that; it hands the
// subscriber a "lost" item of the subscriber's own making (a resync, a
// reload-the-state notice), after which the subscriber reloads whatever it
// shows instead of trusting the notifications it has.
package pgnotify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReadyTimeout bounds how long [Listener.Subscribe] waits for the LISTEN to
// be in place when the caller's context allows longer.
const ReadyTimeout = 5 * time.Second

// Reconnect backoff: a database that is restarting is retried quickly at
// first, a database that stays away at most every maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Listener listens on one channel over a dedicated connection (not a pool's:
// LISTEN holds its connection for good), decodes each payload once and hands
// the result to every subscriber whose filter matches. It connects when the
// first subscriber arrives and reconnects with backoff; after a reconnect
// every subscriber is sent its lost item, as notifications sent in between
// are gone. The zero value is not usable; create one with [New].
type Listener[T any] struct {
	connConfig *pgx.ConnConfig
	channel    string
	decode     func(payload string) (T, error)
	log        *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	ready  chan struct{} // closed once the first LISTEN is in place

	mu      sync.Mutex
	subs    map[*subscriber[T]]struct{}
	running bool // run was started (Close must wait for done)
	closed  bool
}

// New returns a Listener on channel that connects with a copy of
// connConfig (typically pool.Config().ConnConfig) and turns each payload
// into a T with decode. A payload decode rejects is logged (its size, not
// its content) and dropped. log may be nil for slog.Default().
func New[T any](connConfig *pgx.ConnConfig, channel string, decode func(payload string) (T, error), log *slog.Logger) *Listener[T] {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener[T]{
		connConfig: connConfig.Copy(),
		channel:    channel,
		decode:     decode,
		log:        log.With(slog.String("channel", channel)),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		ready:      make(chan struct{}),
		subs:       map[*subscriber[T]]struct{}{},
	}
}

// Subscription says which notifications a subscriber wants and how it is
// told that some were lost.
type Subscription[T any] struct {
	// Match selects the notifications delivered; nil delivers all.
	Match func(T) bool
	// Lost makes the item that tells the subscriber notifications may have
	// been lost: sent after a reconnect and when its buffer overflows.
	// Required.
	Lost func() T
	// Disposable reports items that a full buffer simply drops, without
	// displacing anything or sending Lost: short-lived news that is stale
	// by the time the subscriber catches up. It must not report the Lost
	// item. nil: none.
	Disposable func(T) bool
	// Buffer is how many items the subscriber may lag behind before it
	// loses some (at least 1).
	Buffer int
}

type subscriber[T any] struct {
	Subscription[T]
	ch chan T
}

// Subscribe returns a channel of the notifications s selects and a function
// that ends the subscription and closes the channel (safe to call more than
// once, and after Close). The first subscriber starts the listener.
// Subscribe waits until the LISTEN is in place, at most until ctx ends or
// [ReadyTimeout], so a notification sent after it returns is not missed
// (when the database is unreachable it returns anyway; the subscriber then
// hears from the listener once it connects). After Close the channel comes
// back closed.
func (l *Listener[T]) Subscribe(ctx context.Context, s Subscription[T]) (<-chan T, func()) {
	if s.Lost == nil {
		panic("pgnotify: Subscription.Lost is required")
	}
	sub := &subscriber[T]{Subscription: s, ch: make(chan T, max(s.Buffer, 1))}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	l.subs[sub] = struct{}{}
	if !l.running {
		l.running = true
		go l.run()
	}
	l.mu.Unlock()

	wait, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	select {
	case <-l.ready:
	case <-wait.Done():
	}
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			// Close may have ended (and closed) it already.
			if _, ok := l.subs[sub]; ok {
				delete(l.subs, sub)
				close(sub.ch)
			}
		})
	}
}

// Close stops listening, closes the connection and ends every subscription
// (closing its channel; what it buffered can still be read). It is safe to
// call more than once.
func (l *Listener[T]) Close() {
	l.mu.Lock()
	l.closed = true
	running := l.running
	l.mu.Unlock()
	l.cancel()
	if running {
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for sub := range l.subs {
		delete(l.subs, sub)
		close(sub.ch)
	}
}

func (l *Listener[T]) run() {
	defer close(l.done)
	backoff := minBackoff
	listened := false // a LISTEN was in place before: a reconnect lost notifications
	for l.ctx.Err() == nil {
		err := l.listenOnce(&listened)
		if l.ctx.Err() != nil {
			return
		}
		l.log.Warn("listening for notifications failed; reconnecting",
			slog.Any("error", err), slog.Duration("retry_in", backoff))
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// listenOnce connects, LISTENs and delivers notifications until the
// connection fails or the Listener closes.
func (l *Listener[T]) listenOnce(listened *bool) error {
	conn, err := pgx.ConnectConfig(l.ctx, l.connConfig.Copy())
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(l.ctx))
	if _, err := conn.Exec(l.ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listening on %s: %w", l.channel, err)
	}
	if *listened {
		l.lost()
	} else {
		close(l.ready)
		*listened = true
	}
	for {
		n, err := conn.WaitForNotification(l.ctx)
		if err != nil {
			return fmt.Errorf("waiting for notification: %w", err)
		}
		v, err := l.decode(n.Payload)
		if err != nil {
			// The payload itself may carry message content: log its size only.
			l.log.Warn("ignoring a malformed notification", slog.Int("bytes", len(n.Payload)), slog.Any("error", err))
			continue
		}
		l.publish(v)
	}
}

func (l *Listener[T]) publish(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for sub := range l.subs {
		if sub.Match == nil || sub.Match(v) {
			sub.deliver(v)
		}
	}
}

// lost tells every subscriber that notifications may have been lost.
func (l *Listener[T]) lost() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for sub := range l.subs {
		sub.deliver(sub.Lost())
	}
}

// deliver never blocks the listener (it runs under l.mu, on the one
// goroutine that reads the connection). A subscriber whose buffer is full
// loses its oldest item to make room for a Lost item, so that the last
// thing it reads says it must reload; Disposable items are dropped instead.
func (s *subscriber[T]) deliver(v T) {
	select {
	case s.ch <- v:
		return
	default:
	}
	if s.Disposable != nil && s.Disposable(v) {
		return
	}
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- s.Lost():
	default:
	}
}
