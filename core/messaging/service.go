package messaging

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// Connector is the connector whose connections messaging sends through.
const Connector = "cloudapi"

// Cloud API connector actions. A reaction is [ActionSendReaction] on both
// connectors (declared with the linked-device actions): the Cloud API's takes
// to, message_id, emoji and ledger_id.
const (
	ActionSendText        = "send_text"
	ActionSendMedia       = "send_media"
	ActionSendTemplate    = "send_template"
	ActionSendInteractive = "send_interactive"
)

// Meta error codes the service decides on.
const (
	CodeOutsideWindow     = "131047"
	CodeUndeliverable     = "131026"
	CodeMarketingDeclined = "131050"
)

// Window is WhatsApp's customer-service window: free-form messages may go
// this long after the customer's last message.
const Window = 24 * time.Hour

// DefaultRecipientGap is the default pause between two messages to the same
// recipient: Meta's 6 s plus a margin for the jitter between our clock and
// the moment Meta sees each request.
const DefaultRecipientGap = 6*time.Second + 250*time.Millisecond

// Config configures a [Service].
type Config struct {
	// Pool holds the messages table. Required.
	Pool *pgxpool.Pool
	// Invoker calls the Cloud API connector. Required.
	Invoker Invoker
	// Consent checks consent, exclusions and quiet hours. Required.
	Consent Consent
	// Guard is the consent engine's STOP protocol. Required.
	Guard SendGuard
	// Templates looks templates up. Required for template sends.
	Templates Templates
	// Directory resolves recipients; default a SQLDirectory on Pool.
	Directory Directory
	// Channels reads connections; default a SQLChannels on Pool.
	Channels Channels
	// Clock defaults to the real one.
	Clock Clock
	// RecipientGap is the least time between two messages to the same
	// recipient from one number (default DefaultRecipientGap).
	RecipientGap time.Duration
	// Pacing reads linked-device numbers' pacing; nil means
	// DefaultLinkedPacing for every number.
	Pacing PacingSource
	// Numbers chooses numbers for sends bound to any number and reads the
	// module switches; default a SQLNumbers on Pool.
	Numbers Numbers
	// NewContacts counts linked-device numbers' first contacts; default a
	// SQLNewContacts on Pool.
	NewContacts NewContactCounter
	// MaxInFlight bounds the sends between their consent lock and the
	// provider's answer (default half of Pool's connections, at least 1).
	// Each holds a connection for the lock while the provider call needs
	// another (the invoker reads the connection's config), so without a bound
	// a burst of sends could take every connection and wait for one forever.
	MaxInFlight int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service sends messages and keeps the ledger. It is safe for concurrent use.
type Service struct {
	ledger      ledgerStore
	invoker     Invoker
	consent     Consent
	guard       SendGuard
	templates   Templates
	dir         Directory
	channels    Channels
	clock       Clock
	pacer       *Pacer
	linked      *linkedPacer
	pacing      PacingSource
	newContacts NewContactCounter
	numbers     Numbers
	// fromMe tells whether a WhatsApp message id on a connection is one the
	// number sent; nil answers false (the unit tests' in-memory ledger).
	fromMe func(ctx context.Context, tenantID, connectionID, wamid string) (bool, error)
	log    *slog.Logger

	closeFn  func()
	inFlight chan struct{} // a slot per send under the consent lock
	// groups takes new sends through the consent hold in groups; nil when
	// the guard cannot (the unit tests' fakes), and then each send holds
	// on its own.
	groups *holdGrouper

	tmplMu    sync.Mutex
	tmplCache map[templateKey]cachedTemplate
}

// ledgerStore is the ledger as the service uses it; *ledger implements it on
// Postgres, and the unit tests keep one in memory.
type ledgerStore interface {
	get(ctx context.Context, tenantID, id string) (Message, error)
	byKey(ctx context.Context, tenantID, key string) (Message, bool, error)
	insert(ctx context.Context, m Message) (Message, bool, error)
	claim(ctx context.Context, tenantID, id string) (Message, bool, error)
	settle(ctx context.Context, tenantID, id string, status Status, reason, code, detail string, deferUntil *time.Time) (Message, error)
	markSent(ctx context.Context, tenantID, id, wamid string, at time.Time) (Message, error)
	markFailed(ctx context.Context, tenantID, id, reason, code, detail string, at time.Time) (Message, error)
	note(ctx context.Context, tenantID, id, reason, code, detail string) error
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil || cfg.Invoker == nil || cfg.Consent == nil || cfg.Guard == nil {
		return nil, errors.New("messaging: Pool, Invoker, Consent and Guard are required")
	}
	if cfg.Directory == nil {
		cfg.Directory = NewSQLDirectory(cfg.Pool)
	}
	if cfg.Channels == nil {
		cfg.Channels = NewSQLChannels(cfg.Pool, 0)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = max(int(cfg.Pool.Config().MaxConns)/2, 1)
	}
	if cfg.Numbers == nil {
		cfg.Numbers = SQLNumbers{Pool: cfg.Pool}
	}
	if cfg.NewContacts == nil {
		cfg.NewContacts = SQLNewContacts{Pool: cfg.Pool}
	}
	l := &ledger{pool: cfg.Pool, sent: newSentWriter(cfg.Pool)}
	s := newService(cfg, l)
	slots := SQLSlots{Pool: cfg.Pool}
	s.pacer.ShareThroughput(slots)
	s.linked.slots = slots
	s.closeFn = l.sent.close
	if g, ok := cfg.Guard.(GroupGuard); ok {
		s.groups = newHoldGrouper(s, g)
		s.closeFn = func() {
			s.groups.close()
			l.sent.close()
		}
	}
	s.fromMe = func(ctx context.Context, tenantID, connectionID, wamid string) (bool, error) {
		var out bool
		err := cfg.Pool.QueryRow(ctx, `SELECT direction = 'out' FROM messages
			WHERE connection_id = $1 AND provider_message_id = $2 AND tenant_id = $3`, connectionID, wamid, tenantID).Scan(&out)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil // a message we never saw: most likely the contact's
		}
		if err != nil {
			return false, fmt.Errorf("reading the message reacted to: %w", err)
		}
		return out, nil
	}
	return s, nil
}

