package fakegraph

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// StatusOptions configure the status webhooks the fake sends for accepted
// sends.
type StatusOptions struct {
	// Disabled turns status webhooks off (inbound and template webhooks are
	// still sent).
	Disabled bool
	// Delay is the time before each status: "sent" Delay after the send,
	// each next one Delay after the previous one was delivered. The statuses
	// of one message arrive in order (see ReadBeforeDelivered for the
	// other order); those of different messages interleave freely.
	Delay time.Duration
	// Statuses lists the statuses sent for a successful message, in order;
	// default sent, delivered, read.
	Statuses []string
	// ReadBeforeDelivered sends "read" before "delivered", as Meta sometimes
	// does when both happen at once.
	ReadBeforeDelivered bool
	// Duplicate delivers every status webhook twice, as Meta may.
	Duplicate bool
}

// SetStatusOptions changes how status webhooks are sent for later sends.
func (s *Server) SetStatusOptions(o StatusOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusOpts = o
}

// WebhookStats counts webhook deliveries.
type WebhookStats struct {
	// Attempts is every POST made, retries included.
	Attempts int
	// Delivered is deliveries answered 2xx.
	Delivered int
	// Failures is attempts answered non-2xx or not answered.
	Failures int
	// GivenUp is deliveries abandoned after Options.MaxAttempts.
	GivenUp int
	// Pending is deliveries not yet delivered or given up.
	Pending int
}

// CustomerMessage makes a WhatsApp user (fromPhone, E.164 or digits) send a
// text message to the number: it opens the user's 24-hour window and sends
// the signed inbound-message webhook. It returns the message's wamid.
func (s *Server) CustomerMessage(phoneNumberID, fromPhone, text string) string {
	return s.CustomerSends(phoneNumberID, fromPhone, "text", map[string]string{"body": text})
}

// CustomerSends makes a WhatsApp user send a message of any type: content
// is the object Meta puts under the type's key, e.g. for "interactive"
// {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}.
// It opens the window and sends the webhook, and returns the wamid (empty,
// and nothing sent, for a number the fake does not know).
func (s *Server) CustomerSends(phoneNumberID, fromPhone, msgType string, content any) string {
	from := digits(fromPhone)
	s.mu.Lock()
	defer s.mu.Unlock()
	num := s.numbers[phoneNumberID]
	if num == nil {
		return ""
	}
	now := s.nowLocked()
	wamid := newWAMID()
	s.lastInbound[pairKey{phoneNumberID, from}] = now
	s.received[wamid] = phoneNumberID
	msg := map[string]any{
		"from":      from,
		"id":        wamid,
		"timestamp": strconv.FormatInt(now.Unix(), 10),
		"type":      msgType,
		msgType:     content,
	}
	value := map[string]any{
		"messaging_product": "whatsapp",
		"metadata":          map[string]string{"display_phone_number": num.DisplayPhoneNumber, "phone_number_id": phoneNumberID},
		"contacts":          []any{map[string]any{"profile": map[string]string{"name": "Customer " + lastDigits(from, 4)}, "wa_id": from}},
		"messages":          []any{msg},
	}
	s.enqueueLocked(envelope(num.WABAID, value), 0)
	return wamid
}

func lastDigits(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func envelope(wabaID string, value map[string]any) map[string]any {
	return map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id":      wabaID,
			"changes": []any{map[string]any{"value": value, "field": "messages"}},
		}},
	}
}

// scheduleStatusesLocked queues the status webhooks of an accepted send:
// the configured sequence, or a single "failed" carrying failure.
func (s *Server) scheduleStatusesLocked(num *number, sm SentMessage, origin string, failure *graphError) {
	o := s.statusOpts
	if s.webhookURL == "" || o.Disabled {
		return
	}
	seq := o.Statuses
	if len(seq) == 0 {
		seq = []string{"sent", "delivered", "read"}
	}
	if o.ReadBeforeDelivered {
		seq = append([]string(nil), seq...)
		d, r := -1, -1
		for i, st := range seq {
			switch st {
			case "delivered":
				d = i
			case "read":
				r = i
			}
		}
		if d >= 0 && r > d {
			seq[d], seq[r] = seq[r], seq[d]
		}
	}
	if failure != nil {
		seq = []string{"failed"}
	}
	copies := 1
	if o.Duplicate {
		copies = 2
	}
	// The statuses of one message form a chain: each is scheduled Delay
	// after the previous one was delivered (or given up on), so they arrive
	// in the order of seq even when deliveries run concurrently.
	var first, last *job
	now := s.nowLocked()
	for i, st := range seq {
		at := now.Add(time.Duration(i+1) * o.Delay)
		status := map[string]any{
			"id":           sm.WAMID,
			"status":       st,
			"timestamp":    strconv.FormatInt(at.Unix(), 10),
			"recipient_id": sm.To,
		}
		if sm.LedgerID != "" {
			status["biz_opaque_callback_data"] = sm.LedgerID
		}
		if st == "failed" {
			status["errors"] = []any{map[string]any{
				"code": failure.code, "title": failure.title, "message": failure.title,
				"error_data": map[string]string{"details": failure.details},
				"href":       "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
			}}
		} else {
			conv := map[string]any{"id": conversationID(num.PhoneNumberID, sm.To), "origin": map[string]string{"type": origin}}
			if st == "sent" {
				conv["expiration_timestamp"] = strconv.FormatInt(at.Add(24*time.Hour).Unix(), 10)
			}
			status["conversation"] = conv
			status["pricing"] = map[string]any{"billable": origin != "service", "pricing_model": "PMP", "category": origin}
		}
		value := map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]string{"display_phone_number": num.DisplayPhoneNumber, "phone_number_id": num.PhoneNumberID},
			"statuses":          []any{status},
		}
		body, err := json.Marshal(envelope(num.WABAID, value))
		if err != nil {
			panic("fakegraph: encoding a webhook: " + err.Error())
		}
		for range copies {
			j := &job{url: s.webhookURL, secret: s.appSecret, body: body, thenDelay: o.Delay}
			if first == nil {
				first = j
			} else {
				last.then = j
			}
			last = j
		}
	}
	s.hooks.schedule(first, o.Delay)
}

