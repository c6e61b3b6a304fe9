package cloudapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// MaxDownloadBytes is the largest file download_media returns. The file
// crosses the plugin protocol base64-encoded in one message and is served
// by the host from memory, so the cap is the linked-device connector's and
// the host's (16 MB); Meta allows received files up to 100 MB.
const MaxDownloadBytes = 16 << 20

// Error codes of download_media's typed errors.
const (
	// CodeMediaTooLarge (sdk.Invalid): the file is larger than
	// MaxDownloadBytes; it was not read.
	CodeMediaTooLarge = "media_too_large"
	// CodeMediaHashMismatch (sdk.Permanent): the file downloaded does not
	// have the SHA-256 Meta stated for it.
	CodeMediaHashMismatch = "media_hash_mismatch"
)

// DownloadMediaParams are the parameters of download_media.
type DownloadMediaParams struct {
	// Media is the media object of a message.received event as it was
	// stored; the id is what the download needs, mime_type and sha256 are
	// checked against what Meta answers.
	Media Media `json:"media"`
}

// DownloadResult is the result of download_media, the same shape as the
// linked-device connector's.
type DownloadResult struct {
	// MimeType is the file's type as Meta states it.
	MimeType string `json:"mime_type,omitempty"`
	// FileLength is the file's size in bytes.
	FileLength int `json:"file_length"`
	// SHA256 is the hex SHA-256 of the file.
	SHA256 string `json:"sha256"`
	// Data is the file, base64 (standard encoding, padded).
	Data string `json:"data"`
}

// mediaInfo is Graph's answer to GET /{media-id}. Meta documents file_size
// as a number; some answers carry it as a string, so both are read.
type mediaInfo struct {
	MessagingProduct string          `json:"messaging_product"`
	URL              string          `json:"url"`
	MimeType         string          `json:"mime_type"`
	SHA256           string          `json:"sha256"`
	FileSize         json.RawMessage `json:"file_size"`
	ID               string          `json:"id"`
}

