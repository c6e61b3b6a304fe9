package cloudapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

// otherPhoneNumberID is a second number of the same WABA in the fake, with
// its own token.
const (
	otherPhoneNumberID = "106540352249999"
	otherAccessToken   = "EAAGotherTOKEN0123456789"
)

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// download invokes download_media with the media object and decodes the
// result.
func (f fixture) download(t *testing.T, media any) (DownloadResult, error) {
	t.Helper()
	out, err := f.invoke(t, ActionDownloadMedia, map[string]any{"media": media})
	if err != nil {
		return DownloadResult{}, err
	}
	var res DownloadResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	return res, nil
}

func TestDownloadMedia(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.fake.AddNumber(fakegraph.Number{PhoneNumberID: otherPhoneNumberID, WABAID: testWABAID, AccessToken: otherAccessToken})
	jpeg := []byte("\xff\xd8\xff\xe0\x00\x10JFIF a photo of the parcel")
	voice := []byte("OggS\x00\x02 a voice note")
	pdf := bytes.Repeat([]byte("%PDF-1.7 invoice "), 4096)

	img := f.fake.AddMedia(testPhoneNumberID, "image/jpeg", jpeg)
	ogg := f.fake.AddMedia(testPhoneNumberID, "audio/ogg; codecs=opus", voice)
	doc := f.fake.AddMedia(testPhoneNumberID, "application/pdf", pdf)
	others := f.fake.AddMedia(otherPhoneNumberID, "image/jpeg", jpeg)

	tests := map[string]struct {
		media any
		want  DownloadResult
	}{
		// The media object exactly as a message.received event stores it:
		// Meta's webhook sha256 is base64.
		"image as stored": {map[string]any{"id": img.ID, "mime_type": "image/jpeg", "sha256": img.SHA256, "caption": "the parcel"},
			DownloadResult{MimeType: "image/jpeg", FileLength: len(jpeg), SHA256: hexSHA(jpeg), Data: base64.StdEncoding.EncodeToString(jpeg)}},
		"voice note": {map[string]any{"id": ogg.ID, "mime_type": "audio/ogg; codecs=opus", "sha256": ogg.SHA256, "voice": true},
			DownloadResult{MimeType: "audio/ogg; codecs=opus", FileLength: len(voice), SHA256: hexSHA(voice), Data: base64.StdEncoding.EncodeToString(voice)}},
		// A hex sha256 (as the lookup states it) is read too.
		"document, hex sha": {map[string]any{"id": doc.ID, "sha256": hexSHA(pdf), "filename": "invoice.pdf"},
			DownloadResult{MimeType: "application/pdf", FileLength: len(pdf), SHA256: hexSHA(pdf), Data: base64.StdEncoding.EncodeToString(pdf)}},
		// Only the id: the lookup's sha256 is still checked.
		"id only": {map[string]any{"id": img.ID},
			DownloadResult{MimeType: "image/jpeg", FileLength: len(jpeg), SHA256: hexSHA(jpeg), Data: base64.StdEncoding.EncodeToString(jpeg)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := f.download(t, tc.media)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}

	failures := map[string]struct {
		media any
		kind  sdk.ErrorKind
		code  string
	}{
		// Meta answers "Unsupported get request" (100/33) for a media id it
		// does not have for this token and number.
		"unknown id":           {map[string]any{"id": "999000111222333"}, sdk.KindNotFound, "100"},
		"another number's":     {map[string]any{"id": others.ID, "sha256": others.SHA256}, sdk.KindNotFound, "100"},
		"wrong sha256":         {map[string]any{"id": img.ID, "sha256": ogg.SHA256}, sdk.KindPermanent, CodeMediaHashMismatch},
		"unreadable sha256":    {map[string]any{"id": img.ID, "sha256": "not-a-hash"}, sdk.KindInvalid, ""},
		"id that is no number": {map[string]any{"id": "../v21.0/106540352242922"}, sdk.KindInvalid, ""},
		"no id":                {map[string]any{"mime_type": "image/jpeg"}, sdk.KindInvalid, ""},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := f.download(t, tc.media)
			if e := testkit.RequireKind(t, err, tc.kind); e.Code != tc.code {
				t.Errorf("code %q, want %q (%v)", e.Code, tc.code, e)
			}
		})
	}
	if n := f.fake.MediaDownloads(others.ID); n != 0 {
		t.Errorf("another number's file was downloaded %d times", n)
	}
}