// Close stops the background writers; call it after the last Send returned.
// Sends after Close still work, writing each record on its own.
func (s *Service) Close() {
	if s.closeFn != nil {
		s.closeFn()
	}
}

func newService(cfg Config, l ledgerStore) *Service {
	clock := cfg.Clock
	if clock == nil {
		clock = realClock{}
	}
	return &Service{
		ledger:      l,
		invoker:     cfg.Invoker,
		consent:     cfg.Consent,
		guard:       cfg.Guard,
		templates:   cfg.Templates,
		dir:         cfg.Directory,
		channels:    cfg.Channels,
		clock:       clock,
		pacer:       NewPacer(clock, cmp.Or(cfg.RecipientGap, DefaultRecipientGap)),
		linked:      newLinkedPacer(clock),
		pacing:      cfg.Pacing,
		newContacts: cfg.NewContacts,
		numbers:     cfg.Numbers,
		tmplCache:   map[templateKey]cachedTemplate{},
		inFlight:    make(chan struct{}, cmp.Or(cfg.MaxInFlight, 64)),
		log:         cmp.Or(cfg.Logger, slog.Default()),
	}
}

// Get returns a tenant's message, or an error wrapping ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Message, error) {
	return s.ledger.get(ctx, tenantID, id)
}

// content is what an outbound row's content column holds: everything needed
// to make (or re-make, for a deferred row) the provider call.
type content struct {
	To          string          `json:"to"`
	Text        string          `json:"text,omitempty"`
	PreviewURL  bool            `json:"preview_url,omitempty"`
	Media       *Media          `json:"media,omitempty"`
	Template    *Template       `json:"template,omitempty"`
	Interactive json.RawMessage `json:"interactive,omitempty"`
	ReplyTo     string          `json:"reply_to,omitempty"`
	Reaction    *Reaction       `json:"reaction,omitempty"`
	// FromMe says the reacted-to message is one the number sent.
	FromMe bool `json:"from_me,omitempty"`
	// AllowDefer is kept so a re-attempt of a deferred row defers again if
	// it still falls in quiet hours.
	AllowDefer bool `json:"allow_defer,omitempty"`
	// Module is kept so a re-attempt checks the number's switch again.
	Module Module `json:"module,omitempty"`
}

// plan is a send resolved and ready to check.
type plan struct {
	row     Message // the ledger row to write (or, when existing, the one written)
	c       content
	kind    Kind
	rcpt    Recipient
	channel Channel
	tmpl    *TemplateInfo // for template sends; nil with tmplErr when unknown
	tmplErr error
	// existing marks a re-attempt of a queued or deferred row.
	existing bool
	// turn, when set, is the recipient's turn taken by pace for a send that
	// goes through a group: the number's throughput token is taken in the
	// group, right before the call (see Pacer.WaitRecipient).
	turn *Turn
}

var (
	e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	mediaTypes  = map[string]bool{"image": true, "audio": true, "video": true, "document": true, "sticker": true}
)

const (
	maxIdempotencyKey = 255
	maxTextLen        = 4096
	maxCaptionLen     = 1024
)

