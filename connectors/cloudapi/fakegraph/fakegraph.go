// Package fakegraph is a TEST FAKE of Meta's Graph API for the WhatsApp Cloud
// API. It is not used in production. Tests of Ponte's Cloud API connector,
// its messaging core and its workflows start one with [New] and point a
// connection's api_base at [Server.URL]; it listens on 127.0.0.1 on a random
// port and stops when the test ends.
//
// It reproduces these documented behaviours of the Cloud API (and nothing
// else; anything not listed answers as Graph does for an unsupported request,
// error 100):
//
//   - POST /{version}/{phone-number-id}/messages: the bearer token must be the
//     number's (else HTTP 401, code 190); the body must be
//     messaging_product "whatsapp", recipient_type "individual" (or absent),
//     a "to", a type among text, image, audio, video, document, sticker,
//     template, interactive, reaction, location, contacts (absent means text),
//     and the object of that type with its required fields and Meta's limits
//     (text body 4096, caption 1024 and not on audio or sticker, exactly one of
//     media id or link, biz_opaque_callback_data 512; interactive: body 1024,
//     header and footer 60, 1-3 reply buttons with unique ids of at most 256
//     and titles of at most 20 characters, lists with a button label of at most
//     20, 1-10 sections, at most 10 rows in all with unique ids of at most 200,
//     titles of 24 and descriptions of 72 characters, section titles required
//     when there are several); violations answer HTTP 400 with code 100 (or
//     131008 for a missing required parameter, 131009 for a bad value).
//     Accepted sends answer {messaging_product, contacts: [{input, wa_id}],
//     messages: [{id: "wamid.…"}]}.
//   - Throughput per number at its tier (80 or 1,000 msg/s, any rate may be
//     set), a token bucket with a small burst: over it, HTTP 400 code 130429.
//   - Pair rate: a second message to the same recipient from the same number
//     within 6 seconds: HTTP 400 code 131056.
//   - The 24-hour customer service window: a message other than a template to
//     a user who has not written to the number in the last 24 hours: HTTP 400
//     code 131047 (or, with [Options.WindowErrorsAsync], accepted and then
//     failed by a status webhook with 131047, which is how Meta often reports
//     it). [Server.CustomerMessage] opens the window.
//   - Templates: a template send must name a template of the number's WABA in
//     that language with status APPROVED (else HTTP 404 code 132001), and carry
//     as many body and header text parameters as the template has {{n}}
//     placeholders (else HTTP 400 code 132000).
//   - Undeliverable recipients ([Server.Undeliverable]): accepted, then a failed
//     status with 131026; marketing templates to users who stopped marketing
//     messages ([Server.StopMarketing]): accepted, then failed with 131050.
//   - Reactions (type reaction, a free-form message inside the window):
//     message_id and emoji required (131008), the emoji one emoji or empty to
//     remove it (131009), no context (100); a reaction to a message the number
//     did not receive is accepted and then failed by a status webhook with
//     131009; a reaction gets only the "sent" status webhook.
//   - Mark as read: {messaging_product, status: "read", message_id} for a
//     message the number received: {"success": true}.
//   - /{version}/{waba-id}/message_templates: GET lists with limit (default 25)
//     and an after cursor, answering {data, paging: {cursors: {before, after},
//     next}} with next only when there is another page; POST creates (name of
//     lower-case letters, digits and underscores, category MARKETING, UTILITY or
//     AUTHENTICATION, exactly one BODY component; a name and language that
//     exist already is code 100 subcode 2388024) answering {id, status:
//     "PENDING", category}; DELETE ?name=…[&hsm_id=…] deletes every language of
//     a name, or one, answering {"success": true}.
//   - Webhooks, signed X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256 of the
//     body under the app secret, POSTed to the URL given to
//     [Server.SetWebhook], in Meta's whatsapp_business_account envelope:
//     status webhooks (sent, then delivered, then read) for every accepted send,
//     carrying its biz_opaque_callback_data, conversation and pricing (see
//     [StatusOptions] for delays, out-of-order "read before delivered",
//     duplicate deliveries and turning them off); inbound messages
//     ([Server.CustomerMessage], [Server.CustomerSends]); and
//     message_template_status_update on [Server.ApproveTemplate],
//     [Server.RejectTemplate] and [Server.SetTemplateStatus]. Deliveries are
//     asynchronous and retried with backoff while the receiver answers
//     non-2xx or cannot be reached, as Meta does (on a compressed schedule);
//     [Server.WaitWebhooks] waits until none is pending.
//   - Received media ([Server.AddMedia]): GET /{version}/{media-id} answers
//     the file's short-lived URL, which serves it to the number's bearer
//     token for 5 minutes (see media.go for the details).
//
// Every accepted send is logged ([Server.Sent], [Server.SentTo]) and every
// error returned is counted by code ([Server.ErrorCount]), so tests can assert
// "no recipient got two messages" or "zero 130429".
package fakegraph

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Number is a business phone number the fake serves.
type Number struct {
	// PhoneNumberID is the Graph id of the number (digits).
	PhoneNumberID string
	// WABAID is the WhatsApp Business Account the number belongs to.
	WABAID string
	// AccessToken is the bearer token the number's calls must carry.
	AccessToken string
	// Tier is the number's throughput in messages per second: 80 (Meta's
	// default) when zero, 1000 when upgraded; any positive rate is accepted.
	Tier int
	// Burst is how many messages above the steady rate the bucket lets
	// through at once; zero means a tenth of a second's worth (at least 1).
	Burst int
	// DisplayPhoneNumber is the number as webhooks show it (digits); it
	// defaults to "1555" and the last digits of the id.
	DisplayPhoneNumber string
}

