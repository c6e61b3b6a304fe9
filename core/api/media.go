package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Connector actions the media and check operations call: download_media of
// both WhatsApp connectors (connectors/linkeddevice/schemas and
// connectors/cloudapi/schemas, the same result shape), check_numbers of the
// linked-device connector.
const (
	actionDownloadMedia = "download_media"
	actionCheckNumbers  = "check_numbers"
)

// Codes of the linked-device connector's errors the API acts on.
const (
	// codeNotConnected: the session is held but not logged in to WhatsApp
	// right now (connectors/linkeddevice CodeNotConnected).
	codeNotConnected = "not_connected"
	// codeMediaTooLarge: the file is larger than download_media returns
	// (an Invalid error of either WhatsApp connector). Files the message
	// announces too large are refused here before the call (maxMediaDownload).
	codeMediaTooLarge = "media_too_large"
)

// maxMediaDownload is the largest file download_media returns
// (MaxDownloadBytes of connectors/linkeddevice and connectors/cloudapi: the
// file crosses the plugin protocol base64-encoded in one message). A message
// announcing a larger file is refused with 413 without asking WhatsApp for
// it; Cloud API messages announce no size, and their connector refuses a
// larger file before reading it.
const maxMediaDownload = 16 << 20

// mediaCacheControl lets the caller's browser keep a file a few minutes, so
// an inbox showing an image twice does not download it from WhatsApp twice;
// private because the file is the tenant's and must not sit in a shared
// cache.
const mediaCacheControl = "private, max-age=300"

// downloadableMedia is the part of a received message's media object
// (plugins/sdk/whatsapp Media: a Cloud API media id, or a linked device's
// CDN path and keys) the download needs and the response shows. The object
// itself is passed to download_media as it was stored.
type downloadableMedia struct {
	ID            string `json:"id"`
	Kind          string `json:"kind"`
	MimeType      string `json:"mime_type"`
	SHA256        string `json:"sha256"`
	Filename      string `json:"filename"`
	FileLength    uint64 `json:"file_length"`
	DirectPath    string `json:"direct_path"`
	MediaKey      string `json:"media_key"`
	FileEncSHA256 string `json:"file_enc_sha256"`
}

// completeFor reports whether the object carries what the connector's
// download needs; media the tenant sent by link (outbound rows) does not.
func (m downloadableMedia) completeFor(connector string) bool {
	if connector == numbers.ConnectorCloudAPI {
		return m.ID != ""
	}
	return m.Kind != "" && m.DirectPath != "" && m.MediaKey != "" && m.FileEncSHA256 != "" && m.SHA256 != ""
}

// sha256Hex is the file's SHA-256 as the message states it, in lower-case
// hex: a linked device stores hex, the Cloud API's webhooks base64. ok is
// false when the message states one that is neither; "" and true when it
// states none (a Cloud API message may not; the connector then checks the
// SHA-256 of Meta's media lookup).
func (m downloadableMedia) sha256Hex() (string, bool) {
	s := strings.TrimSpace(m.SHA256)
	if s == "" {
		return "", true
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == sha256.Size {
		return hex.EncodeToString(b), true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b), true
		}
	}
	return "", false
}

// etag is the strong validator of a file: its SHA-256 in hex, which WhatsApp
// states in the message and the download verifies.
func etag(sha256Hex string) string { return `"` + sha256Hex + `"` }

// downloadResult is download_media's result
// (connectors/linkeddevice/schemas/download_media.result.json).
type downloadResult struct {
	MimeType   string `json:"mime_type"`
	FileLength int    `json:"file_length"`
	SHA256     string `json:"sha256"`
	Data       string `json:"data"`
}

type messageMediaInput struct {
	ID          string `path:"id" maxLength:"100" doc:"The message id (msg_...)."`
	IfNoneMatch string `header:"If-None-Match" maxLength:"1000" doc:"The ETag of a copy the caller has; 304 when it is the message's file, without downloading it again."`
}

type messageMediaOutput struct {
	Status             int
	ContentType        string `header:"Content-Type"`
	ContentLength      string `header:"Content-Length"`
	ContentDisposition string `header:"Content-Disposition"`
	CacheControl       string `header:"Cache-Control"`
	ETag               string `header:"ETag"`
	Body               []byte
}

