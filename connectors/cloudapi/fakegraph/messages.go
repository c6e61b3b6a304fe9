package fakegraph

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// graphError is an error the fake answers with, as Graph shapes it.
type graphError struct {
	status  int
	code    int
	subcode int
	title   string // Meta's title; the message is "(#code) title"
	details string
}

func (e graphError) Error() string { return fmt.Sprintf("(#%d) %s: %s", e.code, e.title, e.details) }

func unsupported(method, node string) graphError {
	return graphError{status: http.StatusBadRequest, code: 100, subcode: 33, title: "Invalid parameter",
		details: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", strings.ToLower(method), node)}
}

func badToken() graphError {
	return graphError{status: http.StatusUnauthorized, code: 190, title: "Invalid OAuth access token - Cannot parse access token"}
}

func invalid(format string, args ...any) graphError {
	return graphError{status: http.StatusBadRequest, code: 100, title: "Invalid parameter", details: fmt.Sprintf(format, args...)}
}

func missing(param string) graphError {
	return graphError{status: http.StatusBadRequest, code: 131008, title: "Required parameter is missing",
		details: fmt.Sprintf("The parameter %s is required.", param)}
}

func badValue(format string, args ...any) graphError {
	return graphError{status: http.StatusBadRequest, code: 131009, title: "Parameter value is not valid", details: fmt.Sprintf(format, args...)}
}

// fail writes the error and counts it.
func (s *Server) fail(w http.ResponseWriter, e graphError) {
	s.mu.Lock()
	s.errors[e.code]++
	s.mu.Unlock()
	inner := map[string]any{
		"message":    fmt.Sprintf("(#%d) %s", e.code, e.title),
		"type":       "OAuthException",
		"code":       e.code,
		"fbtrace_id": newTraceID(),
	}
	if e.code == 190 {
		inner["message"] = e.title
	}
	if e.details != "" {
		inner["error_data"] = map[string]string{"messaging_product": "whatsapp", "details": e.details}
	}
	if e.subcode != 0 {
		inner["error_subcode"] = e.subcode
	}
	if e.code == 190 {
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token - Cannot parse access token"`)
	}
	writeJSON(w, e.status, map[string]any{"error": inner})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Request shapes of /{phone-number-id}/messages, as Meta documents them.
type (
	inMessage struct {
		MessagingProduct string  `json:"messaging_product"`
		RecipientType    *string `json:"recipient_type"`
		To               string  `json:"to"`
		Type             string  `json:"type"`
		Status           string  `json:"status"`
		MessageID        string  `json:"message_id"`
		Context          *struct {
			MessageID string `json:"message_id"`
		} `json:"context"`
		Text *struct {
			Body       *string `json:"body"`
			PreviewURL bool    `json:"preview_url"`
		} `json:"text"`
		Image       *inMedia       `json:"image"`
		Audio       *inMedia       `json:"audio"`
		Video       *inMedia       `json:"video"`
		Document    *inMedia       `json:"document"`
		Sticker     *inMedia       `json:"sticker"`
		Template    *inTemplate    `json:"template"`
		Interactive *inInteractive `json:"interactive"`
		Reaction    *struct {
			MessageID string `json:"message_id"`
			// Emoji is a pointer because Meta requires the field but
			// accepts it empty (the removal of a reaction).
			Emoji *string `json:"emoji"`
		} `json:"reaction"`
		Location  json.RawMessage `json:"location"`
		Contacts  json.RawMessage `json:"contacts"`
		BizOpaque string          `json:"biz_opaque_callback_data"`
	}
	inMedia struct {
		ID       string `json:"id"`
		Link     string `json:"link"`
		Caption  string `json:"caption"`
		Filename string `json:"filename"`
	}
	inTemplate struct {
		Name     string `json:"name"`
		Language *struct {
			Code   string `json:"code"`
			Policy string `json:"policy"`
		} `json:"language"`
		Components []struct {
			Type       string            `json:"type"`
			SubType    string            `json:"sub_type"`
			Index      json.RawMessage   `json:"index"`
			Parameters []json.RawMessage `json:"parameters"`
		} `json:"components"`
	}
	inInteractive struct {
		Type   string `json:"type"`
		Header *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"header"`
		Body *struct {
			Text string `json:"text"`
		} `json:"body"`
		Footer *struct {
			Text string `json:"text"`
		} `json:"footer"`
		Action *struct {
			Buttons []struct {
				Type  string `json:"type"`
				Reply struct {
					ID    string `json:"id"`
					Title string `json:"title"`
				} `json:"reply"`
			} `json:"buttons"`
			Button   string `json:"button"`
			Sections []struct {
				Title string `json:"title"`
				Rows  []struct {
					ID          string `json:"id"`
					Title       string `json:"title"`
					Description string `json:"description"`
				} `json:"rows"`
			} `json:"sections"`
		} `json:"action"`
	}
)

var toPattern = regexp.MustCompile(`^\+?[0-9]{7,15}$`)

// handleMessages serves POST /{phone-number-id}/messages.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request, pnid string) {
	s.mu.Lock()
	num := s.numbers[pnid]
	s.mu.Unlock()
	if num == nil {
		s.fail(w, unsupported(r.Method, pnid))
		return
	}
	if bearer(r) != num.AccessToken {
		s.fail(w, badToken())
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.fail(w, invalid("reading the body: %v", err))
		return
	}
	var m inMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		s.fail(w, invalid("the body is not valid JSON: %v", err))
		return
	}
	if m.MessagingProduct != "whatsapp" {
		if m.MessagingProduct == "" {
			s.fail(w, missing("messaging_product"))
		} else {
			s.fail(w, invalid("messaging_product must be whatsapp"))
		}
		return
	}
	if m.Status != "" {
		s.markRead(w, pnid, m)
		return
	}
	// Throughput is counted on every send request of the number, before its
	// content is looked at.
	if !num.take(timeNow()) {
		s.fail(w, graphError{status: http.StatusBadRequest, code: 130429, title: "Rate limit hit",
			details: "Message failed to send because there were too many messages sent from this phone number in a short period of time"})
		return
	}
	if m.Type == "" {
		m.Type = "text"
	}
	body, tpl, gerr := s.validate(num, &m)
	if gerr != nil {
		s.fail(w, *gerr)
		return
	}
	s.accept(w, num, &m, raw, body, tpl)
}

// validate checks a send's shape and, for templates, the template. It
// returns the message's text for the log and the template sent.
func (s *Server) validate(num *number, m *inMessage) (string, *template, *graphError) {
	fail := func(e graphError) (string, *template, *graphError) { return "", nil, &e }
	if m.RecipientType != nil && *m.RecipientType != "individual" {
		return fail(invalid("recipient_type must be individual"))
	}
	if m.To == "" {
		return fail(missing("to"))
	}
	if !toPattern.MatchString(strings.TrimSpace(m.To)) {
		return fail(badValue("Invalid 'to' parameter: %q is not a phone number or WhatsApp id", m.To))
	}
	if utf8.RuneCountInString(m.BizOpaque) > 512 {
		return fail(invalid("biz_opaque_callback_data is longer than 512 characters"))
	}
	if m.Context != nil && m.Context.MessageID == "" {
		return fail(missing("context.message_id"))
	}
	// Exactly the object named by type, and no other.
	objects := map[string]bool{
		"text": m.Text != nil, "image": m.Image != nil, "audio": m.Audio != nil, "video": m.Video != nil,
		"document": m.Document != nil, "sticker": m.Sticker != nil, "template": m.Template != nil,
		"interactive": m.Interactive != nil, "reaction": m.Reaction != nil,
		"location": len(m.Location) > 0, "contacts": len(m.Contacts) > 0,
	}
	present, known := objects[m.Type]
	if !known {
		return fail(invalid("type %q is not a supported message type", m.Type))
	}
	if !present {
		return fail(missing(m.Type))
	}
	for typ, has := range objects {
		if has && typ != m.Type {
			return fail(invalid("a %s message cannot carry a %s object", m.Type, typ))
		}
	}
	runes := utf8.RuneCountInString
	switch m.Type {
	case "text":
		if m.Text.Body == nil || *m.Text.Body == "" {
			return fail(missing("text.body"))
		}
		if runes(*m.Text.Body) > 4096 {
			return fail(invalid("text.body is longer than 4096 characters"))
		}
		return *m.Text.Body, nil, nil
	case "image", "audio", "video", "document", "sticker":
		md := map[string]*inMedia{"image": m.Image, "audio": m.Audio, "video": m.Video, "document": m.Document, "sticker": m.Sticker}[m.Type]
		if (md.ID == "") == (md.Link == "") {
			return fail(invalid("%s needs exactly one of id and link", m.Type))
		}
		if md.Link != "" {
			u, err := url.Parse(md.Link)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fail(badValue("%s.link is not a valid URL", m.Type))
			}
		}
		if md.Caption != "" && (m.Type == "audio" || m.Type == "sticker") {
			return fail(invalid("%s messages do not support captions", m.Type))
		}
		if runes(md.Caption) > 1024 {
			return fail(invalid("%s.caption is longer than 1024 characters", m.Type))
		}
		if md.Filename != "" && m.Type != "document" {
			return fail(invalid("only documents have a filename"))
		}
		return md.Caption, nil, nil
	case "interactive":
		if e := validateInteractive(m.Interactive); e != nil {
			return "", nil, e
		}
		return m.Interactive.Body.Text, nil, nil
	case "template":
		return s.validateTemplateSend(num, m.Template)
	case "reaction":
		// Meta: message_id and emoji are required; the emoji is one emoji,
		// or "" to remove the reaction. Meta does not document the code for
		// an emoji that is not one; 131009 is its code for a parameter value
		// that is not valid.
		if m.Reaction.MessageID == "" {
			return fail(missing("reaction.message_id"))
		}
		if m.Reaction.Emoji == nil {
			return fail(missing("reaction.emoji"))
		}
		if e := *m.Reaction.Emoji; e != "" && !whatsapp.IsEmoji(e) {
			return fail(badValue("reaction.emoji must be a single emoji, or empty to remove the reaction"))
		}
		if m.Context != nil {
			return fail(invalid("a reaction message cannot carry a context"))
		}
		return *m.Reaction.Emoji, nil, nil
	}
	return "", nil, nil
}

func validateInteractive(in *inInteractive) *graphError {
	fail := func(e graphError) *graphError { return &e }
	runes := utf8.RuneCountInString
	if in.Body == nil || in.Body.Text == "" {
		return fail(missing("interactive.body.text"))
	}
	if runes(in.Body.Text) > 1024 {
		return fail(invalid("interactive.body.text is longer than 1024 characters"))
	}
	if in.Footer != nil && (in.Footer.Text == "" || runes(in.Footer.Text) > 60) {
		return fail(invalid("interactive.footer.text must have 1 to 60 characters"))
	}
	if in.Header != nil {
		switch in.Header.Type {
		case "text":
			if in.Header.Text == "" || runes(in.Header.Text) > 60 {
				return fail(invalid("interactive.header.text must have 1 to 60 characters"))
			}
		case "image", "video", "document":
			if in.Type == "list" {
				return fail(invalid("list messages take text headers only"))
			}
		default:
			return fail(invalid("interactive.header.type %q is not valid", in.Header.Type))
		}
	}
	if in.Action == nil {
		return fail(missing("interactive.action"))
	}
	switch in.Type {
	case "button":
		n := len(in.Action.Buttons)
		if n < 1 || n > 3 {
			return fail(invalid("interactive.action.buttons must have 1 to 3 buttons, got %d", n))
		}
		ids, titles := map[string]bool{}, map[string]bool{}
		for _, b := range in.Action.Buttons {
			if b.Type != "reply" {
				return fail(invalid("button type must be reply"))
			}
			if b.Reply.ID == "" || len(b.Reply.ID) > 256 {
				return fail(invalid("button reply.id must have 1 to 256 characters"))
			}
			if b.Reply.Title == "" || runes(b.Reply.Title) > 20 {
				return fail(invalid("button reply.title %q must have 1 to 20 characters", b.Reply.Title))
			}
			if ids[b.Reply.ID] || titles[b.Reply.Title] {
				return fail(invalid("button ids and titles must be unique"))
			}
			ids[b.Reply.ID], titles[b.Reply.Title] = true, true
		}
	case "list":
		if in.Action.Button == "" || runes(in.Action.Button) > 20 {
			return fail(invalid("interactive.action.button must have 1 to 20 characters"))
		}
		n := len(in.Action.Sections)
		if n < 1 || n > 10 {
			return fail(invalid("interactive.action.sections must have 1 to 10 sections"))
		}
		rows, ids := 0, map[string]bool{}
		for _, sec := range in.Action.Sections {
			if n > 1 && sec.Title == "" {
				return fail(missing("interactive.action.sections.title"))
			}
			if runes(sec.Title) > 24 {
				return fail(invalid("section title is longer than 24 characters"))
			}
			if len(sec.Rows) == 0 {
				return fail(missing("interactive.action.sections.rows"))
			}
			for _, row := range sec.Rows {
				rows++
				if row.ID == "" || len(row.ID) > 200 || ids[row.ID] {
					return fail(invalid("row ids must be unique and have 1 to 200 characters"))
				}
				ids[row.ID] = true
				if row.Title == "" || runes(row.Title) > 24 {
					return fail(invalid("row title %q must have 1 to 24 characters", row.Title))
				}
				if runes(row.Description) > 72 {
					return fail(invalid("row description is longer than 72 characters"))
				}
			}
		}
		if rows > 10 {
			return fail(invalid("a list message has at most 10 rows, got %d", rows))
		}
	default:
		return fail(invalid("interactive.type %q is not supported", in.Type))
	}
	return nil
}

// accept applies the pair rate and the window, records the send and answers.
func (s *Server) accept(w http.ResponseWriter, num *number, m *inMessage, raw []byte, body string, tpl *template) {
	waID := digits(m.To)
	key := pairKey{num.PhoneNumberID, waID}
	s.mu.Lock()
	now := s.nowLocked()
	if last, ok := s.lastSend[key]; ok && now.Sub(last) < s.opts.PairInterval {
		s.mu.Unlock()
		s.fail(w, graphError{status: http.StatusBadRequest, code: 131056, title: "(Business Account, Consumer Account) pair rate limit hit",
			details: "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."})
		return
	}
	inbound, hasInbound := s.lastInbound[key]
	windowOpen := hasInbound && now.Sub(inbound) < 24*time.Hour
	var asyncFailure *graphError
	if !windowOpen && m.Type != "template" {
		e := graphError{status: http.StatusBadRequest, code: 131047, title: "Re-engagement message",
			details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}
		if !s.opts.WindowErrorsAsync {
			s.mu.Unlock()
			s.fail(w, e)
			return
		}
		asyncFailure = &e
	}
	switch {
	case s.undeliver[waID]:
		asyncFailure = &graphError{code: 131026, title: "Message undeliverable",
			details: "Message failed to send because the recipient is not a WhatsApp user or cannot receive messages."}
	case tpl != nil && tpl.Category == "MARKETING" && s.stopMarket[waID]:
		asyncFailure = &graphError{code: 131050, title: "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
			details: "The user has stopped marketing messages from this business."}
	}
	if m.Type == "reaction" && asyncFailure == nil && s.received[m.Reaction.MessageID] != num.PhoneNumberID {
		// Meta takes the call and fails the reaction by status webhook when
		// the message is not one it can react to: not a message the number
		// received (an unknown id, one of the business's own messages, a
		// reaction), deleted, or older than 30 days. The fake knows the
		// first kind only.
		asyncFailure = &graphError{code: 131009, title: "Parameter value is not valid",
			details: "The reaction's message_id is not a message received in this conversation that can be reacted to."}
	}
	sm := SentMessage{
		PhoneNumberID: num.PhoneNumberID, To: waID, Type: m.Type, Body: body,
		LedgerID: m.BizOpaque, WAMID: newWAMID(), At: now, Request: raw,
	}
	origin := "service"
	if tpl != nil {
		sm.Template, sm.Language = tpl.Name, tpl.Language
		origin = strings.ToLower(tpl.Category)
	}
	if asyncFailure == nil {
		s.lastSend[key] = now
	}
	s.sentByTo[waID] = append(s.sentByTo[waID], len(s.sent))
	s.sent = append(s.sent, sm)
	if m.Type == "reaction" {
		s.scheduleReactionStatusesLocked(num, sm, asyncFailure)
	} else {
		s.scheduleStatusesLocked(num, sm, origin, asyncFailure)
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []map[string]string{{"input": m.To, "wa_id": waID}},
		"messages":          []map[string]string{{"id": sm.WAMID}},
	})
}

// scheduleReactionStatusesLocked queues a reaction's status webhooks. Meta
// sends only "sent" for a reaction, never delivered or read, so of the
// configured sequence only "sent" is kept (a failure is sent as for any
// message).
func (s *Server) scheduleReactionStatusesLocked(num *number, sm SentMessage, failure *graphError) {
	saved := s.statusOpts
	defer func() { s.statusOpts = saved }()
	o := saved
	o.Statuses = nil
	seq := saved.Statuses
	if len(seq) == 0 {
		seq = []string{"sent"}
	}
	for _, st := range seq {
		if st == "sent" {
			o.Statuses = []string{"sent"}
		}
	}
	if o.Statuses == nil && failure == nil {
		return // the configured sequence has no "sent"
	}
	// scheduleStatusesLocked reads the options under the lock the caller
	// holds, so they are swapped for this one message only.
	s.statusOpts = o
	s.scheduleStatusesLocked(num, sm, "service", failure)
}

// markRead serves {status: "read", message_id}.
func (s *Server) markRead(w http.ResponseWriter, pnid string, m inMessage) {
	if m.Status != "read" {
		s.fail(w, invalid("status must be read"))
		return
	}
	if m.MessageID == "" {
		s.fail(w, missing("message_id"))
		return
	}
	s.mu.Lock()
	owner, ok := s.received[m.MessageID]
	if ok && owner == pnid {
		s.reads = append(s.reads, m.MessageID)
	}
	s.mu.Unlock()
	if !ok || owner != pnid {
		s.fail(w, invalid("message_id %s is not a message this number received", m.MessageID))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// placeholders matches {{1}}, {{2}}, ... in template text.
var placeholders = regexp.MustCompile(`\{\{\s*([0-9]+)\s*\}\}`)

func countPlaceholders(text string) int {
	most := 0
	for _, m := range placeholders.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[1])
		most = max(most, n)
	}
	return most
}

// validateTemplateSend checks a template send against the WABA's templates.
func (s *Server) validateTemplateSend(num *number, t *inTemplate) (string, *template, *graphError) {
	fail := func(e graphError) (string, *template, *graphError) { return "", nil, &e }
	if t.Name == "" {
		return fail(missing("template.name"))
	}
	if t.Language == nil || t.Language.Code == "" {
		return fail(missing("template.language.code"))
	}
	s.mu.Lock()
	tpl := s.wabas[num.WABAID].find(t.Name, t.Language.Code)
	var cp template
	if tpl != nil {
		cp = *tpl
	}
	s.mu.Unlock()
	if tpl == nil || cp.Status != "APPROVED" {
		return fail(graphError{status: http.StatusNotFound, code: 132001, title: "Template name does not exist in the translation",
			details: fmt.Sprintf("template name (%s) does not exist in %s", t.Name, t.Language.Code)})
	}
	var bodyParams, headerParams []json.RawMessage
	for _, c := range t.Components {
		switch strings.ToLower(c.Type) {
		case "body":
			bodyParams = c.Parameters
		case "header":
			headerParams = c.Parameters
		case "button":
			if c.SubType == "" || len(c.Index) == 0 {
				return fail(missing("template.components.sub_type and index of a button"))
			}
		default:
			return fail(invalid("template component type %q is not valid", c.Type))
		}
	}
	if len(bodyParams) != cp.bodyParams || (cp.headerParams > 0 && len(headerParams) != cp.headerParams) {
		return fail(graphError{status: http.StatusBadRequest, code: 132000, title: "Number of parameters does not match the expected number of params",
			details: fmt.Sprintf("body: number of localizable_params (%d) does not match the expected number of params (%d)", len(bodyParams), cp.bodyParams)})
	}
	text := cp.bodyText
	for i, p := range bodyParams {
		var v struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(p, &v) != nil || v.Type == "" {
			return fail(invalid("template body parameter %d has no type", i+1))
		}
		if v.Type == "text" && v.Text == "" {
			return fail(graphError{status: http.StatusBadRequest, code: 132012, title: "Parameter format does not match format in the created template",
				details: fmt.Sprintf("body parameter %d is empty", i+1)})
		}
		text = strings.ReplaceAll(text, "{{"+strconv.Itoa(i+1)+"}}", v.Text)
	}
	return text, &cp, nil
}
