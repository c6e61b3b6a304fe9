package fakegraph

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// get fetches rawURL with the Authorization header auth (none when empty).
func get(t *testing.T, rawURL, auth string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestMedia(t *testing.T) {
	t.Parallel()
	s := newFake(t, 80)
	s.AddNumber(Number{PhoneNumberID: "999", WABAID: wabaID, AccessToken: "other-token"})
	data := []byte("\xff\xd8\xff a photo")
	sum := sha256.Sum256(data)
	ref := s.AddMedia(pnid, "image/jpeg", data)
	if ref.SHA256 != base64.StdEncoding.EncodeToString(sum[:]) || ref.MimeType != "image/jpeg" || strings.Trim(ref.ID, "0123456789") != "" {
		t.Fatalf("media ref %+v", ref)
	}

	// The lookup answers Meta's documented shape, sha256 in hex.
	r := call(t, s, http.MethodGet, "/v21.0/"+ref.ID+"?phone_number_id="+pnid, token, nil)
	mediaURL, _ := r.Body["url"].(string)
	delete(r.Body, "url")
	want := map[string]any{"messaging_product": "whatsapp", "mime_type": "image/jpeg", "sha256": hex.EncodeToString(sum[:]),
		"file_size": float64(len(data)), "id": ref.ID}
	if diff := cmp.Diff(want, r.Body); r.Status != 200 || diff != "" {
		t.Fatalf("lookup %d (-want +got):\n%s", r.Status, diff)
	}
	if !strings.HasPrefix(mediaURL, s.URL()+"/whatsapp_business/attachments/?") {
		t.Fatalf("url %q", mediaURL)
	}

	// The URL serves the file to the number's bearer token only.
	if status, body, h := get(t, mediaURL, "Bearer "+token); status != 200 || body != string(data) || h.Get("Content-Type") != "image/jpeg" {
		t.Errorf("download: %d %q %v", status, body, h)
	}
	for _, auth := range []string{"", "Bearer other-token", "Bearer nonsense"} {
		if status, body, _ := get(t, mediaURL, auth); status != http.StatusUnauthorized || !strings.Contains(body, `"code":190`) {
			t.Errorf("download with %q: %d %s", auth, status, body)
		}
	}
	// A query token is not the header Meta asks for.
	if status, _, _ := get(t, mediaURL+"&access_token="+token, ""); status != http.StatusUnauthorized {
		t.Errorf("download with a query token: %d", status)
	}
	// An edited expiry breaks the signature.
	u, _ := url.Parse(mediaURL)
	q := u.Query()
	q.Set("ext", "99999999999")
	u.RawQuery = q.Encode()
	if status, body, _ := get(t, u.String(), "Bearer "+token); status != http.StatusForbidden || body != "URL signature expired" {
		t.Errorf("edited url: %d %q", status, body)
	}
	if n := s.MediaDownloads(ref.ID); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}

	// Lookups that Graph refuses.
	refusals := map[string]struct {
		path, tok     string
		status, code  int
		wantSubcode33 bool
	}{
		"unknown id":             {"/v21.0/123456789", token, 400, 100, true},
		"another number's token": {"/v21.0/" + ref.ID, "other-token", 400, 100, true},
		"another phone_number":   {"/v21.0/" + ref.ID + "?phone_number_id=999", token, 400, 100, true},
		"bad token":              {"/v21.0/" + ref.ID, "nonsense", 401, 190, false},
	}
	for name, tc := range refusals {
		r := call(t, s, http.MethodGet, tc.path, tc.tok, nil)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != tc.status || r.code() != tc.code || (e["error_subcode"] == float64(33)) != tc.wantSubcode33 {
			t.Errorf("%s: %d %v", name, r.Status, r.Body)
		}
	}

	// The URL expires after 5 minutes; a new lookup gives a new one.
	s.Advance(5*time.Minute + time.Second)
	if status, _, _ := get(t, mediaURL, "Bearer "+token); status != http.StatusForbidden {
		t.Errorf("download after 5 minutes: %d", status)
	}
	r = call(t, s, http.MethodGet, "/v21.0/"+ref.ID, token, nil)
	if status, body, _ := get(t, r.Body["url"].(string), "Bearer "+token); status != 200 || body != string(data) {
		t.Errorf("download of a new url: %d", status)
	}

	// Meta keeps received media 30 days.
	s.Advance(30*24*time.Hour + time.Minute)
	if r := call(t, s, http.MethodGet, "/v21.0/"+ref.ID, token, nil); r.Status != 400 || r.code() != 100 {
		t.Errorf("lookup after 30 days: %d %v", r.Status, r.Body)
	}

	// DELETE removes it.
	fresh := s.AddMedia(pnid, "image/png", []byte("png"))
	if r := call(t, s, http.MethodDelete, "/v21.0/"+fresh.ID, token, nil); r.Status != 200 || r.Body["success"] != true {
		t.Errorf("delete: %d %v", r.Status, r.Body)
	}
	if r := call(t, s, http.MethodGet, "/v21.0/"+fresh.ID, token, nil); r.Status != 400 || r.code() != 100 {
		t.Errorf("lookup after delete: %d %v", r.Status, r.Body)
	}
}