// registerMedia adds GET /v1/messages/{id}/media. It needs the ledger
// (Deps.Messages) and the invoker (Deps.Numbers.Invoker), which routes
// linked-device actions to the session holder and runs Cloud API ones in
// this node's plugin.
func (s *server) registerMedia() {
	if s.deps.Messages == nil || s.deps.Numbers.Invoker == nil {
		return
	}
	op := allowRoles(operation("get-message-media", http.MethodGet, "/v1/messages/{id}/media", "Download a message's media", tagMessages, store.ScopeRead),
		store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly)
	op.Description = "The file of an image, audio, video, document or sticker message received on a WhatsApp number (at most 16 MB): " +
		"on a linked-device number fetched from WhatsApp through the number's session, on a Cloud API number from Meta by its media id. " +
		"Content-Type is the file's type, the ETag its SHA-256 (hex), checked against the SHA-256 the message states; a document comes with its " +
		"file name in Content-Disposition. Operators reach only messages of conversations assigned to them. " +
		"409 for a message without downloadable media (a text, or media sent by link) or from a number that was deleted; " +
		"410 when WhatsApp no longer has the file (the Cloud API keeps received media 30 days); 413 when it is larger than 16 MB; " +
		"503 with Retry-After while WhatsApp throttles, the number's session is not connected or is moving between servers; " +
		"502 when WhatsApp or the connector failed otherwise (including a file that does not match its SHA-256)."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict, http.StatusGone, http.StatusRequestEntityTooLarge,
		http.StatusBadGateway, http.StatusServiceUnavailable)
	op.Responses = map[string]*huma.Response{
		"200": {
			Description: "The file.",
			Headers: map[string]*huma.Param{
				"Content-Disposition": {Description: "attachment; filename=... when the message names its file, and for types a browser must not render in place.", Schema: &huma.Schema{Type: "string"}},
				"Cache-Control":       {Schema: &huma.Schema{Type: "string", Examples: []any{mediaCacheControl}}},
				"ETag":                {Description: "The file's SHA-256, quoted.", Schema: &huma.Schema{Type: "string"}},
			},
			Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary",
				Description: "The file, with its own Content-Type (image/jpeg, audio/ogg; codecs=opus, application/pdf, ...)."}}},
		},
		"304": {Description: "If-None-Match named the file: the caller's copy is current."},
	}
	huma.Register(s.api, op, func(ctx context.Context, in *messageMediaInput) (*messageMediaOutput, error) {
		return s.messageMedia(ctx, in)
	})
}

