package sms

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestTwilioStatus(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := map[string]struct {
		m        messaging.Message
		status   string
		code     int
		hasError bool
	}{
		"queued":                    {messaging.Message{Status: messaging.StatusQueued}, StatusQueued, 0, false},
		"deferred past quiet hours": {messaging.Message{Status: messaging.StatusDeferred}, StatusQueued, 0, false},
		"sending":                   {messaging.Message{Status: messaging.StatusSending}, StatusSending, 0, false},
		"sent":                      {messaging.Message{Status: messaging.StatusSent, SentAt: &now}, StatusSent, 0, false},
		"delivered":                 {messaging.Message{Status: messaging.StatusDelivered}, StatusDelivered, 0, false},
		"read":                      {messaging.Message{Status: messaging.StatusRead}, StatusRead, 0, false},
		"failed before sending": {messaging.Message{Status: messaging.StatusFailed, StatusReason: messaging.ReasonProviderRejected, ErrorCode: "131009"},
			StatusFailed, CodeUnknownError, true},
		"failed after sending": {messaging.Message{Status: messaging.StatusFailed, SentAt: &now, StatusReason: messaging.ReasonUndeliverable},
			StatusUndelivered, CodeUnreachable, true},
		"marketing declined": {messaging.Message{Status: messaging.StatusFailed, SentAt: &now, StatusReason: messaging.ReasonMarketingDeclined},
			StatusUndelivered, CodeMarketingDeclined, true},
		"refused, opted out":     {messaging.Message{Status: messaging.StatusRefused, StatusReason: messaging.ReasonOptedOut}, StatusFailed, CodeUnsubscribed, true},
		"refused, excluded":      {messaging.Message{Status: messaging.StatusRefused, StatusReason: messaging.ReasonExcluded}, StatusFailed, CodeUnsubscribed, true},
		"refused, window closed": {messaging.Message{Status: messaging.StatusRefused, StatusReason: messaging.ReasonOutsideWindow}, StatusFailed, CodeOutsideWindow, true},
		"unknown outcome":        {messaging.Message{Status: messaging.StatusUnknown}, StatusUndelivered, CodeUnknownError, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := twilioStatus(tc.m); got != tc.status {
				t.Errorf("status %q, want %q", got, tc.status)
			}
			code, msg := twilioError(tc.m)
			if code != tc.code || (msg != "") != tc.hasError {
				t.Errorf("error %d %q, want %d", code, msg, tc.code)
			}
		})
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	const tenant = "ten_abcdefghijklmnopqrstuvwx"
	ac := AccountSID(tenant)
	if len(ac) != 34 || !strings.HasPrefix(ac, "AC") || AccountSID(tenant) != ac || AccountSID("ten_other") == ac {
		t.Fatalf("AccountSID = %q", ac)
	}
	tests := map[string]struct {
		sid  string
		want bool
	}{
		"tenant id":            {tenant, true},
		"without underscore":   {"tenabcdefghijklmnopqrstuvwx", true},
		"AC sid":               {ac, true},
		"AC sid, upper hex":    {"AC" + strings.ToUpper(ac[2:]), true},
		"another tenant":       {"ten_zzzzzzzzzzzzzzzzzzzzzzzz", false},
		"another tenant's AC":  {AccountSID("ten_zzzzzzzzzzzzzzzzzzzzzzzz"), false},
		"empty":                {"", false},
		"prefix of the tenant": {"ten_abc", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := MatchesAccount(tenant, tc.sid); got != tc.want {
				t.Errorf("MatchesAccount(%q) = %v", tc.sid, got)
			}
		})
	}
}

