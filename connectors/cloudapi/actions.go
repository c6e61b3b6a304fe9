package cloudapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// SendTextParams are the parameters of send_text.
type SendTextParams struct {
	To         string `json:"to"`
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
	ReplyTo    string `json:"reply_to,omitempty"`
	LedgerID   string `json:"ledger_id"`
}

// SendMediaParams are the parameters of send_media.
type SendMediaParams struct {
	To string `json:"to"`
	// Type is image, audio, video, document or sticker.
	Type     string `json:"type"`
	Link     string `json:"link"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	ReplyTo  string `json:"reply_to,omitempty"`
	LedgerID string `json:"ledger_id"`
}

// SendTemplateParams are the parameters of send_template.
type SendTemplateParams struct {
	To       string `json:"to"`
	Name     string `json:"name"`
	Language string `json:"language"`
	// Components is Meta's components array, passed through unchanged.
	Components json.RawMessage `json:"components,omitempty"`
	LedgerID   string          `json:"ledger_id"`
}

// SendInteractiveParams are the parameters of send_interactive.
type SendInteractiveParams struct {
	To          string            `json:"to"`
	Interactive InteractiveParams `json:"interactive"`
	ReplyTo     string            `json:"reply_to,omitempty"`
	LedgerID    string            `json:"ledger_id"`
}

// InteractiveParams describe reply buttons or a list.
type InteractiveParams struct {
	// Type is "button" or "list".
	Type string `json:"type"`
	// Header is a text header (a JSON string) or Meta's header object.
	Header     json.RawMessage `json:"header,omitempty"`
	Body       string          `json:"body"`
	Footer     string          `json:"footer,omitempty"`
	Buttons    []ReplyButton   `json:"buttons,omitempty"`
	ButtonText string          `json:"button_text,omitempty"`
	Sections   []ListSection   `json:"sections,omitempty"`
}

// ReplyButton is one reply button.
type ReplyButton struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// ListSection is one section of a list message.
type ListSection struct {
	Title string    `json:"title,omitempty"`
	Rows  []ListRow `json:"rows"`
}

// ListRow is one row of a list message.
type ListRow struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// MarkReadParams are the parameters of mark_read.
type MarkReadParams struct {
	MessageID string `json:"message_id"`
}

// ListTemplatesParams are the parameters of list_templates.
type ListTemplatesParams struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// CreateTemplateParams are the parameters of create_template.
type CreateTemplateParams struct {
	Name       string          `json:"name"`
	Language   string          `json:"language"`
	Category   string          `json:"category"`
	Components json.RawMessage `json:"components"`
}

// DeleteTemplateParams are the parameters of delete_template.
type DeleteTemplateParams struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// SendResult is the result of every send action.
type SendResult struct {
	// MessageID is Meta's wamid.
	MessageID string `json:"message_id"`
	// WAID is the recipient's WhatsApp id as Meta resolved it.
	WAID string `json:"wa_id"`
}

// SuccessResult is the result of mark_read and delete_template.
type SuccessResult struct {
	Success bool `json:"success"`
}

// Template is a message template as list_templates returns it.
type Template struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	Language       string          `json:"language"`
	Category       string          `json:"category,omitempty"`
	Status         string          `json:"status"`
	Components     json.RawMessage `json:"components,omitempty"`
	RejectedReason string          `json:"rejected_reason,omitempty"`
}

// TemplatePage is the result of list_templates.
type TemplatePage struct {
	Templates []Template `json:"templates"`
	// Next is the cursor of the next page, empty on the last one.
	Next string `json:"next"`
}

// CreateTemplateResult is the result of create_template.
type CreateTemplateResult struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Category string `json:"category"`
}

// Meta's documented limits for interactive messages.
const (
	maxButtons         = 3
	maxButtonTitle     = 20
	maxButtonID        = 256
	maxListRows        = 10
	maxListSections    = 10
	maxRowTitle        = 24
	maxRowID           = 200
	maxRowDescription  = 72
	maxSectionTitle    = 24
	maxListButtonText  = 20
	maxInteractiveBody = 1024
	maxHeaderText      = 60
	maxFooterText      = 60
	maxTextBody        = 4096
	maxCaption         = 1024
	maxCallbackData    = 512
	defaultTemplates   = 100
)

// Invoke runs one of the connector's actions for the connection.
func (c *Connector) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	cfg, err := DecodeConfig(call.Connection.Config)
	if err != nil {
		return nil, sdk.Permanent("reading cloud api connection config: %v", err)
	}
	if err := cfg.validForCalls(); err != nil {
		return nil, err
	}
	var res any
	switch call.Action {
	case ActionSendText:
		res, err = invokeWith(ctx, cfg, call.Params, c.sendText)
	case ActionSendMedia:
		res, err = invokeWith(ctx, cfg, call.Params, c.sendMedia)
	case ActionSendTemplate:
		res, err = invokeWith(ctx, cfg, call.Params, c.sendTemplate)
	case ActionSendInteractive:
		res, err = invokeWith(ctx, cfg, call.Params, c.sendInteractive)
	case ActionSendReaction:
		res, err = invokeWith(ctx, cfg, call.Params, c.sendReaction)
	case ActionMarkRead:
		res, err = invokeWith(ctx, cfg, call.Params, c.markRead)
	case ActionListTemplates:
		res, err = invokeWith(ctx, cfg, call.Params, c.listTemplates)
	case ActionCreateTemplate:
		res, err = invokeWith(ctx, cfg, call.Params, c.createTemplate)
	case ActionDeleteTemplate:
		res, err = invokeWith(ctx, cfg, call.Params, c.deleteTemplate)
	case ActionDownloadMedia:
		res, err = invokeWith(ctx, cfg, call.Params, c.downloadMedia)
	default:
		return nil, sdk.Invalid("cloud api connector has no action %q", call.Action)
	}
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encoding %s result: %w", call.Action, err)
	}
	return out, nil
}

// invokeWith decodes the parameters into P and runs the action.
func invokeWith[P, R any](ctx context.Context, cfg Config, raw json.RawMessage, run func(context.Context, Config, P) (R, error)) (R, error) {
	var p P
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &p); err != nil {
			var zero R
			return zero, sdk.Invalid("decoding parameters: %v", err)
		}
	}
	return run(ctx, cfg, p)
}

// Graph API request bodies for /{phone-number-id}/messages.
type (
	outMessage struct {
		MessagingProduct string          `json:"messaging_product"`
		RecipientType    string          `json:"recipient_type"`
		To               string          `json:"to"`
		Type             string          `json:"type"`
		Context          *outContext     `json:"context,omitempty"`
		Text             *outText        `json:"text,omitempty"`
		Image            *outMedia       `json:"image,omitempty"`
		Audio            *outMedia       `json:"audio,omitempty"`
		Video            *outMedia       `json:"video,omitempty"`
		Document         *outMedia       `json:"document,omitempty"`
		Sticker          *outMedia       `json:"sticker,omitempty"`
		Template         *outTemplate    `json:"template,omitempty"`
		Interactive      *outInteractive `json:"interactive,omitempty"`
		Reaction         *outReaction    `json:"reaction,omitempty"`
		BizOpaque        string          `json:"biz_opaque_callback_data,omitempty"`
	}
	outContext struct {
		MessageID string `json:"message_id"`
	}
	outText struct {
		Body       string `json:"body"`
		PreviewURL bool   `json:"preview_url,omitempty"`
	}
	outMedia struct {
		Link     string `json:"link"`
		Caption  string `json:"caption,omitempty"`
		Filename string `json:"filename,omitempty"`
	}
	outTemplate struct {
		Name       string          `json:"name"`
		Language   outLanguage     `json:"language"`
		Components json.RawMessage `json:"components,omitempty"`
	}
	outLanguage struct {
		Code string `json:"code"`
	}
	outInteractive struct {
		Type   string          `json:"type"`
		Header json.RawMessage `json:"header,omitempty"`
		Body   outBodyText     `json:"body"`
		Footer *outBodyText    `json:"footer,omitempty"`
		Action outAction       `json:"action"`
	}
	outBodyText struct {
		Text string `json:"text"`
	}
	outAction struct {
		Buttons  []outButton   `json:"buttons,omitempty"`
		Button   string        `json:"button,omitempty"`
		Sections []ListSection `json:"sections,omitempty"`
	}
	outButton struct {
		Type  string      `json:"type"`
		Reply ReplyButton `json:"reply"`
	}
	sendResponse struct {
		Contacts []struct {
			Input string `json:"input"`
			WAID  string `json:"wa_id"`
		} `json:"contacts"`
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
)

// newOut starts a message to the recipient, checking the fields every send
// has.
func newOut(to, typ, replyTo, ledgerID string) (*outMessage, error) {
	digits, ok := RecipientDigits(to)
	if !ok {
		return nil, sdk.Invalid("recipient %q is not an E.164 phone number or WhatsApp id", to)
	}
	if ledgerID == "" {
		return nil, sdk.Invalid("ledger_id is required: status webhooks are matched to the ledger by it")
	}
	if len(ledgerID) > maxCallbackData {
		return nil, sdk.Invalid("ledger_id is longer than Meta's %d-character biz_opaque_callback_data", maxCallbackData)
	}
	m := &outMessage{MessagingProduct: "whatsapp", RecipientType: "individual", To: digits, Type: typ, BizOpaque: ledgerID}
	if replyTo != "" {
		m.Context = &outContext{MessageID: replyTo}
	}
	return m, nil
}

// send posts a message and returns its wamid.
func (c *Connector) send(ctx context.Context, cfg Config, op string, m *outMessage) (SendResult, error) {
	var resp sendResponse
	if err := c.graphCall(ctx, cfg, op, http.MethodPost, cfg.endpoint(cfg.PhoneNumberID, "messages"), m, &resp); err != nil {
		return SendResult{}, err
	}
	if len(resp.Messages) == 0 || resp.Messages[0].ID == "" {
		// Meta accepted the call but named no message: do not report success
		// without a wamid, and do not invite a blind retry either.
		return SendResult{}, sdk.Permanent("%s: the graph api answered without a message id", op)
	}
	res := SendResult{MessageID: resp.Messages[0].ID, WAID: m.To}
	if len(resp.Contacts) > 0 && resp.Contacts[0].WAID != "" {
		res.WAID = resp.Contacts[0].WAID
	}
	return res, nil
}

func (c *Connector) sendText(ctx context.Context, cfg Config, p SendTextParams) (SendResult, error) {
	if p.Body == "" || utf8.RuneCountInString(p.Body) > maxTextBody {
		return SendResult{}, sdk.Invalid("body must have 1 to %d characters", maxTextBody)
	}
	m, err := newOut(p.To, "text", p.ReplyTo, p.LedgerID)
	if err != nil {
		return SendResult{}, err
	}
	m.Text = &outText{Body: p.Body, PreviewURL: p.PreviewURL}
	return c.send(ctx, cfg, "sending text", m)
}

func (c *Connector) sendMedia(ctx context.Context, cfg Config, p SendMediaParams) (SendResult, error) {
	m, err := newOut(p.To, p.Type, p.ReplyTo, p.LedgerID)
	if err != nil {
		return SendResult{}, err
	}
	u, err := url.Parse(p.Link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return SendResult{}, sdk.Invalid("link %q is not an absolute http(s) URL", p.Link)
	}
	if p.Caption != "" && (p.Type == "audio" || p.Type == "sticker") {
		return SendResult{}, sdk.Invalid("%s messages cannot have a caption", p.Type)
	}
	if utf8.RuneCountInString(p.Caption) > maxCaption {
		return SendResult{}, sdk.Invalid("caption is longer than %d characters", maxCaption)
	}
	if p.Filename != "" && p.Type != "document" {
		return SendResult{}, sdk.Invalid("only documents have a filename")
	}
	media := &outMedia{Link: p.Link, Caption: p.Caption, Filename: p.Filename}
	switch p.Type {
	case "image":
		m.Image = media
	case "audio":
		m.Audio = media
	case "video":
		m.Video = media
	case "document":
		m.Document = media
	case "sticker":
		m.Sticker = media
	default:
		return SendResult{}, sdk.Invalid("media type %q is not image, audio, video, document or sticker", p.Type)
	}
	return c.send(ctx, cfg, "sending "+p.Type, m)
}

func (c *Connector) sendTemplate(ctx context.Context, cfg Config, p SendTemplateParams) (SendResult, error) {
	if p.Name == "" || p.Language == "" {
		return SendResult{}, sdk.Invalid("a template needs a name and a language")
	}
	m, err := newOut(p.To, "template", "", p.LedgerID)
	if err != nil {
		return SendResult{}, err
	}
	comps := p.Components
	if t := strings.TrimSpace(string(comps)); t == "null" || t == "[]" || t == "" {
		comps = nil
	}
	m.Template = &outTemplate{Name: p.Name, Language: outLanguage{Code: p.Language}, Components: comps}
	return c.send(ctx, cfg, "sending template "+p.Name, m)
}

func (c *Connector) sendInteractive(ctx context.Context, cfg Config, p SendInteractiveParams) (SendResult, error) {
	m, err := newOut(p.To, "interactive", p.ReplyTo, p.LedgerID)
	if err != nil {
		return SendResult{}, err
	}
	in, err := buildInteractive(p.Interactive)
	if err != nil {
		return SendResult{}, err
	}
	m.Interactive = in
	return c.send(ctx, cfg, "sending interactive "+p.Interactive.Type, m)
}

// buildInteractive checks Meta's limits (which the schema cannot all say,
// e.g. 10 rows across all sections, unique ids) and builds the object.
func buildInteractive(p InteractiveParams) (*outInteractive, error) {
	runes := utf8.RuneCountInString
	if p.Body == "" || runes(p.Body) > maxInteractiveBody {
		return nil, sdk.Invalid("interactive body must have 1 to %d characters", maxInteractiveBody)
	}
	if runes(p.Footer) > maxFooterText {
		return nil, sdk.Invalid("footer is longer than %d characters", maxFooterText)
	}
	out := &outInteractive{Type: p.Type, Body: outBodyText{Text: p.Body}}
	if p.Footer != "" {
		out.Footer = &outBodyText{Text: p.Footer}
	}
	header, headerType, err := interactiveHeader(p.Header)
	if err != nil {
		return nil, err
	}
	out.Header = header

	switch p.Type {
	case "button":
		if len(p.Buttons) == 0 || len(p.Buttons) > maxButtons {
			return nil, sdk.Invalid("reply buttons: %d buttons, Meta allows 1 to %d", len(p.Buttons), maxButtons)
		}
		if len(p.Sections) > 0 || p.ButtonText != "" {
			return nil, sdk.Invalid("reply buttons take no sections or button_text")
		}
		ids, titles := map[string]bool{}, map[string]bool{}
		for _, b := range p.Buttons {
			if b.ID == "" || len(b.ID) > maxButtonID {
				return nil, sdk.Invalid("button id must have 1 to %d characters", maxButtonID)
			}
			if b.Title == "" || runes(b.Title) > maxButtonTitle {
				return nil, sdk.Invalid("button title %q must have 1 to %d characters", b.Title, maxButtonTitle)
			}
			if ids[b.ID] || titles[b.Title] {
				return nil, sdk.Invalid("button ids and titles must be unique (%q, %q)", b.ID, b.Title)
			}
			ids[b.ID], titles[b.Title] = true, true
			out.Action.Buttons = append(out.Action.Buttons, outButton{Type: "reply", Reply: b})
		}
	case "list":
		if headerType != "" && headerType != "text" {
			return nil, sdk.Invalid("a list message takes a text header only, not %s", headerType)
		}
		if len(p.Buttons) > 0 {
			return nil, sdk.Invalid("a list message takes sections, not buttons")
		}
		if p.ButtonText == "" || runes(p.ButtonText) > maxListButtonText {
			return nil, sdk.Invalid("button_text must have 1 to %d characters", maxListButtonText)
		}
		if len(p.Sections) == 0 || len(p.Sections) > maxListSections {
			return nil, sdk.Invalid("a list has 1 to %d sections, got %d", maxListSections, len(p.Sections))
		}
		rows, ids := 0, map[string]bool{}
		for _, s := range p.Sections {
			if len(p.Sections) > 1 && s.Title == "" {
				return nil, sdk.Invalid("every section needs a title when there are several")
			}
			if runes(s.Title) > maxSectionTitle {
				return nil, sdk.Invalid("section title %q is longer than %d characters", s.Title, maxSectionTitle)
			}
			if len(s.Rows) == 0 {
				return nil, sdk.Invalid("section %q has no rows", s.Title)
			}
			for _, r := range s.Rows {
				rows++
				if r.ID == "" || len(r.ID) > maxRowID {
					return nil, sdk.Invalid("row id must have 1 to %d characters", maxRowID)
				}
				if ids[r.ID] {
					return nil, sdk.Invalid("row id %q is used twice", r.ID)
				}
				ids[r.ID] = true
				if r.Title == "" || runes(r.Title) > maxRowTitle {
					return nil, sdk.Invalid("row title %q must have 1 to %d characters", r.Title, maxRowTitle)
				}
				if runes(r.Description) > maxRowDescription {
					return nil, sdk.Invalid("row description is longer than %d characters", maxRowDescription)
				}
			}
		}
		if rows > maxListRows {
			return nil, sdk.Invalid("a list has at most %d rows in all, got %d", maxListRows, rows)
		}
		out.Action.Button = p.ButtonText
		out.Action.Sections = p.Sections
	default:
		return nil, sdk.Invalid("interactive type %q is not button or list", p.Type)
	}
	return out, nil
}

// interactiveHeader turns the header parameter (a JSON string for a text
// header, or Meta's header object) into Meta's header object.
func interactiveHeader(raw json.RawMessage) (json.RawMessage, string, error) {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return nil, "", nil
	}
	if t[0] == '"' {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, "", sdk.Invalid("header: %v", err)
		}
		if text == "" || utf8.RuneCountInString(text) > maxHeaderText {
			return nil, "", sdk.Invalid("header text must have 1 to %d characters", maxHeaderText)
		}
		b, err := json.Marshal(map[string]string{"type": "text", "text": text})
		return b, "text", err
	}
	var h struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, "", sdk.Invalid("header must be a string or an object with a type: %v", err)
	}
	switch h.Type {
	case "text":
		if h.Text == "" || utf8.RuneCountInString(h.Text) > maxHeaderText {
			return nil, "", sdk.Invalid("header text must have 1 to %d characters", maxHeaderText)
		}
	case "image", "video", "document":
	default:
		return nil, "", sdk.Invalid("header type %q is not text, image, video or document", h.Type)
	}
	return raw, h.Type, nil
}

func (c *Connector) markRead(ctx context.Context, cfg Config, p MarkReadParams) (SuccessResult, error) {
	if p.MessageID == "" {
		return SuccessResult{}, sdk.Invalid("message_id is required")
	}
	body := map[string]string{"messaging_product": "whatsapp", "status": "read", "message_id": p.MessageID}
	var out SuccessResult
	if err := c.graphCall(ctx, cfg, "marking message read", http.MethodPost, cfg.endpoint(cfg.PhoneNumberID, "messages"), body, &out); err != nil {
		return SuccessResult{}, err
	}
	return out, nil
}

// templateFields are the fields list_templates asks for.
const templateFields = "id,name,language,category,status,components,rejected_reason"

func (c *Connector) listTemplates(ctx context.Context, cfg Config, p ListTemplatesParams) (TemplatePage, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultTemplates
	}
	q := url.Values{"fields": {templateFields}, "limit": {strconv.Itoa(limit)}}
	if p.After != "" {
		q.Set("after", p.After)
	}
	var resp struct {
		Data []struct {
			ID             string          `json:"id"`
			Name           string          `json:"name"`
			Language       string          `json:"language"`
			Category       string          `json:"category"`
			Status         string          `json:"status"`
			Components     json.RawMessage `json:"components"`
			RejectedReason string          `json:"rejected_reason"`
		} `json:"data"`
		Paging struct {
			Cursors struct {
				After string `json:"after"`
			} `json:"cursors"`
			Next string `json:"next"`
		} `json:"paging"`
	}
	u := cfg.endpoint(cfg.WABAID, "message_templates") + "?" + q.Encode()
	if err := c.graphCall(ctx, cfg, "listing templates", http.MethodGet, u, nil, &resp); err != nil {
		return TemplatePage{}, err
	}
	page := TemplatePage{Templates: make([]Template, 0, len(resp.Data))}
	for _, t := range resp.Data {
		tpl := Template{ID: t.ID, Name: t.Name, Language: t.Language, Category: t.Category,
			Status: t.Status, Components: t.Components}
		if t.RejectedReason != "NONE" {
			tpl.RejectedReason = t.RejectedReason
		}
		page.Templates = append(page.Templates, tpl)
	}
	// Graph sets paging.next only when there is another page; the after
	// cursor is present on the last page too.
	if resp.Paging.Next != "" {
		page.Next = resp.Paging.Cursors.After
	}
	return page, nil
}

func (c *Connector) createTemplate(ctx context.Context, cfg Config, p CreateTemplateParams) (CreateTemplateResult, error) {
	if p.Name == "" || p.Language == "" || p.Category == "" || len(p.Components) == 0 {
		return CreateTemplateResult{}, sdk.Invalid("a template needs name, language, category and components")
	}
	body := struct {
		Name       string          `json:"name"`
		Language   string          `json:"language"`
		Category   string          `json:"category"`
		Components json.RawMessage `json:"components"`
	}{p.Name, p.Language, strings.ToUpper(p.Category), p.Components}
	var out CreateTemplateResult
	if err := c.graphCall(ctx, cfg, "creating template "+p.Name, http.MethodPost, cfg.endpoint(cfg.WABAID, "message_templates"), body, &out); err != nil {
		return CreateTemplateResult{}, err
	}
	if out.ID == "" {
		return CreateTemplateResult{}, sdk.Permanent("creating template %s: the graph api answered without an id", p.Name)
	}
	return out, nil
}

func (c *Connector) deleteTemplate(ctx context.Context, cfg Config, p DeleteTemplateParams) (SuccessResult, error) {
	if p.Name == "" {
		return SuccessResult{}, sdk.Invalid("name is required")
	}
	q := url.Values{"name": {p.Name}}
	if p.ID != "" {
		q.Set("hsm_id", p.ID)
	}
	var out SuccessResult
	u := cfg.endpoint(cfg.WABAID, "message_templates") + "?" + q.Encode()
	if err := c.graphCall(ctx, cfg, "deleting template "+p.Name, http.MethodDelete, u, nil, &out); err != nil {
		return SuccessResult{}, err
	}
	return out, nil
}
