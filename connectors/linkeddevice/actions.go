package linkeddevice

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mau.fi/whatsmeow"
	waCommon "go.mau.fi/whatsmeow/proto/waCommon"
	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// Limits of the actions.
const (
	// checkNumbersBurst and checkNumbersEvery: a connection may check
	// numbers three times in a row, then once every 20 s. WhatsApp bans
	// accounts that look up many numbers; this is well below what gets
	// noticed, and a check carries up to 50 numbers.
	checkNumbersBurst = 3
	checkNumbersEvery = 20 * time.Second
	// MaxCheckNumbers is the most phone numbers one check_numbers takes.
	MaxCheckNumbers = 50
	// MaxMediaBytes is the largest file send_media sends as image, audio,
	// video or sticker (WhatsApp's own limit is 16 MB), and
	// MaxDocumentBytes as a document (WhatsApp allows 100 MB).
	MaxMediaBytes    = 16 << 20
	MaxDocumentBytes = 100 << 20
	// MaxDownloadBytes is the largest file download_media returns: the
	// result crosses the plugin protocol base64-encoded, in one message.
	MaxDownloadBytes = 16 << 20
	// mediaFetchTimeout bounds fetching a send_media link.
	mediaFetchTimeout = 60 * time.Second
	// pairCodeWait bounds how long start_pairing waits for WhatsApp's
	// pairing socket before asking for a phone code.
	pairCodeWait = 20 * time.Second
)

// Invoke runs an action for a session held by this process.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if f, ok := c.extra[call.Action]; ok {
		return f(ctx, c, call)
	}
	s := c.session(call.Connection.ID)
	if s == nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "the session of connection " + call.Connection.ID + " is not held by this plugin process"}
	}
	var (
		out any
		err error
	)
	switch call.Action {
	case ActionSendText:
		out, err = s.sendText(ctx, call.Params)
	case ActionSendMedia:
		out, err = s.sendMedia(ctx, call.Params)
	case ActionSendReaction:
		out, err = s.sendReaction(ctx, call.Params)
	case ActionMarkRead:
		out, err = s.markRead(ctx, call.Params)
	case ActionSendChatState:
		out, err = s.sendChatState(ctx, call.Params)
	case ActionCheckNumbers:
		out, err = s.checkNumbers(ctx, call.Params)
	case ActionDownloadMedia:
		out, err = s.downloadMedia(ctx, call.Params)
	case ActionStartPairing:
		out, err = s.startPairing(ctx, call.Params)
	case ActionLogout:
		out, err = s.logout(ctx)
	default:
		return nil, sdk.Invalid("unknown action %q", call.Action)
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding the result of %s: %w", call.Action, err)
	}
	return b, nil
}

func decodeParams(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return sdk.Invalid("decoding parameters: %v", err)
	}
	return nil
}

// connected returns the session's client when it is logged in to WhatsApp.
func (s *session) connected() (waClient, error) {
	cli, held := s.current()
	if !held {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "the session is no longer held by this plugin process"}
	}
	if cli == nil || !cli.IsLoggedIn() {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: CodeNotConnected, Message: "session not connected"}
	}
	return cli, nil
}

// MessageIDForLedger derives the WhatsApp message id of a send from the
// caller's ledger id: "3EB0" and 18 upper-case hex digits of
// SHA-256("ponte/linked-message-id/" + ledger id), the shape of the ids
// WhatsApp Web generates. A send retried after a crash therefore carries the
// same id, and the recipient's phone drops the second copy. It is the same
// derivation as core/messaging's LinkedMessageID, which records the id
// before the call (and passes it as the sends' message_id).
func MessageIDForLedger(ledgerID string) types.MessageID {
	h := sha256.Sum256([]byte("ponte/linked-message-id/" + ledgerID))
	return whatsmeow.WebMessageIDPrefix + strings.ToUpper(hex.EncodeToString(h[:9]))
}

// CodeNotConnected is the Code of the Retryable error of an action on a
// session that is held here but not connected to WhatsApp: the call
// certainly did not reach WhatsApp.
const CodeNotConnected = "not_connected"

