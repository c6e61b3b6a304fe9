package invoke

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Actions of session connectors (sdk.SessionHolder, the WhatsApp linked
// device) can only run in the plugin process that holds the connection's
// session, and with several nodes that process may be on another node. The
// Invoker then forwards the call to the holder's internal endpoint
// (InternalPath), signed with a key every node derives from the shared master
// key. The holder runs it as if it had been called locally, and its answer,
// errors with their kind included, travels back unchanged.

// InternalPath is where a node accepts actions forwarded by other nodes.
const InternalPath = "/internal/v1/invoke"

// Headers of a forwarded call.
const (
	headerTimestamp = "X-Ponte-Node-Timestamp"
	headerSignature = "X-Ponte-Node-Signature"
)

// maxClockSkew bounds the age of a forwarded call's timestamp, so a captured
// request cannot be replayed later.
const maxClockSkew = 2 * time.Minute

// maxForwardBody bounds a forwarded request and answer (media downloads come
// back base64 in the result).
const maxForwardBody = 64 << 20

// SessionOwners says which node holds a connection's session;
// *sessions.Manager implements it (through a small adapter in core/server).
type SessionOwners interface {
	// Holds reports whether this node holds the session now.
	Holds(connectionID string) bool
	// OwnerURL returns the internal base URL of the node holding the
	// session, or an error when no node holds it (for instance while a
	// dead node's lease runs out).
	OwnerURL(ctx context.Context, connectionID string) (string, error)
}

// RouteSessions makes the Invoker run actions of session connectors on the
// node holding the session: here when this node holds it, else forwarded
// with fwd. Call it before the first Invoke.
func (inv *Invoker) RouteSessions(owners SessionOwners, fwd *Forwarder) {
	inv.owners, inv.forwarder = owners, fwd
}

// routed runs a prepared call of a session connector where its session is.
func (inv *Invoker) routed(ctx context.Context, call Call, p prepared) (json.RawMessage, bool, error) {
	if inv.owners == nil || !p.client.Manifest().Sessions || inv.owners.Holds(call.ConnectionID) {
		return nil, false, nil
	}
	url, err := inv.owners.OwnerURL(ctx, call.ConnectionID)
	if err != nil || url == "" || inv.forwarder == nil {
		return nil, true, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Err: err,
			Message: fmt.Sprintf("no node holds the session of connection %s right now; it is being taken over, retry shortly", call.ConnectionID)}
	}
	out, err := inv.forwarder.Forward(ctx, url, call)
	return out, true, err
}

// InvokeLocal runs a call in this node's plugin without routing: the
// internal endpoint uses it for forwarded calls, which must not be forwarded
// again. A session connector's call for a session this node does not hold is
// refused as retryable.
func (inv *Invoker) InvokeLocal(ctx context.Context, call Call) (json.RawMessage, error) {
	p, err := inv.prepare(ctx, call)
	if err != nil {
		return nil, err
	}
	if inv.owners != nil && p.client.Manifest().Sessions && !inv.owners.Holds(call.ConnectionID) {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld,
			Message: fmt.Sprintf("this node no longer holds the session of connection %s", call.ConnectionID)}
	}
	return inv.run(ctx, call, p)
}

// forwardedCall is the body of a forwarded call.
type forwardedCall struct {
	TenantID       string          `json:"tenant_id"`
	ConnectionID   string          `json:"connection_id"`
	Action         string          `json:"action"`
	Params         json.RawMessage `json:"params,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// forwardedAnswer is the body of the answer: a result or a connector error
// with its kind.
type forwardedAnswer struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *forwardedError `json:"error,omitempty"`
}

type forwardedError struct {
	Kind         string `json:"kind"`
	Message      string `json:"message"`
	Code         string `json:"code,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// DeriveInternalKey derives the key nodes sign forwarded calls with from the
// master key all nodes share (they need it anyway to read connection
// secrets), so there is no second secret to distribute.
func DeriveInternalKey(masterKey []byte) []byte {
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte("ponte/internal-invoke/v1"))
	return m.Sum(nil)
}

func sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Forwarder sends calls to the node holding a session.
type Forwarder struct {
	key    []byte
	client *http.Client
}

// NewForwarder returns a Forwarder signing with key (see DeriveInternalKey).
func NewForwarder(key []byte) *Forwarder {
	return &Forwarder{key: key, client: &http.Client{
		// A media send downloads and uploads the file at the holder.
		Timeout: 2 * time.Minute,
		// The holder answers itself; never follow a redirect elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Forward runs call on the node whose internal base URL is ownerURL. A call
// that may have reached the holder but whose answer was lost is reported
// Retryable: the connector's idempotency (the ledger id as message id) makes
// a repeat safe.
func (f *Forwarder) Forward(ctx context.Context, ownerURL string, call Call) (json.RawMessage, error) {
	body, err := json.Marshal(forwardedCall(call))
	if err != nil {
		return nil, fmt.Errorf("encoding a forwarded call: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(ownerURL, "/")+InternalPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("forwarding %s to %s: %w", call.Action, ownerURL, err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerSignature, sign(f.key, ts, body))
	res, err := f.client.Do(req)
	if err != nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Err: err,
			Message: fmt.Sprintf("forwarding %s to the node holding connection %s failed", call.Action, call.ConnectionID)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxForwardBody))
	if err != nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Err: err, Message: "reading a forwarded call's answer failed"}
	}
	if res.StatusCode != http.StatusOK {
		return nil, &sdk.Error{Kind: sdk.KindRetryable,
			Message: fmt.Sprintf("the node holding connection %s answered %d to a forwarded call", call.ConnectionID, res.StatusCode)}
	}
	var ans forwardedAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Err: err, Message: "decoding a forwarded call's answer failed"}
	}
	if e := ans.Error; e != nil {
		return nil, &sdk.Error{Kind: sdk.ParseErrorKind(e.Kind), Message: e.Message, Code: e.Code,
			RetryAfter: time.Duration(e.RetryAfterMS) * time.Millisecond}
	}
	return ans.Result, nil
}

// InternalHandler serves forwarded calls (mount it at InternalPath). It is
// not behind API-key auth: it checks the signature and the timestamp.
func InternalHandler(inv *Invoker, key []byte, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxForwardBody))
		if err != nil {
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		ts := r.Header.Get(headerTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > maxClockSkew ||
			!hmac.Equal([]byte(r.Header.Get(headerSignature)), []byte(sign(key, ts, body))) {
			log.Warn("refused a forwarded call with a bad signature or timestamp", "remote", r.RemoteAddr)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var call forwardedCall
		if err := json.Unmarshal(body, &call); err != nil {
			http.Error(w, "bad call", http.StatusBadRequest)
			return
		}
		out, err := inv.InvokeLocal(r.Context(), Call(call))
		var ans forwardedAnswer
		if err != nil {
			var se *sdk.Error
			if !errors.As(err, &se) {
				// Plugin unavailable and the like: the caller may retry.
				se = &sdk.Error{Kind: sdk.KindRetryable, Message: err.Error()}
			}
			ans.Error = &forwardedError{Kind: se.Kind.String(), Message: se.Message, Code: se.Code,
				RetryAfterMS: se.RetryAfter.Milliseconds()}
		} else {
			ans.Result = out
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
}
