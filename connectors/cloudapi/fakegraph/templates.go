package fakegraph

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Template is a message template as a test seeds it with [Server.AddTemplate].
type Template struct {
	// ID is set by the fake when empty.
	ID       string
	Name     string
	Language string
	// Category is MARKETING, UTILITY or AUTHENTICATION.
	Category string
	// Status is APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...
	Status string
	// Components is Meta's components array; the BODY text's {{n}}
	// placeholders decide how many parameters a send must carry.
	Components json.RawMessage
	// RejectedReason is Meta's reason for a rejection.
	RejectedReason string
}

// template is a stored template.
type template struct {
	Template
	bodyText     string
	bodyParams   int
	headerParams int
}

type waba struct {
	id        string
	templates []*template
}

func (w *waba) find(name, language string) *template {
	if w == nil {
		return nil
	}
	for _, t := range w.templates {
		if t.Name == name && t.Language == language {
			return t
		}
	}
	return nil
}

var templateName = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)

// parseComponents reads a template's components: the BODY text and the
// number of parameters of the body and of a text header.
func parseComponents(raw json.RawMessage) (body string, bodyParams, headerParams int, err error) {
	var comps []struct {
		Type   string `json:"type"`
		Format string `json:"format"`
		Text   string `json:"text"`
	}
	if err := json.Unmarshal(raw, &comps); err != nil {
		return "", 0, 0, fmt.Errorf("components must be an array of objects: %v", err)
	}
	bodies := 0
	for _, c := range comps {
		switch strings.ToUpper(c.Type) {
		case "BODY":
			bodies++
			body = c.Text
			bodyParams = countPlaceholders(c.Text)
		case "HEADER":
			if strings.ToUpper(c.Format) == "TEXT" || c.Format == "" {
				headerParams = countPlaceholders(c.Text)
			}
		case "FOOTER", "BUTTONS":
		default:
			return "", 0, 0, fmt.Errorf("component type %q is not HEADER, BODY, FOOTER or BUTTONS", c.Type)
		}
	}
	if bodies != 1 {
		return "", 0, 0, fmt.Errorf("a template needs exactly one BODY component, got %d", bodies)
	}
	return body, bodyParams, headerParams, nil
}

// AddTemplate stores a template directly (APPROVED unless Status says
// otherwise), as if it had been created and reviewed, and returns its id.
func (s *Server) AddTemplate(wabaID string, t Template) (string, error) {
	body, bp, hp, err := parseComponents(t.Components)
	if err != nil {
		return "", err
	}
	if t.ID == "" {
		t.ID = newID()
	}
	if t.Status == "" {
		t.Status = "APPROVED"
	}
	t.Category = strings.ToUpper(t.Category)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wabas[wabaID]
	if w == nil {
		w = &waba{id: wabaID}
		s.wabas[wabaID] = w
	}
	if w.find(t.Name, t.Language) != nil {
		return "", fmt.Errorf("template %s in %s exists already", t.Name, t.Language)
	}
	w.templates = append(w.templates, &template{Template: t, bodyText: body, bodyParams: bp, headerParams: hp})
	return t.ID, nil
}

// Templates returns a WABA's templates.
func (s *Server) Templates(wabaID string) []Template {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wabas[wabaID]
	if w == nil {
		return nil
	}
	out := make([]Template, len(w.templates))
	for i, t := range w.templates {
		out[i] = t.Template
	}
	return out
}

// ApproveTemplate approves a template and sends the
// message_template_status_update webhook.
func (s *Server) ApproveTemplate(wabaID, name, language string) error {
	return s.SetTemplateStatus(wabaID, name, language, "APPROVED", "NONE")
}

// RejectTemplate rejects a template with a reason (e.g. "INVALID_FORMAT",
// "PROMOTIONAL") and sends the webhook.
func (s *Server) RejectTemplate(wabaID, name, language, reason string) error {
	return s.SetTemplateStatus(wabaID, name, language, "REJECTED", reason)
}

// SetTemplateStatus moves a template to status (APPROVED, REJECTED, PAUSED,
// DISABLED, ...) and sends the message_template_status_update webhook with
// that event and reason.
func (s *Server) SetTemplateStatus(wabaID, name, language, status, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.wabas[wabaID].find(name, language)
	if t == nil {
		return fmt.Errorf("no template %s in %s in WABA %s", name, language, wabaID)
	}
	t.Status = status
	if status == "REJECTED" {
		t.RejectedReason = reason
	} else {
		t.RejectedReason = ""
	}
	id, err := strconv.ParseInt(t.ID, 10, 64)
	if err != nil {
		return fmt.Errorf("template id %q is not numeric", t.ID)
	}
	payload := map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id":   wabaID,
			"time": s.nowLocked().Unix(),
			"changes": []any{map[string]any{
				"field": "message_template_status_update",
				"value": map[string]any{
					"event":                     status,
					"message_template_id":       id,
					"message_template_name":     name,
					"message_template_language": language,
					"reason":                    reason,
				},
			}},
		}},
	}
	s.enqueueLocked(payload, 0)
	return nil
}