// CodeMediaTooLarge is the Code of the Invalid error download_media returns
// for a file larger than MaxDownloadBytes.
const CodeMediaTooLarge = "media_too_large"

// sendID is the WhatsApp id of a send: the caller's message_id when given,
// else the one derived from its ledger id.
func sendID(messageID, ledgerID string) types.MessageID {
	if messageID != "" {
		return messageID
	}
	return MessageIDForLedger(ledgerID)
}

// userJID turns an E.164 number (spaces and dashes allowed) or a LID JID
// ("123456789@lid", the form message.received carries in lid) into a
// WhatsApp user JID. A LID is how a contact whose number WhatsApp hides is
// answered: the host knows no phone for it.
func userJID(addr string) (types.JID, error) {
	if user, ok := strings.CutSuffix(strings.TrimSpace(addr), "@"+types.HiddenUserServer); ok {
		if !lidDigits(user) {
			return types.EmptyJID, sdk.Invalid("%q is not a LID (digits followed by @lid)", addr)
		}
		return types.NewJID(user, types.HiddenUserServer), nil
	}
	d, ok := phoneDigits(addr)
	if !ok {
		return types.EmptyJID, sdk.Invalid("%q is neither a phone number in E.164 nor a LID (digits@lid)", addr)
	}
	return types.NewJID(d, types.DefaultUserServer), nil
}

// lidDigits reports whether s is the user part of a LID: 1-20 digits, no
// device suffix (a send goes to the user, not one of its devices).
func lidDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// phoneDigits returns the digits of an E.164 number, rejecting anything that
// cannot be one (letters, a leading 0, fewer than 7 or more than 15 digits).
func phoneDigits(s string) (string, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	d := b.String()
	if len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return "", false
	}
	return d, true
}

// ReplyTo names a received message a send quotes.
type ReplyTo struct {
	MessageID string `json:"message_id"`
	// From is the quoted message's sender, E.164 or a LID JID
	// ("123456789@lid"); empty for a message the account itself sent.
	From string `json:"from,omitempty"`
}

func (r *ReplyTo) contextInfo() (*waE2E.ContextInfo, error) {
	if r == nil || r.MessageID == "" {
		return nil, nil
	}
	ci := &waE2E.ContextInfo{StanzaID: proto.String(r.MessageID), QuotedMessage: &waE2E.Message{Conversation: proto.String("")}}
	if r.From != "" {
		jid, err := userJID(r.From)
		if err != nil {
			return nil, err
		}
		ci.Participant = proto.String(jid.String())
	}
	return ci, nil
}

// SendResult is the result of the send actions.
type SendResult struct {
	MessageID string    `json:"message_id"`
	Timestamp time.Time `json:"timestamp"`
}

type sendTextParams struct {
	To          string   `json:"to"`
	Body        string   `json:"body"`
	ReplyTo     *ReplyTo `json:"reply_to"`
	LedgerID    string   `json:"ledger_id"`
	MessageID   string   `json:"message_id"`
	LinkPreview bool     `json:"link_preview"`
}

func (s *session) sendText(ctx context.Context, raw json.RawMessage) (any, error) {
	var p sendTextParams
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	to, err := userJID(p.To)
	if err != nil {
		return nil, err
	}
	ci, err := p.ReplyTo.contextInfo()
	if err != nil {
		return nil, err
	}
	msg := &waE2E.Message{Conversation: proto.String(p.Body)}
	if ci != nil || p.LinkPreview {
		x := &waE2E.ExtendedTextMessage{Text: proto.String(p.Body), ContextInfo: ci}
		if p.LinkPreview {
			// WhatsApp clients build link previews on the sender's side;
			// marking the first URL is what lets the recipient's phone
			// render it as a link card (without a thumbnail).
			if u := firstURL(p.Body); u != "" {
				x.MatchedText = proto.String(u)
			}
		}
		msg = &waE2E.Message{ExtendedTextMessage: x}
	}
	return s.send(ctx, to, msg, sendID(p.MessageID, p.LedgerID))
}

