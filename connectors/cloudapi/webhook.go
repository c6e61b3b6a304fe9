package cloudapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// SignatureHeader is the header in which Meta sends the webhook signature:
// "sha256=" and the hex HMAC-SHA256 of the raw body under the app secret.
const SignatureHeader = "X-Hub-Signature-256"

// InboundMessage is the payload of [EventMessageReceived]. Fields Meta did not
// send for the message's type are omitted. Its parts are plugins/sdk/whatsapp's;
// the envelope stays here because Contacts is Meta's own shape, where the
// linked-device connector sends a list of whatsapp.SharedContact.
type InboundMessage struct {
	// PhoneNumberID is the business number the message was sent to.
	PhoneNumberID string `json:"phone_number_id"`
	// From is the sender's phone number in E.164 ("+393331234567").
	From string `json:"from"`
	// WAID is the sender's WhatsApp id (digits, as Meta sends it).
	WAID string `json:"wa_id"`
	// ProfileName is the sender's WhatsApp profile name, when Meta sent it.
	ProfileName string `json:"profile_name,omitempty"`
	// MessageID is Meta's message id (wamid.…), also in the dedupe key.
	MessageID string `json:"message_id"`
	// Timestamp is when the user sent the message, RFC 3339 in UTC.
	Timestamp time.Time `json:"timestamp"`
	// Type is Meta's message type: text, image, audio, video, document,
	// sticker, location, contacts, interactive, button, reaction, order,
	// system, unsupported, ... (new types pass through unchanged).
	Type string `json:"type"`
	// Text is the body of a text message.
	Text string `json:"text,omitempty"`
	// Media describes an image, audio, video, document or sticker.
	Media *Media `json:"media,omitempty"`
	// Location is a shared location.
	Location *Location `json:"location,omitempty"`
	// Contacts are shared contact cards, in Meta's own shape.
	Contacts json.RawMessage `json:"contacts,omitempty"`
	// Interactive is the user's answer to reply buttons or a list.
	Interactive *InteractiveReply `json:"interactive,omitempty"`
	// Button is a tap on a template's quick-reply button.
	Button *ButtonReply `json:"button,omitempty"`
	// Reaction is an emoji reaction to a message (an empty emoji removes it).
	Reaction *Reaction `json:"reaction,omitempty"`
	// Context is set when the message replies to (quotes) another message.
	Context *MessageContext `json:"context,omitempty"`
	// Errors explain an "unsupported" message.
	Errors []GraphErrorDetail `json:"errors,omitempty"`
}

// The parts of the message payloads are the WhatsApp connectors' shared
// vocabulary, plugins/sdk/whatsapp; the names stay declared here so that
// callers of this package read them as before.
type (
	// Media is a received media object. Download it with the media id.
	Media = whatsapp.Media
	// Location is a shared location.
	Location = whatsapp.Location
	// InteractiveReply is the user's answer to an interactive message.
	InteractiveReply = whatsapp.InteractiveReply
	// ButtonReply is a tap on a template's quick-reply button.
	ButtonReply = whatsapp.ButtonReply
	// Reaction is an emoji reaction.
	Reaction = whatsapp.Reaction
	// MessageContext names the message a reply quotes.
	MessageContext = whatsapp.MessageContext
	// GraphErrorDetail is one error Meta reports in a webhook.
	GraphErrorDetail = whatsapp.ErrorDetail
)

