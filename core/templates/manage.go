package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
)

// ErrExists is returned by Create when the connection already has a template
// with the name and language.
var ErrExists = errors.New("a template with this name and language already exists on the connection")

// NewTemplate is a template to create and submit for review.
type NewTemplate struct {
	ConnectionID string
	// Name is lowercase letters, digits and underscores (Meta's rule).
	Name string
	// Language is a Meta language code, e.g. "it", "en_US".
	Language string
	// Category is marketing, utility or authentication. Meta may
	// recategorise; the stored category is the one Meta answers.
	Category string
	// Components are Meta's component objects.
	Components json.RawMessage
}

// Limits Meta puts on template components.
const (
	maxBodyText      = 1024
	maxHeaderText    = 60
	maxFooterText    = 60
	maxButtons       = 10
	maxButtonText    = 25
	maxComponentsLen = 1 << 16
)

var headerFormats = map[string]bool{"TEXT": true, "IMAGE": true, "VIDEO": true, "DOCUMENT": true, "LOCATION": true}

var buttonTypes = map[string]bool{"QUICK_REPLY": true, "URL": true, "PHONE_NUMBER": true, "COPY_CODE": true, "OTP": true, "FLOW": true, "CATALOG": true, "MPM": true}

// checkNewTemplate validates a template before it is submitted, so mistakes
// Meta would reject after a round trip are reported at once, per field.
func checkNewTemplate(in *NewTemplate) error {
	var problems []store.FieldProblem
	add := func(field, format string, args ...any) {
		problems = append(problems, store.FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if in.ConnectionID == "" {
		add("connection_id", "required")
	}
	if !nameRE.MatchString(in.Name) {
		add("name", "lowercase letters, digits and underscores only, 1 to 512 characters")
	}
	if !languageRE.MatchString(in.Language) {
		add("language", "a language code such as it, en_US or pt_BR")
	}
	in.Category = strings.ToLower(in.Category)
	if _, ok := mapCategory(in.Category); !ok {
		add("category", "marketing, utility or authentication")
	}
	if len(in.Components) > maxComponentsLen {
		add("components", "too large")
		return &store.ValidationError{Problems: problems}
	}
	var raw []map[string]any
	if err := json.Unmarshal(in.Components, &raw); err != nil || len(raw) == 0 {
		add("components", "an array of component objects (HEADER, BODY, FOOTER, BUTTONS) with at least a BODY")
		return &store.ValidationError{Problems: problems}
	}
	cs, err := parseComponents(in.Components)
	if err != nil {
		add("components", "%v", err)
		return &store.ValidationError{Problems: problems}
	}
	seen := map[string]bool{}
	for i, c := range cs {
		field := fmt.Sprintf("components[%d]", i)
		typ := strings.ToUpper(c.Type)
		if seen[typ] {
			add(field+".type", "%s appears twice", typ)
		}
		seen[typ] = true
		switch typ {
		case "BODY":
			if in.Category != CategoryAuthentication && strings.TrimSpace(c.Text) == "" {
				add(field+".text", "required")
			}
			if n := len([]rune(c.Text)); n > maxBodyText {
				add(field+".text", "at most %d characters (has %d)", maxBodyText, n)
			}
			if msg := checkPositional(c.Text); msg != "" {
				add(field+".text", "%s", msg)
			}
		case "HEADER":
			f := strings.ToUpper(c.Format)
			if !headerFormats[f] {
				add(field+".format", "TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION")
			}
			if f == "TEXT" {
				if strings.TrimSpace(c.Text) == "" || len([]rune(c.Text)) > maxHeaderText {
					add(field+".text", "required, at most %d characters", maxHeaderText)
				}
				if countVariables(c.Text) > 1 {
					add(field+".text", "a header takes at most one variable")
				}
			}
		case "FOOTER":
			if strings.TrimSpace(c.Text) == "" || len([]rune(c.Text)) > maxFooterText {
				add(field+".text", "required, at most %d characters", maxFooterText)
			}
			if countVariables(c.Text) > 0 {
				add(field+".text", "a footer cannot have variables")
			}
		case "BUTTONS":
			if len(c.Buttons) == 0 || len(c.Buttons) > maxButtons {
				add(field+".buttons", "1 to %d buttons", maxButtons)
			}
			for j, b := range c.Buttons {
				bf := fmt.Sprintf("%s.buttons[%d]", field, j)
				bt := strings.ToUpper(b.Type)
				if !buttonTypes[bt] {
					add(bf+".type", "unknown button type %q", b.Type)
				}
				if (bt == "QUICK_REPLY" || bt == "URL" || bt == "PHONE_NUMBER") && (strings.TrimSpace(b.Text) == "" || len([]rune(b.Text)) > maxButtonText) {
					add(bf+".text", "required, at most %d characters", maxButtonText)
				}
				if bt == "URL" && !strings.HasPrefix(b.URL, "https://") && !strings.HasPrefix(b.URL, "http://") {
					add(bf+".url", "an http(s) URL")
				}
			}
		default:
			add(field+".type", "HEADER, BODY, FOOTER or BUTTONS")
		}
	}
	if !seen["BODY"] {
		add("components", "a BODY component is required")
	}
	if len(problems) > 0 {
		return &store.ValidationError{Problems: problems}
	}
	return nil
}

// checkPositional checks that the numbered variables of a text are {{1}} to
// {{n}} without gaps, as Meta requires.
func checkPositional(text string) string {
	var nums []int
	seen := map[int]bool{}
	for _, m := range variableRE.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return fmt.Sprintf("variable {{%s}} is not a number; use {{1}}, {{2}}, ...", m[1])
		}
		if !seen[n] {
			seen[n] = true
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i+1 {
			return fmt.Sprintf("variables must be numbered {{1}} to {{%d}} without gaps", len(nums))
		}
	}
	return ""
}

// Create validates a template, submits it to the provider (create_template)
// and stores it with the status the provider answered (pending, usually).
// Errors: *store.ValidationError for a bad template, ErrExists, the
// connector's *sdk.Error (Meta's own validation is KindInvalid), and a
// not-found *sdk.Error for a connection that is not the tenant's.
func (s *Service) Create(ctx context.Context, tenantID string, in NewTemplate) (Template, error) {
	if err := checkNewTemplate(&in); err != nil {
		return Template{}, err
	}
	if _, err := s.Get(ctx, tenantID, in.ConnectionID, in.Name, in.Language); err == nil {
		return Template{}, ErrExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return Template{}, err
	}
	params, err := json.Marshal(map[string]any{
		"name": in.Name, "language": in.Language, "category": strings.ToUpper(in.Category), "components": in.Components,
	})
	if err != nil {
		return Template{}, fmt.Errorf("encoding template: %w", err)
	}
	out, err := s.inv.Invoke(ctx, invoke.Call{
		TenantID: tenantID, ConnectionID: in.ConnectionID, Action: "create_template", Params: params,
		IdempotencyKey: "create-template:" + in.ConnectionID + ":" + in.Name + ":" + in.Language,
	})
	if err != nil {
		return Template{}, fmt.Errorf("submitting template %s (%s): %w", in.Name, in.Language, err)
	}
	var resp struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Category string `json:"category"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return Template{}, fmt.Errorf("decoding create_template result: %w", err)
	}
	status, ok := mapStatus(resp.Status)
	if !ok {
		status = StatusPending
	}
	category, ok := mapCategory(resp.Category)
	if !ok {
		category = in.Category
	}
	// A sync that ran meanwhile may have stored it already; ours is as new.
	t, err := scan(s.pool.QueryRow(ctx, `
		INSERT INTO templates (id, tenant_id, connection_id, provider_id, name, language, category, status, components, parameters, status_at)
		VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, $9, $10, now())
		ON CONFLICT (connection_id, name, language) DO UPDATE SET
		    provider_id = EXCLUDED.provider_id, category = EXCLUDED.category, status = EXCLUDED.status, status_reason = NULL,
		    components = EXCLUDED.components, parameters = EXCLUDED.parameters, status_at = EXCLUDED.status_at, updated_at = now()
		WHERE templates.tenant_id = EXCLUDED.tenant_id
		RETURNING `+columns,
		store.NewID("tpl"), tenantID, in.ConnectionID, resp.ID, in.Name, in.Language, category, status, in.Components, bodyParameters(in.Components)))
	if err != nil {
		return Template{}, fmt.Errorf("storing template %s (%s) submitted as %s: %w", in.Name, in.Language, resp.ID, err)
	}
	return t, nil
}

// Delete deletes a template at the provider (delete_template, by name and
// id so other languages of the name stay) and here. A template the provider
// no longer has is deleted here all the same. store.ErrNotFound when the
// template is not the tenant's.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	t, err := s.GetByID(ctx, tenantID, id)
	if err != nil {
		return err
	}
	params := map[string]any{"name": t.Name}
	if t.ProviderID != "" {
		params["id"] = t.ProviderID
	}
	raw, _ := json.Marshal(params)
	_, err = s.inv.Invoke(ctx, invoke.Call{TenantID: tenantID, ConnectionID: t.ConnectionID, Action: "delete_template", Params: raw,
		IdempotencyKey: "delete-template:" + t.ID})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("deleting template %s at the provider: %w", t.Name, err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM templates WHERE id = $1 AND tenant_id = $2`, id, tenantID); err != nil {
		return fmt.Errorf("deleting template %s: %w", id, err)
	}
	return nil
}

