package sms

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/pluginhost"
)

// Sender is the messaging core as this package uses it; *messaging.Service
// implements it. Send's outcomes are documented on messaging.Service.Send.
type Sender interface {
	Send(ctx context.Context, req messaging.SendRequest) (messaging.Message, error)
	Get(ctx context.Context, tenantID, id string) (messaging.Message, error)
}

var _ Sender = (*messaging.Service)(nil)

// Options configures a [Service].
type Options struct {
	// SendTimeout bounds how long a send may wait for its turn (pacing holds
	// a second message to the same recipient for about 6 s) before the
	// client is told 20429 to retry. Zero means 25 s, below the 30 s most
	// HTTP clients give a request.
	SendTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service creates and reads SMS-compatible messages. It is safe for
// concurrent use.
type Service struct {
	db      *db
	sender  Sender
	timeout time.Duration
	log     *slog.Logger
}

// New returns a Service on pool (which holds sms_messages, numbers and the
// ledger) sending through sender.
func New(pool *pgxpool.Pool, sender Sender, opts Options) (*Service, error) {
	if pool == nil || sender == nil {
		return nil, errors.New("sms: pool and sender are required")
	}
	return &Service{
		db:      &db{pool: pool},
		sender:  sender,
		timeout: cmp.Or(opts.SendTimeout, 25*time.Second),
		log:     cmp.Or(opts.Logger, slog.Default()),
	}, nil
}

// SendRequest is a create-message request in Twilio's terms.
type SendRequest struct {
	TenantID string
	// AccountSid is the account as the client named it in the path; the
	// caller has checked it names TenantID (MatchesAccount).
	AccountSid string
	// To is the recipient: "+393331234567" or "whatsapp:+393331234567".
	To string
	// From is the sending number: a linked device's phone in E.164 (with or
	// without "whatsapp:"), or a number id ("num_..."). Or give
	// MessagingServiceSid.
	From string
	// MessagingServiceSid is a number id, for clients configured with a
	// Messaging Service instead of a From number.
	MessagingServiceSid string
	// Body is the text, up to 1,600 characters; the caption of a media
	// message.
	Body string
	// MediaURLs are the MediaUrl values; the first is sent (WhatsApp carries
	// one media per message).
	MediaURLs []string
	// StatusCallback is the http(s) URL that receives status changes.
	StatusCallback string
	// IdempotencyToken is the I-Twilio-Idempotency-Token header: a repeated
	// request with the same token returns the first one's message and sends
	// nothing. Empty means every request is a new message.
	IdempotencyToken string
	// Purpose decides the consent rules (messaging.Purpose...); empty means
	// utility. Quiet hours apply to marketing only (core/consent).
	Purpose string
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Send validates a request, sends it through the messaging core and records
// it. Refusals are *Error values with Twilio's code; a provider's final
// refusal is not an error but a message in status failed with its code, as
// Twilio reports a failure it learns after accepting the request.
func (s *Service) Send(ctx context.Context, req SendRequest) (Message, error) {
	to, err := parseTo(req.To)
	if err != nil {
		return Message{}, err
	}
	media, err := checkContent(req)
	if err != nil {
		return Message{}, err
	}
	if err := checkCallbackURL(req.StatusCallback); err != nil {
		return Message{}, err
	}
	purpose := messaging.Purpose(cmp.Or(req.Purpose, string(messaging.PurposeUtility)))
	switch purpose {
	case messaging.PurposeMarketing, messaging.PurposeUtility, messaging.PurposeService, messaging.PurposeAuthentication:
	default:
		return Message{}, newError(CodeInvalidParameter, http.StatusBadRequest, "PontePurpose must be marketing, utility, service or authentication")
	}
	num, err := s.resolveNumber(ctx, req)
	if err != nil {
		return Message{}, err
	}

	sid := newSid()
	mreq := messaging.SendRequest{
		TenantID: req.TenantID, ConnectionID: num.ConnectionID, To: to, Purpose: purpose,
		IdempotencyKey: idempotencyKey(req.IdempotencyToken, sid),
		// Quiet hours defer the message to their end instead of refusing it:
		// an SMS tool has no way to retry at the right time. It answers
		// "queued", which is what the message is.
		AllowDefer: true,
	}
	if media != nil {
		mreq.Kind, mreq.Media = messaging.KindMedia, media
	} else {
		mreq.Kind, mreq.Text = messaging.KindText, req.Body
	}

	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	m, err := s.sender.Send(sctx, mreq)
	cancel()
	if err := s.sendError(ctx, err, m); err != nil {
		return Message{}, err
	}

	st := twilioStatus(m)
	// Recorded even when the client has gone meanwhile: the message may be
	// out, and a retry with the token must find its sid.
	row, err := s.db.insert(context.WithoutCancel(ctx), row{
		Sid: sid, TenantID: req.TenantID, MessageID: m.ID, NumberID: num.ID, AccountSid: req.AccountSid,
		From: cmp.Or(strings.TrimSpace(req.From), strings.TrimSpace(req.MessagingServiceSid)), To: strings.TrimSpace(req.To),
		MessagingServiceSid: strings.TrimSpace(req.MessagingServiceSid), NumMedia: boolInt(media != nil),
		StatusCallback: req.StatusCallback, CallbackStatus: st, LedgerStatus: string(m.Status),
		Watch: req.StatusCallback != "" && !Final(st),
	})
	if err != nil {
		return Message{}, fmt.Errorf("recording sms message for ledger row %s: %w", m.ID, err)
	}
	if row.Sid != sid {
		s.log.DebugContext(ctx, "sms: idempotent replay", "sid", row.Sid, "message", m.ID)
	} else {
		s.log.InfoContext(ctx, "sms: message created", "sid", row.Sid, "message", m.ID, "tenant", req.TenantID,
			"number", num.ID, "status", st)
	}
	return view(row, m), nil
}

// Get returns a tenant's message with its current status, read from the
// ledger; ErrNotFound when the tenant has no such sid.
func (s *Service) Get(ctx context.Context, tenantID, sid string) (Message, error) {
	r, err := s.db.get(ctx, tenantID, sid)
	if err != nil {
		return Message{}, err
	}
	m, err := s.sender.Get(ctx, tenantID, r.MessageID)
	if errors.Is(err, messaging.ErrNotFound) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("reading ledger row %s of %s: %w", r.MessageID, sid, err)
	}
	return view(r, m), nil
}

// idempotencyKey is the ledger key of a send: from the client's token when
// it gave one (hashed when long, so any token fits the ledger's 255 bytes),
// else from the fresh sid, which no other request has.
func idempotencyKey(token, sid string) string {
	switch {
	case token == "":
		return "sms:" + sid
	case len(token) <= 200:
		return "sms:token:" + token
	}
	sum := sha256.Sum256([]byte(token))
	return "sms:token-sha256:" + hex.EncodeToString(sum[:])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseTo returns the recipient's E.164 phone.
func parseTo(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", newError(CodeToRequired, http.StatusBadRequest, "A 'To' phone number is required.")
	}
	phone := strings.TrimPrefix(raw, WhatsAppPrefix)
	if !e164.MatchString(phone) {
		// The number is the client's own input; it is not echoed, so a
		// response (and any proxy log of it) carries no phone number.
		return "", newError(CodeInvalidTo, http.StatusBadRequest, "The 'To' number is not a valid phone number: give it in E.164 (+393331234567) or as whatsapp:+393331234567.")
	}
	return phone, nil
}

// checkContent checks Body and MediaUrl and returns the media to send, nil
// for a text message.
func checkContent(req SendRequest) (*messaging.Media, error) {
	n := utf8.RuneCountInString(req.Body)
	if n == 0 && len(req.MediaURLs) == 0 {
		return nil, newError(CodeBodyRequired, http.StatusBadRequest, "Message body is required.")
	}
	if n > MaxBodyLen {
		return nil, newError(CodeBodyTooLong, http.StatusBadRequest, "The concatenated message body exceeds the 1600 character limit.")
	}
	if len(req.MediaURLs) == 0 {
		return nil, nil
	}
	for _, raw := range req.MediaURLs {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, newError(CodeInvalidMediaURL, http.StatusBadRequest, "The MediaUrl is not a valid http(s) URL.")
		}
	}
	m := mediaFor(req.MediaURLs[0])
	if req.Body != "" && n > 1024 {
		// WhatsApp's caption limit; Twilio's SMS limit is higher.
		return nil, newError(CodeBodyTooLong, http.StatusBadRequest, "A WhatsApp media caption is limited to 1024 characters.")
	}
	m.Caption = req.Body
	if m.Type == "audio" && m.Caption != "" {
		// WhatsApp audio carries no caption; as a document the text stays.
		u, _ := url.Parse(m.Link)
		m.Type, m.Filename = "document", fileName(u)
	}
	return m, nil
}

