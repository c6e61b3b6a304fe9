package cartrecovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.temporal.io/sdk/temporal"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/workflows/internal/connerr"
	"github.com/ponte-hub/ponte/workflows/internal/textvars"
)

// Invoker runs connector actions for a tenant; *invoke.Invoker implements it.
type Invoker interface {
	Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error)
}

// Messenger sends WhatsApp messages; *messaging.Service implements it.
type Messenger interface {
	Send(ctx context.Context, req messaging.SendRequest) (messaging.Message, error)
}

// ConsentChecker decides whether a contact may be messaged;
// *consent.Service implements it.
type ConsentChecker interface {
	Check(ctx context.Context, req consent.CheckRequest) (consent.Decision, error)
}

// Inbox finds a customer's contact and conversation and flags a conversation
// for a human; *contacts.Service implements it.
type Inbox interface {
	Resolve(ctx context.Context, tenantID, phone string, hints contacts.ContactHints) (contacts.Contact, error)
	Conversation(ctx context.Context, tenantID, contactID, connectionID string) (contacts.Conversation, error)
	SetNeedsHuman(ctx context.Context, tenantID, conversationID string, needs bool) error
}

// SettingsLoader reads per-connection automation settings;
// *automations.Store implements it.
type SettingsLoader interface {
	Get(ctx context.Context, tenantID, connectionID, kind string, v any) (bool, error)
}

// Store is the cart recovery storage the activities need; *DB implements it.
type Store interface {
	RecordCheckout(ctx context.Context, rec CheckoutRecord) (CartState, error)
	Cart(ctx context.Context, ref CartRef) (Cart, error)
	SetContact(ctx context.Context, ref CartRef, contactID string) error
	RecordStep(ctx context.Context, rec StepRecord) error
	End(ctx context.Context, rec EndRecord) (Status, error)
	ApplyOrder(ctx context.Context, ref CartRef, order OrderInfo, tombstone bool) (Status, bool, error)
}

