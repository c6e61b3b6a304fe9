package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// memHost is an in-memory sdk.Host for tests: it keeps events deduplicated on
// connection and DedupeKey, as the real host's store does, and enforces the
// same state size limit. (plugins/testkit has a fuller one, MemoryHost.)
type memHost struct {
	mu     sync.Mutex
	events map[string][]sdk.Event // by connection
	seen   map[[2]string]bool     // connection, dedupe key
	state  map[[2]string][]byte   // connection, key
}

var _ sdk.Host = (*memHost)(nil)

func newMemHost() *memHost {
	return &memHost{events: map[string][]sdk.Event{}, seen: map[[2]string]bool{}, state: map[[2]string][]byte{}}
}

func (h *memHost) Emit(_ context.Context, connectionID string, events ...sdk.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		if e.DedupeKey == "" {
			return sdk.Invalid("event %s has no dedupe key", e.Type)
		}
		k := [2]string{connectionID, e.DedupeKey}
		if !h.seen[k] {
			h.seen[k] = true
			h.events[connectionID] = append(h.events[connectionID], e)
		}
	}
	return nil
}

func (h *memHost) GetState(_ context.Context, connectionID, key string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state[[2]string{connectionID, key}], nil
}

func (h *memHost) SetState(_ context.Context, connectionID, key string, value []byte) error {
	if len(value) > sdk.MaxStateSize {
		return sdk.Invalid("state %q: %d bytes is over %d", key, len(value), sdk.MaxStateSize)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[[2]string{connectionID, key}] = append([]byte(nil), value...)
	return nil
}

// memHost's example connector holds no sessions.
func (h *memHost) UpdateSession(context.Context, string, sdk.SessionUpdate) error {
	return sdk.Permanent("memHost holds no sessions")
}

func (h *memHost) Signal(context.Context, string, sdk.Signal) error {
	return sdk.Permanent("memHost holds no sessions")
}

// inboxStream receives messages over a provider's long-lived stream rather
// than webhooks, so it hands them to the host itself with Emit, and keeps the
// stream's resume token in the host's state so a restarted plugin resumes
// where it stopped.
type inboxStream struct{ host sdk.Host }

func newInboxStream(host sdk.Host) (sdk.Connector, error) { return &inboxStream{host: host}, nil }

func (s *inboxStream) Manifest() sdk.Manifest {
	return sdk.Manifest{
		Name: "inbox", Version: "1.0.0", DisplayName: "Inbox",
		Events: []sdk.EventType{{Type: "message.received"}},
	}
}

// streamMessage is one message read from the provider's stream.
type streamMessage struct {
	ID          string
	From        string
	SentAt      time.Time
	ResumeToken string
}

// deliver is called by the connector's stream reader for each message.
func (s *inboxStream) deliver(ctx context.Context, connectionID string, m streamMessage) error {
	payload, err := json.Marshal(map[string]string{"message_id": m.ID, "from": m.From})
	if err != nil {
		return fmt.Errorf("encoding message %s: %w", m.ID, err)
	}
	// Emit returns once the host has stored the event, so only then is the
	// resume token moved past it: a crash in between redelivers the message,
	// and the dedupe key makes that harmless.
	if err := s.host.Emit(ctx, connectionID, sdk.Event{
		DedupeKey: m.ID, Type: "message.received", OccurredAt: m.SentAt, Payload: payload,
	}); err != nil {
		return fmt.Errorf("emitting message %s: %w", m.ID, err)
	}
	if err := s.host.SetState(ctx, connectionID, "resume_token", []byte(m.ResumeToken)); err != nil {
		return fmt.Errorf("saving resume token: %w", err)
	}
	return nil
}

// resumeToken is where the stream restarts; empty on the first run.
func (s *inboxStream) resumeToken(ctx context.Context, connectionID string) (string, error) {
	b, err := s.host.GetState(ctx, connectionID, "resume_token")
	if err != nil {
		return "", fmt.Errorf("reading resume token: %w", err)
	}
	return string(b), nil
}

// A connector reaches the host through the Host its Factory receives: Emit to
// store events it finds on its own, GetState and SetState for small values
// per connection. In tests, pass an in-memory Host such as memHost.
func ExampleHost() {
	ctx := context.Background()
	host := newMemHost()
	var factory sdk.Factory = newInboxStream
	c, err := factory(host)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := c.(*inboxStream)

	tok, _ := s.resumeToken(ctx, "conn_1")
	fmt.Printf("resume from %q\n", tok)

	at := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	for _, m := range []streamMessage{
		{ID: "msg_1", From: "+4915112345678", SentAt: at, ResumeToken: "t1"},
		{ID: "msg_2", From: "+4915112345678", SentAt: at.Add(time.Second), ResumeToken: "t2"},
		{ID: "msg_2", From: "+4915112345678", SentAt: at.Add(time.Second), ResumeToken: "t2"}, // redelivered
	} {
		if err := s.deliver(ctx, "conn_1", m); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("stored events:", len(host.events["conn_1"]))
	tok, _ = s.resumeToken(ctx, "conn_1")
	fmt.Printf("resume from %q\n", tok)

	err = host.SetState(ctx, "conn_1", "too_big", make([]byte, sdk.MaxStateSize+1))
	fmt.Println(sdk.KindOf(err))
	// Output:
	// resume from ""
	// stored events: 2
	// resume from "t2"
	// invalid
}
