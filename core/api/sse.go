package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
)

// eventStream writes server-sent events, flushing each.
type eventStream struct {
	w  io.Writer
	rc *http.ResponseController
}

// openEventStream sends the headers of an event stream and its opening
// comment (GET /v1/stream, the pairing stream). The server's write timeout
// is for ordinary responses; a stream lives as long as the client keeps it,
// kept alive by heartbeats, so its write deadline is lifted.
func (s *server) openEventStream(hctx huma.Context) (eventStream, bool) {
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetHeader("X-Accel-Buffering", "no")
	hctx.SetStatus(http.StatusOK)
	w := hctx.BodyWriter()
	rw, ok := w.(http.ResponseWriter)
	if !ok {
		rw = humagin.Unwrap(hctx).Writer
	}
	rc := http.NewResponseController(rw)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.DebugContext(hctx.Context(), "event stream: clearing write deadline", slog.Any("error", err))
	}
	es := eventStream{w: w, rc: rc}
	return es, es.write(": connected\nretry: 3000\n\n")
}

func (e eventStream) write(s string) bool {
	if _, err := io.WriteString(e.w, s); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}

func (e eventStream) comment(text string) bool { return e.write(": " + text + "\n\n") }

// event writes one event; name is one of this file's constants and data
// marshals to one line (JSON escapes newlines).
func (e eventStream) event(name string, data any) bool {
	b, err := json.Marshal(data)
	if err != nil {
		return false
	}
	return e.write(fmt.Sprintf("event: %s\ndata: %s\n\n", name, b))
}

// heartbeat is how often an idle event stream sends a comment line.
func (s *server) heartbeat() time.Duration {
	if s.deps.StreamHeartbeat > 0 {
		return s.deps.StreamHeartbeat
	}
	return defaultHeartbeat
}

// pumpEvents feeds a stream from items until the client leaves (ctx ends),
// items closes (the server is shutting down), a write fails, or handle
// returns false; an idle stream gets a heartbeat comment every s.heartbeat().
func pumpEvents[T any](ctx context.Context, s *server, w eventStream, items <-chan T, handle func(T) bool) {
	ticker := time.NewTicker(s.heartbeat())
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if !w.comment("heartbeat") {
				return
			}
		case it, ok := <-items:
			if !ok || !handle(it) {
				return
			}
		}
	}
}