// Activities are the cart recovery workflow's activities. Every field is
// required by the worker; tests set only what they exercise.
type Activities struct {
	Store     Store
	Settings  SettingsLoader
	Invoker   Invoker
	Messenger Messenger
	Consent   ConsentChecker
	Inbox     Inbox
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (a *Activities) log() *slog.Logger { return cmp.Or(a.Logger, slog.Default()) }

// CheckoutRecord is a checkout to record on its cart's row.
type CheckoutRecord struct {
	CartRef
	Checkout commerce.Checkout `json:"checkout"`
	At       time.Time         `json:"at"`
}

// CartState is what recording a checkout found of its cart.
type CartState struct {
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// StepsDone is how many steps have a record (a run after a crashed one
	// goes on from there).
	StepsDone int `json:"steps_done"`
}

// StepRecord is the outcome of one step.
type StepRecord struct {
	CartRef
	Step   int        `json:"step"` // from 1
	Status StepStatus `json:"status"`
	Reason string     `json:"reason,omitempty"`
	// Detail explains Reason to people (a refusal's detail, the discount's
	// error).
	Detail       string    `json:"detail,omitempty"`
	MessageID    string    `json:"message_id,omitempty"`
	DiscountCode string    `json:"discount_code,omitempty"`
	At           time.Time `json:"at"`
}

// EndRecord ends an open cart without an order.
type EndRecord struct {
	CartRef
	Status   Status    `json:"status"` // ended or skipped
	Reason   string    `json:"reason"`
	OptedOut bool      `json:"opted_out,omitempty"`
	At       time.Time `json:"at"`
}

// OrderRecord attributes an order to a cart.
type OrderRecord struct {
	CartRef
	Order OrderInfo `json:"order"`
}

// PrepareInput asks whether a step may be sent now.
type PrepareInput struct {
	CartRef
	Step                    int       `json:"step"`
	RequireMarketingConsent bool      `json:"require_marketing_consent"`
	At                      time.Time `json:"at"`
}

// Actions a Preparation can decide.
const (
	ActionSend     = "send"
	ActionSkipStep = "skip_step" // record the step skipped, go on
	ActionSkipCart = "skip_cart" // the cart cannot be reached: skipped
	ActionEnd      = "end"       // the sequence ends (opted out, excluded)
	ActionDefer    = "defer"     // wait for DeferUntil, then try again
)

// Preparation is what Prepare decided for a step.
type Preparation struct {
	Action     string    `json:"action"`
	Reason     string    `json:"reason,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	DeferUntil time.Time `json:"defer_until,omitempty"`
}

// DiscountInput asks for a step's discount code.
type DiscountInput struct {
	CartRef
	Step     int      `json:"step"`
	Discount Discount `json:"discount"`
}

// SendInput is one step's message.
type SendInput struct {
	CartRef
	Step int `json:"step"`
	// Attempt numbers the sends of a step after quiet-hours refusals; it is
	// part of the idempotency key.
	Attempt             int         `json:"attempt,omitempty"`
	ChannelConnectionID string      `json:"channel_connection_id"`
	Template            TemplateRef `json:"template"`
	Code                string      `json:"code,omitempty"`
	NameFallback        string      `json:"name_fallback,omitempty"`
}

// SendOutcome is what became of a step's message. A send whose outcome the
// provider left unknown counts as sent: the ledger settles it, and sending
// again could reach the customer twice.
type SendOutcome struct {
	Sent bool `json:"sent"`
	// Status is StepSkipped for a refusal, StepFailed for the provider's
	// definite failure or a request that cannot be sent.
	Status     StepStatus `json:"status,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Detail     string     `json:"detail,omitempty"`
	MessageID  string     `json:"message_id,omitempty"`
	DeferUntil time.Time  `json:"defer_until,omitempty"`
	// At is when the send was asked of the messaging core: the cart's
	// contact time, which attribution compares the order's time with.
	At time.Time `json:"at,omitempty"`
}

// ReplyInput is a customer's reply to handle.
type ReplyInput struct {
	CartRef
	Reply ReplyEvent `json:"reply"`
}

// ReplyOutcome says whether the customer is opted out after replying (the
// reply was a STOP, recorded by the consent engine).
type ReplyOutcome struct {
	OptedOut bool `json:"opted_out"`
}

// SendKey is the messaging idempotency key of a step's send: the workflow
// id and the step, and the attempt after quiet-hours refusals.
func SendKey(ref CartRef, step, attempt int) string {
	k := ref.WorkflowID() + ":step" + strconv.Itoa(step)
	if attempt > 0 {
		k += ":retry" + strconv.Itoa(attempt)
	}
	return k
}

// DiscountKey is the idempotency key of a step's create_discount call.
func DiscountKey(ref CartRef, step int) string {
	return ref.WorkflowID() + ":step" + strconv.Itoa(step) + ":discount"
}

// RecordCheckout records a checkout on its cart's row (created when new).
func (a *Activities) RecordCheckout(ctx context.Context, rec CheckoutRecord) (CartState, error) {
	st, err := a.Store.RecordCheckout(ctx, rec)
	if err != nil {
		return CartState{}, fmt.Errorf("recording checkout %s: %w", rec.CheckoutID, err)
	}
	return st, nil
}

// LoadSettings returns the connection's cart recovery settings; absent or
// invalid settings come back disabled.
func (a *Activities) LoadSettings(ctx context.Context, ref CartRef) (Settings, error) {
	return loadSettings(ctx, a.Settings, ref.TenantID, ref.ConnectionID, a.log())
}

// SettingsFor returns a shop connection's stored cart recovery settings, or
// DefaultSettings (disabled) with stored false when it has none: what a
// settings screen shows before the merchant saves anything.
func SettingsFor(ctx context.Context, l SettingsLoader, tenantID, connectionID string) (s Settings, stored bool, err error) {
	ok, err := l.Get(ctx, tenantID, connectionID, SettingsKind, &s)
	if err != nil {
		return Settings{}, false, fmt.Errorf("loading cart recovery settings: %w", err)
	}
	if !ok {
		return DefaultSettings(), false, nil
	}
	return s, true, nil
}

func loadSettings(ctx context.Context, l SettingsLoader, tenantID, connectionID string, log *slog.Logger) (Settings, error) {
	var s Settings
	ok, err := l.Get(ctx, tenantID, connectionID, SettingsKind, &s)
	if err != nil {
		return Settings{}, fmt.Errorf("loading cart recovery settings: %w", err)
	}
	if !ok {
		return Settings{}, nil
	}
	if err := s.Validate(); err != nil {
		// The API validates before storing, so this is a document written
		// some other way; acting on half of it would be worse than not at all.
		log.WarnContext(ctx, "cart recovery settings are invalid; treated as disabled",
			"tenant", tenantID, "connection", connectionID, "error", err)
		return Settings{}, nil
	}
	return s, nil
}

// Prepare decides whether step may be sent now: the cart must have a valid
// phone, and the consent engine must allow the step's purpose (marketing when
// the step requires marketing consent, else utility, which still refuses
// opted-out and excluded numbers). Quiet hours defer.
func (a *Activities) Prepare(ctx context.Context, in PrepareInput) (Preparation, error) {
	cart, err := a.cart(ctx, in.CartRef)
	if err != nil {
		return Preparation{}, err
	}
	if cart.Phone == "" {
		return Preparation{Action: ActionSkipCart, Reason: cmp.Or(cart.PhoneProblem, commerce.PhoneMissing)}, nil
	}
	if !ValidPhone(cart.Phone) {
		return Preparation{Action: ActionSkipCart, Reason: commerce.PhoneInvalid}, nil
	}
	contact, err := a.Inbox.Resolve(ctx, in.TenantID, cart.Phone, contacts.ContactHints{Name: cart.Name()})
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return Preparation{Action: ActionSkipCart, Reason: commerce.PhoneInvalid, Detail: ve.Error()}, nil
	}
	if err != nil {
		return Preparation{}, fmt.Errorf("resolving the cart's contact: %w", err)
	}
	if contact.ID != cart.ContactID {
		if err := a.Store.SetContact(ctx, in.CartRef, contact.ID); err != nil {
			return Preparation{}, err
		}
	}
	purpose := consent.PurposeUtility
	if in.RequireMarketingConsent {
		purpose = consent.PurposeMarketing
	}
	dec, err := a.Consent.Check(ctx, consent.CheckRequest{TenantID: in.TenantID, ContactID: contact.ID,
		Phone: cart.Phone, Purpose: purpose, At: in.At})
	if err != nil {
		return Preparation{}, fmt.Errorf("checking consent: %w", err)
	}
	switch {
	case dec.Allowed:
		return Preparation{Action: ActionSend}, nil
	case dec.Reason == consent.ReasonQuietHours:
		return Preparation{Action: ActionDefer, Reason: dec.Reason, DeferUntil: dec.DeferUntil}, nil
	case dec.Reason == consent.ReasonNoMarketingConsent:
		return Preparation{Action: ActionSkipStep, Reason: dec.Reason}, nil
	default: // opted_out, excluded
		return Preparation{Action: ActionEnd, Reason: cmp.Or(dec.Reason, consent.ReasonOptedOut)}, nil
	}
}

