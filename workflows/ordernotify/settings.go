package ordernotify

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/workflows/internal/textvars"
)

// SettingsKind is the automation kind order notification settings are stored
// under in core/automations, one document per shop connection.
const SettingsKind = "order_notifications"

// When the order confirmation is sent ([Settings].ConfirmOn).
const (
	// ConfirmOnCreated sends it when the order is placed, paid or not.
	ConfirmOnCreated = "created"
	// ConfirmOnPaid waits for the payment (orders paid later, by bank
	// transfer or cash on delivery, are confirmed when paid; one shipped
	// before it was paid gets the shipped message only).
	ConfirmOnPaid = "paid"
)

// Variables a message may use, as a template's {{1}}..{{n}} (in the order of
// [Message].Variables) or as {{name}} placeholders in [Message].FreeText.
const (
	VarName           = "name"            // the customer's first name
	VarOrder          = "order"           // the order's name as the customer sees it ("#1001")
	VarTotal          = "total"           // the order's total with its currency ("49.90 EUR")
	VarItems          = "items"           // the order's lines ("2× Blue mug, 1× Tea")
	VarCarrier        = "carrier"         // the shipment's carrier
	VarTrackingNumber = "tracking_number" // the shipment's tracking number
	VarTrackingURL    = "tracking_url"    // the carrier's tracking page (the order status page when none)
	VarStatusURL      = "status_url"      // the shop's order status page
	VarReviewURL      = "review_url"      // ReviewRequest.ReviewURL
)

// Variables lists every variable name, in the order the help pages show them.
var Variables = []string{VarName, VarOrder, VarTotal, VarItems, VarCarrier, VarTrackingNumber,
	VarTrackingURL, VarStatusURL, VarReviewURL}

// Limits of settings, checked by Validate.
const (
	// MaxVariables is the most body variables a message may fill.
	MaxVariables = 20
	// MaxFreeText is WhatsApp's limit on a text message's body.
	MaxFreeText = 4096
	// MaxReviewDelay bounds ReviewRequest.After: a request months after the
	// parcel arrived reads as spam, and the workflow stays open until then.
	MaxReviewDelay = 90 * 24 * time.Hour
)

// Settings are a shop connection's order notification settings, stored as
// JSON with core/automations under [SettingsKind]. A notification kind
// without a message is not sent (recorded as skipped with reason
// not_configured).
type Settings struct {
	// Enabled turns order notifications on for the shop connection; while
	// off, order events start no workflow.
	Enabled bool `json:"enabled"`
	// ChannelConnectionID is the number (a WhatsApp connection) the
	// notifications are sent from; empty means any of the tenant's numbers
	// (and a number's deletion empties it).
	ChannelConnectionID string `json:"channel_connection_id,omitempty" required:"false" doc:"The number (WhatsApp connection) the notifications are sent from; empty: any of the tenant's numbers."`
	// ConfirmOn is ConfirmOnCreated or ConfirmOnPaid.
	ConfirmOn string `json:"confirm_on" enum:"created,paid" doc:"Send the confirmation when the order is created, or only once it is paid."`
	// FreeTextInWindow sends a message's FreeText, when it has one, instead
	// of its template while the customer's 24-hour customer-service window
	// is open (the customer wrote in the last 24 hours).
	FreeTextInWindow bool `json:"free_text_in_window" required:"false" doc:"Inside the customer's open 24-hour window, send a message's free_text instead of its template (default false)."`

	Confirmation   *Message       `json:"confirmation,omitempty"`
	Shipped        *Message       `json:"shipped,omitempty"`
	OutForDelivery *Message       `json:"out_for_delivery,omitempty"`
	Delivered      *Message       `json:"delivered,omitempty"`
	Cancelled      *Message       `json:"cancelled,omitempty"`
	Refunded       *Message       `json:"refunded,omitempty"`
	ReviewRequest  *ReviewRequest `json:"review_request,omitempty"`
}