// handleTemplates serves /{waba-id}/message_templates.
func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request, wabaID string) {
	s.mu.Lock()
	wb := s.wabas[wabaID]
	authorized := false
	for _, n := range s.numbers {
		if n.WABAID == wabaID && bearer(r) == n.AccessToken {
			authorized = true
		}
	}
	s.mu.Unlock()
	if wb == nil {
		s.fail(w, unsupported(r.Method, wabaID))
		return
	}
	if !authorized {
		s.fail(w, badToken())
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.listTemplates(w, r, wb)
	case http.MethodPost:
		s.createTemplate(w, r, wb)
	case http.MethodDelete:
		s.deleteTemplate(w, r, wb)
	default:
		s.fail(w, unsupported(r.Method, wabaID))
	}
}

func cursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request, wb *waba) {
	q := r.URL.Query()
	limit := 25
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, invalid("limit must be a positive integer"))
			return
		}
		limit = n
	}
	s.mu.Lock()
	all := slices.Clone(wb.templates)
	s.mu.Unlock()
	start := 0
	if after := q.Get("after"); after != "" {
		id, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil {
			s.fail(w, invalid("after is not a valid cursor"))
			return
		}
		start = len(all)
		for i, t := range all {
			if t.ID == string(id) {
				start = i + 1
				break
			}
		}
	}
	end := min(len(all), start+limit)
	data := make([]map[string]any, 0, end-start)
	for _, t := range all[start:end] {
		item := map[string]any{"id": t.ID, "name": t.Name, "language": t.Language, "category": t.Category, "status": t.Status,
			"components": json.RawMessage(t.Components)}
		if t.Status == "REJECTED" {
			item["rejected_reason"] = t.RejectedReason
		}
		data = append(data, item)
	}
	resp := map[string]any{"data": data}
	if len(data) > 0 {
		paging := map[string]any{"cursors": map[string]string{"before": cursor(all[start].ID), "after": cursor(all[end-1].ID)}}
		if end < len(all) {
			next := *r.URL
			nq := next.Query()
			nq.Set("after", cursor(all[end-1].ID))
			nq.Set("limit", strconv.Itoa(limit))
			next.RawQuery = nq.Encode()
			paging["next"] = s.URL() + next.RequestURI()
		}
		resp["paging"] = paging
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) createTemplate(w http.ResponseWriter, r *http.Request, wb *waba) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.fail(w, invalid("reading the body: %v", err))
		return
	}
	var in struct {
		Name       string          `json:"name"`
		Language   string          `json:"language"`
		Category   string          `json:"category"`
		Components json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		s.fail(w, invalid("the body is not valid JSON: %v", err))
		return
	}
	switch {
	case !templateName.MatchString(in.Name):
		s.fail(w, invalid("name must be lower-case letters, digits and underscores"))
		return
	case in.Language == "":
		s.fail(w, missing("language"))
		return
	case in.Category != "MARKETING" && in.Category != "UTILITY" && in.Category != "AUTHENTICATION":
		s.fail(w, invalid("category must be MARKETING, UTILITY or AUTHENTICATION"))
		return
	}
	body, bp, hp, err := parseComponents(in.Components)
	if err != nil {
		s.fail(w, invalid("%v", err))
		return
	}
	s.mu.Lock()
	if wb.find(in.Name, in.Language) != nil {
		s.mu.Unlock()
		s.fail(w, graphError{status: http.StatusBadRequest, code: 100, subcode: 2388024, title: "Invalid parameter",
			details: fmt.Sprintf("Content in this language already exists: %s (%s)", in.Name, in.Language)})
		return
	}
	t := &template{
		Template: Template{ID: newID(), Name: in.Name, Language: in.Language, Category: in.Category,
			Status: "PENDING", Components: in.Components},
		bodyText: body, bodyParams: bp, headerParams: hp,
	}
	wb.templates = append(wb.templates, t)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"id": t.ID, "status": t.Status, "category": t.Category})
}

func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request, wb *waba) {
	q := r.URL.Query()
	name, id := q.Get("name"), q.Get("hsm_id")
	if name == "" {
		s.fail(w, missing("name"))
		return
	}
	s.mu.Lock()
	before := len(wb.templates)
	wb.templates = slices.DeleteFunc(wb.templates, func(t *template) bool {
		return t.Name == name && (id == "" || t.ID == id)
	})
	deleted := before - len(wb.templates)
	s.mu.Unlock()
	if deleted == 0 {
		s.fail(w, invalid("message template %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}