// TestDownloadMediaTooLarge: a file over 16 MB is refused on the lookup's
// file_size, without downloading it.
func TestDownloadMediaTooLarge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := f.fake.AddMedia(testPhoneNumberID, "video/mp4", make([]byte, MaxDownloadBytes+1))
	_, err := f.download(t, map[string]any{"id": big.ID, "sha256": big.SHA256})
	if e := testkit.RequireKind(t, err, sdk.KindInvalid); e.Code != CodeMediaTooLarge || !strings.Contains(e.Message, fmt.Sprint(MaxDownloadBytes+1)) {
		t.Errorf("error %+v", e)
	}
	if n := f.fake.MediaDownloads(big.ID); n != 0 {
		t.Errorf("the file was downloaded %d times", n)
	}
	// Exactly 16 MB is served.
	edge := make([]byte, MaxDownloadBytes)
	edge[0] = 1
	ok := f.fake.AddMedia(testPhoneNumberID, "video/mp4", edge)
	res, err := f.download(t, map[string]any{"id": ok.ID, "sha256": ok.SHA256})
	if err != nil || res.FileLength != MaxDownloadBytes || res.SHA256 != hexSHA(edge) {
		t.Errorf("16 MB file: %d bytes, %v", res.FileLength, err)
	}
}

// TestDownloadMediaExpired: Meta keeps received media 30 days; after that
// the id is unknown, which the host shows as 410.
func TestDownloadMediaExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.fake.AddMedia(testPhoneNumberID, "image/jpeg", []byte("old photo"))
	if _, err := f.download(t, m); err != nil {
		t.Fatal(err)
	}
	f.fake.Advance(31 * 24 * time.Hour)
	_, err := f.download(t, m)
	testkit.RequireKind(t, err, sdk.KindNotFound)
}

func TestDownloadMediaAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.fake.AddMedia(testPhoneNumberID, "image/jpeg", []byte("photo"))
	cfg := testConfig(f.fake.URL())
	cfg["access_token"] = "EAAGrevoked"
	f.conn = connWith(t, cfg)
	_, err := f.download(t, m)
	if e := testkit.RequireKind(t, err, sdk.KindAuth); e.Code != "190" {
		t.Errorf("code %q", e.Code)
	}
}

// graphStub is a Graph API answering the media lookup with lookup and the
// download with download; it records whether the token reached it.
type graphStub struct {
	srv        *httptest.Server
	downloads  atomic.Int32
	tokenSeen  atomic.Int32
	lookup     func(w http.ResponseWriter, base string)
	download   func(w http.ResponseWriter)
	lookupPath atomic.Value // string
}

func newGraphStub(t *testing.T, lookup func(w http.ResponseWriter, base string), download func(w http.ResponseWriter)) *graphStub {
	t.Helper()
	g := &graphStub{lookup: lookup, download: download}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+testAccessToken {
			g.tokenSeen.Add(1)
		}
		if r.URL.Path == "/file" {
			g.downloads.Add(1)
			g.download(w)
			return
		}
		g.lookupPath.Store(r.URL.RequestURI())
		g.lookup(w, "http://"+r.Host)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func graphJSON(w http.ResponseWriter, status int, v string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(v))
}