// Message is how one notification kind is sent.
type Message struct {
	// Template and Language name an approved WhatsApp template of the
	// sending number (utility category expected), required: outside the
	// 24-hour window only a template may be sent.
	Template string `json:"template"`
	Language string `json:"language"`
	// Variables fill the template body's {{1}}..{{n}} in order; each is
	// one of [Variables]. An empty value is sent as "-", since WhatsApp
	// refuses empty parameters.
	Variables []string `json:"variables,omitempty"`
	// ButtonURLVariable, when set, is the variable whose value completes
	// the template's dynamic URL button (its {{1}} suffix).
	ButtonURLVariable string `json:"button_url_variable,omitempty"`
	// FreeText is sent instead of the template inside the 24-hour window
	// when Settings.FreeTextInWindow is set; it may use {{name}},
	// {{order}}, ... placeholders.
	FreeText string `json:"free_text,omitempty"`
}

// ReviewRequest is the message asking for a review, sent After the order
// was delivered.
type ReviewRequest struct {
	Message
	// After is how long after the delivery the request goes out, a Go
	// duration string ("72h", "2s").
	After Duration `json:"after"`
	// ReviewURL is where the customer writes the review, the review_url
	// variable.
	ReviewURL string `json:"review_url,omitempty"`
}

// Duration is a Go duration string in JSON ("72h", "90m", "2s"). It is a
// string so a mistyped value reaches Validate, which names the field, rather
// than failing the whole document's decoding.
type Duration string

// Parse returns the duration; an empty Duration is 0.
func (d Duration) Parse() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	return time.ParseDuration(string(d))
}

// DefaultSettings are the settings a shop starts from, after the help pages
// of the systems Ponte replaces: confirmation when the order is placed,
// shipped with the tracking link, out for delivery, delivered, cancelled and
// refunded, each a utility template the store creates under these names (or
// renames here), with free text inside the 24-hour window; no review request
// until the store gives its review page. Disabled until the store picks the
// number that sends them.
func DefaultSettings() Settings {
	return Settings{
		Enabled:          false,
		ConfirmOn:        ConfirmOnCreated,
		FreeTextInWindow: true,
		Confirmation: &Message{Template: "order_confirmation", Language: "en",
			Variables: []string{VarName, VarOrder, VarTotal},
			FreeText:  "Hi {{name}}, thank you for your order {{order}} ({{total}})! We are preparing it and will send you the tracking details soon."},
		Shipped: &Message{Template: "order_shipped", Language: "en",
			Variables: []string{VarName, VarOrder, VarCarrier, VarTrackingURL},
			FreeText:  "Good news {{name}}: your order {{order}} is on its way with {{carrier}}! 📦 Track it here: {{tracking_url}}"},
		OutForDelivery: &Message{Template: "order_out_for_delivery", Language: "en",
			Variables: []string{VarName, VarOrder, VarTrackingURL},
			FreeText:  "Hi {{name}}, your order {{order}} is out for delivery today! Track it here: {{tracking_url}}"},
		Delivered: &Message{Template: "order_delivered", Language: "en",
			Variables: []string{VarName, VarOrder},
			FreeText:  "Hi {{name}}, your order {{order}} has been delivered! 🎉 Enjoy your purchase!"},
		Cancelled: &Message{Template: "order_cancelled", Language: "en",
			Variables: []string{VarName, VarOrder},
			FreeText:  "Hi {{name}}, your order {{order}} has been cancelled. Reply to this message if you have any questions."},
		Refunded: &Message{Template: "order_refunded", Language: "en",
			Variables: []string{VarName, VarOrder, VarTotal},
			FreeText:  "Hi {{name}}, the refund for your order {{order}} has been issued. It may take a few days to show on your statement."},
	}
}

// ValidationError is the error Validate returns: every problem found, each
// with its field (a dotted JSON path such as "shipped.template") and a message
// for people. It is core/store's type, which the API renders as problem+json
// errors (422).
type ValidationError = store.ValidationError

// FieldProblem is one entry of a ValidationError.
type FieldProblem = store.FieldProblem