// validate checks a request's shape; it needs nothing but the request.
func validate(req *SendRequest) error {
	bad := func(field, reason string) error { return &InvalidError{Field: field, Reason: reason} }
	switch {
	case req.TenantID == "":
		return bad("tenant_id", "is required")
	case req.IdempotencyKey == "":
		return bad("idempotency_key", "is required")
	case len(req.IdempotencyKey) > maxIdempotencyKey:
		return bad("idempotency_key", "is longer than 255 bytes")
	case req.To == "" && req.ContactID == "":
		return bad("to", "give the recipient's phone or contact_id")
	case req.To != "" && req.ContactID != "":
		return bad("to", "give either to or contact_id, not both")
	case req.To != "" && !e164Pattern.MatchString(req.To):
		return bad("to", "must be an E.164 phone number, e.g. +393331234567")
	}
	switch req.Purpose {
	case "", PurposeMarketing, PurposeUtility, PurposeAuthentication, PurposeService:
	default:
		return bad("purpose", "must be marketing, utility, authentication or service")
	}
	switch req.Kind {
	case KindText, KindMedia, KindTemplate, KindInteractive, KindReaction:
	default:
		return bad("kind", "must be text, media, template, interactive or reaction")
	}
	if req.Kind != KindText && req.Text != "" {
		return bad("text", "is only for text messages")
	}
	switch req.Kind {
	case KindText:
		if req.Text == "" {
			return bad("text", "is required for a text message")
		}
		if utf8.RuneCountInString(req.Text) > maxTextLen {
			return bad("text", "is longer than 4096 characters")
		}
	case KindMedia:
		m := req.Media
		if m == nil {
			return bad("media", "is required for a media message")
		}
		if !mediaTypes[m.Type] {
			return bad("media.type", "must be image, audio, video, document or sticker")
		}
		if u, err := url.Parse(m.Link); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("media.link", "must be an http(s) URL")
		}
		if utf8.RuneCountInString(m.Caption) > maxCaptionLen {
			return bad("media.caption", "is longer than 1024 characters")
		}
	case KindTemplate:
		t := req.Template
		if t == nil || t.Name == "" || t.Language == "" {
			return bad("template", "name and language are required for a template message")
		}
		if utf8.RuneCountInString(req.TextFallback) > maxTextLen {
			return bad("text_fallback", "is longer than 4096 characters")
		}
		if len(t.Params) > 0 && len(t.Components) > 0 {
			return bad("template", "give params or components, not both")
		}
		if len(t.Components) > 0 && !json.Valid(t.Components) {
			return bad("template.components", "is not valid JSON")
		}
		if req.ReplyTo != "" {
			return bad("reply_to", "templates cannot quote a message")
		}
	case KindInteractive:
		var obj map[string]any
		if len(req.Interactive) == 0 || json.Unmarshal(req.Interactive, &obj) != nil {
			return bad("interactive", "must be a JSON object for an interactive message")
		}
	case KindReaction:
		r := req.Reaction
		switch {
		case r == nil || r.MessageID == "":
			return bad("reaction.message_id", "is required for a reaction")
		case len(r.MessageID) > 128:
			return bad("reaction.message_id", "is longer than 128 bytes")
		case r.Emoji != "" && !whatsapp.IsEmoji(r.Emoji):
			return bad("reaction.emoji", "must be one emoji (or empty to remove the reaction)")
		case req.ReplyTo != "":
			return bad("reply_to", "a reaction cannot quote a message")
		}
	default:
		return bad("kind", "must be text, media, template, interactive or reaction")
	}
	return nil
}

// Send sends one message (see the package documentation for the order of
// checks and the ledger's guarantees).
//
// It returns the ledger row and:
//   - nil when the provider accepted it (status sent, or further along when
//     status webhooks were quicker), or when it was deferred past quiet hours
//     (status deferred) or queued after a rate limit outlasting ctx (status
//     queued): the Scheduler sends those later;
//   - *RefusedError when it was refused (status refused);
//   - *FailedError when the provider refused it for good (status failed);
//   - an error wrapping ErrOutcomeUnknown when the call's outcome is unknown
//     (status sending until a status webhook or the Reconciler settles it);
//   - *InvalidError for a request that cannot be sent (nothing recorded);
//   - ctx's error when ctx ended while waiting for the send's turn, before
//     anything was recorded or sent: retrying with the same key is safe.
//
// A repeated Send with an idempotency key already used returns the first
// send's row (and its refusal or failure) without calling the provider.
func (s *Service) Send(ctx context.Context, req SendRequest) (Message, error) {
	if err := validate(&req); err != nil {
		return Message{}, err
	}
	p, err := s.plan(ctx, req)
	if err != nil {
		// A repeated request answers with its row even when it could not
		// be planned now (its connection since disabled, say).
		if m, ok, kerr := s.ledger.byKey(ctx, req.TenantID, req.IdempotencyKey); kerr == nil && ok {
			return m, replayError(m)
		}
		return Message{}, err
	}
	if !s.grouped(&p) {
		if m, ok, err := s.ledger.byKey(ctx, req.TenantID, req.IdempotencyKey); err != nil {
			return Message{}, err
		} else if ok {
			return m, replayError(m)
		}
	}
	// A grouped send finds a repeated key where it would write its row (a
	// refusal's insert or the group's), answering with the existing row;
	// pace looks the key up first only when the recipient's turn would make
	// it wait, so a repeated request never waits for a turn. That saves a
	// statement and a round trip on every new send.
	return s.run(ctx, p)
}

// replayFound is pace's answer when the send's idempotency key is already
// taken: the row holding it, to answer with instead of waiting for a turn.
type replayFound struct{ m Message }

func (r *replayFound) Error() string { return "idempotency key already used by message " + r.m.ID }

// replayError is what a repeated Send reports for an existing row: the
// refusal or the provider's refusal the first Send reported, nil otherwise.
func replayError(m Message) error {
	switch {
	case m.Status == StatusRefused:
		return &RefusedError{Reason: m.StatusReason, Detail: m.ErrorDetail, MessageID: m.ID}
	case m.Status == StatusFailed && m.SentAt == nil:
		return &FailedError{Reason: m.StatusReason, Code: m.ErrorCode, Detail: m.ErrorDetail, MessageID: m.ID}
	}
	return nil
}

