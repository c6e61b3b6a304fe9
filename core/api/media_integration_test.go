package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestIntegrationMessageMedia(t *testing.T) {
	t.Parallel()
	f := newMediaFixture(t)
	path := func(id string) string { return "/v1/messages/" + id + "/media" }

	// An image: its bytes and type, cacheable privately, no file name.
	// The message itself shows its media without the keys that decrypt it.
	if r := f.do(t, "GET", "/v1/messages/"+f.image, "a-read", ""); r.Code != http.StatusOK ||
		strings.Contains(r.Body, "media_key") || strings.Contains(r.Body, "direct_path") || !strings.Contains(r.Body, "image/") {
		t.Fatalf("GET the message: %d %s; want its media without media_key and direct_path", r.Code, r.Body)
	}
	r := f.do(t, "GET", path(f.image), "a-read", "")
	if r.Code != http.StatusOK || r.Body != string(f.imageData) {
		t.Fatalf("image: %d %q", r.Code, r.Body)
	}
	wantHeaders := map[string]string{
		"Content-Type":        "image/jpeg",
		"Content-Length":      fmt.Sprint(len(f.imageData)),
		"Cache-Control":       "private, max-age=300",
		"ETag":                `"` + sha256Hex(f.imageData) + `"`,
		"Content-Disposition": "",
	}
	for name, want := range wantHeaders {
		if got := r.Header.Get(name); got != want {
			t.Errorf("image %s = %q, want %q", name, got, want)
		}
	}
	// The connector got the media object as the message stored it, on the
	// message's connection.
	calls := f.plugin.take()
	if len(calls) != 1 || calls[0].Action != "download_media" || calls[0].Connection.ID != f.linkedA || calls[0].Connection.TenantID != f.tenantA {
		t.Fatalf("calls %+v", calls)
	}
	var sent struct{ Media json.RawMessage }
	if err := json.Unmarshal(calls[0].Params, &sent); err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal(sent.Media, &got)
	_ = json.Unmarshal(f.imageMedia, &want)
	if diff := cmp.Diff(want, got); diff != "" || got["media_key"] != mediaKeyImage {
		t.Errorf("download_media media (-stored +sent):\n%s", diff)
	}

	// A document downloads under its file name (RFC 2231 for non-ASCII).
	r = f.do(t, "GET", path(f.doc), "a-user-manager", "")
	if r.Code != http.StatusOK || r.Body != string(f.docData) || r.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("document: %d %v %q", r.Code, r.Header, r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != "attachment; filename*=utf-8''Fattura%207%20%E2%80%93%20maggio.pdf" {
		t.Errorf("Content-Disposition %q", cd)
	}
	f.plugin.take()

	// A current copy is confirmed without asking WhatsApp again.
	etag := `"` + sha256Hex(f.imageData) + `"`
	for _, inm := range []string{etag, `W/` + etag, `"other", ` + etag, "*"} {
		r = f.do(t, "GET", path(f.image), "a-read", "", "If-None-Match", inm)
		if r.Code != http.StatusNotModified || r.Body != "" || r.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %v %q", inm, r.Code, r.Header, r.Body)
		}
	}
	if r = f.do(t, "GET", path(f.image), "a-read", "", "If-None-Match", `"stale"`); r.Code != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", r.Code)
	}
	if n := len(f.plugin.take()); n != 1 {
		t.Errorf("%d downloads, want 1 (only the stale copy)", n)
	}

	// Messages that have nothing to download, without a call.
	refusals := map[string]struct {
		id, key string
		status  int
		detail  string
	}{
		"unknown message":      {"msg_nope", "a-read", http.StatusNotFound, "message not found"},
		"another tenant's":     {f.image, "b-admin", http.StatusNotFound, "message not found"},
		"text message":         {f.text, "a-read", http.StatusConflict, "no media"},
		"cloud api, no plugin": {f.cloudImage, "a-read", http.StatusConflict, "connector is not installed"},
		"sent by link":         {f.outbound, "a-read", http.StatusConflict, "sent by link"},
		"announced too large":  {f.big, "a-read", http.StatusRequestEntityTooLarge, "at most 16777216 bytes"},
		"operator, not theirs": {f.other, "a-user-operator", http.StatusForbidden, "not assigned to you"},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			p := problem(t, f.do(t, "GET", path(tc.id), tc.key, ""), tc.status)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want it to say %q", p.Detail, tc.detail)
			}
		})
	}
	if calls := f.plugin.take(); len(calls) != 0 {
		t.Errorf("%d refused requests reached the connector", len(calls))
	}
	// Operators download the media of their own conversations; read-only
	// users too.
	for _, key := range []string{"a-user-operator", "a-user-read_only", "a-user-admin"} {
		if r := f.do(t, "GET", path(f.image), key, ""); r.Code != http.StatusOK || r.Body != string(f.imageData) {
			t.Errorf("%s: %d %s", key, r.Code, r.Body)
		}
	}
	// WhatsApp no longer has the file.
	problem(t, f.do(t, "GET", path(f.gone), "a-read", ""), http.StatusGone)

	// The connector's failures.
	failures := map[string]struct {
		err        error
		status     int
		retryAfter string
	}{
		"session held nowhere": {&sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "no node holds the session"}, http.StatusServiceUnavailable, "5"},
		"not connected":        {&sdk.Error{Kind: sdk.KindRetryable, Code: "not_connected", Message: "session not connected"}, http.StatusServiceUnavailable, "5"},
		"whatsapp throttles":   {sdk.RateLimited(1500*time.Millisecond, "WhatsApp rate limit"), http.StatusServiceUnavailable, "2"},
		"network":              {sdk.Retryable("downloading the media: i/o timeout"), http.StatusServiceUnavailable, "5"},
		"plugin restarting":    {fmt.Errorf("invoking: %w", pluginhost.ErrUnavailable), http.StatusServiceUnavailable, "5"},
		"keys do not match":    {sdk.Invalid("the downloaded media does not match its keys"), http.StatusBadGateway, ""},
		"refused":              {sdk.Permanent("WhatsApp refused"), http.StatusBadGateway, ""},
		"unknown kind":         {&sdk.Error{Message: "plugin crashed"}, http.StatusBadGateway, ""},
		"host failure":         {errors.New("reading the connection: connection reset"), http.StatusInternalServerError, ""},
		"too large":            {&sdk.Error{Kind: sdk.KindInvalid, Code: "media_too_large", Message: "more than 16 MB"}, http.StatusRequestEntityTooLarge, ""},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			f.plugin.fail(tc.err)
			r := f.do(t, "GET", path(f.image), "a-read", "")
			problem(t, r, tc.status)
			if got := r.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
	f.plugin.fail(nil)

	// A file that does not match the message's SHA-256 is not served.
	f.plugin.mu.Lock()
	f.plugin.files["/v/t62.7118-24/image"] = []byte("something else")
	f.plugin.mu.Unlock()
	problem(t, f.do(t, "GET", path(f.image), "a-read", ""), http.StatusBadGateway)

	logs := f.logs.String()
	for _, secret := range []string{mediaKeyImage, mediaKeyDoc, "broken parcel", "the invoice"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs carry %q", secret)
		}
	}
}

