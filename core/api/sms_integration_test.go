package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/sms"
)

var smsSidPattern = regexp.MustCompile(`^SM[0-9a-f]{32}$`)

// Twilio's Go client creates a message on a Cloud API number inside the
// window: it goes out through the connector to the (fake) Graph API, the
// answer is Twilio's Message JSON, fetching it reads the ledger's status,
// and the status callback reports the later change (not the first status).
func TestIntegrationSMSTwilioClientSendsOverWhatsApp(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	const phone = "+393331110001"
	r.openWindow(t, phone)
	cb := newCallbackServer(t, 0)

	// The tool is configured the way a user would: from GET /v1/sms/account.
	req, _ := http.NewRequest("GET", r.srv.URL+"/v1/sms/account", nil)
	req.Header.Set("Authorization", "Bearer "+r.keys["a-read"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var acct struct {
		AccountSID  string `json:"account_sid"`
		MessagesURL string `json:"messages_url"`
		Username    string `json:"username"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&acct)
	resp.Body.Close()
	account := acct.AccountSID
	if resp.StatusCode != http.StatusOK || account != sms.AccountSID(r.tenantA) || acct.Username != account ||
		!strings.HasSuffix(acct.MessagesURL, "/2010-04-01/Accounts/"+account+"/Messages.json") {
		t.Fatalf("GET /v1/sms/account: %d %+v", resp.StatusCode, acct)
	}
	tw := r.twilioClient(t, account, compactKey(r.keys["a-write"]), account, nil)
	params := &openapi.CreateMessageParams{}
	params.SetTo("whatsapp:" + phone)
	params.SetFrom(r.numberA)
	params.SetBody("Il tuo ordine è partito")
	params.SetStatusCallback(cb.URL + "/status?token=s3cret")
	before := time.Now().Add(-time.Second)
	m, err := tw.Api.CreateMessage(params)
	if err != nil {
		t.Fatalf("creating a message with twilio-go: %v", err)
	}
	if m.Sid == nil || !smsSidPattern.MatchString(*m.Sid) {
		t.Fatalf("sid %v is not Twilio-shaped", m.Sid)
	}
	created, err := time.Parse(time.RFC1123Z, deref(m.DateCreated))
	if err != nil || created.Before(before.Truncate(time.Second)) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("date_created %q: %v", deref(m.DateCreated), err)
	}
	want := map[string]string{
		"account_sid": account, "to": "whatsapp:" + phone, "from": r.numberA, "body": "Il tuo ordine è partito",
		"status": "sent", "direction": "outbound-api", "api_version": "2010-04-01", "num_segments": "1", "num_media": "0",
		"price_unit": "USD", "uri": "/2010-04-01/Accounts/" + account + "/Messages/" + *m.Sid + ".json",
	}
	got := map[string]string{
		"account_sid": deref(m.AccountSid), "to": deref(m.To), "from": deref(m.From), "body": deref(m.Body),
		"status": deref(m.Status), "direction": deref(m.Direction), "api_version": deref(m.ApiVersion),
		"num_segments": deref(m.NumSegments), "num_media": deref(m.NumMedia), "price_unit": deref(m.PriceUnit), "uri": deref(m.Uri),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created message (-want +got):\n%s", diff)
	}
	if m.Price != nil || m.ErrorCode != nil || m.ErrorMessage != nil || m.MessagingServiceSid != nil || m.DateSent == nil {
		t.Errorf("price %v error_code %v error_message %v messaging_service_sid %v date_sent %v",
			m.Price, m.ErrorCode, m.ErrorMessage, m.MessagingServiceSid, m.DateSent)
	}

	// It went out once, over WhatsApp, carrying its ledger id.
	ledgerID := r.ledgerID(t, *m.Sid)
	sent := r.fake.SentTo(phone)
	if len(sent) != 1 || sent[0].Type != "text" || sent[0].Body != "Il tuo ordine è partito" || sent[0].LedgerID != ledgerID {
		t.Fatalf("sent to WhatsApp: %+v (ledger %s)", sent, ledgerID)
	}

	// Clients poll: fetch reads the ledger's current status.
	f, err := tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil {
		t.Fatalf("fetching with twilio-go: %v", err)
	}
	if deref(f.Status) != "sent" || deref(f.Sid) != *m.Sid || deref(f.Body) != "Il tuo ordine è partito" {
		t.Errorf("fetched %+v", f)
	}

	// Another tenant's credentials do not reach it: Twilio's 404.
	twB := r.twilioClient(t, sms.AccountSID(r.tenantB), compactKey(r.keys["b-write"]), sms.AccountSID(r.tenantB), nil)
	_, err = twB.Api.FetchMessage(*m.Sid, nil)
	twilioErr(t, err, 20404, 404)

	// The status webhook says delivered: the callback reports it, once.
	d := sms.NewDeliverer(r.st.Pool(), sms.DelivererOptions{AllowPrivateNetworks: true})
	if n, err := d.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("before any change: %d callbacks, %v (the create answer's status is never called back)", n, err)
	}
	r.applyStatus(t, ledgerID, "delivered")
	if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("after delivered: %d callbacks, %v", n, err)
	}
	if n, err := d.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("again: %d callbacks, %v", n, err)
	}
	forms := cb.received()
	if len(forms) != 1 {
		t.Fatalf("callbacks: %v", forms)
	}
	wantForm := url.Values{
		"MessageSid": {*m.Sid}, "SmsSid": {*m.Sid}, "AccountSid": {account}, "From": {r.numberA}, "To": {"whatsapp:" + phone},
		"MessageStatus": {"delivered"}, "SmsStatus": {"delivered"}, "ApiVersion": {"2010-04-01"},
	}
	if diff := cmp.Diff(wantForm, forms[0]); diff != "" {
		t.Errorf("callback form (-want +got):\n%s", diff)
	}
	cb.mu.Lock()
	h := cb.heads[0]
	cb.mu.Unlock()
	if h.Get("Content-Type") != "application/x-www-form-urlencoded" || h.Get("I-Twilio-Idempotency-Token") != *m.Sid+"-delivered" {
		t.Errorf("callback headers %v", h)
	}

	// Read is final: reported, and the row is no longer watched.
	r.applyStatus(t, ledgerID, "read")
	if n, err := d.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("after read: %d callbacks, %v", n, err)
	}
	if forms := cb.received(); len(forms) != 2 || forms[1].Get("MessageStatus") != "read" {
		t.Errorf("callbacks after read: %v", forms)
	}
	var watched bool
	if err := r.st.Pool().QueryRow(context.Background(), `SELECT callback_next_at IS NOT NULL FROM sms_messages WHERE sid = $1`, *m.Sid).Scan(&watched); err != nil || watched {
		t.Errorf("a read message is still watched (%v)", err)
	}
	f, err = tw.Api.FetchMessage(*m.Sid, nil)
	if err != nil || deref(f.Status) != "read" {
		t.Errorf("fetched after read: %v %v", f, err)
	}

	// Neither the body nor the phone reached the info-level logs.
	logs := r.logs.String()
	for _, secret := range []string{"Il tuo ordine", phone, "393331110001", "s3cret", r.keys["a-write"], compactKey(r.keys["a-write"])} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs carry %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, *m.Sid) {
		t.Errorf("the creation was not logged by sid:\n%s", logs)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// twilioErr checks that err is Twilio's error with code and status, as
// twilio-go decodes it from the answer.
func twilioErr(t *testing.T, err error, code, status int) {
	t.Helper()
	var te *twclient.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a TwilioRestError", err, err)
	}
	if te.Code != code || te.Status != status || te.Message == "" || te.MoreInfo != "https://www.twilio.com/docs/errors/"+strconv.Itoa(code) {
		t.Errorf("error %+v, want code %d status %d", te, code, status)
	}
}

// Credentials: the account in the username and the path must be the key's
// tenant's; every failure is Twilio's 401 with WWW-Authenticate, and a key
// without the write scope cannot send.
func TestIntegrationSMSAuth(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	const phone = "+393331110002"
	form := url.Values{"To": {phone}, "From": {r.numberA}, "Body": {"hi"}}
	a, b := r.tenantA, r.tenantB
	cases := map[string]struct {
		account, user, pass string
		status, code        int
	}{
		"no credentials":                 {a, "", "", 401, 20003},
		"wrong key":                      {a, a, flipLastChar(r.keys["a-write"]), 401, 20003},
		"revoked key":                    {a, a, r.keys["a-revoked"], 401, 20003},
		"another tenant's key":           {a, a, r.keys["b-write"], 401, 20003},
		"username of another tenant":     {a, b, r.keys["a-write"], 401, 20003},
		"path of another tenant":         {b, a, r.keys["a-write"], 401, 20003},
		"path of another tenant, its AC": {sms.AccountSID(b), sms.AccountSID(a), r.keys["a-write"], 401, 20003},
		"read-only key":                  {a, a, r.keys["a-read"], 403, 20403},
	}
	for name, tc := range cases {
		status, h, body := r.smsPost(t, tc.account, tc.user, tc.pass, form, nil)
		if status != tc.status || body["code"] != float64(tc.code) || body["status"] != float64(tc.status) || body["message"] == "" {
			t.Errorf("%s: %d %v, want %d code %d", name, status, body, tc.status, tc.code)
		}
		if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q", name, h.Get("WWW-Authenticate"))
		}
	}
	if n := len(r.fake.Sent()); n != 0 {
		t.Errorf("refused requests sent %d messages", n)
	}

	// Twilio's own client sees the 401 as its TwilioRestError.
	tw := r.twilioClient(t, sms.AccountSID(a), compactKey(flipLastChar(r.keys["a-write"])), sms.AccountSID(a), nil)
	p := &openapi.CreateMessageParams{}
	p.SetTo(phone)
	p.SetFrom(r.numberA)
	p.SetBody("hi")
	_, err := tw.Api.CreateMessage(p)
	twilioErr(t, err, 20003, 401)

	// Every accepted form of the account and the key works: the tenant id
	// and the key as issued, both without underscores, the AC sid.
	// (Two recipients: pacing keeps 6 s between messages to one.)
	phones := []string{phone, "+393331110012"}
	for i, acct := range []struct{ path, user, pass string }{
		{a, a, r.keys["a-write"]},
		{strings.ReplaceAll(a, "_", ""), sms.AccountSID(a), compactKey(r.keys["a-write"])},
	} {
		r.openWindow(t, phones[i])
		form := url.Values{"To": {phones[i]}, "From": {r.numberA}, "Body": {"hi"}}
		status, _, body := r.smsPost(t, acct.path, acct.user, acct.pass, form, http.Header{"I-Twilio-Idempotency-Token": {"auth-" + strconv.Itoa(i)}})
		if status != 201 || body["account_sid"] != acct.path {
			t.Errorf("credentials %d: %d %v", i, status, body)
		}
	}
}

// Requests Twilio would refuse are refused with Twilio's codes, before
// anything is sent; a consent refusal is 21610, outside the window 63016.
func TestIntegrationSMSRefusals(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	const (
		inWindow = "+393331110003"
		excluded = "+393331110004"
		stranger = "+393331110005"
	)
	r.openWindow(t, inWindow)
	r.openWindow(t, excluded)
	if _, err := r.consent.AddExclusion(context.Background(), r.tenantA, excluded, "asked not to be contacted"); err != nil {
		t.Fatal(err)
	}
	account := sms.AccountSID(r.tenantA)
	tw := r.twilioClient(t, account, compactKey(r.keys["a-write"]), account, nil)
	create := func(to, from, body, callback string) error {
		p := &openapi.CreateMessageParams{}
		if to != "" {
			p.SetTo(to)
		}
		if from != "" {
			p.SetFrom(from)
		}
		if body != "" {
			p.SetBody(body)
		}
		if callback != "" {
			p.SetStatusCallback(callback)
		}
		_, err := tw.Api.CreateMessage(p)
		return err
	}
	cases := map[string]struct {
		to, from, body, callback string
		code                     int
	}{
		"missing Body":          {inWindow, r.numberA, "", "", 21602},
		"Body over 1600":        {inWindow, r.numberA, strings.Repeat("x", 1601), "", 21617},
		"missing To":            {"", r.numberA, "hi", "", 21604},
		"invalid To":            {"3331234567", r.numberA, "hi", "", 21211},
		"missing From":          {inWindow, "", "hi", "", 21603},
		"unknown From":          {inWindow, "num_nope", "hi", "", 21606},
		"another tenant's From": {inWindow, r.numberB, "hi", "", 21606},
		"unknown phone as From": {inWindow, "whatsapp:+15550009999", "hi", "", 21606},
		"bad StatusCallback":    {inWindow, r.numberA, "hi", "ftp://example.com/x", 21609},
		"excluded recipient":    {excluded, r.numberA, "hi", "", 21610},
		"outside the window":    {stranger, r.numberA, "hi", "", 63016},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			twilioErr(t, create(tc.to, tc.from, tc.body, tc.callback), tc.code, 400)
		})
	}
	// Scheduling cannot be honoured, so it is refused, not ignored.
	form := url.Values{"To": {inWindow}, "From": {r.numberA}, "Body": {"hi"}, "SendAt": {"2030-01-01T00:00:00Z"}, "ScheduleType": {"fixed"}}
	if status, _, body := r.smsPost(t, account, account, compactKey(r.keys["a-write"]), form, nil); status != 400 || body["code"] != float64(20001) {
		t.Errorf("SendAt: %d %v", status, body)
	}
	if n := len(r.fake.Sent()); n != 0 {
		t.Errorf("refused requests sent %d messages: %+v", n, r.fake.Sent())
	}
	// A sid of another tenant, or none at all, is Twilio's 404.
	_, err := tw.Api.FetchMessage("SM00000000000000000000000000000000", nil)
	twilioErr(t, err, 20404, 404)
}

// A retried POST with the same I-Twilio-Idempotency-Token returns the first
// one's message and sends nothing more, also when both race.
func TestIntegrationSMSIdempotencyToken(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	const phone = "+393331110006"
	r.openWindow(t, phone)
	account := sms.AccountSID(r.tenantA)
	tw := r.twilioClient(t, account, compactKey(r.keys["a-write"]), account, http.Header{"I-Twilio-Idempotency-Token": {"order-42-shipped"}})
	p := &openapi.CreateMessageParams{}
	p.SetTo(phone)
	p.SetFrom(r.numberA)
	p.SetBody("shipped")
	var (
		wg   sync.WaitGroup
		sids [3]string
		errs [3]error
	)
	for i := range sids {
		wg.Go(func() {
			m, err := tw.Api.CreateMessage(p)
			if err == nil {
				sids[i] = deref(m.Sid)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if sids[i] != sids[0] || !smsSidPattern.MatchString(sids[i]) {
			t.Fatalf("sids %v differ", sids)
		}
	}
	if sent := r.fake.SentTo(phone); len(sent) != 1 {
		t.Fatalf("sent %d times: %+v", len(sent), sent)
	}
	var rows int
	if err := r.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sms_messages WHERE tenant_id = $1`, r.tenantA).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d sms rows (%v)", rows, err)
	}
	// The token is the tenant's: B's same token is B's own message.
	status, _, body := r.smsPost(t, r.tenantB, r.tenantB, r.keys["b-write"],
		url.Values{"To": {phone}, "From": {r.numberB}, "Body": {"shipped"}}, http.Header{"I-Twilio-Idempotency-Token": {"order-42-shipped"}})
	if status != 400 || body["code"] != float64(63016) { // B's number has no window with this phone
		t.Errorf("B with A's token: %d %v", status, body)
	}
}

// A callback the client fails is retried with backoff until it succeeds; a
// callback to a private address is refused unless allowed (a tenant must
// not make Ponte call into its own network), and given up after the
// bounded attempts.
func TestIntegrationSMSStatusCallbackRetries(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	const phone = "+393331110007"
	r.openWindow(t, phone)
	cb := newCallbackServer(t, 2)
	account := sms.AccountSID(r.tenantA)
	tw := r.twilioClient(t, account, compactKey(r.keys["a-write"]), account, nil)
	p := &openapi.CreateMessageParams{}
	p.SetTo(phone)
	p.SetFrom(r.numberA)
	p.SetBody("retry me")
	p.SetStatusCallback(cb.URL)
	m, err := tw.Api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	ledgerID := r.ledgerID(t, *m.Sid)

	// Private addresses are refused by default: the attempts are used up
	// without the server ever being reached, and the status is given up.
	strict := sms.NewDeliverer(r.st.Pool(), sms.DelivererOptions{Backoff: 10 * time.Millisecond, MaxAttempts: 2})
	r.applyStatus(t, ledgerID, "delivered")
	runUntil(t, strict, func() bool {
		var attempts int
		var given bool
		_ = r.st.Pool().QueryRow(context.Background(), `SELECT callback_attempts, ledger_status = 'delivered' FROM sms_messages WHERE sid = $1`, *m.Sid).Scan(&attempts, &given)
		return given
	})
	if n := len(cb.received()); n != 0 {
		t.Fatalf("a private address was called %d times", n)
	}
	var cerr string
	_ = r.st.Pool().QueryRow(context.Background(), `SELECT COALESCE(callback_error, '') FROM sms_messages WHERE sid = $1`, *m.Sid).Scan(&cerr)
	if !strings.Contains(cerr, "not a public") {
		t.Errorf("callback_error %q", cerr)
	}

	// Allowed: the next status fails twice (500), then is delivered.
	d := sms.NewDeliverer(r.st.Pool(), sms.DelivererOptions{AllowPrivateNetworks: true, Backoff: 20 * time.Millisecond})
	r.applyStatus(t, ledgerID, "read")
	runUntil(t, d, func() bool { return len(cb.received()) >= 3 })
	forms := cb.received()
	for i, f := range forms {
		if f.Get("MessageStatus") != "read" || f.Get("MessageSid") != *m.Sid {
			t.Errorf("callback %d: %v", i, f)
		}
	}
	if n, err := d.RunOnce(context.Background()); err != nil || n != 0 || len(cb.received()) != 3 {
		t.Errorf("after success: %d more callbacks (%v), %d received", n, err, len(cb.received()))
	}
}

// runUntil runs the deliverer until done reports true, for at most 10 s.
func runUntil(t *testing.T, d *sms.Deliverer, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal("the deliverer did not get there in 10 s")
		}
		if _, err := d.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Quiet hours (DND) defer a marketing message instead of failing it: the
// answer is "queued" and nothing goes out; when quiet hours end the
// messaging core's scheduler sends it and the callback reports "sent".
// (Quiet hours apply to marketing only, core/consent; the SMS endpoint's
// default purpose is utility, so a tool marks marketing with PontePurpose.)
func TestIntegrationSMSQuietHoursDefer(t *testing.T) {
	t.Parallel()
	r := newSMSRig(t)
	ctx := context.Background()
	const phone = "+393331110008"
	r.openWindow(t, phone)
	rc, err := r.dirA.Recipient(ctx, r.tenantA, r.connA, phone, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.consent.Record(ctx, r.tenantA, consent.NewRecord{ContactID: rc.ContactID, Purposes: []string{"marketing"},
		Action: "opt_in", Source: "api", Method: "checkbox"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	tz, start, end := "UTC", now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04")
	if _, err := r.consent.UpdateSettings(ctx, r.tenantA, consent.SettingsUpdate{Timezone: &tz, QuietHoursStart: &start, QuietHoursEnd: &end}); err != nil {
		t.Fatal(err)
	}
	cb := newCallbackServer(t, 0)
	account := sms.AccountSID(r.tenantA)
	form := url.Values{"To": {phone}, "From": {r.numberA}, "Body": {"Saldi!"}, "PontePurpose": {"marketing"}, "StatusCallback": {cb.URL}}
	status, _, body := r.smsPost(t, account, account, compactKey(r.keys["a-write"]), form, nil)
	if status != 201 || body["status"] != "queued" || body["error_code"] != nil {
		t.Fatalf("inside quiet hours: %d %v", status, body)
	}
	if n := len(r.fake.SentTo(phone)); n != 0 {
		t.Fatalf("sent inside quiet hours")
	}
	sid := body["sid"].(string)
	var ledgerStatus string
	if err := r.st.Pool().QueryRow(ctx, `SELECT status FROM messages WHERE id = $1`, r.ledgerID(t, sid)).Scan(&ledgerStatus); err != nil || ledgerStatus != "deferred" {
		t.Fatalf("ledger status %q (%v)", ledgerStatus, err)
	}

	// Quiet hours end.
	empty := ""
	if _, err := r.consent.UpdateSettings(ctx, r.tenantA, consent.SettingsUpdate{QuietHoursStart: &empty, QuietHoursEnd: &empty}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Pool().Exec(ctx, `UPDATE messages SET deferred_until = now() WHERE id = $1`, r.ledgerID(t, sid)); err != nil {
		t.Fatal(err)
	}
	sched := &messaging.Scheduler{Service: r.messages, Pool: r.st.Pool()}
	if n, err := sched.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("scheduler: %d, %v", n, err)
	}
	if sent := r.fake.SentTo(phone); len(sent) != 1 || sent[0].Body != "Saldi!" {
		t.Fatalf("after quiet hours: %+v", sent)
	}
	d := sms.NewDeliverer(r.st.Pool(), sms.DelivererOptions{AllowPrivateNetworks: true})
	runUntil(t, d, func() bool { return len(cb.received()) == 1 })
	if got := cb.received()[0].Get("MessageStatus"); got != "sent" {
		t.Errorf("callback status %q", got)
	}
}
