package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/core/messaging"
)

// The default STOP confirmation of a tenant (0003_messaging.sql).
const defaultStopConfirmation = "You will no longer receive messages from us. Reply START to subscribe again."

type conversationJSON struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Contact      struct {
		ID    string `json:"id"`
		Phone string `json:"phone"`
		WaID  string `json:"wa_id"`
	} `json:"contact"`
	Window struct {
		Open        bool  `json:"open"`
		SecondsLeft int64 `json:"seconds_left"`
	} `json:"window"`
}

type messageJSON struct {
	ID                string          `json:"id"`
	ConversationID    string          `json:"conversation_id"`
	ContactID         string          `json:"contact_id"`
	Direction         string          `json:"direction"`
	Kind              string          `json:"kind"`
	Content           json.RawMessage `json:"content"`
	Status            string          `json:"status"`
	StatusReason      string          `json:"status_reason"`
	ProviderMessageID string          `json:"provider_message_id"`
	DeliveredAt       *time.Time      `json:"delivered_at"`
	ReadAt            *time.Time      `json:"read_at"`
}

// A WhatsApp conversation through every real part: the Cloud API plugin,
// `ponte serve`, Postgres and the fake Graph API as Meta. The customer
// writes, the inbox shows them with an open window, an agent replies (once,
// even when the request is repeated), duplicated and out-of-order status
// webhooks end at read, a free-form message to someone who never wrote is
// refused before Meta hears of it, and a STOP (delivered twice) opts the
// customer out with one confirmation and blocks a later marketing send.
func TestIntegrationWhatsAppConversation(t *testing.T) {
	in := newInstallation(t, "cloudapi")
	in.start()
	pool := in.openPool()
	fake := fakegraph.New(t)
	n := testNumber
	connID, webhookURL := in.connectCloudAPI(fake, n)

	// Meta's GET verification of the callback URL.
	verify := func(token string) (int, string) {
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {token}, "hub.challenge": {"1158201444"}}
		resp, err := http.Get(webhookURL + "?" + q.Encode())
		if err != nil {
			t.Fatalf("verification GET: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := verify(n.VerifyToken); status != http.StatusOK || body != "1158201444" {
		t.Fatalf("verification with the right token: %d %q, want 200 with the challenge", status, body)
	}
	if status, body := verify("not-the-token"); status == http.StatusOK || strings.Contains(body, "1158201444") {
		t.Fatalf("verification with a wrong token: %d %q, want a refusal without the challenge", status, body)
	}

	fake.SetWebhook(webhookURL, n.AppSecret)
	fake.SetStatusOptions(fakegraph.StatusOptions{Duplicate: true, ReadBeforeDelivered: true})

	// The customer writes first.
	const customer = "+393331234567"
	inboundWAMID := fake.CustomerMessage(n.PhoneNumberID, customer, "Ciao, is my order shipped?")

	conv := in.waitConversation(connID, customer)
	if !conv.Window.Open || conv.Window.SecondsLeft <= 23*3600 {
		t.Errorf("conversation window = %+v, want open with about 24 h left", conv.Window)
	}
	if conv.Contact.WaID != strings.TrimPrefix(customer, "+") {
		t.Errorf("contact wa_id = %q, want %q", conv.Contact.WaID, strings.TrimPrefix(customer, "+"))
	}
	var contact struct {
		ID    string `json:"id"`
		Phone string `json:"phone"`
	}
	if status := in.call("GET", "/v1/contacts/"+conv.Contact.ID, nil, &contact); status != http.StatusOK || contact.Phone != customer {
		t.Fatalf("GET contact %s: %d %+v, want the customer", conv.Contact.ID, status, contact)
	}

	messages := func() []messageJSON {
		var list struct {
			Data []messageJSON `json:"data"`
		}
		if status := in.call("GET", "/v1/conversations/"+conv.ID+"/messages", nil, &list); status != http.StatusOK {
			t.Fatalf("listing messages: %d", status)
		}
		return list.Data
	}
	var inbound []messageJSON
	eventually(t, 30*time.Second, func() bool {
		inbound = inbound[:0]
		for _, m := range messages() {
			if m.Direction == "in" {
				inbound = append(inbound, m)
			}
		}
		return len(inbound) > 0
	}, func() string { return "no inbound message in conversation " + conv.ID })
	if len(inbound) != 1 || inbound[0].ProviderMessageID != inboundWAMID || inbound[0].Status != "received" ||
		!strings.Contains(string(inbound[0].Content), "is my order shipped?") {
		t.Fatalf("inbound messages = %+v, want the customer's one message %s", inbound, inboundWAMID)
	}

	// The agent replies; the request is repeated with the same key.
	reply := func() messageJSON {
		var m messageJSON
		if status := in.call("POST", "/v1/conversations/"+conv.ID+"/messages",
			map[string]any{"text": "Yes, it left this morning."}, &m, "Idempotency-Key", "agent-reply-1"); status != http.StatusCreated && status != http.StatusOK {
			t.Fatalf("replying: status %d\n%s", status, in.logs())
		}
		return m
	}
	first, again := reply(), reply()
	if first.ID == "" || again.ID != first.ID {
		t.Fatalf("reply ids %q and %q, want one ledger row for one key", first.ID, again.ID)
	}
	sent := fake.SentTo(customer)
	if len(sent) != 1 || sent[0].LedgerID != first.ID || sent[0].Type != "text" || sent[0].Body != "Yes, it left this morning." {
		t.Fatalf("fake Graph API got %s\nwant one text carrying biz_opaque_callback_data %s", describeSent(sent), first.ID)
	}
	replyWAMID := sent[0].WAMID

	// Statuses arrive twice each and read before delivered: the row ends
	// read, with both timestamps, whatever the order they were applied in.
	var got messageJSON
	eventually(t, 30*time.Second, func() bool {
		in.call("GET", "/v1/messages/"+first.ID, nil, &got)
		return got.Status == "read" && got.DeliveredAt != nil && got.ReadAt != nil
	}, func() string { return "reply " + first.ID + " has status " + got.Status + "\n" + in.logs() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fake.WaitWebhooks(ctx); err != nil {
		t.Fatalf("waiting for the fake's webhooks: %v", err)
	}
	eventually(t, 30*time.Second, func() bool { return pendingEvents(t, pool) == 0 },
		func() string { return "events still waiting for the dispatcher" })
	in.call("GET", "/v1/messages/"+first.ID, nil, &got)
	if got.Status != "read" || got.ProviderMessageID != replyWAMID {
		t.Errorf("reply after every status webhook: status %q wamid %q, want read with %s", got.Status, got.ProviderMessageID, replyWAMID)
	}
	var statusEvents int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'message.status' AND payload->>'ledger_id' = $1`, first.ID).Scan(&statusEvents); err != nil {
		t.Fatal(err)
	}
	if statusEvents != 3 {
		t.Errorf("stored status events for the reply = %d, want 3 (sent, read, delivered; duplicates dropped)", statusEvents)
	}

	// Free-form text to a number that never wrote: refused before any call.
	const stranger = "+393339999999"
	status, raw := in.mustDo("POST", "/v1/messages", map[string]any{
		"connection_id": connID, "to": stranger, "kind": "text", "text": "Hello from the shop",
	}, "Idempotency-Key", "cold-text-1")
	if status != http.StatusUnprocessableEntity || refusalReason(t, raw) != "outside_window_template_required" {
		t.Errorf("free text to a stranger: %d %s, want 422 outside_window_template_required", status, raw)
	}
	if got := fake.SentTo(stranger); len(got) != 0 {
		t.Errorf("fake Graph API got messages for the stranger:%s", describeSent(got))
	}

	// Marketing opt-in first (a minute ago: Meta's timestamps have whole
	// seconds, see TestIntegrationStopInTheSecondOfAnOptIn), so that the
	// refusal after STOP is the STOP's doing and not a missing opt-in.
	if status := in.call("POST", "/v1/contacts/"+contact.ID+"/consent", map[string]any{
		"purposes": []string{"marketing"}, "action": "opt_in", "source": "checkout", "method": "checkbox",
		"text_shown": "Send me offers on WhatsApp", "occurred_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano),
	}, nil); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("recording marketing opt-in: status %d", status)
	}
	if _, err := fake.AddTemplate(n.WABAID, fakegraph.Template{Name: "spring_sale", Language: "en", Category: "MARKETING",
		Components: json.RawMessage(`[{"type":"BODY","text":"Spring sale: {{1}}% off everything"}]`)}); err != nil {
		t.Fatal(err)
	}
	if status := in.call("POST", "/v1/connections/"+connID+"/templates/sync", nil, nil); status != http.StatusOK {
		t.Fatalf("syncing templates: status %d", status)
	}

	// STOP, delivered twice at once as Meta may.
	stopWAMID := "wamid.HBgLMzkzMzMxMjM0NTY3FQIAEhgUM0E3RTJFMkVTVE9QMDAwMDAwMQA="
	body, sig := inboundText(n, strings.TrimPrefix(customer, "+"), stopWAMID, "Stop", time.Now())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := postWebhook(http.DefaultClient, webhookURL, map[string]string{
				"Content-Type": "application/json", "X-Hub-Signature-256": sig}, body)
			if err != nil || status != http.StatusOK {
				t.Errorf("STOP webhook: %d %v", status, err)
			}
		}()
	}
	wg.Wait()

	var consentState struct {
		States map[string]string `json:"states"`
	}
	eventually(t, 30*time.Second, func() bool {
		in.call("GET", "/v1/contacts/"+contact.ID+"/consent", nil, &consentState)
		return consentState.States["marketing"] == "out" && consentState.States["utility"] == "out"
	}, func() string {
		return "consent states after STOP: " + mapString(consentState.States) + "\n" + in.logs()
	})

	// The confirmation goes out once (after the 6 s pair gap since the
	// reply), then nothing more.
	confirmations := func() []fakegraph.SentMessage {
		var out []fakegraph.SentMessage
		for _, m := range fake.SentTo(customer) {
			if m.Body == defaultStopConfirmation {
				out = append(out, m)
			}
		}
		return out
	}
	eventually(t, 30*time.Second, func() bool { return len(confirmations()) > 0 },
		func() string {
			return "no STOP confirmation; fake got" + describeSent(fake.SentTo(customer)) + "\n" + in.logs()
		})
	eventually(t, 30*time.Second, func() bool {
		var open int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM consent_confirmations WHERE message_id = $1 AND notified_at IS NULL`, stopWAMID).Scan(&open); err != nil {
			t.Fatal(err)
		}
		return open == 0 && pendingEvents(t, pool) == 0
	}, func() string { return "the STOP's confirmation or events are still pending" })
	if err := fake.WaitWebhooks(ctx); err != nil {
		t.Fatalf("waiting for the fake's webhooks: %v", err)
	}
	if c := confirmations(); len(c) != 1 {
		t.Errorf("STOP confirmations sent = %d, want 1:%s", len(c), describeSent(c))
	}

	// A marketing template to the opted-out customer is refused before any
	// call, and so is a free-form message inside the open window.
	before := len(fake.SentTo(customer))
	status, raw = in.mustDo("POST", "/v1/messages", map[string]any{
		"connection_id": connID, "to": customer, "kind": "template",
		"template": map[string]any{"name": "spring_sale", "language": "en", "params": []string{"20"}},
	}, "Idempotency-Key", "spring-sale-1")
	if status != http.StatusUnprocessableEntity || refusalReason(t, raw) != "opted_out" {
		t.Errorf("marketing send after STOP: %d %s, want 422 opted_out", status, raw)
	}
	status, raw = in.mustDo("POST", "/v1/messages", map[string]any{
		"connection_id": connID, "to": customer, "kind": "text", "text": "One more thing!", "purpose": "marketing",
	}, "Idempotency-Key", "after-stop-text-1")
	if status != http.StatusUnprocessableEntity || refusalReason(t, raw) != "opted_out" {
		t.Errorf("marketing text after STOP: %d %s, want 422 opted_out", status, raw)
	}
	if after := fake.SentTo(customer); len(after) != before {
		t.Errorf("fake Graph API got %d new messages after STOP:%s", len(after)-before, describeSent(after[before:]))
	}
}