// CreateDiscount creates the step's single-use discount code at the shop,
// restricted to the customer where the shop knows them. The key is the
// workflow id and the step, so a retry finds the same code.
func (a *Activities) CreateDiscount(ctx context.Context, in DiscountInput) (commerce.Discount, error) {
	cart, err := a.cart(ctx, in.CartRef)
	if err != nil {
		return commerce.Discount{}, err
	}
	params, err := json.Marshal(commerce.DiscountParams{
		Percent: in.Discount.Percent, ValidForSeconds: int64(in.Discount.ValidFor.D() / time.Second),
		CustomerID: cart.CustomerID, Email: cart.Email, Prefix: in.Discount.Prefix, Reference: in.CheckoutID,
	})
	if err != nil {
		return commerce.Discount{}, fmt.Errorf("encoding discount parameters: %w", err)
	}
	out, err := a.Invoker.Invoke(ctx, invoke.Call{TenantID: in.TenantID, ConnectionID: in.ConnectionID,
		Action: commerce.ActionCreateDiscount, Params: params, IdempotencyKey: DiscountKey(in.CartRef, in.Step)})
	if err != nil {
		return commerce.Discount{}, ActivityError(err)
	}
	var d commerce.Discount
	if err := json.Unmarshal(out, &d); err != nil || strings.TrimSpace(d.Code) == "" {
		return commerce.Discount{}, temporal.NewNonRetryableApplicationError(
			"the shop connector returned a discount without a code", ErrTypePermanent, err)
	}
	return d, nil
}