func TestIntegrationNumbersCheck(t *testing.T) {
	t.Parallel()
	f := newMediaFixture(t)
	path := "/v1/numbers/" + f.numberA + "/check"

	type result struct {
		Phone      string `json:"phone"`
		OnWhatsApp bool   `json:"on_whatsapp"`
		JID        string `json:"jid,omitempty"`
	}
	got := decode[struct{ Results []result }](t, f.do(t, "POST", path, "a-write", `{"phones":["+393331234568","+393331234567"]}`), http.StatusOK)
	want := []result{{"+393331234568", true, "393331234568@s.whatsapp.net"}, {"+393331234567", false, ""}}
	if diff := cmp.Diff(want, got.Results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	calls := f.plugin.take()
	if len(calls) != 1 || calls[0].Action != "check_numbers" || calls[0].Connection.ID != f.linkedA ||
		string(calls[0].Params) != `{"phones":["+393331234568","+393331234567"]}` {
		t.Fatalf("calls %+v", calls)
	}

	fifty := make([]string, 51)
	for i := range fifty {
		fifty[i] = fmt.Sprintf(`"+3933312345%02d"`, i)
	}
	invalid := map[string]struct {
		body string
		loc  string
	}{
		"no phones":      {`{"phones":[]}`, "body.phones"},
		"not E.164":      {`{"phones":["+393331234567","3331234567"]}`, "body.phones[1]"},
		"too many":       {`{"phones":[` + strings.Join(fifty, ",") + `]}`, "body.phones"},
		"letters":        {`{"phones":["+39333abc4567"]}`, "body.phones[0]"},
		"phones missing": {`{}`, "body"},
	}
	for name, tc := range invalid {
		t.Run(name, func(t *testing.T) {
			p := problem(t, f.do(t, "POST", path, "a-write", tc.body), http.StatusUnprocessableEntity)
			if len(p.Errors) == 0 || p.Errors[0].Location != tc.loc {
				t.Errorf("errors %+v, want one at %s", p.Errors, tc.loc)
			}
		})
	}
	if calls := f.plugin.take(); len(calls) != 0 {
		t.Errorf("invalid checks reached the connector: %+v", calls)
	}

	body := `{"phones":["+393331234567"]}`
	problem(t, f.do(t, "POST", "/v1/numbers/"+f.cloudN+"/check", "a-write", body), http.StatusConflict)
	problem(t, f.do(t, "POST", "/v1/numbers/num_nope/check", "a-write", body), http.StatusNotFound)
	problem(t, f.do(t, "POST", path, "b-admin", body), http.StatusNotFound)
	problem(t, f.do(t, "POST", "/v1/numbers/"+f.numberB+"/check", "a-write", body), http.StatusNotFound)
	// Spending the lookup budget needs write: not read keys, read-only
	// users or operators.
	for _, key := range []string{"a-read", "a-user-read_only", "a-user-operator"} {
		problem(t, f.do(t, "POST", path, key, body), http.StatusForbidden)
	}
	for _, key := range []string{"a-user-manager", "a-user-admin", "a-admin"} {
		decode[struct{ Results []result }](t, f.do(t, "POST", path, key, body), http.StatusOK)
	}

	failures := map[string]struct {
		err        error
		status     int
		retryAfter string
	}{
		"rate limited":   {sdk.RateLimited(13200*time.Millisecond, "number checks of this connection are limited"), http.StatusTooManyRequests, "14"},
		"not connected":  {&sdk.Error{Kind: sdk.KindRetryable, Code: "not_connected", Message: "session not connected"}, http.StatusServiceUnavailable, "5"},
		"session moving": {&sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "not held"}, http.StatusServiceUnavailable, "5"},
		"refused":        {sdk.Permanent("WhatsApp refused"), http.StatusBadGateway, ""},
		"invalid":        {sdk.Invalid("not a phone number"), http.StatusUnprocessableEntity, ""},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			f.plugin.fail(tc.err)
			r := f.do(t, "POST", path, "a-write", body)
			p := problem(t, r, tc.status)
			if got := r.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if name == "rate limited" && !strings.Contains(p.Detail, "limited") {
				t.Errorf("detail %q", p.Detail)
			}
		})
	}
	f.plugin.fail(nil)

	// Both operations are documented with their security.
	doc := decode[struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}](t, f.do(t, "GET", "/openapi.json", "", ""), http.StatusOK)
	for _, op := range [][2]string{{"/v1/numbers/{id}/check", "post"}, {"/v1/messages/{id}/media", "get"}} {
		if o, ok := doc.Paths[op[0]][op[1]]; !ok || len(o.Security) == 0 {
			t.Errorf("%s %s is not documented with security", op[1], op[0])
		}
	}
}