// MessageStatus is the payload of [EventMessageStatus]. It stays here, not in
// plugins/sdk/whatsapp, because LedgerID is always present (empty for messages
// not sent through Ponte), where the linked-device connector omits it.
type MessageStatus struct {
	PhoneNumberID string `json:"phone_number_id"`
	// MessageID is the wamid of the message whose status changed.
	MessageID string `json:"message_id"`
	// RecipientID is the recipient's WhatsApp id (digits).
	RecipientID string `json:"recipient_id,omitempty"`
	// RecipientPhone is the recipient in E.164.
	RecipientPhone string `json:"recipient_phone,omitempty"`
	// Status is sent, delivered, read, failed (or a newer one, e.g. played).
	Status    string    `json:"status"`
	Timestamp time.Time `json:"timestamp"`
	// LedgerID is the biz_opaque_callback_data the message was sent with;
	// empty for messages sent by other means.
	LedgerID     string             `json:"ledger_id"`
	Conversation *Conversation      `json:"conversation,omitempty"`
	Pricing      *Pricing           `json:"pricing,omitempty"`
	Errors       []GraphErrorDetail `json:"errors,omitempty"`
}

// Conversation is the billing conversation a status belongs to.
type Conversation struct {
	ID         string `json:"id,omitempty"`
	OriginType string `json:"origin_type,omitempty"`
	// ExpirationTimestamp is when the conversation ends (on "sent" only).
	ExpirationTimestamp *time.Time `json:"expiration_timestamp,omitempty"`
}

// Pricing is how Meta bills a message.
type Pricing struct {
	Billable     bool   `json:"billable"`
	Category     string `json:"category,omitempty"`
	PricingModel string `json:"pricing_model,omitempty"`
}

// TemplateStatus is the payload of [EventTemplateStatus].
type TemplateStatus struct {
	WABAID     string `json:"waba_id"`
	TemplateID string `json:"template_id"`
	Name       string `json:"name"`
	Language   string `json:"language"`
	// Event is APPROVED, REJECTED, PENDING, PAUSED, DISABLED, FLAGGED,
	// REINSTATED, PENDING_DELETION, ... as Meta sends it.
	Event string `json:"event"`
	// Reason is Meta's reason for a rejection ("NONE" is dropped).
	Reason string `json:"reason,omitempty"`
}