// conversationID is stable per number and recipient, like a conversation.
func conversationID(number, waID string) string {
	h := sha256.Sum256([]byte(number + "/" + waID))
	return hex.EncodeToString(h[:16])
}

// enqueueLocked signs and queues a webhook for the configured URL.
func (s *Server) enqueueLocked(payload any, delay time.Duration) {
	if s.webhookURL == "" {
		return
	}
	body, err := json.Marshal(payload)
	if err != nil {
		panic("fakegraph: encoding a webhook: " + err.Error())
	}
	s.hooks.schedule(&job{url: s.webhookURL, secret: s.appSecret, body: body}, delay)
}

// job is one webhook delivery, and the delivery to schedule once it is done.
type job struct {
	url       string
	secret    []byte
	body      []byte
	attempt   int
	then      *job
	thenDelay time.Duration
}

// deliverer posts webhooks from a queue with a pool of workers and retries
// failed deliveries with exponential backoff.
type deliverer struct {
	opts   Options
	client *http.Client

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*job
	pending int
	closed  bool
	timers  map[*time.Timer]bool
	st      WebhookStats
	wg      sync.WaitGroup
}

func newDeliverer(o Options) *deliverer {
	d := &deliverer{
		opts: o,
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second},
		},
		timers: map[*time.Timer]bool{},
	}
	d.cond = sync.NewCond(&d.mu)
	for range o.WebhookWorkers {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

// schedule queues a new delivery after delay.
func (d *deliverer) schedule(j *job, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for c := j; c != nil; c = c.then {
		d.pending++
	}
	d.afterLocked(j, delay)
}

// afterLocked puts a job (already counted as pending) on the queue after
// delay.
func (d *deliverer) afterLocked(j *job, delay time.Duration) {
	if delay <= 0 {
		d.queue = append(d.queue, j)
		d.cond.Signal()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.timers, t)
		if d.closed {
			return
		}
		d.queue = append(d.queue, j)
		d.cond.Signal()
	})
	d.timers[t] = true
}

func (d *deliverer) work() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(d.queue) == 0 && !d.closed {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		j := d.queue[0]
		d.queue[0] = nil
		d.queue = d.queue[1:]
		d.mu.Unlock()

		ok := d.post(j)

		d.mu.Lock()
		d.st.Attempts++
		j.attempt++
		switch {
		case ok:
			d.st.Delivered++
			d.pending--
			if j.then != nil && !d.closed {
				d.afterLocked(j.then, j.thenDelay)
			}
		case j.attempt >= d.opts.MaxAttempts || d.closed:
			d.st.Failures++
			d.st.GivenUp++
			d.pending--
			if j.then != nil && !d.closed {
				d.afterLocked(j.then, j.thenDelay)
			}
		default:
			d.st.Failures++
			backoff := d.opts.RetryBase << (j.attempt - 1)
			if backoff > d.opts.RetryMax || backoff <= 0 {
				backoff = d.opts.RetryMax
			}
			d.afterLocked(j, backoff)
		}
		d.mu.Unlock()
	}
}

// post sends one delivery, signed as Meta signs: X-Hub-Signature-256 is
// "sha256=" and the hex HMAC-SHA256 of the body under the app secret.
func (d *deliverer) post(j *job) bool {
	req, err := http.NewRequest(http.MethodPost, j.url, bytes.NewReader(j.body))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, j.secret)
	m.Write(j.body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := d.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

func (d *deliverer) wait(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		n := d.pending
		d.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (d *deliverer) stats() WebhookStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	st.Pending = d.pending
	return st
}

func (d *deliverer) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for t := range d.timers {
		t.Stop()
	}
	d.timers = map[*time.Timer]bool{}
	// Whatever was scheduled, queued or chained is abandoned.
	d.pending = 0
	d.queue = nil
	d.cond.Broadcast()
	d.mu.Unlock()
	d.wg.Wait()
	d.client.CloseIdleConnections()
}