// Send sends the step's template to the cart's phone. Refusals and the
// provider's definite failures come back as the outcome, not as errors: they
// are recorded on the step, and retrying would only find the same ledger row.
func (a *Activities) Send(ctx context.Context, in SendInput) (SendOutcome, error) {
	cart, err := a.cart(ctx, in.CartRef)
	if err != nil {
		return SendOutcome{}, err
	}
	tmpl, missing := buildTemplate(in.Template, cart, in.Code, in.NameFallback)
	if missing != "" {
		return SendOutcome{Status: StepFailed, Reason: "missing_variable",
			Detail: fmt.Sprintf("the cart has no value for the template variable %s", missing)}, nil
	}
	at := time.Now().UTC()
	var text string
	if in.Template.Text != "" {
		text = textvars.Render(in.Template.Text, Values(cart, in.Code, in.NameFallback))
	}
	msg, err := a.Messenger.Send(ctx, messaging.SendRequest{TenantID: in.TenantID, ConnectionID: in.ChannelConnectionID,
		To: cart.Phone, Kind: messaging.KindTemplate, Template: tmpl, TextFallback: text, Purpose: messaging.PurposeMarketing,
		IdempotencyKey: SendKey(in.CartRef, in.Step, in.Attempt), Module: messaging.ModuleAutomations})
	var (
		ref *messaging.RefusedError
		fe  *messaging.FailedError
		ie  *messaging.InvalidError
	)
	switch {
	case err == nil:
		return SendOutcome{Sent: true, Status: StepSent, MessageID: msg.ID, At: at}, nil
	case errors.Is(err, messaging.ErrOutcomeUnknown):
		a.log().WarnContext(ctx, "cart recovery message outcome unknown; counted as sent", "cart", in.WorkflowID(), "step", in.Step, "message", msg.ID)
		return SendOutcome{Sent: true, Status: StepSent, MessageID: msg.ID, Reason: messaging.ReasonOutcomeUnknown, At: at}, nil
	case errors.As(err, &ref):
		return SendOutcome{Status: StepSkipped, Reason: ref.Reason, Detail: ref.Detail, MessageID: ref.MessageID, DeferUntil: ref.DeferUntil}, nil
	case errors.As(err, &fe):
		return SendOutcome{Status: StepFailed, Reason: fe.Reason, Detail: strings.TrimSpace(fe.Code + " " + fe.Detail), MessageID: fe.MessageID}, nil
	case errors.As(err, &ie):
		return SendOutcome{Status: StepFailed, Reason: "invalid_request", Detail: ie.Field + ": " + ie.Reason}, nil
	}
	return SendOutcome{}, ActivityError(fmt.Errorf("sending step %d: %w", in.Step, err))
}

// RecordStep records a step's outcome.
func (a *Activities) RecordStep(ctx context.Context, rec StepRecord) error {
	return a.Store.RecordStep(ctx, rec)
}

// End ends an open cart and returns its status (the final status it already
// had when it was no longer open).
func (a *Activities) End(ctx context.Context, rec EndRecord) (Status, error) {
	return a.Store.End(ctx, rec)
}

// ApplyOrder attributes an order to the cart and returns its status.
func (a *Activities) ApplyOrder(ctx context.Context, rec OrderRecord) (Status, error) {
	st, _, err := a.Store.ApplyOrder(ctx, rec.CartRef, rec.Order, false)
	return st, err
}

// HandleReply flags the customer's conversation on the number they wrote to
// as needing a human, and reports whether the customer is now opted out (a
// STOP is recorded by the consent engine's own route).
func (a *Activities) HandleReply(ctx context.Context, in ReplyInput) (ReplyOutcome, error) {
	contact, err := a.Inbox.Resolve(ctx, in.TenantID, in.Reply.From, contacts.ContactHints{})
	if err != nil {
		return ReplyOutcome{}, nonRetryableIfInvalid(fmt.Errorf("resolving the replying contact: %w", err))
	}
	conv, err := a.Inbox.Conversation(ctx, in.TenantID, contact.ID, in.Reply.ConnectionID)
	if err != nil {
		return ReplyOutcome{}, nonRetryableIfInvalid(fmt.Errorf("finding the conversation: %w", err))
	}
	if err := a.Inbox.SetNeedsHuman(ctx, in.TenantID, conv.ID, true); err != nil {
		return ReplyOutcome{}, nonRetryableIfInvalid(fmt.Errorf("flagging the conversation: %w", err))
	}
	dec, err := a.Consent.Check(ctx, consent.CheckRequest{TenantID: in.TenantID, ContactID: contact.ID,
		Phone: contact.Phone, Purpose: consent.PurposeMarketing})
	if err != nil {
		return ReplyOutcome{}, fmt.Errorf("checking consent after a reply: %w", err)
	}
	return ReplyOutcome{OptedOut: dec.Reason == consent.ReasonOptedOut}, nil
}