func firstURL(s string) string {
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "https://") || strings.HasPrefix(f, "http://") {
			return strings.TrimRight(f, ".,;:!?)")
		}
	}
	return ""
}

// send sends msg with the id derived from the ledger id.
func (s *session) send(ctx context.Context, to types.JID, msg *waE2E.Message, id types.MessageID) (SendResult, error) {
	cli, err := s.connected()
	if err != nil {
		return SendResult{}, err
	}
	resp, err := cli.SendMessage(ctx, to, msg, whatsmeow.SendRequestExtra{ID: id})
	if err != nil {
		return SendResult{}, mapWAError("sending the message", err)
	}
	s.log.Info("message sent", "message_id", id)
	ts := resp.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	return SendResult{MessageID: string(id), Timestamp: ts.UTC()}, nil
}

// mapWAError turns a whatsmeow error into a typed SDK error.
func mapWAError(doing string, err error) error {
	var iqErr *whatsmeow.IQError
	var netErr net.Error
	switch {
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrNotLoggedIn), errors.Is(err, whatsmeow.ErrIQDisconnected):
		return sdk.Retryable("%s: session not connected: %v", doing, err)
	case errors.Is(err, whatsmeow.ErrIQRateOverLimit):
		return &sdk.Error{Kind: sdk.KindRateLimited, Code: "429", Message: doing + ": WhatsApp rate limit", RetryAfter: time.Minute, Err: err}
	case errors.Is(err, whatsmeow.ErrIQNotFound):
		return &sdk.Error{Kind: sdk.KindInvalid, Code: "not_on_whatsapp", Message: doing + ": the recipient is not on WhatsApp", Err: err}
	case errors.Is(err, whatsmeow.ErrRecipientADJID), errors.Is(err, whatsmeow.ErrUnknownServer), errors.Is(err, whatsmeow.ErrBroadcastListUnsupported),
		errors.Is(err, whatsmeow.ErrIQBadRequest), errors.Is(err, whatsmeow.ErrIQNotAcceptable):
		return sdk.Invalid("%s: WhatsApp refused the request: %v", doing, err)
	case errors.Is(err, whatsmeow.ErrIQNotAuthorized), errors.Is(err, whatsmeow.ErrIQForbidden):
		return sdk.Auth("%s: WhatsApp refused the account: %v", doing, err)
	case errors.As(err, &iqErr) && iqErr.Code >= 500:
		return sdk.Retryable("%s: WhatsApp server error: %v", doing, err)
	case errors.Is(err, whatsmeow.ErrMessageTimedOut), errors.Is(err, whatsmeow.ErrIQTimedOut),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return sdk.Retryable("%s: %v", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

type sendMediaParams struct {
	To        string   `json:"to"`
	Type      string   `json:"type"`
	Link      string   `json:"link"`
	Caption   string   `json:"caption"`
	Filename  string   `json:"filename"`
	MimeType  string   `json:"mime_type"`
	Voice     bool     `json:"voice"`
	ReplyTo   *ReplyTo `json:"reply_to"`
	LedgerID  string   `json:"ledger_id"`
	MessageID string   `json:"message_id"`
}

var mediaTypes = map[string]whatsmeow.MediaType{
	"image":    whatsmeow.MediaImage,
	"audio":    whatsmeow.MediaAudio,
	"video":    whatsmeow.MediaVideo,
	"document": whatsmeow.MediaDocument,
	"sticker":  whatsmeow.MediaImage,
}

// mediaHTTP fetches send_media links; the timeout covers the whole body.
// The links come from API users, and the plugin fetches them from inside
// the deployment's network, so only public internet addresses are dialled
// (checked on every connection, redirects and DNS answers included): a link
// cannot make the plugin read an internal service or a cloud metadata
// endpoint and send it to a WhatsApp contact.
var mediaHTTP = newMediaHTTP(sdk.PublicOnlyControl)

func newMediaHTTP(control func(network, address string, c syscall.RawConn) error) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: control}
	return &http.Client{Timeout: mediaFetchTimeout, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: dialer.DialContext, ForceAttemptHTTP2: true,
		MaxIdleConns: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
}

func (s *session) sendMedia(ctx context.Context, raw json.RawMessage) (any, error) {
	var p sendMediaParams
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	to, err := userJID(p.To)
	if err != nil {
		return nil, err
	}
	mt, ok := mediaTypes[p.Type]
	if !ok {
		return nil, sdk.Invalid("media type %q is not one of image, audio, video, document, sticker", p.Type)
	}
	ci, err := p.ReplyTo.contextInfo()
	if err != nil {
		return nil, err
	}
	cli, err := s.connected()
	if err != nil {
		return nil, err
	}
	limit := int64(MaxMediaBytes)
	if p.Type == "document" {
		limit = MaxDocumentBytes
	}
	data, ctype, err := fetchMedia(ctx, p.Link, limit)
	if err != nil {
		return nil, err
	}
	mimeType := p.MimeType
	if mimeType == "" {
		mimeType = ctype
	}
	if mimeType == "" || mimeType == "application/octet-stream" {
		mimeType = http.DetectContentType(data)
	}
	if p.Type == "audio" && p.Voice && mimeType != "audio/ogg; codecs=opus" && strings.HasPrefix(mimeType, "audio/ogg") {
		// Phones play voice notes only with this exact type.
		mimeType = "audio/ogg; codecs=opus"
	}
	up, err := cli.Upload(ctx, data, mt)
	if err != nil {
		return nil, mapWAError("uploading the media", err)
	}
	msg := mediaMessage(p, mimeType, up, ci)
	return s.send(ctx, to, msg, sendID(p.MessageID, p.LedgerID))
}

func mediaMessage(p sendMediaParams, mimeType string, up whatsmeow.UploadResponse, ci *waE2E.ContextInfo) *waE2E.Message {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return proto.String(s)
	}
	switch p.Type {
	case "image":
		return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Mimetype: proto.String(mimeType),
			Caption: opt(p.Caption), ContextInfo: ci}}
	case "audio":
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Mimetype: proto.String(mimeType),
			PTT: proto.Bool(p.Voice), ContextInfo: ci}}
	case "video":
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Mimetype: proto.String(mimeType),
			Caption: opt(p.Caption), ContextInfo: ci}}
	case "sticker":
		return &waE2E.Message{StickerMessage: &waE2E.StickerMessage{URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Mimetype: proto.String(mimeType),
			ContextInfo: ci}}
	default:
		filename := p.Filename
		if filename == "" {
			filename = "document"
			if exts, _ := mime.ExtensionsByType(mimeType); len(exts) > 0 {
				filename += exts[0]
			}
		}
		return &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength), Mimetype: proto.String(mimeType),
			Caption: opt(p.Caption), FileName: proto.String(filename), Title: proto.String(filename), ContextInfo: ci}}
	}
}