func (s *server) messageMedia(ctx context.Context, in *messageMediaInput) (*messageMediaOutput, error) {
	p := principal(ctx)
	m, err := s.deps.Messages.Get(ctx, p.TenantID, in.ID)
	if err != nil {
		return nil, s.messageError(ctx, "reading message", err)
	}
	if p.Role == store.RoleOperator {
		if err := s.requireConversationAccess(ctx, m.ConversationID, false); err != nil {
			return nil, err
		}
	}
	var content struct {
		Media json.RawMessage `json:"media"`
	}
	if len(m.Content) > 0 {
		if err := json.Unmarshal(m.Content, &content); err != nil {
			return nil, s.internal(ctx, "decoding the message's content", err)
		}
	}
	if len(content.Media) == 0 || string(content.Media) == "null" {
		return nil, huma.Error409Conflict("the message has no media (it is a " + m.Kind + " message)")
	}
	conn, err := s.deps.Store.GetConnection(ctx, p.TenantID, m.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error409Conflict("the number the message came in on was deleted; its media can no longer be downloaded")
	}
	if err != nil {
		return nil, s.internal(ctx, "reading the message's connection", err)
	}
	if conn.Connector != numbers.ConnectorLinkedDevice && conn.Connector != numbers.ConnectorCloudAPI {
		return nil, huma.Error409Conflict("only media received on WhatsApp numbers can be downloaded; this message came from a " + conn.Connector + " connection")
	}
	var md downloadableMedia
	if err := json.Unmarshal(content.Media, &md); err != nil {
		return nil, s.internal(ctx, "decoding the message's media", err)
	}
	if !md.completeFor(conn.Connector) {
		// Outbound media was sent by link; the ledger keeps the link, not
		// WhatsApp's media id or keys.
		return nil, huma.Error409Conflict("the message's media cannot be downloaded: it carries no WhatsApp media id or keys (media sent by link is not kept)")
	}
	if md.FileLength > maxMediaDownload {
		return nil, tooLarge(md.FileLength)
	}
	stated, ok := md.sha256Hex()
	if !ok {
		// Without a readable hash the file could not be checked, and the
		// message's record is what is wrong: no download.
		return nil, s.badConnectorAnswer(ctx, m.ID, "the message's SHA-256 is neither hex nor base64 of 32 bytes", nil)
	}
	out := &messageMediaOutput{Status: http.StatusOK, CacheControl: mediaCacheControl}
	if stated != "" {
		out.ETag = etag(stated)
		if etagMatches(in.IfNoneMatch, out.ETag) {
			out.Status = http.StatusNotModified
			return out, nil
		}
	}

	params, err := json.Marshal(map[string]json.RawMessage{"media": content.Media})
	if err != nil {
		return nil, s.internal(ctx, "encoding download parameters", err)
	}
	raw, err := s.deps.Numbers.Invoker.Invoke(ctx, invoke.Call{TenantID: p.TenantID, ConnectionID: m.ConnectionID,
		Action: actionDownloadMedia, Params: params})
	if err != nil {
		return nil, s.downloadError(ctx, m.ID, m.ConnectionID, md, err)
	}
	var res downloadResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, s.badConnectorAnswer(ctx, m.ID, "the download result does not decode", err)
	}
	data, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return nil, s.badConnectorAnswer(ctx, m.ID, "the downloaded file is not base64", err)
	}
	if len(data) > maxMediaDownload {
		return nil, tooLarge(uint64(len(data)))
	}
	// The connectors (whatsmeow; the Cloud API's against the webhook's and
	// the lookup's hashes) check the file; checking again here costs little
	// and keeps a wrong file from going out under the message's ETag.
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if stated != "" && got != stated {
		return nil, s.badConnectorAnswer(ctx, m.ID, "the downloaded file does not match the message's SHA-256", nil)
	}
	if stated == "" {
		// Nothing to compare before the download: a current copy is only
		// recognised now, and sent no body.
		out.ETag = etag(got)
		if etagMatches(in.IfNoneMatch, out.ETag) {
			out.Status = http.StatusNotModified
			return out, nil
		}
	}
	out.Body = data
	out.ContentLength = fmt.Sprint(len(data))
	out.ContentType, out.ContentDisposition = mediaHeaders(md, res.MimeType, data)
	return out, nil
}

// mediaHeaders returns the Content-Type and Content-Disposition of a file.
// The file comes from whoever wrote to the number, and the API's origin must
// not render it: anything but plain images, audio and video is served as an
// attachment, so a text/html "document" downloads instead of running in the
// browser (nosniff is set on every response).
func mediaHeaders(md downloadableMedia, resultType string, data []byte) (contentType, disposition string) {
	contentType = resultType
	if contentType == "" {
		contentType = md.MimeType
	}
	base, _, err := mime.ParseMediaType(contentType)
	if err != nil || contentType == "" {
		contentType = http.DetectContentType(data)
		base, _, _ = mime.ParseMediaType(contentType)
	}
	inline := (strings.HasPrefix(base, "image/") && base != "image/svg+xml") ||
		strings.HasPrefix(base, "audio/") || strings.HasPrefix(base, "video/")
	name := sanitizeFilename(md.Filename)
	switch {
	case name != "":
		disposition = mime.FormatMediaType("attachment", map[string]string{"filename": name})
	case !inline:
		disposition = "attachment"
	}
	return contentType, disposition
}

// sanitizeFilename keeps the last path element of a sender's file name,
// without control characters; "" when nothing usable remains.
func sanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	if len(name) > 240 {
		name = strings.ToValidUTF8(name[:240], "")
	}
	return name
}

// etagMatches implements If-None-Match (RFC 9110 13.1.2) for one strong
// ETag: "*" or a list naming it, weak or not (the weak comparison applies).
func etagMatches(header, etag string) bool {
	header = strings.TrimSpace(header)
	if header == "" {
		return false
	}
	if header == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == etag {
			return true
		}
	}
	return false
}