func (a *Activities) cart(ctx context.Context, ref CartRef) (Cart, error) {
	cart, err := a.Store.Cart(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return Cart{}, temporal.NewNonRetryableApplicationError("cart row not found", ErrTypeNotFound, err)
	}
	if err != nil {
		return Cart{}, fmt.Errorf("loading cart %s: %w", ref.CheckoutID, err)
	}
	return cart, nil
}

// nonRetryableIfInvalid makes not-found and validation errors final.
func nonRetryableIfInvalid(err error) error {
	var ve *store.ValidationError
	if errors.Is(err, store.ErrNotFound) || errors.As(err, &ve) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalid, err)
	}
	return err
}

// ValidPhone reports whether phone is a valid number in E.164.
func ValidPhone(phone string) bool {
	if !strings.HasPrefix(phone, "+") {
		return false
	}
	n, err := phonenumbers.Parse(phone, "")
	return err == nil && phonenumbers.IsValidNumber(n) && phonenumbers.Format(n, phonenumbers.E164) == phone
}

// Values returns the template variables of a cart; code is the step's
// discount code. Empty values are absent.
func Values(c Cart, code, nameFallback string) map[string]string {
	v := map[string]string{
		VarName:  cmp.Or(strings.TrimSpace(c.FirstName), nameFallback, "there"),
		VarItems: itemsText(c.Items),
		VarLink:  c.RecoveryURL,
		VarCode:  code,
	}
	if c.Total != "" {
		v[VarTotal] = strings.TrimSpace(c.Total + " " + c.Currency)
	}
	if u, err := url.Parse(c.RecoveryURL); err == nil && u.Host != "" {
		p := strings.TrimPrefix(u.EscapedPath(), "/")
		if u.RawQuery != "" {
			p += "?" + u.RawQuery
		}
		v[VarLinkPath] = p
	}
	for k, s := range v {
		if s == "" {
			delete(v, k)
		}
	}
	return v
}

// maxItemsText bounds the items variable: a template parameter is one line
// of a message, not the whole cart.
const maxItemsText = 200

// itemsText lists line items on one line ("Blue mug ×2, Red hat"); Meta
// refuses parameters with new lines or tabs.
func itemsText(items []commerce.LineItem) string {
	var parts []string
	for _, it := range items {
		s := strings.Join(strings.Fields(it.Title), " ")
		if vt := strings.Join(strings.Fields(it.VariantTitle), " "); vt != "" {
			s += " (" + vt + ")"
		}
		if it.Quantity > 1 {
			s += " ×" + strconv.Itoa(it.Quantity)
		}
		if s != "" {
			parts = append(parts, s)
		}
	}
	out := strings.Join(parts, ", ")
	if r := []rune(out); len(r) > maxItemsText {
		out = string(r[:maxItemsText-1]) + "…"
	}
	return out
}

// buildTemplate fills t's parameters from the cart. It returns the name of
// the first variable without a value instead, when there is one.
func buildTemplate(t TemplateRef, c Cart, code, nameFallback string) (*messaging.Template, string) {
	vals := Values(c, code, nameFallback)
	params := make([]string, len(t.Variables))
	for i, name := range t.Variables {
		v, ok := vals[name]
		if !ok {
			return nil, name
		}
		params[i] = v
	}
	out := &messaging.Template{Name: t.Template, Language: t.Language}
	if t.ButtonURLVariable == "" {
		out.Params = params
		return out, ""
	}
	suffix, ok := vals[t.ButtonURLVariable]
	if !ok {
		return nil, t.ButtonURLVariable
	}
	type param struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type component struct {
		Type       string  `json:"type"`
		SubType    string  `json:"sub_type,omitempty"`
		Index      string  `json:"index,omitempty"`
		Parameters []param `json:"parameters"`
	}
	var comps []component
	if len(params) > 0 {
		body := component{Type: "body"}
		for _, p := range params {
			body.Parameters = append(body.Parameters, param{Type: "text", Text: p})
		}
		comps = append(comps, body)
	}
	comps = append(comps, component{Type: "button", SubType: "url", Index: "0", Parameters: []param{{Type: "text", Text: suffix}}})
	b, _ := json.Marshal(comps) // plain strings: cannot fail
	out.Components = b
	return out, ""
}

// ActivityError turns a connector call's error into the activity's (see
// connerr.ActivityError).
func ActivityError(err error) error { return connerr.ActivityError(err) }