// mediaFor guesses the WhatsApp media type of a URL from its extension, as
// Twilio clients give no type. Anything unknown goes as a document, which
// WhatsApp accepts for every file. Audio cannot carry a caption on WhatsApp,
// so audio with a Body is sent as a document (see checkContent).
func mediaFor(raw string) *messaging.Media {
	u, _ := url.Parse(raw) // checked by the caller
	ext := strings.ToLower(path.Ext(u.Path))
	m := &messaging.Media{Link: raw}
	switch ext {
	case ".jpg", ".jpeg", ".png":
		m.Type = "image"
	case ".mp4", ".3gp":
		m.Type = "video"
	case ".mp3", ".ogg", ".opus", ".amr", ".aac", ".m4a":
		m.Type = "audio"
	default:
		m.Type = "document"
	}
	if m.Type == "document" {
		m.Filename = fileName(u)
	}
	return m
}

// fileName is the name a document is shown with: the URL's last segment.
func fileName(u *url.URL) string {
	if name := path.Base(u.Path); name != "/" && name != "." {
		return name
	}
	return ""
}

// checkCallbackURL accepts an empty StatusCallback or an absolute http(s)
// URL. Credentials in the URL (https://user:pass@host/...) are allowed, as
// Twilio allows them: they are the client's way to authenticate callbacks.
func checkCallbackURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2000 {
		return newError(CodeInvalidCallbackURL, http.StatusBadRequest, "The StatusCallback URL is not a valid http(s) URL.")
	}
	return nil
}

