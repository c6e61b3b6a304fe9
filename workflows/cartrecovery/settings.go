package cartrecovery

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/workflows/internal/textvars"
)

// SettingsKind is the automation kind cart recovery's settings are stored
// under in core/automations, one document per shop connection.
const SettingsKind = "cart_recovery"

// Template variables: the values a step's template body ({{1}}..{{n}}, in the
// order of Step.Variables) and its URL button can carry.
const (
	// VarName is the customer's first name (or NameFallback).
	VarName = "name"
	// VarItems lists the cart's products ("Blue mug ×2, Red hat").
	VarItems = "items"
	// VarTotal is the cart's total with its currency ("49.90 EUR").
	VarTotal = "total"
	// VarLink is the recovery URL, which takes the customer back to the cart.
	VarLink = "link"
	// VarCode is the discount code created for the customer at this step.
	VarCode = "code"
	// VarLinkPath is the recovery URL without scheme and host ("cart/c/abc?key=1"),
	// for a URL button whose template fixes the shop's address and leaves
	// the rest dynamic. Only for ButtonURLVariable.
	VarLinkPath = "link_path"
)

var (
	bodyVariables   = []string{VarName, VarItems, VarTotal, VarLink, VarCode}
	buttonVariables = []string{VarLinkPath, VarLink, VarCode}
	// templateName is Meta's rule for template names.
	templateName = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	// templateLanguage is a language code as Meta lists them ("en", "en_US", "pt_BR").
	templateLanguage = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z]{2,4})?$`)
	discountPrefix   = regexp.MustCompile(`^[A-Za-z0-9_-]{0,20}$`)
)

// Limits Validate enforces. Steps are capped because each is a message to
// someone who did not ask for one; delays are bounded so a typo ("1000h")
// does not leave a workflow waiting for months.
const (
	MaxSteps     = 5
	MaxStepDelay = 30 * 24 * time.Hour
	MaxVariables = 10
)

// Duration is a time.Duration written in JSON as a Go duration string ("1h",
// "30m", "2s"), so settings are readable and tests and the end-to-end suite
// can shorten the timers by configuration.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as Go does ("1h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("1h30m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1h\" or \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var _ huma.SchemaProvider = Duration(0)

// Schema tells huma that a Duration is a string in the API, not the integer
// its Go kind would suggest.
func (Duration) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
		Description: `A duration such as "1h", "30m" or "1h30m".`, Examples: []any{"1h"}}
}

// Settings configure cart recovery for one shop connection. Quiet hours are
// not here: they are the tenant's consent settings (core/consent), judged in
// the tenant's timezone, and apply to every marketing message alike.
type Settings struct {
	Enabled bool `json:"enabled" doc:"Whether abandoned checkouts of this shop are followed up."`
	// ChannelConnectionID is the number (a WhatsApp connection) the
	// messages go out from; empty means any of the tenant's numbers (and a
	// number's deletion empties it).
	ChannelConnectionID string `json:"channel_connection_id,omitempty" required:"false" doc:"The number (WhatsApp connection) the messages are sent from; empty: any of the tenant's numbers."`
	// NameFallback replaces the customer's first name when the shop has none
	// (a template parameter cannot be empty).
	NameFallback string `json:"name_fallback,omitempty" doc:"Used for the name variable when the customer's first name is unknown; default \"there\"."`
	Steps        []Step `json:"steps" doc:"The messages of the sequence, in order (1 to 5)."`
}

// Step is one message of the sequence.
type Step struct {
	// Delay is the wait before this step: for the first, after the
	// checkout's last update; for the others, after the previous step. A
	// checkout update restarts the wait of the next step.
	Delay Duration `json:"delay" doc:"Wait before this step: after the checkout's last update for the first step, after the previous step (or the last checkout update, whichever is later) for the others."`
	TemplateRef
	// Discount, when set, creates a single-use discount code for the
	// customer at the shop before sending (variable "code").
	Discount *Discount `json:"discount,omitempty" doc:"Create a single-use discount code for this customer before the step (variable code)."`
	// FallbackTemplate is sent instead when the discount could not be
	// created; without one, such a step is skipped (reason discount_failed).
	FallbackTemplate *TemplateRef `json:"fallback_template,omitempty" doc:"Sent instead when the discount could not be created; it cannot use the code variable."`
	// RequireMarketingConsent skips the step for customers without a
	// marketing opt-in (the sequence goes on with the next step).
	RequireMarketingConsent bool `json:"require_marketing_consent,omitempty" doc:"Skip this step for customers who have not opted in to marketing."`
}

// TemplateRef names an approved template of the channel connection and maps
// its parameters.
type TemplateRef struct {
	Template string `json:"template" doc:"The template's name."`
	Language string `json:"language" doc:"The template's language code, e.g. en or it."`
	// Variables are the body's {{1}}..{{n}} in order.
	Variables []string `json:"variables,omitempty" doc:"The body's {{1}}..{{n}} in order, each one of name, items, total, link, code."`
	// ButtonURLVariable is the dynamic suffix of the template's URL button
	// (its first button), when it has one.
	ButtonURLVariable string `json:"button_url_variable,omitempty" doc:"The dynamic suffix of the template's URL button: link_path, link or code."`
	// Text is the same message as free text with {{name}} placeholders,
	// sent instead of the template from a linked-device number (which
	// cannot send templates).
	Text string `json:"text,omitempty" maxLength:"4096" doc:"The same message as free text, with {{name}}, {{items}}, {{total}}, {{link}}, {{link_path}} or {{code}}: sent instead of the template from a linked-device number, which cannot send templates."`
}

// Discount configures the discount code of a step.
type Discount struct {
	Percent  float64  `json:"percent" doc:"Percentage off, 1 to 100."`
	ValidFor Duration `json:"valid_for,omitempty" doc:"How long the code works, e.g. 48h; empty for no expiry."`
	Prefix   string   `json:"prefix,omitempty" doc:"Start of the generated code, e.g. COMEBACK-."`
}

// DefaultSettings are the sequence of the help pages Ponte replaces: a
// reminder with the recovery link an hour after the checkout's last update,
// a second message with a 10% code for this customer (valid 24 hours, which
// creates the urgency those pages recommend) a day later, and a last chance
// two days after that. Disabled until the merchant picks the sending number
// and approves the templates.
func DefaultSettings() Settings {
	return Settings{
		Enabled:      false,
		NameFallback: "there",
		Steps: []Step{
			{
				Delay:       Duration(time.Hour),
				TemplateRef: TemplateRef{Template: "cart_reminder", Language: "en", Variables: []string{VarName, VarItems, VarLink}},
			},
			{
				Delay:       Duration(24 * time.Hour),
				TemplateRef: TemplateRef{Template: "cart_discount", Language: "en", Variables: []string{VarName, VarCode, VarLink}},
				Discount:    &Discount{Percent: 10, ValidFor: Duration(24 * time.Hour), Prefix: "COMEBACK-"},
				FallbackTemplate: &TemplateRef{Template: "cart_reminder", Language: "en",
					Variables: []string{VarName, VarItems, VarLink}},
			},
			{
				Delay:       Duration(48 * time.Hour),
				TemplateRef: TemplateRef{Template: "cart_last_chance", Language: "en", Variables: []string{VarName, VarItems, VarLink}},
			},
		},
	}
}

// ValidationError lists every problem of a Settings document by field
// (dotted JSON paths such as "steps[1].discount.percent"). It is
// store.ValidationError, which the API renders as problem+json errors.
type ValidationError = store.ValidationError

// FieldProblem is one entry of a ValidationError.
type FieldProblem = store.FieldProblem

// Validate checks s and returns a *ValidationError listing every problem, or
// nil. Disabled settings are validated too: a merchant saves them to enable
// later, and should learn of mistakes now.
func (s Settings) Validate() error {
	var probs []FieldProblem
	add := func(field, format string, args ...any) {
		probs = append(probs, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(s.NameFallback) > 60 {
		add("name_fallback", "is longer than 60 characters")
	}
	switch {
	case len(s.Steps) == 0:
		add("steps", "at least one step is required")
	case len(s.Steps) > MaxSteps:
		add("steps", "at most %d steps", MaxSteps)
	}
	for i, st := range s.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		if st.Delay.D() < 0 {
			add(f+".delay", "cannot be negative")
		} else if st.Delay.D() > MaxStepDelay {
			add(f+".delay", "is longer than 30 days")
		} else if st.Delay.D() == 0 && i == 0 {
			add(f+".delay", "the first step needs a delay: a cart is not abandoned the moment it is updated")
		}
		st.TemplateRef.validate(f, st.Discount != nil, add)
		if d := st.Discount; d != nil {
			if d.Percent < 1 || d.Percent > 100 {
				add(f+".discount.percent", "must be between 1 and 100")
			}
			if d.ValidFor.D() < 0 {
				add(f+".discount.valid_for", "cannot be negative")
			} else if d.ValidFor.D() > 0 && d.ValidFor.D() < time.Minute {
				add(f+".discount.valid_for", "must be at least a minute, or empty for no expiry")
			}
			if !discountPrefix.MatchString(d.Prefix) {
				add(f+".discount.prefix", "letters, digits, - and _ only, at most 20")
			}
		}
		if fb := st.FallbackTemplate; fb != nil {
			if st.Discount == nil {
				add(f+".fallback_template", "is only used by a step with a discount")
			}
			fb.validate(f+".fallback_template", false, add)
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// maxText is WhatsApp's limit on a text message's body.
const maxText = 4096

// validate checks a template reference; withCode says whether the code
// variable has a value.
func (t TemplateRef) validate(f string, withCode bool, add func(field, format string, args ...any)) {
	if !templateName.MatchString(t.Template) {
		add(f+".template", "is required: lower-case letters, digits and underscores, as Meta names templates")
	}
	if !templateLanguage.MatchString(t.Language) {
		add(f+".language", "is required: a language code such as en, it or pt_BR")
	}
	if len(t.Variables) > MaxVariables {
		add(f+".variables", "at most %d", MaxVariables)
	}
	for j, v := range t.Variables {
		switch {
		case !slices.Contains(bodyVariables, v):
			add(fmt.Sprintf("%s.variables[%d]", f, j), "must be one of %s", strings.Join(bodyVariables, ", "))
		case v == VarCode && !withCode:
			add(fmt.Sprintf("%s.variables[%d]", f, j), "code needs a discount on the step (and is not available to a fallback template)")
		}
	}
	if n := utf8.RuneCountInString(t.Text); n > maxText {
		add(f+".text", "must be at most %d characters, is %d", maxText, n)
	}
	for _, v := range textvars.Names(t.Text) {
		switch {
		case !slices.Contains(bodyVariables, v) && !slices.Contains(buttonVariables, v):
			add(f+".text", "unknown placeholder {{%s}}; use one of %s", v, strings.Join(bodyVariables, ", "))
		case v == VarCode && !withCode:
			add(f+".text", "{{code}} needs a discount on the step (and is not available to a fallback template)")
		}
	}
	if v := t.ButtonURLVariable; v != "" {
		switch {
		case !slices.Contains(buttonVariables, v):
			add(f+".button_url_variable", "must be one of %s", strings.Join(buttonVariables, ", "))
		case v == VarCode && !withCode:
			add(f+".button_url_variable", "code needs a discount on the step (and is not available to a fallback template)")
		}
	}
}