// TestDownloadMediaGraphAnswers covers answers the fake does not give:
// throttling, Meta's media error codes, a download refused after the lookup,
// a file announced too large only by Content-Length, and media URLs the
// token must not be sent to.
func TestDownloadMediaGraphAnswers(t *testing.T) {
	t.Parallel()
	file := []byte("the file")
	fileSum := hexSHA(file)
	lookupOK := func(url string) func(w http.ResponseWriter, base string) {
		return func(w http.ResponseWriter, base string) {
			if url == "" {
				url = base + "/file"
			}
			graphJSON(w, 200, `{"messaging_product":"whatsapp","url":"`+url+`","mime_type":"image/png","sha256":"`+fileSum+`","file_size":"8","id":"123"}`)
		}
	}
	serveFile := func(w http.ResponseWriter) { _, _ = w.Write(file) }
	tests := map[string]struct {
		lookup        func(w http.ResponseWriter, base string)
		download      func(w http.ResponseWriter)
		kind          sdk.ErrorKind
		code          string
		retryAfter    time.Duration
		wantDownloads int32
	}{
		"throughput": {func(w http.ResponseWriter, _ string) {
			graphJSON(w, 400, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}`)
		}, serveFile, sdk.KindRateLimited, "130429", ThroughputRetryAfter, 0},
		"app limit with Retry-After": {func(w http.ResponseWriter, _ string) {
			w.Header().Set("Retry-After", "30")
			graphJSON(w, 400, `{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4}}`)
		}, serveFile, sdk.KindRateLimited, "4", 30 * time.Second, 0},
		"media download error": {func(w http.ResponseWriter, _ string) {
			graphJSON(w, 400, `{"error":{"message":"(#131052) Media download error","type":"OAuthException","code":131052}}`)
		}, serveFile, sdk.KindNotFound, "131052", 0, 0},
		"media upload error": {func(w http.ResponseWriter, _ string) {
			graphJSON(w, 400, `{"error":{"message":"(#131053) Media upload error","type":"OAuthException","code":131053}}`)
		}, serveFile, sdk.KindNotFound, "131053", 0, 0},
		"bare 404": {func(w http.ResponseWriter, _ string) { http.NotFound(w, nil) }, serveFile, sdk.KindNotFound, "", 0, 0},
		"other invalid parameter": {func(w http.ResponseWriter, _ string) {
			graphJSON(w, 400, `{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}`)
		}, serveFile, sdk.KindInvalid, "100", 0, 0},
		"graph down": {func(w http.ResponseWriter, _ string) { http.Error(w, "oops", http.StatusServiceUnavailable) }, serveFile, sdk.KindRetryable, "", 0, 0},
		"url expired": {lookupOK(""), func(w http.ResponseWriter) { http.Error(w, "URL signature expired", http.StatusForbidden) },
			sdk.KindRetryable, "", 0, 1},
		"download token refused": {lookupOK(""), func(w http.ResponseWriter) {
			graphJSON(w, 401, `{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190}}`)
		}, sdk.KindAuth, "190", 0, 1},
		"too large by Content-Length": {func(w http.ResponseWriter, base string) {
			graphJSON(w, 200, `{"messaging_product":"whatsapp","url":"`+base+`/file","mime_type":"video/mp4","id":"123"}`)
		}, func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", fmt.Sprint(MaxDownloadBytes+10))
			w.WriteHeader(200)
			_, _ = w.Write([]byte("the first bytes only"))
		}, sdk.KindInvalid, CodeMediaTooLarge, 0, 1},
		"too large without Content-Length": {func(w http.ResponseWriter, base string) {
			graphJSON(w, 200, `{"messaging_product":"whatsapp","url":"`+base+`/file","mime_type":"video/mp4","id":"123"}`)
		}, func(w http.ResponseWriter) {
			w.WriteHeader(200)
			chunk := make([]byte, 1<<20)
			for range 17 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, sdk.KindInvalid, CodeMediaTooLarge, 0, 1},
		"short file": {lookupOK(""), func(w http.ResponseWriter) {
			w.(http.Flusher).Flush() // chunked: no Content-Length to hold it to
			_, _ = w.Write(file[:4])
		}, sdk.KindRetryable, "", 0, 1},
		"plain http elsewhere": {lookupOK("http://media.example.net/file"), serveFile, sdk.KindPermanent, "", 0, 0},
		"credentials in url":   {lookupOK("https://user:pw@lookaside.example/file"), serveFile, sdk.KindPermanent, "", 0, 0},
		"no url": {func(w http.ResponseWriter, _ string) {
			graphJSON(w, 200, `{"messaging_product":"whatsapp","id":"123"}`)
		}, serveFile, sdk.KindPermanent, "", 0, 0},
	}
	h := testkit.Start(t, New)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGraphStub(t, tc.lookup, tc.download)
			params := json.RawMessage(`{"media":{"id":"123","sha256":"` + fileSum + `"}}`)
			_, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: connWith(t, testConfig(g.srv.URL)), Action: ActionDownloadMedia, Params: params})
			e := testkit.RequireKind(t, err, tc.kind)
			if e.Code != tc.code || e.RetryAfter != tc.retryAfter {
				t.Errorf("code %q retry after %v, want %q %v (%v)", e.Code, e.RetryAfter, tc.code, tc.retryAfter, e)
			}
			if n := g.downloads.Load(); n != tc.wantDownloads {
				t.Errorf("%d downloads, want %d", n, tc.wantDownloads)
			}
			if strings.Contains(e.Message, testAccessToken) {
				t.Errorf("the error carries the token: %v", e)
			}
		})
	}

	// The lookup names the connection's number, and the download carries
	// the token to the api_base's own origin.
	g := newGraphStub(t, lookupOK(""), serveFile)
	out, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: connWith(t, testConfig(g.srv.URL)), Action: ActionDownloadMedia,
		Params: json.RawMessage(`{"media":{"id":"123","mime_type":"image/jpeg"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	var res DownloadResult
	_ = json.Unmarshal(out, &res)
	if res.MimeType != "image/png" || res.SHA256 != fileSum || g.tokenSeen.Load() != 2 {
		t.Errorf("result %+v, token seen %d times", res, g.tokenSeen.Load())
	}
	if want := "/v21.0/123?phone_number_id=" + testPhoneNumberID; g.lookupPath.Load() != want {
		t.Errorf("lookup %v, want %s", g.lookupPath.Load(), want)
	}
}

func TestParseSHA256(t *testing.T) {
	t.Parallel()
	data := []byte("abc")
	s := sha256.Sum256(data)
	tests := map[string]struct {
		in string
		ok bool
	}{
		"hex":            {hex.EncodeToString(s[:]), true},
		"upper hex":      {strings.ToUpper(hex.EncodeToString(s[:])), true},
		"base64":         {base64.StdEncoding.EncodeToString(s[:]), true},
		"base64 raw url": {base64.RawURLEncoding.EncodeToString(s[:]), true},
		"short":          {"abc", false},
		"hex of 16":      {hex.EncodeToString(s[:16]), false},
		"empty":          {"", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSHA256(tc.in)
			if (err == nil) != tc.ok || (tc.ok && got != s) {
				t.Errorf("parseSHA256(%q) = %x, %v", tc.in, got, err)
			}
		})
	}
}