// Meta's webhook shapes, reduced to what the connector reads. Unknown fields
// are ignored by encoding/json, so Meta adding fields breaks nothing.
type (
	wireEnvelope struct {
		Object string      `json:"object"`
		Entry  []wireEntry `json:"entry"`
	}
	wireEntry struct {
		ID      string       `json:"id"`
		Time    int64        `json:"time"`
		Changes []wireChange `json:"changes"`
	}
	wireChange struct {
		Field string          `json:"field"`
		Value json.RawMessage `json:"value"`
	}
	wireMessagesValue struct {
		Metadata struct {
			DisplayPhoneNumber string `json:"display_phone_number"`
			PhoneNumberID      string `json:"phone_number_id"`
		} `json:"metadata"`
		Contacts []struct {
			Profile struct {
				Name string `json:"name"`
			} `json:"profile"`
			WAID string `json:"wa_id"`
		} `json:"contacts"`
		Messages []wireMessage `json:"messages"`
		Statuses []wireStatus  `json:"statuses"`
		Errors   []wireError   `json:"errors"`
	}
	wireMessage struct {
		From      string `json:"from"`
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Type      string `json:"type"`
		Context   *struct {
			From      string `json:"from"`
			ID        string `json:"id"`
			Forwarded bool   `json:"forwarded"`
		} `json:"context"`
		Text *struct {
			Body string `json:"body"`
		} `json:"text"`
		Image    *wireMedia      `json:"image"`
		Audio    *wireMedia      `json:"audio"`
		Video    *wireMedia      `json:"video"`
		Document *wireMedia      `json:"document"`
		Sticker  *wireMedia      `json:"sticker"`
		Location *Location       `json:"location"`
		Contacts json.RawMessage `json:"contacts"`
		Button   *ButtonReply    `json:"button"`
		Reaction *struct {
			MessageID string `json:"message_id"`
			Emoji     string `json:"emoji"`
		} `json:"reaction"`
		Interactive *struct {
			Type        string `json:"type"`
			ButtonReply *struct {
				ID    string `json:"id"`
				Title string `json:"title"`
			} `json:"button_reply"`
			ListReply *struct {
				ID          string `json:"id"`
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"list_reply"`
			NFMReply *struct {
				ResponseJSON string `json:"response_json"`
				Body         string `json:"body"`
				Name         string `json:"name"`
			} `json:"nfm_reply"`
		} `json:"interactive"`
		Errors []wireError `json:"errors"`
	}
	wireMedia struct {
		ID       string `json:"id"`
		MimeType string `json:"mime_type"`
		SHA256   string `json:"sha256"`
		Caption  string `json:"caption"`
		Filename string `json:"filename"`
		Voice    bool   `json:"voice"`
		Animated bool   `json:"animated"`
	}
	wireStatus struct {
		ID                    string `json:"id"`
		Status                string `json:"status"`
		Timestamp             string `json:"timestamp"`
		RecipientID           string `json:"recipient_id"`
		BizOpaqueCallbackData string `json:"biz_opaque_callback_data"`
		Conversation          *struct {
			ID                  string          `json:"id"`
			ExpirationTimestamp json.RawMessage `json:"expiration_timestamp"`
			Origin              struct {
				Type string `json:"type"`
			} `json:"origin"`
		} `json:"conversation"`
		Pricing *struct {
			Billable     bool   `json:"billable"`
			Category     string `json:"category"`
			PricingModel string `json:"pricing_model"`
		} `json:"pricing"`
		Errors []wireError `json:"errors"`
	}
	wireError struct {
		Code      int    `json:"code"`
		Title     string `json:"title"`
		Message   string `json:"message"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	}
	wireTemplateUpdate struct {
		Event            string          `json:"event"`
		TemplateID       json.RawMessage `json:"message_template_id"`
		TemplateName     string          `json:"message_template_name"`
		TemplateLanguage string          `json:"message_template_language"`
		Reason           *string         `json:"reason"`
	}
)

// HandleWebhook verifies a Cloud API webhook delivery and normalizes every
// message, status and template update in it into its own event.
//
// The X-Hub-Signature-256 header must be "sha256=" followed by the hex
// HMAC-SHA256 of the raw body under the connection's app_secret, compared in
// constant time; anything else (no header, another scheme, bad hex, another
// secret, a changed body, a connection without app_secret) is sdk.Auth. A
// signed body that is not JSON is sdk.Invalid.
//
// Change fields other than "messages" and "message_template_status_update"
// (account_update, phone_number_quality_update, ...) produce no events and a
// 200, as do changes for a phone number or WABA other than the connection's:
// answering anything but 2xx would only make Meta retry a delivery Ponte will
// never use. Those are logged, because they mean the app's webhook reaches a
// connection it was not meant for.
func (c *Connector) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	if req.Method != "" && req.Method != http.MethodPost {
		return sdk.WebhookResult{}, sdk.Invalid("cloud api webhooks are POST requests, got %s", req.Method)
	}
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return sdk.WebhookResult{}, sdk.Permanent("reading cloud api connection config: %v", err)
	}
	if cfg.AppSecret == "" {
		// An empty HMAC key would let anyone sign; refuse everything and tell
		// the operator (the sender only sees a 401).
		c.log.WarnContext(ctx, "rejecting cloud api webhook: connection has no app_secret", "connection", conn.ID)
		return sdk.WebhookResult{}, sdk.Auth("connection has no app_secret")
	}
	if !VerifySignature([]byte(cfg.AppSecret), req.Body, req.Header(SignatureHeader)) {
		return sdk.WebhookResult{}, sdk.Auth("X-Hub-Signature-256 does not match the body")
	}

	var env wireEnvelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return sdk.WebhookResult{}, sdk.Invalid("parsing cloud api webhook: %v", err)
	}
	if env.Object != "" && env.Object != "whatsapp_business_account" {
		c.log.DebugContext(ctx, "ignoring webhook for another object", "connection", conn.ID, "object", env.Object)
		return sdk.WebhookResult{}, nil
	}
	events, err := c.normalize(ctx, conn.ID, cfg, env, req.ReceivedAt)
	if err != nil {
		return sdk.WebhookResult{}, err
	}
	return sdk.WebhookResult{Events: events}, nil
}