// resolveNumber finds the sending number.
func (s *Service) resolveNumber(ctx context.Context, req SendRequest) (number, error) {
	from := strings.TrimSpace(req.From)
	if from == "" {
		mss := strings.TrimSpace(req.MessagingServiceSid)
		if mss == "" {
			return number{}, newError(CodeFromRequired, http.StatusBadRequest, "A 'From' phone number or a MessagingServiceSid is required.")
		}
		n, err := s.db.numberByID(ctx, req.TenantID, mss)
		if errors.Is(err, ErrNotFound) {
			return number{}, newError(CodeServiceNotFound, http.StatusBadRequest, "The MessagingServiceSid is not a number of this account; give a number id (num_...).")
		}
		return n, err
	}
	var (
		n   number
		err error
	)
	if phone := strings.TrimPrefix(from, WhatsAppPrefix); e164.MatchString(phone) {
		n, err = s.db.numberByPhone(ctx, req.TenantID, phone)
	} else {
		n, err = s.db.numberByID(ctx, req.TenantID, from)
	}
	if errors.Is(err, ErrNotFound) {
		return number{}, newError(CodeFromNotUsable, http.StatusBadRequest,
			"The From number is not a number of this account: give a linked device's phone number or a number id (num_...).")
	}
	return n, err
}

// sendError maps the messaging core's outcome to a Twilio error, or nil when
// the send produced a message to answer with.
func (s *Service) sendError(ctx context.Context, err error, m messaging.Message) error {
	if err == nil {
		return nil
	}
	var (
		ref *messaging.RefusedError
		fe  *messaging.FailedError
		ie  *messaging.InvalidError
	)
	switch {
	case errors.Is(err, messaging.ErrOutcomeUnknown) && m.ID != "":
		// Recorded and possibly sent: answered as a message in status
		// sending, settled later by the status webhook; never resent.
		return nil
	case errors.As(err, &fe) && m.ID != "":
		// The provider refused it for good: a message in status failed,
		// with the code, like Twilio's asynchronous failures.
		return nil
	case errors.As(err, &ref):
		return refusalError(ref.Reason, ref.Detail)
	case errors.As(err, &ie):
		return invalidError(ie)
	case errors.Is(err, pluginhost.ErrUnavailable):
		return &Error{Code: CodeUnavailable, Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
			Message: "The channel is restarting; retry shortly with the same I-Twilio-Idempotency-Token."}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// Send's own deadline passed while the message waited for its
		// turn (pacing); nothing was recorded or sent.
		return &Error{Code: CodeTooManyRequests, Status: http.StatusTooManyRequests, RetryAfter: 6 * time.Second,
			Message: "Too many requests to this recipient or number; retry shortly with the same I-Twilio-Idempotency-Token."}
	}
	return fmt.Errorf("sending through the messaging core: %w", err)
}

// refusalError is the Twilio error of a refused send.
func refusalError(reason, detail string) *Error {
	code, msg := refusalCode(reason, detail)
	return &Error{Code: code, Status: http.StatusBadRequest, Message: msg}
}

func refusalCode(reason, detail string) (int, string) {
	switch reason {
	case messaging.ReasonOptedOut, messaging.ReasonExcluded, messaging.ReasonNoMarketingConsent:
		return CodeUnsubscribed, "Attempt to send to unsubscribed recipient (" + reason + ")."
	case messaging.ReasonOutsideWindow, messaging.ReasonTemplateNotFound, messaging.ReasonTemplateNotApproved:
		return CodeOutsideWindow, "Failed to send freeform message because you are outside the allowed window. The recipient has not written to this WhatsApp number in the last 24 hours."
	}
	msg := "The message was refused: " + reason
	if detail != "" {
		msg += ": " + detail
	}
	return CodeUnknownError, msg + "."
}