// fetchMedia downloads a send_media link, at most limit bytes.
func fetchMedia(ctx context.Context, link string, limit int64) ([]byte, string, error) {
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", sdk.Invalid("link %q is not an http or https URL", link)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", sdk.Invalid("link: %v", err)
	}
	resp, err := mediaHTTP.Do(req)
	if errors.Is(err, sdk.ErrNonPublicAddress) {
		return nil, "", sdk.Invalid("the media link does not point to a public internet address")
	}
	if err != nil {
		return nil, "", sdk.Retryable("fetching the media link: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, "", sdk.Invalid("fetching the media link: %s", resp.Status)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, "", sdk.Retryable("fetching the media link: %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, "", sdk.Invalid("fetching the media link: %s", resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, "", sdk.Invalid("the media is %d bytes, more than the %d WhatsApp takes", resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", sdk.Retryable("reading the media link: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, "", sdk.Invalid("the media is larger than the %d bytes WhatsApp takes", limit)
	}
	if len(data) == 0 {
		return nil, "", sdk.Invalid("the media link returned an empty file")
	}
	ctype := resp.Header.Get("Content-Type")
	if mt, params, err := mime.ParseMediaType(ctype); err == nil {
		ctype = mt
		if c := params["codecs"]; c != "" {
			ctype += "; codecs=" + c
		}
	}
	return data, ctype, nil
}

type sendReactionParams struct {
	To        string `json:"to"`
	MessageID string `json:"message_id"`
	FromMe    bool   `json:"from_me"`
	Emoji     string `json:"emoji"`
	LedgerID  string `json:"ledger_id"`
	// ReactionID is the WhatsApp id of the reaction message itself.
	ReactionID string `json:"reaction_id"`
}

func (s *session) sendReaction(ctx context.Context, raw json.RawMessage) (any, error) {
	var p sendReactionParams
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Emoji != "" && !whatsapp.IsEmoji(p.Emoji) {
		// WhatsApp shows one emoji under the message; anything else would
		// show wrong on the phone, or not at all.
		return nil, sdk.Invalid("emoji must be one emoji, or empty to remove the reaction")
	}
	to, err := userJID(p.To)
	if err != nil {
		return nil, err
	}
	msg := &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
		Key:               &waCommon.MessageKey{RemoteJID: proto.String(to.String()), FromMe: proto.Bool(p.FromMe), ID: proto.String(p.MessageID)},
		Text:              proto.String(p.Emoji),
		SenderTimestampMS: proto.Int64(time.Now().UnixMilli()),
	}}
	return s.send(ctx, to, msg, sendID(p.ReactionID, p.LedgerID))
}