func mapString(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// killSendSize is how many recipients TestIntegrationSendSurvivesServeKill
// sends to: the 10,000.
const killSendSize = 10000

// sendOutcome is what a client learnt of one POST /v1/messages.
type sendOutcome struct {
	status int    // 0 when no answer came (the process died, the connection broke)
	id     string // the ledger id of a 2xx answer
	state  string // the ledger status of a 2xx answer
	reason string // the reason of a 422
}

// definite reports whether the answer settles the request: the row it names
// (2xx), or a refusal (422). Anything else is retried with the same key.
func (o sendOutcome) definite() bool {
	return (o.status >= 200 && o.status < 300 && o.id != "") || o.status == http.StatusUnprocessableEntity
}

// kill -9 of `ponte serve` (and its plugins) in the middle of a 10,000
// message send. The clients retry every request that got no definite answer
// with the same Idempotency-Key once serve is back. Afterwards no recipient
// has two messages in the fake Graph API's log, every key has exactly one
// ledger row, and every row is either sent (sent, delivered or read, with a
// wamid the fake issued for that very row) or says why not (refused, failed
// or unknown, with a reason).
func TestIntegrationSendSurvivesServeKill(t *testing.T) {
	in := newInstallation(t, "cloudapi")
	serve := in.start()
	pool := in.openPool()
	// Meta retries webhooks for days; the fake must keep retrying while
	// serve is down and restarting, so no status is lost to the kill.
	fake := fakegraph.New(t, fakegraph.Options{MaxAttempts: 1000, RetryMax: 500 * time.Millisecond, WebhookWorkers: 32})
	n := testNumber
	connID, webhookURL := in.connectCloudAPI(fake, n)
	fake.SetWebhook(webhookURL, n.AppSecret)
	// One status per message: "sent" is what settles a send whose answer the
	// kill lost; delivered and read (and their order) are covered by
	// TestIntegrationWhatsAppConversation and would triple the webhooks.
	fake.SetStatusOptions(fakegraph.StatusOptions{Statuses: []string{"sent"}})

	// A utility template needs no opt-in and no open window, so every
	// recipient can be sent to.
	if _, err := fake.AddTemplate(n.WABAID, fakegraph.Template{Name: "order_update", Language: "en", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"BODY","text":"Your order {{1}} has shipped"}]`)}); err != nil {
		t.Fatal(err)
	}
	if status := in.call("POST", "/v1/connections/"+connID+"/templates/sync", nil, nil); status != http.StatusOK {
		t.Fatalf("syncing templates: status %d", status)
	}

	const N = killSendSize
	phone := func(i int) string { return fmt.Sprintf("+3934%08d", i) }
	key := func(i int) string { return fmt.Sprintf("order-update-%05d", i) }
	send := func(client *http.Client, i int) sendOutcome {
		status, raw, err := in.do(client, "POST", "/v1/messages", map[string]any{
			"connection_id": connID, "to": phone(i), "kind": "template",
			"template": map[string]any{"name": "order_update", "language": "en", "params": []string{fmt.Sprintf("#%d", 1000+i)}},
		}, "Idempotency-Key", key(i))
		if err != nil {
			return sendOutcome{}
		}
		o := sendOutcome{status: status}
		switch {
		case status >= 200 && status < 300:
			var m struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if json.Unmarshal(raw, &m) == nil {
				o.id, o.state = m.ID, m.Status
			}
		case status == http.StatusUnprocessableEntity:
			o.reason = refusalReason(t, raw)
		}
		return o
	}

	outcomes := make([]sendOutcome, N)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(indexes []int, workers int, onAnswer func()) {
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					outcomes[i] = send(client, i)
					if outcomes[i].definite() && onAnswer != nil {
						onAnswer()
					}
				}
			}()
		}
		for _, i := range indexes {
			next <- i
		}
		close(next)
		wg.Wait()
	}

	// First pass: the kill comes once a third of the sends were answered.
	start := time.Now()
	var answered atomic.Int64
	var killOnce sync.Once
	killed := make(chan struct{})
	all := make([]int, N)
	for i := range all {
		all[i] = i
	}
	run(all, 64, func() {
		if answered.Add(1) == N/3 {
			killOnce.Do(func() { serve.kill(); close(killed) })
		}
	})
	select {
	case <-killed:
	default:
		t.Fatalf("all %d sends were answered before the kill; nothing was tested", N)
	}
	var retry []int
	for i, o := range outcomes {
		if !o.definite() {
			retry = append(retry, i)
		}
	}
	t.Logf("first pass: %d of %d answered before and around the kill, %v", N-len(retry), N, time.Since(start).Round(time.Millisecond))
	if len(retry) == 0 {
		t.Fatalf("every send was answered although serve was killed")
	}

	// Restart and retry what got no definite answer, with the same keys,
	// until each has one (a plugin still starting answers 503).
	in.start()
	for round := 0; len(retry) > 0; round++ {
		if round == 20 {
			t.Fatalf("%d sends still without a definite answer after %d rounds, e.g. %s: %+v\n%s",
				len(retry), round, key(retry[0]), outcomes[retry[0]], in.logs())
		}
		run(retry, 64, nil)
		var still []int
		for _, i := range retry {
			if !outcomes[i].definite() {
				still = append(still, i)
			}
		}
		retry = still
		if len(retry) > 0 {
			time.Sleep(500 * time.Millisecond) // a pause between rounds, not a synchronization
		}
	}
	t.Logf("all %d sends answered after %v; webhooks %+v; undispatched events %d", N, time.Since(start).Round(time.Millisecond),
		fake.WebhookStats(), pendingEvents(t, pool))

	// Let the status webhooks drain and the dispatcher apply them.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := fake.WaitWebhooks(ctx); err != nil {
		t.Fatalf("waiting for the fake's webhooks: %v (%+v)", err, fake.WebhookStats())
	}
	t.Logf("webhooks delivered after %v; undispatched events %d", time.Since(start).Round(time.Millisecond), pendingEvents(t, pool))
	if st := fake.WebhookStats(); st.GivenUp > 0 {
		t.Fatalf("the fake gave up on %d webhooks: %+v", st.GivenUp, st)
	}
	// Events the killed process had claimed wait for their lease (20 s)
	// to expire before the new dispatcher takes them.
	eventually(t, 2*time.Minute, func() bool { return pendingEvents(t, pool) == 0 },
		func() string {
			return fmt.Sprintf("%d events still waiting for the dispatcher", pendingEvents(t, pool))
		})
	t.Logf("webhooks drained and applied after %v: %+v", time.Since(start).Round(time.Millisecond), fake.WebhookStats())

	// Sends that never reached Meta and are still sending are what the
	// reconciler settles. serve's bound is DefaultUnknownAfter (10 min) and
	// not configurable, so the test runs the same reconciler with a bound of
	// zero now that nothing is in flight.
	if _, err := (&messaging.Reconciler{Pool: pool, After: time.Nanosecond}).ReconcileOnce(ctx); err != nil {
		t.Fatalf("reconciling: %v", err)
	}

	sent := fake.Sent()
	byLedger := map[string]fakegraph.SentMessage{}
	perRecipient := map[string]int{}
	for _, m := range sent {
		perRecipient[m.To]++
		if perRecipient[m.To] == 2 {
			t.Errorf("recipient %s got two messages:%s", m.To, describeSent(fake.SentTo(m.To)))
		}
		if _, dup := byLedger[m.LedgerID]; dup || m.LedgerID == "" {
			t.Errorf("ledger id %q sent twice or empty", m.LedgerID)
		}
		byLedger[m.LedgerID] = m
	}
	if got := fake.ErrorCounts(); len(got) > 0 {
		t.Logf("errors the fake answered: %v", got)
	}

	type row struct {
		id, key, phone, status, reason, wamid string
	}
	rows, err := pool.Query(ctx, `
		SELECT m.id, m.idempotency_key, c.phone, m.status, COALESCE(m.status_reason, ''), COALESCE(m.provider_message_id, '')
		FROM messages m JOIN contacts c ON c.id = m.contact_id
		WHERE m.direction = 'out' AND m.tenant_id = $1`, in.tenantID)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]row{}
	counts := map[string]int{}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.key, &r.phone, &r.status, &r.reason, &r.wamid); err != nil {
			t.Fatal(err)
		}
		byKey[r.key] = append(byKey[r.key], r)
		counts[r.status]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger: %v; fake log: %d messages", counts, len(sent))

	for i := range N {
		rs := byKey[key(i)]
		if len(rs) != 1 {
			t.Errorf("key %s has %d ledger rows, want 1", key(i), len(rs))
			continue
		}
		r := rs[0]
		if r.phone != phone(i) {
			t.Errorf("key %s: row %s is for %s, want %s", key(i), r.id, r.phone, phone(i))
		}
		if o := outcomes[i]; o.id != "" && o.id != r.id {
			t.Errorf("key %s: the API answered row %s, the ledger has %s", key(i), o.id, r.id)
		}
		m, inLog := byLedger[r.id]
		switch r.status {
		case "sent", "delivered", "read":
			if r.status != "sent" {
				t.Errorf("row %s (%s) is %s, but the fake sent only a \"sent\" status", r.id, key(i), r.status)
			}
			if !inLog || r.wamid == "" || m.WAMID != r.wamid || m.To != strings.TrimPrefix(r.phone, "+") {
				t.Errorf("row %s (%s) is %s with wamid %q, but the fake's log has %+v (found %v)", r.id, key(i), r.status, r.wamid, m, inLog)
			}
		case "refused", "failed", "unknown":
			if r.reason == "" {
				t.Errorf("row %s (%s) is %s without a reason", r.id, key(i), r.status)
			}
			if r.status != "failed" && inLog {
				t.Errorf("row %s (%s) is %s (%s) but the fake accepted it as %s", r.id, key(i), r.status, r.reason, m.WAMID)
			}
		default:
			t.Errorf("row %s (%s) is still %s (%s) after the send settled", r.id, key(i), r.status, r.reason)
		}
	}
	rowIDs := map[string]bool{}
	for _, rs := range byKey {
		for _, r := range rs {
			rowIDs[r.id] = true
		}
	}
	for id, m := range byLedger {
		if !rowIDs[id] {
			t.Errorf("the fake accepted %s for %s with ledger id %q, which no key's row has", m.WAMID, m.To, id)
		}
	}
	if len(byKey) != N {
		t.Errorf("the ledger has %d keys, want %d", len(byKey), N)
	}
}

// waitConversation waits for the conversation with phone on the connection
// to appear in the inbox.
func (in *installation) waitConversation(connID, phone string) conversationJSON {
	in.t.Helper()
	var conv conversationJSON
	eventually(in.t, 30*time.Second, func() bool {
		var list struct {
			Data []conversationJSON `json:"data"`
		}
		if in.call("GET", "/v1/conversations?connection_id="+connID, nil, &list) != http.StatusOK {
			return false
		}
		for _, c := range list.Data {
			if c.Contact.Phone == phone {
				conv = c
				return true
			}
		}
		return false
	}, func() string { return "no conversation with " + phone + "\n" + in.logs() })
	return conv
}

// A STOP must win over an opt-in recorded before it arrived. Meta's message
// timestamps have whole seconds while an opt-in through the API is stamped
// to the microsecond, so an opt-in in the same second as the STOP (the
// checkout checkbox and the customer's "STOP" a few hundred milliseconds
// apart) is ordered after the STOP, and the customer stays opted in to
// marketing although their STOP was stored after the opt-in. The times are
// given explicitly so that the case is deterministic.
func TestIntegrationStopInTheSecondOfAnOptIn(t *testing.T) {
	in := newInstallation(t, "cloudapi")
	in.start()
	fake := fakegraph.New(t)
	n := testNumber
	connID, webhookURL := in.connectCloudAPI(fake, n)
	fake.SetWebhook(webhookURL, n.AppSecret)

	const customer = "+393471112233"
	fake.CustomerMessage(n.PhoneNumberID, customer, "Hi")
	conv := in.waitConversation(connID, customer)

	second := time.Now().Add(-5 * time.Second).Truncate(time.Second)
	if status := in.call("POST", "/v1/contacts/"+conv.Contact.ID+"/consent", map[string]any{
		"purposes": []string{"marketing"}, "action": "opt_in", "source": "checkout", "method": "checkbox",
		"text_shown": "Send me offers on WhatsApp", "occurred_at": second.Add(600 * time.Millisecond).UTC().Format(time.RFC3339Nano),
	}, nil); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("recording marketing opt-in: status %d", status)
	}
	// The STOP, typed in the same second, arrives after the opt-in is stored.
	body, sig := inboundText(n, strings.TrimPrefix(customer, "+"), "wamid.HBgLMzkzNDcxMTEyMjMzFQIAEhgUU1RPUFNBTUVTRUNPTkQwMDAwMQA=", "STOP", second)
	if status, err := postWebhook(http.DefaultClient, webhookURL, map[string]string{
		"Content-Type": "application/json", "X-Hub-Signature-256": sig}, body); err != nil || status != http.StatusOK {
		t.Fatalf("STOP webhook: %d %v", status, err)
	}

	var consentState struct {
		States map[string]string `json:"states"`
	}
	eventually(t, 30*time.Second, func() bool {
		in.call("GET", "/v1/contacts/"+conv.Contact.ID+"/consent", nil, &consentState)
		return consentState.States["utility"] == "out"
	}, func() string { return "the STOP was not applied: " + mapString(consentState.States) + "\n" + in.logs() })
	if got := consentState.States["marketing"]; got != "out" {
		t.Errorf("marketing consent after a STOP stored after the opt-in = %q, want out", got)
	}
}