// tooLarge is the 413 of a file over maxMediaDownload; n is its size when
// known, else 0.
func tooLarge(n uint64) error {
	size := "the file is larger than that"
	if n > maxMediaDownload {
		size = fmt.Sprintf("the file is %d bytes", n)
	}
	return huma.NewError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("at most %d bytes of a message's media can be downloaded; %s", maxMediaDownload, size))
}

// badConnectorAnswer is the 502 of a download result the API cannot use.
func (s *server) badConnectorAnswer(ctx context.Context, messageID, what string, err error) error {
	s.log.WarnContext(ctx, "media download: unusable connector answer", slog.String("message", messageID),
		slog.String("problem", what), slog.Any("error", err), slog.String("request_id", RequestID(ctx)))
	return huma.Error502BadGateway("the media could not be served: " + what)
}

// downloadError maps download_media's failures. The log line names the
// message and the error's kind and code, never the media object (its key
// decrypts the file).
func (s *server) downloadError(ctx context.Context, messageID, connectionID string, md downloadableMedia, err error) error {
	if isUnavailable(err) {
		return unavailable("the WhatsApp connector is restarting; retry shortly", 5)
	}
	if errors.Is(err, pluginhost.ErrUnknownConnector) {
		return huma.Error409Conflict("the number's WhatsApp connector is not installed on this server")
	}
	var se *sdk.Error
	if !errors.As(err, &se) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return unavailable("downloading the media took too long; retry shortly", 5)
		}
		return s.internal(ctx, "downloading media", err)
	}
	if busy := sessionBusy(se); busy != nil {
		return busy
	}
	switch {
	case se.Code == codeMediaTooLarge:
		return tooLarge(md.FileLength)
	case se.Kind == sdk.KindNotFound:
		return huma.NewError(http.StatusGone, "WhatsApp no longer has this file (media is kept on WhatsApp's servers for a limited time)")
	case se.Kind == sdk.KindRateLimited, se.Kind == sdk.KindRetryable:
		return unavailable("WhatsApp could not be reached for the file right now; retry shortly: "+se.Message, retryAfterSeconds(se.RetryAfter))
	}
	s.log.WarnContext(ctx, "media download failed", slog.String("message", messageID), slog.String("connection", connectionID),
		slog.String("kind", se.Kind.String()), slog.String("code", se.Code), slog.String("request_id", RequestID(ctx)))
	return huma.Error502BadGateway("the file could not be downloaded from WhatsApp: " + se.Message)
}

// sessionBusy is the 503 of an action refused because the number's session
// is not connected or not held by any node right now; nil for other errors.
func sessionBusy(se *sdk.Error) error {
	switch se.Code {
	case sdk.CodeSessionNotHeld:
		return unavailable("the number's session is starting or moving between servers; retry shortly", retryAfterSeconds(se.RetryAfter))
	case codeNotConnected:
		return unavailable("the number is not connected to WhatsApp right now; retry shortly (GET /v1/numbers shows its session)", retryAfterSeconds(se.RetryAfter))
	}
	return nil
}

// retryAfterSeconds is a Retry-After value: d rounded up to whole seconds,
// 5 when the error did not say.
func retryAfterSeconds(d time.Duration) int {
	if d <= 0 {
		return 5
	}
	return int(math.Ceil(d.Seconds()))
}

// mediaSecrets are the fields of a received linked-device media object that
// decrypt the file at WhatsApp's CDN: the host needs them (GET
// /v1/messages/{id}/media passes them to the connector), API clients do not,
// and a leaked key opens the file to whoever also has its path.
var mediaSecrets = []string{"media_key", "direct_path", "file_enc_sha256"}

// publicContent is a message's content as the API shows it: without the
// media object's keys. Content without them comes back unchanged.
func publicContent(content json.RawMessage) json.RawMessage {
	if !bytes.Contains(content, []byte(`"media_key"`)) {
		return content
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(content, &doc) != nil {
		return content
	}
	var media map[string]json.RawMessage
	if json.Unmarshal(doc["media"], &media) != nil || media == nil {
		return content
	}
	for _, k := range mediaSecrets {
		delete(media, k)
	}
	m, err := json.Marshal(media)
	if err != nil {
		return content
	}
	doc["media"] = m
	out, err := json.Marshal(doc)
	if err != nil {
		return content
	}
	return out
}