type markReadParams struct {
	Chat       string   `json:"chat"`
	MessageIDs []string `json:"message_ids"`
	Sender     string   `json:"sender"`
}

func (s *session) markRead(ctx context.Context, raw json.RawMessage) (any, error) {
	var p markReadParams
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	chat, err := userJID(p.Chat)
	if err != nil {
		return nil, err
	}
	var sender types.JID
	if p.Sender != "" {
		if sender, err = userJID(p.Sender); err != nil {
			return nil, err
		}
	}
	cli, err := s.connected()
	if err != nil {
		return nil, err
	}
	if err := cli.MarkRead(ctx, p.MessageIDs, time.Now(), chat, sender); err != nil {
		return nil, mapWAError("marking messages read", err)
	}
	return struct{}{}, nil
}

type chatStateParams struct {
	To    string `json:"to"`
	State string `json:"state"`
	Media string `json:"media"`
}

func (s *session) sendChatState(ctx context.Context, raw json.RawMessage) (any, error) {
	var p chatStateParams
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	to, err := userJID(p.To)
	if err != nil {
		return nil, err
	}
	state := types.ChatPresence(p.State)
	if state != types.ChatPresenceComposing && state != types.ChatPresencePaused {
		return nil, sdk.Invalid("state %q is not composing or paused", p.State)
	}
	cli, err := s.connected()
	if err != nil {
		return nil, err
	}
	if err := cli.SendChatPresence(ctx, to, state, types.ChatPresenceMedia(p.Media)); err != nil {
		return nil, mapWAError("sending the chat state", err)
	}
	return struct{}{}, nil
}

// NumberCheck is one result of check_numbers.
type NumberCheck struct {
	Phone      string `json:"phone"`
	OnWhatsApp bool   `json:"on_whatsapp"`
	JID        string `json:"jid,omitempty"`
}