// size returns file_size, or -1 when Meta did not state it.
func (mi mediaInfo) size() int64 {
	s := strings.Trim(strings.TrimSpace(string(mi.FileSize)), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Graph error subcode of "Unsupported get request. Object with ID ... does
// not exist, cannot be loaded due to missing permissions, or does not support
// this operation" (with code 100): for a media id, the file is gone (Meta
// keeps received media for 30 days), was deleted, or is another number's.
const subcodeObjectMissing = 33

// downloadMedia fetches a received file in Meta's two steps: GET
// /{media-id} for a URL valid five minutes, then GET of that URL with the
// same bearer token.
func (c *Connector) downloadMedia(ctx context.Context, cfg Config, p DownloadMediaParams) (DownloadResult, error) {
	id := strings.TrimSpace(p.Media.ID)
	if !idPattern.MatchString(id) {
		return DownloadResult{}, sdk.Invalid("media id %q is not a Cloud API media id (digits)", id)
	}
	var want []sum
	if p.Media.SHA256 != "" {
		s, err := parseSHA256(p.Media.SHA256)
		if err != nil {
			return DownloadResult{}, sdk.Invalid("media sha256: %v", err)
		}
		want = append(want, sum{"the message", s})
	}

	info, err := c.lookupMedia(ctx, cfg, id)
	if err != nil {
		return DownloadResult{}, err
	}
	if n := info.size(); n > MaxDownloadBytes {
		return DownloadResult{}, tooLarge(n)
	}
	if info.SHA256 != "" {
		s, err := parseSHA256(info.SHA256)
		if err != nil {
			return DownloadResult{}, sdk.Permanent("looking up media %s: the graph api answered an unreadable sha256: %v", id, err)
		}
		want = append(want, sum{"the graph api", s})
	}
	mediaURL, err := allowedMediaURL(cfg, info.URL)
	if err != nil {
		return DownloadResult{}, sdk.Permanent("looking up media %s: %v", id, err)
	}

	data, contentType, err := c.fetchMedia(ctx, cfg, id, mediaURL)
	if err != nil {
		return DownloadResult{}, err
	}
	if n := info.size(); n >= 0 && int64(len(data)) != n {
		// Go's client already fails a body shorter than its Content-Length;
		// this catches a response without one.
		return DownloadResult{}, sdk.Retryable("downloading media %s: got %d bytes, the graph api announced %d", id, len(data), n)
	}
	got := sha256.Sum256(data)
	for _, w := range want {
		if w.sum != got {
			e := sdk.Permanent("downloading media %s: the file's SHA-256 is %s, %s states %s; the file is not served",
				id, hex.EncodeToString(got[:]), w.from, hex.EncodeToString(w.sum[:]))
			e.Code = CodeMediaHashMismatch
			return DownloadResult{}, e
		}
	}
	mimeType := firstNonEmpty(info.MimeType, p.Media.MimeType, contentType)
	if p.Media.MimeType != "" && info.MimeType != "" && baseType(p.Media.MimeType) != baseType(info.MimeType) {
		// The hashes decide whether this is the file; a type that differs
		// only says which one to trust (Meta's, after its own processing).
		c.log.DebugContext(ctx, "media type differs from the message's", "media_id", id,
			"message_type", p.Media.MimeType, "graph_type", info.MimeType)
	}
	return DownloadResult{MimeType: mimeType, FileLength: len(data), SHA256: hex.EncodeToString(got[:]),
		Data: base64.StdEncoding.EncodeToString(data)}, nil
}

// sum is an expected SHA-256 and who stated it.
type sum struct {
	from string
	sum  [sha256.Size]byte
}

// lookupMedia asks Graph for the media's URL. phone_number_id makes Meta
// check that the media was sent to this connection's number, so one
// tenant's connection cannot fetch media of another number its token can
// see.
func (c *Connector) lookupMedia(ctx context.Context, cfg Config, id string) (mediaInfo, error) {
	u := strings.TrimSuffix(cfg.APIBase, "/") + "/" + cfg.GraphAPIVersion + "/" + id
	if cfg.PhoneNumberID != "" {
		u += "?" + url.Values{"phone_number_id": {cfg.PhoneNumberID}}.Encode()
	}
	op := "looking up media " + id
	resp, err := c.get(ctx, cfg, op, u)
	if err != nil {
		return mediaInfo{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return mediaInfo{}, sdk.Retryable("%s: reading the graph api response: %v", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return mediaInfo{}, mapMediaLookupError(op, parseGraphError(resp.StatusCode, resp.Header, raw))
	}
	var info mediaInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return mediaInfo{}, sdk.Permanent("%s: decoding the graph api response: %v", op, err)
	}
	if info.URL == "" {
		return mediaInfo{}, sdk.Permanent("%s: the graph api answered without a url", op)
	}
	return info, nil
}

// mapMediaLookupError is MapGraphError with the answers that mean "this
// file cannot be had any more" turned into sdk.NotFound, which the host
// shows as 410 Gone: code 100 with subcode 33 ("Unsupported get request.
// Object with ID ... does not exist, cannot be loaded due to missing
// permissions, or does not support this operation": expired after Meta's 30
// days, deleted, or not this number's), 131052 (Meta could not download the
// file from the sender) and 131053 (the sender's upload failed); a 404
// without Graph's error JSON is NotFound in MapGraphError already. Other
// errors keep MapGraphError's kind: 190 Auth, 130429/80007/4 RateLimited,
// 5xx Retryable.
func mapMediaLookupError(op string, ge GraphError) *sdk.Error {
	e := MapGraphError(op, ge)
	gone := (ge.Code == codeInvalidParameter && ge.Subcode == subcodeObjectMissing) ||
		ge.Code == codeMediaDownload || ge.Code == codeMediaUpload
	if !gone {
		return e
	}
	nf := sdk.NotFound("%s", e.Message)
	nf.Code = e.Code
	return nf
}

// allowedMediaURL checks the URL Meta returned before the connector sends
// the access token to it: https (Meta's lookaside.fbsbx.com), or the origin
// of the connection's api_base, which is what tests point at a fake and is
// as trusted as Graph itself. Anything else would hand the token to whoever
// could get a URL into the answer.
func allowedMediaURL(cfg Config, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the graph api answered a media url that is not absolute")
	}
	if u.User != nil {
		return nil, fmt.Errorf("the graph api answered a media url with credentials in it")
	}
	if u.Scheme == "https" {
		return u, nil
	}
	base, err := url.Parse(cfg.APIBase)
	if err == nil && u.Scheme == base.Scheme && strings.EqualFold(u.Host, base.Host) {
		return u, nil
	}
	return nil, fmt.Errorf("the graph api answered a media url on %s://%s, which is neither https nor the api_base", u.Scheme, u.Host)
}

// fetchMedia downloads the file at the looked-up URL with the bearer token.
func (c *Connector) fetchMedia(ctx context.Context, cfg Config, id string, u *url.URL) ([]byte, string, error) {
	op := "downloading media " + id
	resp, err := c.get(ctx, cfg, op, u.String())
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, "", downloadFailed(op, resp, raw)
	}
	if resp.ContentLength > MaxDownloadBytes {
		return nil, "", tooLarge(resp.ContentLength)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxDownloadBytes+1))
	if err != nil {
		return nil, "", sdk.Retryable("%s: reading the file: %v", op, err)
	}
	if len(data) > MaxDownloadBytes {
		return nil, "", tooLarge(-1)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// errRedirectRefused marks a redirect to a URL the token must not go to.
var errRedirectRefused = errors.New("redirect refused")

// get makes a GET with the connection's token. Redirects are followed only
// to URLs allowedMediaURL accepts (Go itself drops the Authorization header
// when a redirect leaves the host). Like graphCall it never retries.
func (c *Connector) get(ctx context.Context, cfg Config, op, rawURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, sdk.Permanent("%s: building the request: %v", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.AccessToken)
	client := *c.client
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if _, err := allowedMediaURL(cfg, r.URL.String()); err != nil {
			return fmt.Errorf("%w: %v", errRedirectRefused, err)
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL is left out: a media URL is a short-lived credential of
		// its own (with the token it fetches the file) and errors reach logs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, errRedirectRefused) {
			return nil, sdk.Permanent("%s: %v", op, err)
		}
		return nil, sdk.Retryable("%s: %v", op, err)
	}
	return resp, nil
}

// downloadFailed maps a failed download. The URL was handed out moments ago
// with this token, so a 403, 404 or 410 means it expired (five minutes) or
// was refused for reasons a fresh lookup resolves: Retryable, not NotFound,
// which would tell the user the file is gone. 401 is the token (Auth),
// throttling and 5xx keep Graph's mapping.
func downloadFailed(op string, resp *http.Response, raw []byte) error {
	switch resp.StatusCode {
	case http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		detail := strings.TrimSpace(string(raw))
		if len(detail) > 200 || !isPrintable(detail) {
			detail = ""
		}
		return sdk.Retryable("%s: the media url was refused (HTTP %d %s); it is valid five minutes, a new download looks it up again",
			op, resp.StatusCode, detail)
	}
	return MapGraphError(op, parseGraphError(resp.StatusCode, resp.Header, raw))
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// tooLarge is the Invalid error of a file over MaxDownloadBytes; n is its
// size, or -1 when only the read told.
func tooLarge(n int64) *sdk.Error {
	var e *sdk.Error
	if n >= 0 {
		e = sdk.Invalid("the file is %d bytes; download_media returns at most %d", n, MaxDownloadBytes)
	} else {
		e = sdk.Invalid("the file is larger than the %d bytes download_media returns", MaxDownloadBytes)
	}
	e.Code = CodeMediaTooLarge
	return e
}

// parseSHA256 reads a SHA-256 in either of Meta's encodings: base64 in
// webhooks, hex in the media lookup.
func parseSHA256(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	s = strings.TrimSpace(s)
	if len(s) == hex.EncodedLen(sha256.Size) {
		if b, err := hex.DecodeString(s); err == nil {
			copy(out[:], b)
			return out, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			copy(out[:], b)
			return out, nil
		}
	}
	return out, fmt.Errorf("%q is neither hex nor base64 of 32 bytes", s)
}

func baseType(mimeType string) string {
	t, _, _ := strings.Cut(mimeType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