// plan resolves a request's connection, recipient and template.
func (s *Service) plan(ctx context.Context, req SendRequest) (plan, error) {
	if req.ConnectionID == "" {
		if s.numbers == nil {
			return plan{}, &InvalidError{Field: "connection_id", Reason: "is required"}
		}
		cloudOnly := req.Kind == KindInteractive || (req.Kind == KindTemplate && req.TextFallback == "")
		id, err := s.numbers.Choose(ctx, req.TenantID, req.Module, cloudOnly)
		if isNotFound(err) {
			return plan{}, &InvalidError{Field: "connection_id", Reason: "none of the tenant's numbers can send this message now (no connected linked device, no Cloud API number)"}
		}
		if err != nil {
			return plan{}, err
		}
		req.ConnectionID = id
	}
	ch, err := s.channels.Channel(ctx, req.TenantID, req.ConnectionID)
	if isNotFound(err) {
		return plan{}, &InvalidError{Field: "connection_id", Reason: "no such connection"}
	}
	if err != nil {
		return plan{}, err
	}
	if ch.Connector != Connector && ch.Connector != ConnectorLinkedDevice {
		return plan{}, &InvalidError{Field: "connection_id", Reason: "the connection is not a WhatsApp number"}
	}
	if ch.Connector == ConnectorLinkedDevice && req.Kind == KindTemplate && req.TextFallback != "" {
		// A linked device sends the template's text instead.
		req.Kind, req.Text, req.Template = KindText, req.TextFallback, nil
	}
	if ch.Connector == ConnectorLinkedDevice && (req.Kind == KindTemplate || req.Kind == KindInteractive) {
		return plan{}, &InvalidError{Field: "kind", Reason: "a linked-device number sends text, media and reactions; templates and interactive messages are Cloud API features (give a template send a text_fallback to send it from a linked device)"}
	}
	if ch.Status != store.StatusActive {
		return plan{}, &InvalidError{Field: "connection_id", Reason: "the connection is " + ch.Status}
	}
	rcpt, err := s.dir.Recipient(ctx, req.TenantID, req.ConnectionID, req.To, req.ContactID)
	if isNotFound(err) {
		return plan{}, &InvalidError{Field: "contact_id", Reason: "no such contact"}
	}
	if err != nil {
		return plan{}, err
	}
	to, err := recipientAddress(rcpt, ch.Connector == ConnectorLinkedDevice)
	if err != nil {
		return plan{}, err
	}
	c := content{
		To: to, Text: req.Text, PreviewURL: req.PreviewURL, Media: req.Media, Template: req.Template,
		Interactive: req.Interactive, ReplyTo: req.ReplyTo, Reaction: req.Reaction, AllowDefer: req.AllowDefer, Module: req.Module,
	}
	if req.Kind == KindReaction {
		out, err := s.sentByUs(ctx, req.TenantID, req.ConnectionID, req.Reaction.MessageID)
		if err != nil {
			return plan{}, err
		}
		c.FromMe = out
	}
	body, err := json.Marshal(c)
	if err != nil {
		return plan{}, fmt.Errorf("encoding message content: %w", err)
	}
	p := plan{
		c: c, kind: req.Kind, rcpt: rcpt, channel: ch,
		row: Message{
			ID: store.NewID("msg"), TenantID: req.TenantID, ConnectionID: req.ConnectionID,
			ConversationID: rcpt.ConversationID, ContactID: rcpt.ContactID, To: to, Direction: "out",
			Kind: storedKind(req.Kind, req.Media), Content: body, Purpose: cmp.Or(req.Purpose, PurposeService),
			IdempotencyKey: req.IdempotencyKey, AuthorID: req.AuthorID,
		},
	}
	if ch.Connector == ConnectorLinkedDevice {
		// Fixed before the call, so a receipt finds the row whatever happens.
		p.row.ProviderMessageID = LinkedMessageID(p.row.ID)
	}
	if err := s.lookupTemplate(ctx, &p); err != nil {
		return plan{}, err
	}
	return p, nil
}

// linked reports whether the plan sends from a linked-device number.
func (p *plan) linked() bool { return p.channel.Connector == ConnectorLinkedDevice }

// lookupTemplate reads a template send's template; its category becomes the
// send's purpose. A missing one is recorded on the plan, refused in turn.
func (s *Service) lookupTemplate(ctx context.Context, p *plan) error {
	if p.kind != KindTemplate {
		return nil
	}
	if s.templates == nil {
		return errors.New("messaging: no template registry configured")
	}
	t, err := s.template(ctx, p.row.TenantID, p.row.ConnectionID, p.c.Template.Name, p.c.Template.Language)
	switch {
	case isNotFound(err):
		p.tmplErr = err
	case err != nil:
		return fmt.Errorf("looking up template %s/%s: %w", p.c.Template.Name, p.c.Template.Language, err)
	default:
		p.tmpl = &t
		switch Purpose(t.Category) {
		case PurposeMarketing, PurposeUtility, PurposeAuthentication:
			p.row.Purpose = Purpose(t.Category)
		}
	}
	return nil
}

// templateTTL is how long an approved template is trusted without asking
// again. A campaign sends one template thousands of times a second; a
// template paused meanwhile is refused by the provider anyway (and recorded
// as failed), and the cache only ever holds approved ones, so a template that
// is not approved is always refused before any call.
const templateTTL = 2 * time.Second