// EventStatusUpdated is the event type of a template status webhook.
const EventStatusUpdated = "template.status_updated"

// statusEvent is a template.status_updated payload.
type statusEvent struct {
	WABAID     string `json:"waba_id"`
	TemplateID string `json:"template_id"`
	Name       string `json:"name"`
	Language   string `json:"language"`
	Event      string `json:"event"`
	Reason     string `json:"reason"`
}

// Route returns the router of template status webhooks: each
// template.status_updated event gets an in-process delivery that moves the
// template's status (see ApplyStatus).
func Route(s *Service) dispatch.Router {
	return dispatch.RouterFunc(func(ctx context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		if ev.Type != EventStatusUpdated {
			return nil, nil
		}
		var se statusEvent
		if err := json.Unmarshal(ev.Payload, &se); err != nil {
			return nil, dispatch.Permanent(fmt.Errorf("templates: decoding template.status_updated payload of event %d: %w", ev.ID, err))
		}
		if se.TemplateID == "" && (se.Name == "" || se.Language == "") {
			return nil, dispatch.Permanent(fmt.Errorf("templates: status event %d names no template", ev.ID))
		}
		return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
			return s.applyStatus(ctx, ev, se)
		}}}, nil
	})
}

// applyStatus moves a template's status. It is idempotent and ignores events
// older than the status stored (webhooks arrive out of order; a sync may have
// seen a newer state). An APPROVED event leaves a template we marked
// incompatible so: approval says nothing about whether a feature can fill it.
// A template Ponte does not know yet is picked up by a sync of the
// connection.
func (s *Service) applyStatus(ctx context.Context, ev dispatch.Event, se statusEvent) error {
	at := ev.OccurredAt
	if at.IsZero() {
		at = ev.ReceivedAt
	}
	match := `connection_id = $1 AND tenant_id = $2 AND (($3 <> '' AND provider_id = $3) OR (name = $4 AND language = $5))`
	if strings.EqualFold(se.Event, "DELETED") {
		if _, err := s.pool.Exec(ctx, `DELETE FROM templates WHERE `+match, ev.ConnectionID, ev.TenantID, se.TemplateID, se.Name, se.Language); err != nil {
			return fmt.Errorf("templates: deleting template %s: %w", se.Name, err)
		}
		return nil
	}
	status, ok := mapStatus(se.Event)
	if !ok {
		s.log.DebugContext(ctx, "templates: status event without a status change", "event", se.Event, "template", se.Name)
		return nil
	}
	reason := se.Reason
	if strings.EqualFold(reason, "NONE") {
		reason = ""
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE templates SET
		    status = CASE WHEN status = 'incompatible' AND $6 = 'approved' THEN status ELSE $6 END,
		    status_reason = CASE WHEN status = 'incompatible' AND $6 = 'approved' THEN status_reason ELSE NULLIF($7, '') END,
		    provider_id = COALESCE(provider_id, NULLIF($3, '')),
		    status_at = $8, updated_at = now()
		WHERE `+match+` AND (status_at IS NULL OR status_at <= $8)`,
		ev.ConnectionID, ev.TenantID, se.TemplateID, se.Name, se.Language, status, reason, at)
	if err != nil {
		return fmt.Errorf("templates: applying status %s of %s: %w", se.Event, se.Name, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var known bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM templates WHERE `+match+`)`,
		ev.ConnectionID, ev.TenantID, se.TemplateID, se.Name, se.Language).Scan(&known); err != nil {
		return fmt.Errorf("templates: looking up %s: %w", se.Name, err)
	}
	if known {
		return nil // an older event than what is stored
	}
	if _, err := s.Sync(ctx, ev.TenantID, ev.ConnectionID); err != nil {
		if IsNotFound(err) {
			return dispatch.Permanent(err)
		}
		return err
	}
	return nil
}