var (
	templateNameRE = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)
	languageRE     = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?$`)
)

// Validate checks the settings and returns a *ValidationError listing every
// problem, or nil.
func (s Settings) Validate() error {
	var ps []FieldProblem
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch s.ConfirmOn {
	case ConfirmOnCreated, ConfirmOnPaid:
	case "":
		add("confirm_on", "is required: %q or %q", ConfirmOnCreated, ConfirmOnPaid)
	default:
		add("confirm_on", "must be %q or %q, not %q", ConfirmOnCreated, ConfirmOnPaid, s.ConfirmOn)
	}
	usesReviewURL := false
	for _, k := range messageKinds {
		m := s.message(k)
		if m == nil {
			continue
		}
		if m.uses(VarReviewURL) {
			usesReviewURL = true
		}
		validateMessage(string(k), m, add)
	}
	if r := s.ReviewRequest; r != nil {
		d, err := r.After.Parse()
		switch {
		case err != nil:
			add("review_request.after", "%q is not a duration; write it like \"72h\" or \"90m\"", string(r.After))
		case d <= 0:
			add("review_request.after", "is required: how long after the delivery to ask, like \"72h\"")
		case d > MaxReviewDelay:
			add("review_request.after", "must be at most %s (90 days)", MaxReviewDelay)
		}
		if r.ReviewURL != "" {
			if u, err := url.Parse(r.ReviewURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add("review_request.review_url", "must be an http(s) URL")
			}
		} else if usesReviewURL {
			add("review_request.review_url", "is required: a message uses the review_url variable")
		}
	} else if usesReviewURL {
		add("review_request.review_url", "is required: a message uses the review_url variable")
	}
	if ps != nil {
		return &ValidationError{Problems: ps}
	}
	return nil
}

func validateMessage(field string, m *Message, add func(field, format string, args ...any)) {
	switch {
	case m.Template == "":
		add(field+".template", "is required: outside the 24-hour window only an approved template can be sent")
	case !templateNameRE.MatchString(m.Template):
		add(field+".template", "must be a WhatsApp template name: lowercase letters, digits and underscores")
	}
	switch {
	case m.Language == "":
		add(field+".language", "is required, like \"en\" or \"it\" or \"en_US\"")
	case !languageRE.MatchString(m.Language):
		add(field+".language", "%q is not a WhatsApp language code, like \"en\" or \"en_US\"", m.Language)
	}
	if len(m.Variables) > MaxVariables {
		add(field+".variables", "must have at most %d entries", MaxVariables)
	}
	for i, v := range m.Variables {
		if !slices.Contains(Variables, v) {
			add(fmt.Sprintf("%s.variables[%d]", field, i), "unknown variable %q; one of %s", v, strings.Join(Variables, ", "))
		}
	}
	if v := m.ButtonURLVariable; v != "" && !slices.Contains(Variables, v) {
		add(field+".button_url_variable", "unknown variable %q; one of %s", v, strings.Join(Variables, ", "))
	}
	if n := utf8.RuneCountInString(m.FreeText); n > MaxFreeText {
		add(field+".free_text", "must be at most %d characters, is %d", MaxFreeText, n)
	}
	for _, name := range textvars.Names(m.FreeText) {
		if !slices.Contains(Variables, name) {
			add(field+".free_text", "unknown placeholder {{%s}}; use one of %s", name, strings.Join(Variables, ", "))
		}
	}
}

// uses reports whether the message reads variable v anywhere.
func (m *Message) uses(v string) bool {
	if slices.Contains(m.Variables, v) || m.ButtonURLVariable == v {
		return true
	}
	return slices.Contains(textvars.Names(m.FreeText), v)
}

// messageKinds are the kinds with a Message, in Settings' field order.
var messageKinds = []Kind{KindConfirmation, KindShipped, KindOutForDelivery, KindDelivered,
	KindCancelled, KindRefunded, KindReviewRequest}

// message returns the message configured for kind, nil when none.
func (s Settings) message(k Kind) *Message {
	switch k {
	case KindConfirmation:
		return s.Confirmation
	case KindShipped:
		return s.Shipped
	case KindOutForDelivery:
		return s.OutForDelivery
	case KindDelivered:
		return s.Delivered
	case KindCancelled:
		return s.Cancelled
	case KindRefunded:
		return s.Refunded
	case KindReviewRequest:
		if s.ReviewRequest != nil {
			return &s.ReviewRequest.Message
		}
	}
	return nil
}

// reviewDelay is how long after delivery the review request is due, 0 when
// there is none to send.
func (s Settings) reviewDelay() time.Duration {
	if !s.Enabled || s.ReviewRequest == nil {
		return 0
	}
	d, err := s.ReviewRequest.After.Parse()
	if err != nil || d <= 0 {
		return 0
	}
	return d
}