type templateKey struct{ tenant, conn, name, lang string }

type cachedTemplate struct {
	info    TemplateInfo
	expires time.Time
}

func (s *Service) template(ctx context.Context, tenantID, connID, name, lang string) (TemplateInfo, error) {
	key := templateKey{tenantID, connID, name, lang}
	now := time.Now()
	s.tmplMu.Lock()
	c, ok := s.tmplCache[key]
	s.tmplMu.Unlock()
	if ok && now.Before(c.expires) {
		return c.info, nil
	}
	t, err := s.templates.Template(ctx, tenantID, connID, name, lang)
	if err == nil && t.Status == "approved" {
		s.tmplMu.Lock()
		if len(s.tmplCache) > 10000 {
			clear(s.tmplCache) // bounded; refilled on demand
		}
		s.tmplCache[key] = cachedTemplate{info: t, expires: now.Add(templateTTL)}
		s.tmplMu.Unlock()
	}
	return t, err
}

// storedKind is the kind column: a media message is stored as its media type.
func storedKind(k Kind, m *Media) string {
	if k == KindMedia && m != nil {
		return m.Type
	}
	return string(k)
}

// requestKind recovers the request kind of a stored row.
func requestKind(stored string) Kind {
	if mediaTypes[stored] {
		return KindMedia
	}
	return Kind(stored)
}

func isNotFound(err error) bool {
	return err != nil && (errors.Is(err, ErrNotFound) || errors.Is(err, store.ErrNotFound))
}

// check runs the checks that come before pacing, in their order: consent and
// exclusion, quiet hours (both from the consent engine), the 24-hour window,
// the template's state. It returns the refusal, or nil when the send may go.
//
// Consent is asked here only when the window or the template refuses the
// send, to report the reason that comes first. A send that passes is checked
// for consent once, under the consent engine's lock right before the provider
// call (attempt): the same answer a check here would give, or a fresher one,
// for one query instead of two.
func (s *Service) check(ctx context.Context, p *plan, now time.Time) (*RefusedError, error) {
	ref, err := s.checkWindowAndTemplate(p, now)
	if err != nil {
		return nil, err
	}
	if ref == nil && p.c.Module != "" && s.numbers != nil {
		on, err := s.numbers.ModuleEnabled(ctx, p.row.TenantID, p.row.ConnectionID, p.c.Module)
		if err != nil {
			return nil, err
		}
		if !on {
			ref = &RefusedError{Reason: ReasonModuleDisabled,
				Detail: fmt.Sprintf("the number has %s switched off", p.c.Module)}
		}
	}
	if ref == nil && p.linked() {
		if ref, err = s.checkLinked(ctx, p, now); err != nil {
			return nil, err
		}
	}
	if ref == nil {
		return nil, nil
	}
	dec, err := s.consent.Check(ctx, ConsentQuery{TenantID: p.row.TenantID, ContactID: p.rcpt.ContactID,
		Phone: p.rcpt.Phone, Purpose: p.row.Purpose, At: now})
	if err != nil {
		return nil, fmt.Errorf("checking consent: %w", err)
	}
	if !dec.Allowed {
		return consentRefusal(dec), nil
	}
	return ref, nil
}

func (s *Service) checkWindowAndTemplate(p *plan, now time.Time) (*RefusedError, error) {
	if p.kind != KindTemplate && !p.linked() {
		if p.rcpt.LastInboundAt == nil || !now.Before(p.rcpt.LastInboundAt.Add(Window)) {
			return &RefusedError{Reason: ReasonOutsideWindow,
				Detail: "the customer has not written in the last 24 hours; only an approved template may be sent"}, nil
		}
	}
	if p.kind == KindTemplate {
		if p.tmpl == nil {
			return &RefusedError{Reason: ReasonTemplateNotFound,
				Detail: fmt.Sprintf("the number has no template %s in language %s", p.c.Template.Name, p.c.Template.Language)}, nil
		}
		if p.tmpl.Status != "approved" {
			return &RefusedError{Reason: ReasonTemplateNotApproved,
				Detail: fmt.Sprintf("template %s/%s is %s", p.c.Template.Name, p.c.Template.Language, p.tmpl.Status)}, nil
		}
		if n := len(p.c.Template.Params); n > 0 && n != p.tmpl.Parameters {
			return nil, &InvalidError{Field: "template.params",
				Reason: fmt.Sprintf("template %s takes %d parameters, got %d", p.c.Template.Name, p.tmpl.Parameters, n)}
		}
	}
	return nil, nil
}

func consentRefusal(dec ConsentDecision) *RefusedError {
	r := &RefusedError{Reason: cmp.Or(dec.Reason, ReasonOptedOut), DeferUntil: dec.DeferUntil}
	switch r.Reason {
	case ReasonNoMarketingConsent:
		r.Detail = "the contact has not opted in to marketing messages"
	case ReasonOptedOut:
		r.Detail = "the contact opted out"
	case ReasonExcluded:
		r.Detail = "the number is on the tenant's exclusion list"
	case ReasonQuietHours:
		r.Detail = "inside the tenant's quiet hours; they end at " + dec.DeferUntil.UTC().Format(time.RFC3339)
	}
	return r
}

