package pgnotify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/pgnotify"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const channel = "pgnotify_test"

// note is the payload of the test channel. Lost marks the lost items the
// subscribers make (never sent by the database).
type note struct {
	Topic string `json:"topic"`
	Seq   int    `json:"seq"`
	Flash bool   `json:"flash,omitempty"`
	Lost  bool   `json:"-"`
}

func decodeNote(payload string) (note, error) {
	var n note
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return note{}, err
	}
	if n.Topic == "" {
		return note{}, errors.New("no topic")
	}
	return n, nil
}

type env struct {
	pool *pgxpool.Pool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{pool: pool}
}

// setup gives a test a fresh database and a Listener on it, closed when
// the test ends.
func setup(t *testing.T) (*env, *pgnotify.Listener[note]) {
	t.Helper()
	e := newEnv(t)
	l := pgnotify.New(e.pool.Config().ConnConfig, channel, decodeNote, quietLog())
	t.Cleanup(l.Close)
	return e, l
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) notify(t *testing.T, payload string) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		t.Fatalf("notifying: %v", err)
	}
}

func (e *env) send(t *testing.T, n note) {
	t.Helper()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	e.notify(t, string(b))
}

// listeners returns the pids of the backends of this test's database whose
// last statement was a LISTEN (the Listener's connection, between
// notifications).
func (e *env) listeners(t *testing.T) []int32 {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%' ORDER BY pid`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitNoListeners waits until no backend listens any more (a closed
// connection's backend exits asynchronously).
func (e *env) waitNoListeners(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.listeners(t)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("listening backends after Close: %v", e.listeners(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func topic(name string) pgnotify.Subscription[note] {
	return pgnotify.Subscription[note]{
		Match:  func(n note) bool { return n.Topic == name },
		Lost:   func() note { return note{Topic: name, Lost: true} },
		Buffer: 16,
	}
}

// subscribe subscribes to the topic's notes until the test ends (or stop).
func subscribe(t *testing.T, l *pgnotify.Listener[note], name string) (<-chan note, func()) {
	t.Helper()
	ch, stop := l.Subscribe(context.Background(), topic(name))
	t.Cleanup(stop)
	return ch, stop
}

// receive reads want items from ch, failing when they do not come within
// 5 s, then checks that nothing else comes for a moment.
func receive(t *testing.T, name string, ch <-chan note, want []note) {
	t.Helper()
	var got []note
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case n, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed after %v", name, got)
			}
			got = append(got, n)
		case <-timeout:
			t.Fatalf("%s: got %v within 5 s, want %v", name, got, want)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
	select {
	case n, ok := <-ch:
		if ok {
			t.Errorf("%s: unexpected %+v", name, n)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// drain reads a closed channel to its end.
func drain(t *testing.T, ch <-chan note) []note {
	t.Helper()
	var got []note
	for {
		select {
		case n, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, n)
		case <-time.After(5 * time.Second):
			t.Fatalf("channel still open after %v", got)
		}
	}
}

// Each subscriber gets the notifications its filter selects, in order;
// malformed payloads reach nobody.
func TestIntegrationFanOut(t *testing.T) {
	t.Parallel()
	e, l := setup(t)
	ctx := context.Background()
	a, _ := subscribe(t, l, "a")
	b, stopB := subscribe(t, l, "b")
	all, stopAll := l.Subscribe(ctx, pgnotify.Subscription[note]{Lost: func() note { return note{Lost: true} }, Buffer: 16})
	defer stopAll()

	e.send(t, note{Topic: "a", Seq: 1})
	e.notify(t, "not json")
	e.notify(t, `{"seq": 9}`)
	e.send(t, note{Topic: "b", Seq: 2})
	e.send(t, note{Topic: "c", Seq: 3})
	e.send(t, note{Topic: "a", Seq: 4})

	receive(t, "a", a, []note{{Topic: "a", Seq: 1}, {Topic: "a", Seq: 4}})
	receive(t, "b", b, []note{{Topic: "b", Seq: 2}})
	receive(t, "all", all, []note{{Topic: "a", Seq: 1}, {Topic: "b", Seq: 2}, {Topic: "c", Seq: 3}, {Topic: "a", Seq: 4}})
	if got := len(e.listeners(t)); got != 1 {
		t.Errorf("%d listening connections for three subscribers, want 1", got)
	}

	// An ended subscription is closed and hears nothing more; the others do.
	stopB()
	stopB() // twice is fine
	if _, ok := <-b; ok {
		t.Error("b open after its subscription ended")
	}
	e.send(t, note{Topic: "b", Seq: 5})
	e.send(t, note{Topic: "a", Seq: 6})
	receive(t, "a after b ended", a, []note{{Topic: "a", Seq: 6}})
}

// Subscribe returns only once the LISTEN is in place: a notification sent
// right after it is delivered. Each round uses a new Listener, so each
// Subscribe is a first one that has to wait for the connection.
func TestIntegrationSubscribeWaitsForListen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		l := pgnotify.New(e.pool.Config().ConnConfig, channel, decodeNote, quietLog())
		ch, stop := l.Subscribe(context.Background(), topic("a"))
		if got := len(e.listeners(t)); got != 1 {
			t.Fatalf("round %d: %d listening connections when Subscribe returned, want 1", i, got)
		}
		e.send(t, note{Topic: "a", Seq: i})
		receive(t, "a", ch, []note{{Topic: "a", Seq: i}})
		stop()
		l.Close()
		e.waitNoListeners(t)
	}
}

// When the database cannot be reached, Subscribe gives up waiting when its
// context ends rather than hanging.
func TestIntegrationSubscribeUnreachable(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://ponte@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	l := pgnotify.New(cfg, channel, decodeNote, quietLog())
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, stop := l.Subscribe(ctx, topic("a"))
	defer stop()
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("Subscribe took %v with a 300 ms context and no database", took)
	}
}

// A subscriber that does not read loses notifications, not the others: its
// oldest items make room for its lost item (disposable ones are dropped
// instead), while a subscriber that reads gets everything.
func TestIntegrationLaggingSubscriber(t *testing.T) {
	t.Parallel()
	e, l := setup(t)
	ctx := context.Background()
	lost := func() note { return note{Topic: "x", Lost: true} }
	lagging, _ := l.Subscribe(ctx, pgnotify.Subscription[note]{Lost: lost, Buffer: 3})
	disposing, _ := l.Subscribe(ctx, pgnotify.Subscription[note]{Lost: lost, Buffer: 3,
		Disposable: func(n note) bool { return n.Flash }})
	reading, _ := l.Subscribe(ctx, pgnotify.Subscription[note]{Lost: lost, Buffer: 16})

	sent := []note{{Topic: "x", Seq: 1}, {Topic: "x", Seq: 2}, {Topic: "x", Seq: 3}, {Topic: "x", Seq: 4, Flash: true}, {Topic: "x", Seq: 5}}
	for _, n := range sent {
		e.send(t, n)
	}
	for i, want := range sent {
		select {
		case got := <-reading:
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("reading subscriber, item %d (-want +got):\n%s", i, diff)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("reading subscriber: item %d not delivered within 5 s (held up by the lagging ones?)", i)
		}
	}
	// Close waits for the listener to finish delivering, so what the
	// lagging subscribers buffered is final.
	l.Close()
	tests := map[string]struct {
		ch   <-chan note
		want []note
	}{
		// 4 displaced 1, 5 displaced 2; each left a lost item.
		"lagging": {lagging, []note{{Topic: "x", Seq: 3}, lost(), lost()}},
		// 4 was dropped; 5 displaced 1.
		"disposable dropped": {disposing, []note{{Topic: "x", Seq: 2}, {Topic: "x", Seq: 3}, lost()}},
		"reading":            {reading, nil},
	}
	for name, tc := range tests {
		if diff := cmp.Diff(tc.want, drain(t, tc.ch)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// When the listening backend dies, the Listener reconnects, tells every
// subscriber that notifications may have been lost, and delivers again.
func TestIntegrationReconnect(t *testing.T) {
	t.Parallel()
	e, l := setup(t)
	ctx := context.Background()
	a, _ := subscribe(t, l, "a")
	b, _ := subscribe(t, l, "b")
	e.send(t, note{Topic: "a", Seq: 1})
	receive(t, "a before", a, []note{{Topic: "a", Seq: 1}})

	before := e.listeners(t)
	if len(before) != 1 {
		t.Fatalf("listening backends %v, want one", before)
	}
	var killed bool
	if err := e.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, before[0]).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating the listening backend %d: %v, %v", before[0], killed, err)
	}
	// The lost item comes once the LISTEN is in place again, so what is
	// sent after it arrives is delivered.
	receive(t, "a lost", a, []note{{Topic: "a", Lost: true}})
	receive(t, "b lost", b, []note{{Topic: "b", Lost: true}})
	after := e.listeners(t)
	if len(after) != 1 || after[0] == before[0] {
		t.Fatalf("listening backends after reconnecting %v, before %v", after, before)
	}
	e.send(t, note{Topic: "a", Seq: 2})
	e.send(t, note{Topic: "b", Seq: 3})
	receive(t, "a after", a, []note{{Topic: "a", Seq: 2}})
	receive(t, "b after", b, []note{{Topic: "b", Seq: 3}})
}

// Close ends every subscription, releases the connection and leaves later
// subscribers a closed channel.
func TestIntegrationClose(t *testing.T) {
	t.Parallel()
	e, l := setup(t)
	ctx := context.Background()
	a, stopA := subscribe(t, l, "a")
	b, _ := subscribe(t, l, "b")
	e.send(t, note{Topic: "a", Seq: 1})
	receive(t, "a", a, []note{{Topic: "a", Seq: 1}})
	e.send(t, note{Topic: "b", Seq: 2})
	e.send(t, note{Topic: "a", Seq: 3})
	// Notifications arrive in order: once a has 3, b holds 2, unread.
	receive(t, "a", a, []note{{Topic: "a", Seq: 3}})

	l.Close()
	if got := drain(t, a); got != nil {
		t.Errorf("a after Close: %v", got)
	}
	if diff := cmp.Diff([]note{{Topic: "b", Seq: 2}}, drain(t, b)); diff != "" {
		t.Errorf("b kept its buffered item (-want +got):\n%s", diff)
	}
	stopA() // after Close: a no-op

	start := time.Now()
	c, stopC := l.Subscribe(ctx, topic("c"))
	defer stopC()
	if _, ok := <-c; ok {
		t.Error("subscription after Close is open")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Subscribe after Close took %v", took)
	}
	l.Close() // twice is fine

	// The listening connection is gone.
	e.waitNoListeners(t)

	// A Listener closed before anyone subscribed closes at once, twice.
	unused := pgnotify.New(e.pool.Config().ConnConfig, channel, decodeNote, quietLog())
	done := make(chan struct{})
	go func() { unused.Close(); unused.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of an unused Listener hangs")
	}
}