func TestAPIKeyFromPassword(t *testing.T) {
	t.Parallel()
	const key = "ponte_abcd2345_" + "qrstuvwxyz234567qrstuvwxyz234567qrstuvwxyz234567abcd"
	tests := map[string]struct{ in, want string }{
		"as issued":             {key, key},
		"without underscores":   {strings.ReplaceAll(key, "_", ""), key},
		"something else":        {"hunter2", "hunter2"},
		"too short to be a key": {"ponteab", "ponteab"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := APIKeyFromPassword(tc.in); got != tc.want {
				t.Errorf("APIKeyFromPassword(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", MaxBodyLen)
	tests := map[string]struct {
		req   SendRequest
		code  int
		media *messaging.Media
	}{
		"text":                        {req: SendRequest{To: "+393331234567", Body: "hi"}},
		"whatsapp: To":                {req: SendRequest{To: "whatsapp:+393331234567", Body: "hi"}},
		"1600 characters, 3200 bytes": {req: SendRequest{To: "+393331234567", Body: long}},
		"1601 characters":             {req: SendRequest{To: "+393331234567", Body: long + "x"}, code: CodeBodyTooLong},
		"no body, no media":           {req: SendRequest{To: "+393331234567"}, code: CodeBodyRequired},
		"no To":                       {req: SendRequest{Body: "hi"}, code: CodeToRequired},
		"To without +":                {req: SendRequest{To: "393331234567", Body: "hi"}, code: CodeInvalidTo},
		"To with letters":             {req: SendRequest{To: "+39333abc4567", Body: "hi"}, code: CodeInvalidTo},
		"sms: prefix":                 {req: SendRequest{To: "sms:+393331234567", Body: "hi"}, code: CodeInvalidTo},
		"image with caption": {req: SendRequest{To: "+393331234567", Body: "look", MediaURLs: []string{"https://x.example/a/cat.JPG?x=1"}},
			media: &messaging.Media{Type: "image", Link: "https://x.example/a/cat.JPG?x=1", Caption: "look"}},
		"media only, first of two": {req: SendRequest{To: "+393331234567", MediaURLs: []string{"https://x.example/v.mp4", "https://x.example/b.png"}},
			media: &messaging.Media{Type: "video", Link: "https://x.example/v.mp4"}},
		"pdf": {req: SendRequest{To: "+393331234567", MediaURLs: []string{"https://x.example/docs/invoice.pdf"}},
			media: &messaging.Media{Type: "document", Link: "https://x.example/docs/invoice.pdf", Filename: "invoice.pdf"}},
		"audio alone": {req: SendRequest{To: "+393331234567", MediaURLs: []string{"https://x.example/note.ogg"}},
			media: &messaging.Media{Type: "audio", Link: "https://x.example/note.ogg"}},
		"audio with a body goes as a document": {req: SendRequest{To: "+393331234567", Body: "listen", MediaURLs: []string{"https://x.example/note.ogg"}},
			media: &messaging.Media{Type: "document", Link: "https://x.example/note.ogg", Caption: "listen", Filename: "note.ogg"}},
		"media URL not http": {req: SendRequest{To: "+393331234567", MediaURLs: []string{"file:///etc/passwd"}}, code: CodeInvalidMediaURL},
		"caption over 1024":  {req: SendRequest{To: "+393331234567", Body: strings.Repeat("x", 1025), MediaURLs: []string{"https://x.example/a.png"}}, code: CodeBodyTooLong},
		"callback https":     {req: SendRequest{To: "+393331234567", Body: "hi", StatusCallback: "https://u:p@hooks.example/sms?t=1"}},
		"callback not http":  {req: SendRequest{To: "+393331234567", Body: "hi", StatusCallback: "javascript:alert(1)"}, code: CodeInvalidCallbackURL},
		"callback relative":  {req: SendRequest{To: "+393331234567", Body: "hi", StatusCallback: "/status"}, code: CodeInvalidCallbackURL},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := parseTo(tc.req.To)
			var media *messaging.Media
			if err == nil {
				media, err = checkContent(tc.req)
			}
			if err == nil {
				err = checkCallbackURL(tc.req.StatusCallback)
			}
			code := 0
			if err != nil {
				e, ok := err.(*Error)
				if !ok || e.Status != http.StatusBadRequest {
					t.Fatalf("error %v is not a 400 *Error", err)
				}
				code = e.Code
			}
			if code != tc.code {
				t.Fatalf("code %d, want %d (%v)", code, tc.code, err)
			}
			if diff := cmp.Diff(tc.media, media); diff != "" {
				t.Errorf("media (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 500)
	tests := map[string]struct{ token, sid, want string }{
		"no token":    {"", "SMabc", "sms:SMabc"},
		"token":       {"order-1", "SMabc", "sms:token:order-1"},
		"token again": {"order-1", "SMdef", "sms:token:order-1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := idempotencyKey(tc.token, tc.sid); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	k := idempotencyKey(long, "SMabc")
	if len(k) > 255 || k != idempotencyKey(long, "SMdef") || k == idempotencyKey(long+"x", "SMabc") {
		t.Errorf("long token key %q", k)
	}
}

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"93.184.215.14": true, "2a00:1450:4001:80b::200e": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false,
		"192.0.2.10": false, "255.255.255.255": false,
	}
	for addr, want := range tests {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			if got := sdk.IsPublicAddr(netip.MustParseAddr(addr)); got != want {
				t.Errorf("IsPublicAddr(%s) = %v", addr, got)
			}
			err := sdk.PublicOnlyControl("tcp", netip.AddrPortFrom(netip.MustParseAddr(addr), 443).String(), nil)
			if (err == nil) != want {
				t.Errorf("publicOnly(%s) = %v", addr, err)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	req := func(raw string) *http.Request {
		u, _ := url.Parse(raw)
		return &http.Request{URL: u}
	}
	first := req("https://hooks.example/a")
	tests := map[string]struct {
		next   string
		via    int
		follow bool
	}{
		"same host":  {"https://hooks.example/b", 1, true},
		"other host": {"https://evil.example/b", 1, false},
		"other port": {"https://hooks.example:8443/b", 1, false},
		"too many":   {"https://hooks.example/b", 3, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			via := []*http.Request{first}
			for len(via) < tc.via {
				via = append(via, first)
			}
			if err := sameHostRedirects(req(tc.next), via); (err == nil) != tc.follow {
				t.Errorf("follow = %v (%v), want %v", err == nil, err, tc.follow)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	d := NewDeliverer(nil, DelivererOptions{})
	var got []time.Duration
	for i := 1; i <= 9; i++ {
		got = append(got, d.backoff(i))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}