// run takes a planned send through the checks, pacing, the guarded consent
// re-check, the ledger write and the provider call.
func (s *Service) run(ctx context.Context, p plan) (Message, error) {
	ref, err := s.check(ctx, &p, s.clock.Now())
	if err != nil {
		return Message{}, err
	}
	if ref != nil {
		return s.refuse(ctx, p, ref)
	}
	for {
		if err := s.pace(ctx, &p); err != nil {
			if r, ok := err.(*replayFound); ok {
				return r.m, replayError(r.m)
			}
			if p.row.Status == StatusSending {
				// Throttled earlier in this loop: the row is written but
				// nothing was sent; queue it for the Scheduler.
				now := s.clock.Now()
				m, serr := s.ledger.settle(context.WithoutCancel(ctx), p.row.TenantID, p.row.ID, StatusQueued, ReasonRateLimited, p.row.ErrorCode, p.row.ErrorDetail, &now)
				if serr != nil {
					return p.row, serr
				}
				return m, nil
			}
			if p.existing {
				return p.row, fmt.Errorf("waiting for the send's turn: %w", err)
			}
			// Nothing recorded, nothing sent: the caller may retry with the
			// same idempotency key.
			return Message{}, fmt.Errorf("waiting for the send's turn: %w", err)
		}
		m, retryAfter, err := s.attempt(ctx, &p)
		if retryAfter == 0 {
			return m, err
		}
		// Throttled: nothing was sent. Wait it out if the caller's deadline
		// allows, else leave the row queued for the Scheduler.
		now := s.clock.Now()
		if dl, ok := ctx.Deadline(); !ok || retryAfter < time.Until(dl) {
			s.log.DebugContext(ctx, "messaging: provider throttled; retrying", "message", m.ID, "retry_after", retryAfter)
			if err := s.clock.Sleep(ctx, retryAfter); err == nil {
				continue
			}
		}
		until := now.Add(retryAfter)
		m, err = s.ledger.settle(context.WithoutCancel(ctx), m.TenantID, m.ID, StatusQueued, ReasonRateLimited, m.ErrorCode, m.ErrorDetail, &until)
		return m, err
	}
}

// pace waits the send's turn: the number's throughput and the recipient
// gap, or a linked-device number's own pacing. A first attempt that goes
// through a group waits here for the recipient alone; the group takes its
// throughput token right before the call.
func (s *Service) pace(ctx context.Context, p *plan) error {
	if p.linked() {
		return s.paceLinked(ctx, p)
	}
	if s.grouped(p) {
		turn, err := s.pacer.WaitRecipient(ctx, p.row.ConnectionID, p.c.To, func() error {
			// Before waiting for the turn: a repeated request answers now.
			m, ok, err := s.ledger.byKey(ctx, p.row.TenantID, p.row.IdempotencyKey)
			if err != nil {
				return err
			}
			if ok {
				return &replayFound{m: m}
			}
			return nil
		})
		if err != nil {
			return err
		}
		p.turn = &turn
		return nil
	}
	return s.pacer.Wait(ctx, p.row.ConnectionID, p.c.To, p.channel.Tier)
}

// grouped reports whether the plan's next attempt goes through a group: a
// new send (not a re-attempt, not a retry after throttling) from a Cloud
// API number, with groups on.
func (s *Service) grouped(p *plan) bool {
	return s.groups != nil && !p.existing && p.row.Status != StatusSending && !p.linked()
}

// refuse records a refusal (or a deferral past quiet hours) and reports it.
func (s *Service) refuse(ctx context.Context, p plan, ref *RefusedError) (Message, error) {
	status := StatusRefused
	var until *time.Time
	if (ref.Reason == ReasonQuietHours || ref.Reason == ReasonNewContactLimit) && p.c.AllowDefer && !ref.DeferUntil.IsZero() {
		status = StatusDeferred
		t := ref.DeferUntil
		until = &t
	}
	var m Message
	var err error
	if p.existing {
		m, err = s.ledger.settle(ctx, p.row.TenantID, p.row.ID, status, ref.Reason, "", ref.Detail, until)
	} else {
		row := p.row
		row.Status, row.StatusReason, row.ErrorDetail, row.DeferredUntil = status, ref.Reason, ref.Detail, until
		if status == StatusRefused {
			row.ProviderMessageID = "" // never sent: no WhatsApp id
		}
		var created bool
		m, created, err = s.ledger.insert(ctx, row)
		if err == nil && !created {
			return m, replayError(m)
		}
	}
	if err != nil {
		return Message{}, err
	}
	if status == StatusDeferred {
		return m, nil
	}
	ref.MessageID = m.ID
	return m, ref
}