// SentMessage is one send the fake accepted.
type SentMessage struct {
	PhoneNumberID string
	// To is the recipient's wa_id (digits).
	To string
	// Type is the message type: text, image, template, interactive, ...
	Type string
	// Body is the text body, a media caption, an interactive body, or the
	// body text of a template with its parameters filled in.
	Body string
	// Template and Language name a template send.
	Template string
	Language string
	// LedgerID is the biz_opaque_callback_data the send carried.
	LedgerID string
	// WAMID is the message id the fake returned.
	WAMID string
	// At is when the fake accepted it.
	At time.Time
	// Request is the request body as received.
	Request []byte
}

// Options configure a [Server].
type Options struct {
	// PairInterval is the shortest time between two messages to the same
	// recipient; 6 s (Meta's pair rate) when zero.
	PairInterval time.Duration
	// WindowErrorsAsync makes sends outside the 24-hour window succeed and
	// then fail with a status webhook carrying 131047, instead of a
	// synchronous HTTP 400.
	WindowErrorsAsync bool
	// Webhook retry schedule: the first retry after RetryBase (default
	// 50 ms), doubling up to RetryMax (default 1 s), at most MaxAttempts
	// attempts in all (default 10). Meta retries for days; tests cannot.
	RetryBase   time.Duration
	RetryMax    time.Duration
	MaxAttempts int
	// WebhookWorkers is how many webhook deliveries run at once (default 16).
	WebhookWorkers int
}

// Server is a running fake Graph API.
type Server struct {
	srv  *httptest.Server
	opts Options

	mu          sync.Mutex
	numbers     map[string]*number // by phone number id
	wabas       map[string]*waba   // by WABA id
	sent        []SentMessage
	sentByTo    map[string][]int // wa_id -> indexes into sent
	errors      map[int]int
	lastSend    map[pairKey]time.Time // accepted sends, for the pair rate
	lastInbound map[pairKey]time.Time // customer messages, for the window
	received    map[string]string     // inbound wamid -> phone number id
	reads       []string
	undeliver   map[string]bool
	stopMarket  map[string]bool
	statusOpts  StatusOptions
	clockOffset time.Duration
	webhookURL  string
	appSecret   []byte
	hooks       *deliverer
	media       *mediaState // received media (media.go)
}

type pairKey struct{ number, waID string }

// number is a Number with its throughput bucket.
type number struct {
	Number
	bucketMu sync.Mutex
	tokens   float64
	last     time.Time
	rate     float64
	burst    float64
}

// take reports whether the number may send one more message now.
func (n *number) take(now time.Time) bool {
	n.bucketMu.Lock()
	defer n.bucketMu.Unlock()
	if !n.last.IsZero() {
		n.tokens = min(n.burst, n.tokens+now.Sub(n.last).Seconds()*n.rate)
	}
	n.last = now
	if n.tokens < 1 {
		return false
	}
	n.tokens--
	return true
}