// VerifySignature reports whether header is Meta's X-Hub-Signature-256 for
// body under appSecret: "sha256=" and the hex HMAC-SHA256. The comparison
// takes constant time. An empty secret never verifies.
func VerifySignature(appSecret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(appSecret) == 0 || len(hexSig) != 2*sha256.Size {
		return false
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, appSecret)
	m.Write(body)
	return hmac.Equal(m.Sum(nil), sig)
}

// Sign returns the X-Hub-Signature-256 value Meta would send for body: for
// tests and for fakes that play Meta.
func Sign(appSecret, body []byte) string {
	m := hmac.New(sha256.New, appSecret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (c *Connector) normalize(ctx context.Context, connID string, cfg Config, env wireEnvelope, received time.Time) ([]sdk.Event, error) {
	if received.IsZero() {
		received = time.Now()
	}
	var events []sdk.Event
	for _, entry := range env.Entry {
		for _, ch := range entry.Changes {
			switch ch.Field {
			case "messages":
				var v wireMessagesValue
				if err := json.Unmarshal(ch.Value, &v); err != nil {
					return nil, sdk.Invalid("parsing a messages change: %v", err)
				}
				pnid := v.Metadata.PhoneNumberID
				if pnid != "" && cfg.PhoneNumberID != "" && pnid != cfg.PhoneNumberID {
					c.log.WarnContext(ctx, "ignoring messages change for another phone number",
						"connection", connID, "phone_number_id", pnid)
					continue
				}
				if pnid == "" {
					pnid = cfg.PhoneNumberID
				}
				for _, e := range v.Errors {
					// Errors not tied to a message (e.g. an async 130429) have
					// no event type of their own; the operator needs to see them.
					c.log.WarnContext(ctx, "cloud api reported an error", "connection", connID,
						"phone_number_id", pnid, "code", e.Code, "title", e.Title)
				}
				names := make(map[string]string, len(v.Contacts))
				for _, ct := range v.Contacts {
					names[ct.WAID] = ct.Profile.Name
				}
				for i := range v.Messages {
					ev, err := messageEvent(pnid, &v.Messages[i], names, received)
					if err != nil {
						return nil, err
					}
					events = append(events, ev)
				}
				for i := range v.Statuses {
					ev, err := statusEvent(pnid, &v.Statuses[i], received)
					if err != nil {
						return nil, err
					}
					events = append(events, ev)
				}
			case "message_template_status_update":
				if entry.ID != "" && cfg.WABAID != "" && entry.ID != cfg.WABAID {
					c.log.WarnContext(ctx, "ignoring template update for another WhatsApp Business Account",
						"connection", connID, "waba_id", entry.ID)
					continue
				}
				ev, err := templateEvent(entry, ch.Value, received)
				if err != nil {
					return nil, err
				}
				events = append(events, ev)
			default:
				c.log.DebugContext(ctx, "ignoring cloud api change field", "connection", connID, "field", ch.Field)
			}
		}
	}
	return events, nil
}

// unixTime parses Meta's timestamps: Unix seconds, as a string in messages
// and statuses, as a number elsewhere.
func unixTime(s string) (time.Time, bool) {
	s = strings.Trim(s, `" `)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

func messageEvent(pnid string, m *wireMessage, names map[string]string, received time.Time) (sdk.Event, error) {
	if m.ID == "" || m.From == "" {
		return sdk.Event{}, sdk.Invalid("a message lacks id or from")
	}
	at, ok := unixTime(m.Timestamp)
	if !ok {
		at = received.UTC()
	}
	p := InboundMessage{
		PhoneNumberID: pnid,
		From:          E164(m.From),
		WAID:          m.From,
		ProfileName:   names[m.From],
		MessageID:     m.ID,
		Timestamp:     at,
		Type:          m.Type,
		Contacts:      m.Contacts,
		Button:        m.Button,
		Location:      m.Location,
		Errors:        errorDetails(m.Errors),
	}
	if p.Type == "" {
		p.Type = "unknown"
	}
	if m.Text != nil {
		p.Text = m.Text.Body
	}
	for _, md := range []*wireMedia{m.Image, m.Audio, m.Video, m.Document, m.Sticker} {
		if md != nil {
			p.Media = &Media{ID: md.ID, MimeType: md.MimeType, SHA256: md.SHA256, Caption: md.Caption,
				Filename: md.Filename, Voice: md.Voice, Animated: md.Animated}
			break
		}
	}
	if m.Reaction != nil {
		p.Reaction = &Reaction{MessageID: m.Reaction.MessageID, Emoji: m.Reaction.Emoji}
	}
	if m.Context != nil && (m.Context.ID != "" || m.Context.From != "" || m.Context.Forwarded) {
		p.Context = &MessageContext{MessageID: m.Context.ID, From: E164(m.Context.From), Forwarded: m.Context.Forwarded}
	}
	if in := m.Interactive; in != nil {
		r := &InteractiveReply{Type: in.Type}
		switch {
		case in.ButtonReply != nil:
			r.ID, r.Title = in.ButtonReply.ID, in.ButtonReply.Title
		case in.ListReply != nil:
			r.ID, r.Title, r.Description = in.ListReply.ID, in.ListReply.Title, in.ListReply.Description
		case in.NFMReply != nil:
			r.Title, r.ResponseJSON = in.NFMReply.Name, in.NFMReply.ResponseJSON
		}
		p.Interactive = r
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return sdk.Event{}, sdk.Permanent("encoding message payload: %v", err)
	}
	return sdk.Event{
		DedupeKey:   "msg:" + m.ID,
		Type:        EventMessageReceived,
		OccurredAt:  at,
		Correlation: correlation(CorrelationPhoneNumberID, pnid, CorrelationWAID, m.From, CorrelationContactPhone, p.From),
		Payload:     payload,
	}, nil
}

func statusEvent(pnid string, s *wireStatus, received time.Time) (sdk.Event, error) {
	if s.ID == "" || s.Status == "" {
		return sdk.Event{}, sdk.Invalid("a status lacks id or status")
	}
	at, ok := unixTime(s.Timestamp)
	if !ok {
		at = received.UTC()
	}
	p := MessageStatus{
		PhoneNumberID:  pnid,
		MessageID:      s.ID,
		RecipientID:    s.RecipientID,
		RecipientPhone: E164(s.RecipientID),
		Status:         s.Status,
		Timestamp:      at,
		LedgerID:       s.BizOpaqueCallbackData,
		Errors:         errorDetails(s.Errors),
	}
	if cv := s.Conversation; cv != nil {
		p.Conversation = &Conversation{ID: cv.ID, OriginType: cv.Origin.Type}
		if exp, ok := unixTime(string(cv.ExpirationTimestamp)); ok {
			p.Conversation.ExpirationTimestamp = &exp
		}
	}
	if pr := s.Pricing; pr != nil {
		p.Pricing = &Pricing{Billable: pr.Billable, Category: pr.Category, PricingModel: pr.PricingModel}
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return sdk.Event{}, sdk.Permanent("encoding status payload: %v", err)
	}
	return sdk.Event{
		DedupeKey:   "status:" + s.ID + ":" + s.Status,
		Type:        EventMessageStatus,
		OccurredAt:  at,
		Correlation: correlation(CorrelationLedgerID, s.BizOpaqueCallbackData, CorrelationWAMID, s.ID, CorrelationPhoneNumberID, pnid),
		Payload:     payload,
	}, nil
}

func templateEvent(entry wireEntry, value json.RawMessage, received time.Time) (sdk.Event, error) {
	var u wireTemplateUpdate
	if err := json.Unmarshal(value, &u); err != nil {
		return sdk.Event{}, sdk.Invalid("parsing a message_template_status_update: %v", err)
	}
	// Meta sends the template id as a number; it may exceed 2^53, so it is
	// kept as the digits it was written with.
	id := strings.Trim(string(u.TemplateID), `"`)
	if id == "" || id == "null" || u.Event == "" {
		return sdk.Event{}, sdk.Invalid("a template update lacks message_template_id or event")
	}
	at := received.UTC()
	if entry.Time > 0 {
		at = time.Unix(entry.Time, 0).UTC()
	}
	p := TemplateStatus{
		WABAID:     entry.ID,
		TemplateID: id,
		Name:       u.TemplateName,
		Language:   u.TemplateLanguage,
		Event:      u.Event,
	}
	if u.Reason != nil && *u.Reason != "NONE" {
		p.Reason = *u.Reason
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return sdk.Event{}, sdk.Permanent("encoding template payload: %v", err)
	}
	// The entry time is part of the key: a template can go APPROVED, PAUSED,
	// APPROVED again, and each transition is an event; Meta's redeliveries of
	// one transition carry the same time.
	return sdk.Event{
		DedupeKey:   "template:" + id + ":" + u.Event + ":" + strconv.FormatInt(at.Unix(), 10),
		Type:        EventTemplateStatus,
		OccurredAt:  at,
		Correlation: correlation("waba_id", entry.ID, "template_id", id, "template_name", u.TemplateName),
		Payload:     payload,
	}, nil
}

func errorDetails(in []wireError) []GraphErrorDetail {
	if len(in) == 0 {
		return nil
	}
	out := make([]GraphErrorDetail, len(in))
	for i, e := range in {
		out[i] = GraphErrorDetail{Code: e.Code, Title: e.Title, Message: e.Message, Details: e.ErrorData.Details}
	}
	return out
}

// correlation builds a correlation map from key/value pairs, leaving out
// empty values.
func correlation(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// Handshake answers Meta's webhook verification GET:
// ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…. When the mode is
// subscribe and the token equals the connection's verify_token (compared in
// constant time), it answers 200 with the challenge as text/plain, which is
// what Meta checks. A wrong or missing token is sdk.Auth (the host answers
// 401); a request that is not a verification at all is sdk.Invalid.
func (c *Connector) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	cfg, err := DecodeConfig(conn.Config)
	if err != nil {
		return sdk.HTTPResponse{}, sdk.Permanent("reading cloud api connection config: %v", err)
	}
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		return sdk.HTTPResponse{}, sdk.Invalid("parsing the verification query: %v", err)
	}
	if q.Get("hub.mode") != "subscribe" {
		return sdk.HTTPResponse{}, sdk.Invalid("hub.mode is %q, want subscribe", q.Get("hub.mode"))
	}
	challenge := q.Get("hub.challenge")
	if challenge == "" {
		return sdk.HTTPResponse{}, sdk.Invalid("no hub.challenge in the verification request")
	}
	if cfg.VerifyToken == "" {
		c.log.WarnContext(ctx, "refusing webhook verification: connection has no verify_token", "connection", conn.ID)
		return sdk.HTTPResponse{}, sdk.Auth("connection has no verify_token")
	}
	if !equalSecret(q.Get("hub.verify_token"), cfg.VerifyToken) {
		return sdk.HTTPResponse{}, sdk.Auth("hub.verify_token does not match")
	}
	return sdk.HTTPResponse{
		Status:  http.StatusOK,
		Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		Body:    []byte(challenge),
	}, nil
}

// equalSecret compares two strings in constant time, hashing them first so
// that not even their lengths leak through timing.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