// attempt is one try: the ledger row in status sending (committed before
// anything else), then, under the consent engine's STOP protocol, the consent
// check once more (the last step before the call) and the provider call, and
// finally the record of its outcome. A non-zero retryAfter means the
// provider throttled the call and nothing was sent.
//
// With a GroupGuard, a new row is committed with the rows of the sends that
// arrived with it, in the round trip that takes their hold (holdGrouper).
// Otherwise the row is written before Hold, not inside it: Hold keeps a connection for its lock, and a send that
// needed a second one while holding the first could starve the pool under
// load (every connection held by a send waiting for another). Inside Hold a
// send touches the database only through the held transaction.
func (s *Service) attempt(ctx context.Context, p *plan) (m Message, retryAfter time.Duration, err error) {
	insertWithHold := false
	switch {
	case p.row.Status == StatusSending:
		// A retry after a rate limit: the row is already ours.
	case p.existing:
		row, ok, err := s.ledger.claim(ctx, p.row.TenantID, p.row.ID)
		if err != nil {
			return p.row, 0, err
		}
		if !ok {
			got, err := s.ledger.get(ctx, p.row.TenantID, p.row.ID)
			if err != nil {
				return Message{}, 0, err
			}
			return got, 0, replayError(got)
		}
		p.row = row
	case s.grouped(p):
		insertWithHold = true
	default:
		row := p.row
		row.Status = StatusSending
		got, created, err := s.ledger.insert(ctx, row)
		if err != nil {
			return Message{}, 0, err
		}
		if !created {
			return got, 0, replayError(got)
		}
		p.row = got
	}

	var (
		refusal *RefusedError
		called  bool
		out     json.RawMessage
		callErr error
		holdErr error
	)
	select {
	case s.inFlight <- struct{}{}:
	case <-ctx.Done():
		if insertWithHold {
			// Nothing recorded, nothing sent: the caller may retry.
			return Message{}, 0, fmt.Errorf("waiting for a send slot: %w", ctx.Err())
		}
		holdErr = ctx.Err()
	}
	if holdErr == nil && insertWithHold {
		r := s.groups.hold(ctx, p)
		<-s.inFlight
		switch {
		case r.writeErr != nil:
			return Message{}, 0, r.writeErr
		case r.paceErr != nil:
			// The caller gave up waiting for the number's throughput: the
			// row is written, nothing was sent; queue it for the Scheduler.
			now := s.clock.Now()
			m, err := s.ledger.settle(context.WithoutCancel(ctx), r.row.TenantID, r.row.ID, StatusQueued, ReasonRateLimited, "", "", &now)
			if err != nil {
				return r.row, 0, err
			}
			return m, 0, nil
		case r.existing:
			// The key was taken by an earlier or concurrent Send: its row
			// is the answer, and nothing was called for this one.
			got, err := keyHolder(ctx, s.ledger, p.row.TenantID, p.row.IdempotencyKey)
			if err != nil {
				return Message{}, 0, err
			}
			return got, 0, replayError(got)
		}
		p.row = r.row
		refusal, called, out, callErr, holdErr = r.refusal, r.called, r.out, r.callErr, r.holdErr
	} else if holdErr == nil {
		holdErr = s.hold(ctx, p, &refusal, &called, &out, &callErr)
		<-s.inFlight
	}
	// Record what came of it even if ctx ended meanwhile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case refusal != nil:
		p.existing = true // the row exists now; settle it
		m, err := s.refuse(rctx, *p, refusal)
		return m, 0, err
	case holdErr != nil && !called:
		// Nothing was sent (the lock or the check failed): put the row back
		// in the queue rather than leave it to look ambiguous.
		now := s.clock.Now()
		if _, err := s.ledger.settle(rctx, p.row.TenantID, p.row.ID, StatusQueued, "consent_check_failed", "", truncate(holdErr.Error()), &now); err != nil {
			s.log.ErrorContext(ctx, "messaging: requeueing a send", "message", p.row.ID, "error", err)
		}
		return p.row, 0, holdErr
	}
	return s.record(rctx, p, out, callErr)
}

