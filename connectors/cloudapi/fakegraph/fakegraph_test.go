package fakegraph

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	pnid   = "106540352242922"
	wabaID = "102290129340398"
	token  = "EAAG-fake-token"
	secret = "fake-app-secret"
)

func newFake(t *testing.T, tier int, opts ...Options) *Server {
	t.Helper()
	s := New(t, opts...)
	s.AddNumber(Number{PhoneNumberID: pnid, WABAID: wabaID, AccessToken: token, Tier: tier})
	return s
}

// graphResponse is a decoded answer of the fake.
type graphResponse struct {
	Status int
	Body   map[string]any
}

func (r graphResponse) code() int {
	e, ok := r.Body["error"].(map[string]any)
	if !ok {
		return 0
	}
	c, _ := e["code"].(float64)
	return int(c)
}

func call(t testing.TB, s *Server, method, path, tok string, body any) graphResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decoding the fake's answer: %v", err)
	}
	return graphResponse{Status: resp.StatusCode, Body: out}
}

func text(to, body, ledger string) map[string]any {
	return map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
		"text": map[string]any{"body": body}, "biz_opaque_callback_data": ledger}
}

const messagesPath = "/v21.0/" + pnid + "/messages"

func TestSendShapes(t *testing.T) {
	t.Parallel()
	s := newFake(t, 1000)
	s.AddTemplate(wabaID, Template{Name: "order_shipped", Language: "en_US", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}, order {{2}} shipped."}]`)})
	s.AddTemplate(wabaID, Template{Name: "pending_one", Language: "en_US", Category: "MARKETING", Status: "PENDING",
		Components: json.RawMessage(`[{"type":"BODY","text":"Hello"}]`)})

	buttons := func(n int, title string) map[string]any {
		var bs []any
		for i := range n {
			bs = append(bs, map[string]any{"type": "reply", "reply": map[string]any{"id": fmt.Sprintf("b%d", i), "title": fmt.Sprintf("%s%d", title, i)}})
		}
		return map[string]any{"type": "button", "body": map[string]any{"text": "Pick one"}, "action": map[string]any{"buttons": bs}}
	}
	list := func(rows int) map[string]any {
		var rs []any
		for i := range rows {
			rs = append(rs, map[string]any{"id": fmt.Sprintf("r%d", i), "title": fmt.Sprintf("Row %d", i)})
		}
		return map[string]any{"type": "list", "body": map[string]any{"text": "Pick"}, "action": map[string]any{
			"button": "Options", "sections": []any{map[string]any{"title": "All", "rows": rs}}}}
	}
	msg := func(to string, fields map[string]any) map[string]any {
		m := map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
		for k, v := range fields {
			m[k] = v
		}
		return m
	}

	tests := map[string]struct {
		body     map[string]any
		token    string
		wantCode int // 0: accepted
		wantHTTP int
	}{
		"text":                    {body: msg("", map[string]any{"type": "text", "text": map[string]any{"body": "hello"}})},
		"type defaults to text":   {body: msg("", map[string]any{"text": map[string]any{"body": "hello"}})},
		"bad token":               {body: msg("", map[string]any{"type": "text", "text": map[string]any{"body": "x"}}), token: "nope", wantCode: 190, wantHTTP: 401},
		"no messaging_product":    {body: map[string]any{"to": "", "type": "text", "text": map[string]any{"body": "x"}}, wantCode: 131008, wantHTTP: 400},
		"wrong recipient_type":    {body: msg("", map[string]any{"recipient_type": "group", "type": "text", "text": map[string]any{"body": "x"}}), wantCode: 100, wantHTTP: 400},
		"empty text":              {body: msg("", map[string]any{"type": "text", "text": map[string]any{"body": ""}}), wantCode: 131008, wantHTTP: 400},
		"text too long":           {body: msg("", map[string]any{"type": "text", "text": map[string]any{"body": strings.Repeat("a", 4097)}}), wantCode: 100, wantHTTP: 400},
		"type without object":     {body: msg("", map[string]any{"type": "image"}), wantCode: 131008, wantHTTP: 400},
		"two objects":             {body: msg("", map[string]any{"type": "text", "text": map[string]any{"body": "x"}, "image": map[string]any{"link": "https://x.test/a.jpg"}}), wantCode: 100, wantHTTP: 400},
		"image by link":           {body: msg("", map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/a.jpg", "caption": "A"}})},
		"image with id and link":  {body: msg("", map[string]any{"type": "image", "image": map[string]any{"id": "1", "link": "https://cdn.example.com/a.jpg"}}), wantCode: 100, wantHTTP: 400},
		"audio with caption":      {body: msg("", map[string]any{"type": "audio", "audio": map[string]any{"link": "https://cdn.example.com/a.ogg", "caption": "no"}}), wantCode: 100, wantHTTP: 400},
		"bad link":                {body: msg("", map[string]any{"type": "document", "document": map[string]any{"link": "ftp://x"}}), wantCode: 131009, wantHTTP: 400},
		"bad to":                  {body: msg("not-a-number", map[string]any{"type": "text", "text": map[string]any{"body": "x"}}), wantCode: 131009, wantHTTP: 400},
		"3 buttons":               {body: msg("", map[string]any{"type": "interactive", "interactive": buttons(3, "Btn")})},
		"4 buttons":               {body: msg("", map[string]any{"type": "interactive", "interactive": buttons(4, "Btn")}), wantCode: 100, wantHTTP: 400},
		"button title 21 chars":   {body: msg("", map[string]any{"type": "interactive", "interactive": buttons(1, strings.Repeat("T", 20))}), wantCode: 100, wantHTTP: 400},
		"list of 10 rows":         {body: msg("", map[string]any{"type": "interactive", "interactive": list(10)})},
		"list of 11 rows":         {body: msg("", map[string]any{"type": "interactive", "interactive": list(11)}), wantCode: 100, wantHTTP: 400},
		"approved template":       {body: msg("", map[string]any{"type": "template", "template": map[string]any{"name": "order_shipped", "language": map[string]any{"code": "en_US"}, "components": []any{map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Anna"}, map[string]any{"type": "text", "text": "#42"}}}}}})},
		"template param count":    {body: msg("", map[string]any{"type": "template", "template": map[string]any{"name": "order_shipped", "language": map[string]any{"code": "en_US"}, "components": []any{map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Anna"}}}}}}), wantCode: 132000, wantHTTP: 400},
		"template other language": {body: msg("", map[string]any{"type": "template", "template": map[string]any{"name": "order_shipped", "language": map[string]any{"code": "it"}}}), wantCode: 132001, wantHTTP: 404},
		"pending template":        {body: msg("", map[string]any{"type": "template", "template": map[string]any{"name": "pending_one", "language": map[string]any{"code": "en_US"}}}), wantCode: 132001, wantHTTP: 404},
		"unknown template":        {body: msg("", map[string]any{"type": "template", "template": map[string]any{"name": "nope", "language": map[string]any{"code": "en_US"}}}), wantCode: 132001, wantHTTP: 404},
	}
	i := 0
	for name, tc := range tests {
		i++
		// Each case its own recipient, with an open window, so the pair
		// rate and the window do not interfere.
		to := fmt.Sprintf("3933300%05d", i)
		if tc.body["to"] == "" {
			tc.body["to"] = to
		}
		s.CustomerMessage(pnid, to, "hi")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tok := token
			if tc.token != "" {
				tok = tc.token
			}
			r := call(t, s, http.MethodPost, messagesPath, tok, tc.body)
			if tc.wantCode == 0 {
				if r.Status != 200 {
					t.Fatalf("status %d: %v", r.Status, r.Body)
				}
				msgs := r.Body["messages"].([]any)
				id := msgs[0].(map[string]any)["id"].(string)
				if !strings.HasPrefix(id, "wamid.") {
					t.Errorf("message id %q", id)
				}
				contacts := r.Body["contacts"].([]any)[0].(map[string]any)
				if contacts["wa_id"] != to || contacts["input"] != to {
					t.Errorf("contacts %v", contacts)
				}
				return
			}
			if r.Status != tc.wantHTTP || r.code() != tc.wantCode {
				t.Errorf("got HTTP %d code %d (%v), want HTTP %d code %d", r.Status, r.code(), r.Body, tc.wantHTTP, tc.wantCode)
			}
			e := r.Body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if e["type"] != "OAuthException" || e["fbtrace_id"] == "" ||
				(tc.wantCode != 190 && !strings.HasPrefix(msg, fmt.Sprintf("(#%d) ", tc.wantCode))) {
				t.Errorf("error shape %v", e)
			}
		})
	}
}

func TestTemplateSendIsLoggedWithItsText(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	if _, err := s.AddTemplate(wabaID, Template{Name: "order_shipped", Language: "en_US", Category: "utility",
		Components: json.RawMessage(`[{"type":"BODY","text":"Hi {{1}}, order {{2}} shipped."}]`)}); err != nil {
		t.Fatal(err)
	}
	r := call(t, s, http.MethodPost, messagesPath, token, map[string]any{"messaging_product": "whatsapp", "to": "+393331234567", "type": "template",
		"biz_opaque_callback_data": "msg_1",
		"template": map[string]any{"name": "order_shipped", "language": map[string]any{"code": "en_US"}, "components": []any{
			map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Anna"}, map[string]any{"type": "text", "text": "#42"}}}}}})
	if r.Status != 200 {
		t.Fatalf("template send refused outside the window: %v", r.Body)
	}
	got := s.SentTo("+39 333 123 4567")
	if len(got) != 1 {
		t.Fatalf("SentTo = %+v", got)
	}
	want := SentMessage{PhoneNumberID: pnid, To: "393331234567", Type: "template", Body: "Hi Anna, order #42 shipped.",
		Template: "order_shipped", Language: "en_US", LedgerID: "msg_1"}
	got[0].WAMID, got[0].At, got[0].Request = "", time.Time{}, nil
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("logged send (-want +got):\n%s", diff)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	r := call(t, s, http.MethodPost, messagesPath, token, text("393330000001", "hello", "msg_1"))
	if r.Status != 400 || r.code() != 131047 {
		t.Fatalf("free text with no window: HTTP %d code %d, want 400 131047", r.Status, r.code())
	}
	s.CustomerMessage(pnid, "+393330000001", "hi")
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000001", "hello", "msg_2")); r.Status != 200 {
		t.Fatalf("free text inside the window refused: %v", r.Body)
	}
	s.Advance(24*time.Hour + time.Second)
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000001", "hello", "msg_3")); r.code() != 131047 {
		t.Fatalf("free text 24 h after the last message: code %d, want 131047", r.code())
	}
	if got := s.ErrorCount(131047); got != 2 {
		t.Errorf("ErrorCount(131047) = %d, want 2", got)
	}
	if got := len(s.Sent()); got != 1 {
		t.Errorf("%d sends logged, want 1", got)
	}
}

func TestPairRate(t *testing.T) {
	t.Parallel()
	s := newFake(t, 1000)
	s.CustomerMessage(pnid, "393330000002", "hi")
	s.CustomerMessage(pnid, "393330000003", "hi")
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000002", "one", "msg_1")); r.Status != 200 {
		t.Fatalf("first message refused: %v", r.Body)
	}
	r := call(t, s, http.MethodPost, messagesPath, token, text("393330000002", "two", "msg_2"))
	if r.Status != 400 || r.code() != 131056 {
		t.Fatalf("second message within 6 s: HTTP %d code %d, want 400 131056", r.Status, r.code())
	}
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000003", "other", "msg_3")); r.Status != 200 {
		t.Errorf("another recipient was held back by the pair rate: %v", r.Body)
	}
	s.Advance(6 * time.Second)
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000002", "three", "msg_4")); r.Status != 200 {
		t.Errorf("message 6 s later refused: %v", r.Body)
	}
	if got := len(s.SentTo("393330000002")); got != 2 {
		t.Errorf("%d sends to the recipient logged, want 2", got)
	}
}

// TestThroughput sends as fast as possible for a second at a number of the
// 80 tier: about 80 (plus the burst) pass, the rest get 130429 with HTTP 400.
func TestThroughput(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	const n = 400
	for i := range n {
		s.CustomerMessage(pnid, fmt.Sprintf("3934%08d", i), "hi")
	}
	var ok, limited, other atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := call(t, s, http.MethodPost, messagesPath, token, text(fmt.Sprintf("3934%08d", i), "x", "l"))
				switch {
				case r.Status == 200:
					ok.Add(1)
				case r.Status == 400 && r.code() == 130429:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	maxOK := int64(80*elapsed.Seconds()) + 8 + 1 // rate × time + burst
	if ok.Load() > maxOK || limited.Load() == 0 || other.Load() != 0 {
		t.Errorf("in %v: %d accepted (at most %d allowed), %d rate-limited, %d other errors", elapsed, ok.Load(), maxOK, limited.Load(), other.Load())
	}
	if got := s.ErrorCount(130429); int64(got) != limited.Load() {
		t.Errorf("ErrorCount(130429) = %d, want %d", got, limited.Load())
	}
}

// TestThroughputAtTier: a sender paced at the tier's rate never sees 130429.
func TestThroughputAtTier(t *testing.T) {
	t.Parallel()
	s := newFake(t, 1000)
	const n = 500
	for i := range n {
		s.CustomerMessage(pnid, fmt.Sprintf("3935%08d", i), "hi")
	}
	tick := time.NewTicker(time.Second / 800)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, s, http.MethodPost, messagesPath, token, text(fmt.Sprintf("3935%08d", i), "x", "l"))
		}()
	}
	wg.Wait()
	if got := s.ErrorCounts(); len(got) != 0 {
		t.Errorf("errors at 800 msg/s on the 1000 tier: %v", got)
	}
	if got := len(s.Sent()); got != n {
		t.Errorf("%d sends accepted, want %d", got, n)
	}
}

// receiver is a webhook endpoint that checks signatures and records bodies.
type receiver struct {
	mu       sync.Mutex
	bodies   [][]byte
	fails    int // answer 500 to this many deliveries first
	badSigs  int
	requests int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if r.Header.Get("X-Hub-Signature-256") != want {
		rc.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if rc.fails > 0 {
		rc.fails--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	rc.bodies = append(rc.bodies, body)
}

// statuses returns "status:ledger" of every status webhook received.
func (rc *receiver) statuses(t *testing.T) []string {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, b := range rc.bodies {
		var env struct {
			Entry []struct {
				Changes []struct {
					Value struct {
						Statuses []struct {
							Status string `json:"status"`
							Ledger string `json:"biz_opaque_callback_data"`
							Errors []struct {
								Code int `json:"code"`
							} `json:"errors"`
						} `json:"statuses"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		for _, e := range env.Entry {
			for _, c := range e.Changes {
				for _, s := range c.Value.Statuses {
					v := s.Status + ":" + s.Ledger
					for _, e := range s.Errors {
						v += fmt.Sprintf(":%d", e.Code)
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

func waitHooks(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatalf("waiting for webhooks: %v (%+v)", err, s.WebhookStats())
	}
}

func TestStatusWebhooks(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		opts  StatusOptions
		setup func(s *Server)
		want  []string
	}{
		"sent delivered read in order": {opts: StatusOptions{Delay: 20 * time.Millisecond},
			want: []string{"sent:msg_1", "delivered:msg_1", "read:msg_1"}},
		"read before delivered": {opts: StatusOptions{Delay: 20 * time.Millisecond, ReadBeforeDelivered: true},
			want: []string{"sent:msg_1", "read:msg_1", "delivered:msg_1"}},
		"duplicates": {opts: StatusOptions{Delay: 20 * time.Millisecond, Duplicate: true, Statuses: []string{"sent"}},
			want: []string{"sent:msg_1", "sent:msg_1"}},
		"off":           {opts: StatusOptions{Disabled: true}, want: nil},
		"undeliverable": {setup: func(s *Server) { s.Undeliverable("+393330000009") }, want: []string{"failed:msg_1:131026"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := &receiver{}
			hook := httptest.NewServer(rc)
			defer hook.Close()
			s := newFake(t, 80)
			s.SetStatusOptions(tc.opts)
			s.CustomerMessage(pnid, "393330000009", "hi") // before SetWebhook: no inbound webhook
			s.SetWebhook(hook.URL, secret)
			if tc.setup != nil {
				tc.setup(s)
			}
			if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000009", "hello", "msg_1")); r.Status != 200 {
				t.Fatalf("send refused: %v", r.Body)
			}
			waitHooks(t, s)
			if diff := cmp.Diff(tc.want, rc.statuses(t)); diff != "" {
				t.Errorf("status webhooks (-want +got):\n%s", diff)
			}
			if rc.badSigs != 0 {
				t.Errorf("%d webhooks with a bad signature", rc.badSigs)
			}
		})
	}
}

func TestWindowErrorsAsync(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	s := newFake(t, 80, Options{WindowErrorsAsync: true})
	s.SetWebhook(hook.URL, secret)
	if r := call(t, s, http.MethodPost, messagesPath, token, text("393330000010", "hello", "msg_9")); r.Status != 200 {
		t.Fatalf("send refused: %v", r.Body)
	}
	waitHooks(t, s)
	if diff := cmp.Diff([]string{"failed:msg_9:131047"}, rc.statuses(t)); diff != "" {
		t.Errorf("status webhooks (-want +got):\n%s", diff)
	}
}

func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	rc := &receiver{fails: 3}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	s := newFake(t, 80, Options{RetryBase: 5 * time.Millisecond})
	s.SetWebhook(hook.URL, secret)
	wamid := s.CustomerMessage(pnid, "+393330000011", "ciao")
	waitHooks(t, s)
	st := s.WebhookStats()
	if diff := cmp.Diff(WebhookStats{Attempts: 4, Delivered: 1, Failures: 3}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if len(rc.bodies) != 1 || !bytes.Contains(rc.bodies[0], []byte(wamid)) || !bytes.Contains(rc.bodies[0], []byte(`"body":"ciao"`)) {
		t.Errorf("received %q", rc.bodies)
	}

	// A receiver that never answers 2xx is given up on after MaxAttempts.
	down := newFake(t, 80, Options{RetryBase: time.Millisecond, MaxAttempts: 3})
	down.SetWebhook(hook.URL, "wrong-secret") // the receiver refuses the signature
	down.CustomerMessage(pnid, "+393330000012", "x")
	waitHooks(t, down)
	if st := down.WebhookStats(); st.GivenUp != 1 || st.Attempts != 3 {
		t.Errorf("stats after a receiver that refuses everything: %+v", st)
	}
}

func TestMarkRead(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	wamid := s.CustomerMessage(pnid, "393330000013", "hi")
	r := call(t, s, http.MethodPost, messagesPath, token, map[string]any{"messaging_product": "whatsapp", "status": "read", "message_id": wamid})
	if r.Status != 200 || r.Body["success"] != true {
		t.Fatalf("mark read: %v", r.Body)
	}
	r = call(t, s, http.MethodPost, messagesPath, token, map[string]any{"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.unknown"})
	if r.code() != 100 {
		t.Errorf("mark read of an unknown message: %v", r.Body)
	}
	if diff := cmp.Diff([]string{wamid}, s.Reads()); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
}

func TestTemplatesAPI(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	s := newFake(t, 80)
	s.SetWebhook(hook.URL, secret)
	path := "/v21.0/" + wabaID + "/message_templates"
	comps := []any{map[string]any{"type": "BODY", "text": "Hi {{1}}"}}
	for i := range 5 {
		r := call(t, s, http.MethodPost, path, token, map[string]any{"name": fmt.Sprintf("t%d", i), "language": "en_US", "category": "UTILITY", "components": comps})
		if r.Status != 200 || r.Body["status"] != "PENDING" || r.Body["category"] != "UTILITY" || r.Body["id"] == "" {
			t.Fatalf("create: %v", r.Body)
		}
	}
	if r := call(t, s, http.MethodPost, path, token, map[string]any{"name": "t0", "language": "en_US", "category": "UTILITY", "components": comps}); r.code() != 100 {
		t.Errorf("duplicate create: %v", r.Body)
	}
	if r := call(t, s, http.MethodPost, path, token, map[string]any{"name": "Bad Name", "language": "en_US", "category": "UTILITY", "components": comps}); r.code() != 100 {
		t.Errorf("bad name: %v", r.Body)
	}
	if r := call(t, s, http.MethodGet, path, "wrong", nil); r.code() != 190 || r.Status != 401 {
		t.Errorf("bad token: %v", r.Body)
	}

	// Paging: 2 + 2 + 1, next only while there is more.
	var names []string
	after := ""
	for page := 0; ; page++ {
		q := "?limit=2"
		if after != "" {
			q += "&after=" + after
		}
		r := call(t, s, http.MethodGet, path+q, token, nil)
		for _, d := range r.Body["data"].([]any) {
			names = append(names, d.(map[string]any)["name"].(string))
		}
		paging := r.Body["paging"].(map[string]any)
		if _, more := paging["next"]; !more {
			if page != 2 {
				t.Errorf("last page is page %d, want 2", page)
			}
			break
		}
		after = paging["cursors"].(map[string]any)["after"].(string)
	}
	if diff := cmp.Diff([]string{"t0", "t1", "t2", "t3", "t4"}, names); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}

	if err := s.ApproveTemplate(wabaID, "t1", "en_US"); err != nil {
		t.Fatal(err)
	}
	if err := s.RejectTemplate(wabaID, "t2", "en_US", "INVALID_FORMAT"); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, s)
	// Deliveries run concurrently and, as at Meta, in no guaranteed order.
	joined := bytes.Join(rc.bodies, []byte("\n"))
	if len(rc.bodies) != 2 || bytes.Count(joined, []byte(`"field":"message_template_status_update"`)) != 2 ||
		!bytes.Contains(joined, []byte(`"event":"APPROVED","message_template_id"`)) ||
		!bytes.Contains(joined, []byte(`"message_template_name":"t2","reason":"INVALID_FORMAT"`)) {
		t.Errorf("template webhooks: %s", rc.bodies)
	}

	if r := call(t, s, http.MethodDelete, path+"?name=t3", token, nil); r.Body["success"] != true {
		t.Errorf("delete: %v", r.Body)
	}
	if r := call(t, s, http.MethodDelete, path+"?name=t3", token, nil); r.code() != 100 {
		t.Errorf("delete of a deleted template: %v", r.Body)
	}
	var statuses []string
	for _, tpl := range s.Templates(wabaID) {
		statuses = append(statuses, tpl.Name+":"+tpl.Status)
	}
	if diff := cmp.Diff([]string{"t0:PENDING", "t1:APPROVED", "t2:REJECTED", "t4:PENDING"}, statuses); diff != "" {
		t.Errorf("templates (-want +got):\n%s", diff)
	}
}

func TestUnknownNodes(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	for _, p := range []string{"/v21.0/999/messages", "/v21.0/" + pnid + "/unknown", "/nothing"} {
		if r := call(t, s, http.MethodPost, p, token, map[string]any{}); r.Status != 400 || r.code() != 100 {
			t.Errorf("%s: HTTP %d %v", p, r.Status, r.Body)
		}
	}
}