func (s *session) checkNumbers(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Phones []string `json:"phones"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if len(p.Phones) == 0 || len(p.Phones) > MaxCheckNumbers {
		return nil, sdk.Invalid("check_numbers takes 1 to %d phone numbers, got %d", MaxCheckNumbers, len(p.Phones))
	}
	query := make([]string, len(p.Phones))
	for i, ph := range p.Phones {
		d, ok := phoneDigits(ph)
		if !ok {
			return nil, sdk.Invalid("%q is not a phone number in E.164", ph)
		}
		query[i] = "+" + d
	}
	cli, err := s.connected()
	if err != nil {
		return nil, err
	}
	if ok, wait := s.checks.take(time.Now()); !ok {
		return nil, sdk.RateLimited(wait, "number checks of this connection are limited to %d in a row and one every %v, since WhatsApp bans accounts that look up many numbers", checkNumbersBurst, checkNumbersEvery)
	}
	resp, err := cli.IsOnWhatsApp(ctx, query)
	if err != nil {
		return nil, mapWAError("checking numbers", err)
	}
	byDigits := make(map[string]types.IsOnWhatsAppResponse, len(resp))
	for _, r := range resp {
		byDigits[strings.TrimPrefix(r.Query, "+")] = r
	}
	results := make([]NumberCheck, len(query))
	for i, q := range query {
		results[i] = NumberCheck{Phone: q}
		if r, ok := byDigits[strings.TrimPrefix(q, "+")]; ok && r.IsIn {
			results[i].OnWhatsApp = true
			results[i].JID = r.JID.ToNonAD().String()
		}
	}
	return map[string]any{"results": results}, nil
}

// DownloadResult is the result of download_media.
type DownloadResult struct {
	MimeType   string `json:"mime_type,omitempty"`
	FileLength int    `json:"file_length"`
	SHA256     string `json:"sha256"`
	Data       string `json:"data"`
}

func (s *session) downloadMedia(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Media Media `json:"media"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	m := p.Media
	mt, ok := mediaTypes[m.Kind]
	if !ok {
		return nil, sdk.Invalid("media kind %q is not one of image, audio, video, document, sticker", m.Kind)
	}
	if m.FileLength > MaxDownloadBytes {
		return nil, &sdk.Error{Kind: sdk.KindInvalid, Code: CodeMediaTooLarge,
			Message: fmt.Sprintf("the media is %d bytes, more than the %d download_media returns", m.FileLength, MaxDownloadBytes)}
	}
	mediaKey, err1 := base64.StdEncoding.DecodeString(m.MediaKey)
	encSHA, err2 := base64.StdEncoding.DecodeString(m.FileEncSHA256)
	sha, err3 := hex.DecodeString(m.SHA256)
	if err := errors.Join(err1, err2, err3); err != nil || m.DirectPath == "" || len(mediaKey) == 0 {
		return nil, sdk.Invalid("the media object lacks what a download needs (direct_path, media_key, file_enc_sha256, sha256)")
	}
	cli, err := s.connected()
	if err != nil {
		return nil, err
	}
	data, err := cli.DownloadMediaWithPath(ctx, m.DirectPath, encSHA, sha, mediaKey, int(m.FileLength), mt, "")
	if err != nil {
		switch {
		case errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith404), errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith410):
			return nil, sdk.NotFound("the media is no longer on WhatsApp's servers: %v", err)
		case errors.Is(err, whatsmeow.ErrInvalidMediaHMAC), errors.Is(err, whatsmeow.ErrInvalidMediaEncSHA256),
			errors.Is(err, whatsmeow.ErrInvalidMediaSHA256), errors.Is(err, whatsmeow.ErrFileLengthMismatch):
			return nil, sdk.Invalid("the downloaded media does not match its keys: %v", err)
		}
		return nil, mapWAError("downloading the media", err)
	}
	if len(data) > MaxDownloadBytes {
		return nil, &sdk.Error{Kind: sdk.KindInvalid, Code: CodeMediaTooLarge,
			Message: fmt.Sprintf("the media is %d bytes, more than the %d download_media returns", len(data), MaxDownloadBytes)}
	}
	sum := sha256.Sum256(data)
	return DownloadResult{MimeType: m.MimeType, FileLength: len(data), SHA256: hex.EncodeToString(sum[:]), Data: base64.StdEncoding.EncodeToString(data)}, nil
}

// tokenBucket is a small token bucket: burst tokens, one more every
// interval.
type tokenBucket struct {
	mu       sync.Mutex
	tokens   float64
	last     time.Time
	burst    float64
	interval time.Duration
}

func newTokenBucket(burst int, every time.Duration) tokenBucket {
	return tokenBucket{tokens: float64(burst), burst: float64(burst), interval: every}
}

// take takes a token, or reports how long until one is there.
func (b *tokenBucket) take(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.interval))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(b.interval))
}