// hold is the guarded part of attempt: the last consent check and the call.
func (s *Service) hold(ctx context.Context, p *plan, refusal **RefusedError, called *bool, out *json.RawMessage, callErr *error) error {
	dec, err := s.guard.HoldCheck(ctx, ConsentQuery{TenantID: p.row.TenantID, ContactID: p.rcpt.ContactID,
		Phone: p.rcpt.Phone, Purpose: p.row.Purpose, At: s.clock.Now()}, func(gctx context.Context) error {
		*called = true
		*out, *callErr = s.call(gctx, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking consent: %w", err)
	}
	if !dec.Allowed {
		*refusal = consentRefusal(dec)
	}
	return nil
}

// call makes the provider call for the plan's row.
func (s *Service) call(ctx context.Context, p *plan) (json.RawMessage, error) {
	action, params := actionParams(p.kind, p.c, p.row.ID)
	if p.linked() {
		action, params = linkedParams(p.kind, p.c, p.row.ID)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, sdk.Invalid("encoding %s parameters: %v", action, err)
	}
	return s.invoker.Invoke(ctx, invoke.Call{
		TenantID: p.row.TenantID, ConnectionID: p.row.ConnectionID, Action: action, Params: raw,
		IdempotencyKey: p.row.ID,
	})
}

// actionParams builds the Cloud API connector's action and parameters.
func actionParams(k Kind, c content, ledgerID string) (string, map[string]any) {
	params := map[string]any{"to": c.To, "ledger_id": ledgerID}
	if c.ReplyTo != "" && k != KindTemplate && k != KindReaction {
		params["reply_to"] = c.ReplyTo
	}
	switch k {
	case KindReaction:
		// The emoji goes even when empty: that removes the reaction. The
		// ledger id rides along as biz_opaque_callback_data, so the one
		// status webhook Meta sends for a reaction (sent, or failed with
		// 131009 for a message it cannot react to) settles this row.
		params["message_id"], params["emoji"] = c.Reaction.MessageID, c.Reaction.Emoji
		return ActionSendReaction, params
	case KindMedia:
		params["type"], params["link"] = c.Media.Type, c.Media.Link
		if c.Media.Caption != "" {
			params["caption"] = c.Media.Caption
		}
		if c.Media.Filename != "" {
			params["filename"] = c.Media.Filename
		}
		return ActionSendMedia, params
	case KindTemplate:
		params["name"], params["language"] = c.Template.Name, c.Template.Language
		switch {
		case len(c.Template.Components) > 0:
			params["components"] = c.Template.Components
		case len(c.Template.Params) > 0:
			ps := make([]map[string]string, len(c.Template.Params))
			for i, v := range c.Template.Params {
				ps[i] = map[string]string{"type": "text", "text": v}
			}
			params["components"] = []map[string]any{{"type": "body", "parameters": ps}}
		}
		return ActionSendTemplate, params
	case KindInteractive:
		params["interactive"] = c.Interactive
		return ActionSendInteractive, params
	}
	params["body"] = c.Text
	if c.PreviewURL {
		params["preview_url"] = true
	}
	return ActionSendText, params
}

// record writes the outcome of a provider call.
func (s *Service) record(ctx context.Context, p *plan, out json.RawMessage, callErr error) (Message, time.Duration, error) {
	id, tenantID := p.row.ID, p.row.TenantID
	now := s.clock.Now()
	if callErr == nil {
		var res struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.MessageID == "" {
			// Accepted, but the connector broke its result schema; the
			// status webhook carrying the ledger id will bring the wamid.
			s.log.WarnContext(ctx, "messaging: provider accepted a message without returning its id", "message", id)
		}
		m, err := s.ledger.markSent(ctx, tenantID, id, res.MessageID, now)
		return m, 0, err
	}
	var se *sdk.Error
	if errors.As(callErr, &se) && channelUnavailable(se) {
		// The number's session could not take the message (not connected,
		// or moving to another node): nothing left, so it waits its turn
		// again rather than being marked unknown.
		until := now.Add(channelRetryDelay)
		m, err := s.ledger.settle(ctx, tenantID, id, StatusQueued, ReasonChannelUnavailable, se.Code, truncate(se.Message), &until)
		if err != nil {
			return p.row, 0, err
		}
		return m, 0, nil
	}
	if !errors.As(callErr, &se) || se.Kind == sdk.KindRetryable || se.Kind == sdk.KindUnknown {
		// The request may have reached Meta (a timeout, a 5xx, the plugin
		// dying mid-call). Never repeat it: the status webhook carrying the
		// ledger id settles it, or the Reconciler marks it unknown.
		s.log.WarnContext(ctx, "messaging: outcome of a provider call unknown", "message", id, "error", callErr)
		if err := s.ledger.note(ctx, tenantID, id, ReasonOutcomeUnknown, codeOf(se), truncate(callErr.Error())); err != nil {
			s.log.ErrorContext(ctx, "messaging: recording unknown outcome", "message", id, "error", err)
		}
		m, err := s.ledger.get(ctx, tenantID, id)
		if err != nil {
			m = p.row
		}
		return m, 0, &outcomeError{messageID: id, cause: callErr}
	}
	switch {
	case se.Kind == sdk.KindRateLimited:
		if err := s.ledger.note(ctx, tenantID, id, ReasonRateLimited, se.Code, truncate(se.Message)); err != nil {
			return p.row, 0, err
		}
		m := p.row
		m.StatusReason, m.ErrorCode, m.ErrorDetail = ReasonRateLimited, se.Code, truncate(se.Message)
		return m, max(se.RetryAfter, time.Second), nil
	case se.Code == CodeOutsideWindow:
		m, err := s.ledger.settle(ctx, tenantID, id, StatusRefused, ReasonOutsideWindow, se.Code, truncate(se.Message), nil)
		if err != nil {
			return Message{}, 0, err
		}
		return m, 0, &RefusedError{Reason: ReasonOutsideWindow, MessageID: id,
			Detail: "WhatsApp refused free-form text outside the 24-hour window; send an approved template"}
	}
	reason := ReasonProviderRejected
	switch se.Code {
	case CodeUndeliverable:
		reason = ReasonUndeliverable
	case CodeMarketingDeclined:
		reason = ReasonMarketingDeclined
	}
	m, err := s.ledger.markFailed(ctx, tenantID, id, reason, se.Code, truncate(se.Message), now)
	if err != nil {
		return Message{}, 0, err
	}
	return m, 0, &FailedError{Reason: reason, Code: se.Code, Detail: se.Message, MessageID: id}
}

func codeOf(se *sdk.Error) string {
	if se == nil {
		return ""
	}
	return se.Code
}

func truncate(s string) string {
	const maxLen = 1000
	if len(s) <= maxLen {
		return s
	}
	for i := maxLen; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