// New starts a fake Graph API for the test; it is stopped (webhook deliveries
// still pending are abandoned) when the test ends.
func New(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.PairInterval <= 0 {
		o.PairInterval = 6 * time.Second
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 50 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.WebhookWorkers <= 0 {
		o.WebhookWorkers = 16
	}
	s := &Server{
		opts:        o,
		numbers:     map[string]*number{},
		wabas:       map[string]*waba{},
		sentByTo:    map[string][]int{},
		errors:      map[int]int{},
		lastSend:    map[pairKey]time.Time{},
		lastInbound: map[pairKey]time.Time{},
		received:    map[string]string{},
		undeliver:   map[string]bool{},
		stopMarket:  map[string]bool{},
		statusOpts:  StatusOptions{},
	}
	s.hooks = newDeliverer(o)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

// URL is the fake's base URL (http://127.0.0.1:PORT), the api_base of a
// connection that talks to it.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server and abandons pending webhook deliveries. It is
// called when the test ends; calling it earlier is allowed.
func (s *Server) Close() {
	s.hooks.close()
	s.srv.Close()
}

// AddNumber registers a business phone number.
func (s *Server) AddNumber(n Number) {
	if n.Tier <= 0 {
		n.Tier = 80
	}
	burst := n.Burst
	if burst <= 0 {
		burst = max(1, n.Tier/10)
	}
	if n.DisplayPhoneNumber == "" {
		id := n.PhoneNumberID
		if len(id) > 7 {
			id = id[len(id)-7:]
		}
		n.DisplayPhoneNumber = "1555" + id
	}
	num := &number{Number: n, rate: float64(n.Tier), burst: float64(burst), tokens: float64(burst)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.numbers[n.PhoneNumberID] = num
	if s.wabas[n.WABAID] == nil {
		s.wabas[n.WABAID] = &waba{id: n.WABAID}
	}
}

// SetWebhook sets the callback URL webhooks are POSTed to and the app secret
// they are signed with. An empty url turns webhooks off.
func (s *Server) SetWebhook(url, appSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL = url
	s.appSecret = []byte(appSecret)
}

// Advance moves the fake's clock for the 24-hour window and the pair rate
// (not for throughput, which stays in real time), e.g. by 25 hours to close
// every window or by 6 seconds to allow a second message to a recipient.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clockOffset += d
}

func (s *Server) nowLocked() time.Time { return time.Now().Add(s.clockOffset) }

// Undeliverable marks a phone number (E.164 or digits) as one WhatsApp cannot
// deliver to: sends to it are accepted and then fail with 131026.
func (s *Server) Undeliverable(phone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.undeliver[digits(phone)] = true
}

// StopMarketing marks a user as having stopped marketing messages from the
// business: marketing templates to them are accepted and then fail with
// 131050.
func (s *Server) StopMarketing(phone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopMarket[digits(phone)] = true
}

// Sent returns every send the fake accepted, in order.
func (s *Server) Sent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// SentTo returns the sends accepted for a recipient (E.164 or digits).
func (s *Server) SentTo(phone string) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.sentByTo[digits(phone)]
	out := make([]SentMessage, len(idx))
	for i, j := range idx {
		out[i] = s.sent[j]
	}
	return out
}

// ErrorCount returns how many responses carried the Graph error code (e.g.
// 130429) since the fake started.
func (s *Server) ErrorCount(code int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errors[code]
}

// ErrorCounts returns every error code returned and how often.
func (s *Server) ErrorCounts() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

// Reads returns the wamids marked as read, in order.
func (s *Server) Reads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reads)
}

// WaitWebhooks blocks until no webhook delivery is pending (scheduled,
// in flight or waiting for a retry), or ctx ends.
func (s *Server) WaitWebhooks(ctx context.Context) error { return s.hooks.wait(ctx) }

// WebhookStats reports webhook deliveries so far.
func (s *Server) WebhookStats() WebhookStats { return s.hooks.stats() }

// serveHTTP routes /{version}/{node}/{edge}.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveMedia(w, r) {
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "v") {
		s.fail(w, unsupported(r.Method, strings.Trim(r.URL.Path, "/")))
		return
	}
	node, edge := parts[1], parts[2]
	switch {
	case edge == "messages" && r.Method == http.MethodPost:
		s.handleMessages(w, r, node)
	case edge == "message_templates":
		s.handleTemplates(w, r, node)
	default:
		s.fail(w, unsupported(r.Method, node))
	}
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return r.URL.Query().Get("access_token")
	}
	return strings.TrimSpace(tok)
}

// digits returns the digits of a phone number or wa_id.
func digits(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// newWAMID returns a message id shaped like Meta's: "wamid." and base64.
func newWAMID() string {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	binary.LittleEndian.PutUint64(b[16:], rand.Uint64())
	return "wamid." + base64.StdEncoding.EncodeToString(b[:])
}

// newID returns a numeric Graph id.
func newID() string { return fmt.Sprintf("%d", 100000000000000+rand.Int64N(900000000000000)) }

// newTraceID returns an fbtrace_id-like string.
func newTraceID() string {
	var b [9]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	b[8] = byte(rand.Uint32())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// timeNow is the real clock, for throughput.
var timeNow = time.Now
