package fakegraph

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Received media, as the Cloud API serves it. What the fake reproduces, from
// Meta's "Media" reference (Retrieve Media URL, Download Media, Delete Media):
//
//   - GET /{version}/{media-id}[?phone_number_id=…] with the bearer token of
//     the number the media was sent to answers {"messaging_product":
//     "whatsapp", "url", "mime_type", "sha256" (hex), "file_size", "id"}. A
//     media id the fake does not have, one older than 30 days (Meta keeps
//     media that long), one deleted, or one of another number (token or
//     phone_number_id) answers Graph's "Unsupported get request" (HTTP 400,
//     code 100, subcode 33), as Graph answers for any object it will not
//     show; a token of no number answers HTTP 401 code 190.
//   - The url is valid for 5 minutes of the fake's clock ([Server.Advance]
//     moves it) and is a path on the fake shaped like Meta's
//     (/whatsapp_business/attachments/?mid=…&ext=…&hash=…). Fetching it needs
//     the same Authorization: Bearer header (without it, or with another
//     number's token: HTTP 401 code 190); after 5 minutes, or with a changed
//     query, it answers 403 "URL signature expired" as Meta's CDN does. The
//     body is the file with its Content-Type and Content-Length.
//   - DELETE /{version}/{media-id} deletes it: {"success": true}.
//
// Meta's webhooks carry the media's sha256 base64-encoded while the lookup
// answers it hex-encoded; [MediaRef] and the lookup do the same.

// mediaTTL is how long Meta keeps a received file; mediaURLTTL how long a
// looked-up URL works.
const (
	mediaTTL    = 30 * 24 * time.Hour
	mediaURLTTL = 5 * time.Minute
)

// mediaPath is the download URL's path, Meta's lookaside path.
const mediaPath = "/whatsapp_business/attachments/"

// MediaRef is a file [Server.AddMedia] stored, shaped as the media object of
// Meta's inbound-message webhook: pass it as the content of
// [Server.CustomerSends] ("image", "document", ...), after setting Caption or
// Filename if the message should carry them.
type MediaRef struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	// SHA256 is the file's SHA-256, base64 as webhooks carry it.
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	// Voice marks an audio as a voice note.
	Voice bool `json:"voice,omitempty"`
}

// storedMedia is a received file the fake holds.
type storedMedia struct {
	phoneNumberID string
	mimeType      string
	data          []byte
	added         time.Time
	downloads     int
}

// AddMedia stores a file a WhatsApp user sent to the number phoneNumberID
// and returns its media object. The media id is numeric, like Meta's.
func (s *Server) AddMedia(phoneNumberID, mimeType string, data []byte) MediaRef {
	id := newID()
	sum := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mediaLocked().files[id] = &storedMedia{phoneNumberID: phoneNumberID, mimeType: mimeType, data: append([]byte(nil), data...), added: s.nowLocked()}
	return MediaRef{ID: id, MimeType: mimeType, SHA256: base64.StdEncoding.EncodeToString(sum[:])}
}

// MediaDownloads returns how many times the file of a media id was
// downloaded (its bytes served), so a test can tell a refusal made before
// the download from one made after.
func (s *Server) MediaDownloads(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.mediaLocked().files[id]; m != nil {
		return m.downloads
	}
	return 0
}

// serveMedia answers the media routes and reports whether the request was
// one: /{version}/{media-id} and the download path.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == mediaPath {
		s.downloadMedia(w, r)
		return true
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "v") {
		return false
	}
	switch r.Method {
	case http.MethodGet:
		s.lookupMedia(w, r, parts[1])
	case http.MethodDelete:
		s.deleteMedia(w, r, parts[1])
	default:
		s.fail(w, unsupported(r.Method, parts[1]))
	}
	return true
}

// mediaForLocked returns the media id's file if the request's token may see
// it, or the error Graph answers.
func (s *Server) mediaForLocked(r *http.Request, id string) (*storedMedia, *graphError) {
	tok := bearer(r)
	var tokenOf *number
	for _, n := range s.numbers {
		if tok != "" && n.AccessToken == tok {
			tokenOf = n
			break
		}
	}
	if tokenOf == nil {
		e := badToken()
		return nil, &e
	}
	m := s.mediaLocked().files[id]
	want := r.URL.Query().Get("phone_number_id")
	if m == nil || s.nowLocked().Sub(m.added) > mediaTTL ||
		s.numbers[m.phoneNumberID] == nil || s.numbers[m.phoneNumberID].AccessToken != tok ||
		(want != "" && want != m.phoneNumberID) {
		e := unsupported(r.Method, id)
		return nil, &e
	}
	return m, nil
}

func (s *Server) lookupMedia(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	m, gerr := s.mediaForLocked(r, id)
	var q url.Values
	if gerr == nil {
		ext := strconv.FormatInt(s.nowLocked().Add(mediaURLTTL).Unix(), 10)
		q = url.Values{"mid": {id}, "ext": {ext}, "hash": {s.mediaLocked().sign(id, ext)}}
	}
	s.mu.Unlock()
	if gerr != nil {
		s.fail(w, *gerr)
		return
	}
	sum := sha256.Sum256(m.data)
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"url":               s.URL() + mediaPath + "?" + q.Encode(),
		"mime_type":         m.mimeType,
		"sha256":            hex.EncodeToString(sum[:]),
		"file_size":         len(m.data),
		"id":                id,
	})
}

func (s *Server) deleteMedia(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	_, gerr := s.mediaForLocked(r, id)
	if gerr == nil {
		delete(s.mediaLocked().files, id)
	}
	s.mu.Unlock()
	if gerr != nil {
		s.fail(w, *gerr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// downloadMedia serves a looked-up URL: only with the Authorization header
// of the media's number, and only within 5 minutes of the lookup.
func (s *Server) downloadMedia(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, ext := q.Get("mid"), q.Get("ext")
	tok, hasHeader := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	m := s.mediaLocked().files[id]
	expires, err := strconv.ParseInt(ext, 10, 64)
	signed := err == nil && hmac.Equal([]byte(q.Get("hash")), []byte(s.mediaLocked().sign(id, ext)))
	expired := !signed || m == nil || s.nowLocked().Unix() > expires
	authorized := hasHeader && m != nil && s.numbers[m.phoneNumberID] != nil && s.numbers[m.phoneNumberID].AccessToken == strings.TrimSpace(tok)
	var data []byte
	var mimeType string
	if !expired && authorized {
		m.downloads++
		data, mimeType = m.data, m.mimeType
	}
	s.mu.Unlock()
	switch {
	case !authorized && !expired:
		s.fail(w, badToken())
	case expired:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("URL signature expired"))
	default:
		w.Header().Set("Content-Type", mimeType)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	}
}

// mediaState is the fake's received media and the key its download URLs
// are signed with.
type mediaState struct {
	files map[string]*storedMedia
	key   []byte
}

// mediaLocked returns the media state, made on first use so that New need
// not know about media.
func (s *Server) mediaLocked() *mediaState {
	if s.media == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic(fmt.Sprintf("fakegraph: reading random bytes: %v", err))
		}
		s.media = &mediaState{files: map[string]*storedMedia{}, key: key}
	}
	return s.media
}

// sign signs a download URL's media id and expiry with the fake's own key,
// so a URL whose expiry was edited is refused like an expired one.
func (ms *mediaState) sign(id, ext string) string {
	mac := hmac.New(sha256.New, ms.key)
	mac.Write([]byte(id + "\x00" + ext))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