func invalidError(ie *messaging.InvalidError) *Error {
	switch {
	case ie.Field == "connection_id":
		return newError(CodeFromNotUsable, http.StatusBadRequest, "The From number cannot send messages: %s.", ie.Reason)
	case ie.Field == "to" || ie.Field == "contact_id":
		return newError(CodeInvalidTo, http.StatusBadRequest, "The 'To' number is not valid: %s.", ie.Reason)
	case ie.Field == "text":
		return newError(CodeBodyTooLong, http.StatusBadRequest, "The message body is not valid: %s.", ie.Reason)
	case strings.HasPrefix(ie.Field, "media"):
		return newError(CodeInvalidMediaURL, http.StatusBadRequest, "The media is not valid: %s.", ie.Reason)
	}
	return newError(CodeInvalidParameter, http.StatusBadRequest, "Invalid %s: %s.", ie.Field, ie.Reason)
}

// twilioStatus maps a ledger row's status to Twilio's.
//
// Deferred (held past quiet hours) is reported as queued, not Twilio's
// "scheduled": Twilio uses scheduled only for messages the client itself
// scheduled through a Messaging Service, and tools that never schedule may
// not expect it; queued says truthfully that the message waits to be sent.
// A failed row the provider had accepted (a failed status webhook) is
// undelivered; one it refused outright, or one refused before any call, is
// failed. A row whose outcome was never learnt (unknown) is undelivered:
// it may have reached WhatsApp, so it must not read as "never sent".
func twilioStatus(m messaging.Message) string {
	switch m.Status {
	case messaging.StatusQueued, messaging.StatusDeferred:
		return StatusQueued
	case messaging.StatusSending:
		return StatusSending
	case messaging.StatusSent:
		return StatusSent
	case messaging.StatusDelivered:
		return StatusDelivered
	case messaging.StatusRead:
		return StatusRead
	case messaging.StatusFailed:
		if m.SentAt != nil {
			return StatusUndelivered
		}
		return StatusFailed
	case messaging.StatusRefused:
		return StatusFailed
	case messaging.StatusUnknown:
		return StatusUndelivered
	}
	return StatusQueued
}

// twilioError returns the error code and message of a failed or undelivered
// row; 0 for other rows. Messages never carry the recipient's number.
func twilioError(m messaging.Message) (int, string) {
	switch m.Status {
	case messaging.StatusRefused:
		return refusalCode(m.StatusReason, m.ErrorDetail)
	case messaging.StatusUnknown:
		return CodeUnknownError, "The outcome of the send is unknown: WhatsApp's answer was lost and no status followed. The message may or may not have been delivered."
	case messaging.StatusFailed:
		switch m.StatusReason {
		case messaging.ReasonUndeliverable:
			return CodeUnreachable, "WhatsApp could not deliver the message (the number may not be on WhatsApp)."
		case messaging.ReasonMarketingDeclined:
			return CodeMarketingDeclined, "WhatsApp chose not to deliver this marketing message."
		case messaging.ReasonOutsideWindow:
			return refusalCode(m.StatusReason, "")
		}
		msg := "WhatsApp refused the message"
		if m.ErrorCode != "" {
			msg += " (code " + m.ErrorCode + ")"
		}
		return CodeUnknownError, msg + "."
	}
	return 0, ""
}

// ledgerContent is the part of a ledger row's content this package shows.
type ledgerContent struct {
	Text  string           `json:"text"`
	Media *messaging.Media `json:"media"`
}

// view builds the Twilio view of a recorded message.
func view(r row, m messaging.Message) Message {
	var c ledgerContent
	_ = json.Unmarshal(m.Content, &c) // a row without content shows no body
	body := c.Text
	if c.Media != nil {
		body = c.Media.Caption
	}
	code, msg := twilioError(m)
	return Message{
		Sid: r.Sid, AccountSid: r.AccountSid, From: r.From, To: r.To, Body: body, Status: twilioStatus(m),
		NumMedia: r.NumMedia, ErrorCode: code, ErrorMessage: msg, MessagingServiceSid: r.MessagingServiceSid,
		DateCreated: r.CreatedAt, DateUpdated: latest(r.CreatedAt, m.UpdatedAt), DateSent: m.SentAt, LedgerID: m.ID,
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
