package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// A linked-device number is an ordinary WhatsApp account paired like
// WhatsApp Web (connectors/linkeddevice). It has no 24-hour window and no
// templates: it sends text and media to anyone, any time. What it has
// instead is WhatsApp's ban hammer for accounts that behave like bulk
// senders, so its sends are paced the way a careful person sends: a few
// messages a minute with random spacing, a daily cap on people contacted for
// the first time, and "typing..." before a reply. The settings are per
// number (numbers.pacing); the defaults are conservative.

// ConnectorLinkedDevice is the connector of linked-device numbers.
const ConnectorLinkedDevice = "linkeddevice"

// Linked-device connector actions.
const (
	ActionSendChatState = "send_chat_state"
	ActionSendReaction  = "send_reaction"
)

// Reasons specific to linked-device numbers.
const (
	// ReasonNewContactLimit: the number reached its daily cap of people
	// contacted for the first time; deferred to the next day when allowed.
	ReasonNewContactLimit = "new_contact_limit"
	// ReasonChannelUnavailable: the number's session is not connected (or
	// is moving between nodes); the send is queued and re-attempted.
	ReasonChannelUnavailable = "channel_unavailable"
)

// Error codes of the linked-device connector the service decides on: the
// message certainly did not leave, so it is queued rather than unknown.
const (
	codeNotConnected = "not_connected"
)

// channelRetryDelay is how long a send waits after the number's session was
// unavailable before the Scheduler tries it again.
const channelRetryDelay = 30 * time.Second

// LinkedPacing is a linked-device number's pacing (numbers.pacing with
// defaults applied).
type LinkedPacing struct {
	// MessagesPerMinute caps the number's sends.
	MessagesPerMinute int
	// NewContactsPerDay caps people messaged for the first time per UTC day
	// (0: none).
	NewContactsPerDay int
	// MinGap and MaxGap bound the random pause between two sends.
	MinGap, MaxGap time.Duration
	// Typing shows "typing..." before a reply, for a time proportional to
	// its length up to TypingMax.
	Typing    bool
	TypingMax time.Duration
}

// DefaultLinkedPacing is used when a number has no settings of its own.
var DefaultLinkedPacing = LinkedPacing{
	MessagesPerMinute: 6, NewContactsPerDay: 20, MinGap: 4 * time.Second, MaxGap: 12 * time.Second,
	Typing: true, TypingMax: 6 * time.Second,
}

// PacingSource reads a linked-device number's pacing; core/numbers
// implements it (through an adapter in core/server). Nil means the defaults.
type PacingSource interface {
	LinkedPacing(ctx context.Context, tenantID, connectionID string) (LinkedPacing, error)
}

// NewContactCounter counts a number's first contacts; [SQLNewContacts]
// implements it.
type NewContactCounter interface {
	// IsNew reports whether the conversation has no message yet other than
	// except (the send being checked) and its refusals.
	IsNew(ctx context.Context, tenantID, conversationID, except string) (bool, error)
	// CountSince counts the number's conversations whose first message was
	// ours and went out at or after since.
	CountSince(ctx context.Context, tenantID, connectionID string, since time.Time) (int, error)
}

// SQLNewContacts implements NewContactCounter on the messages table.
type SQLNewContacts struct{ Pool *pgxpool.Pool }

// IsNew implements NewContactCounter.
func (s SQLNewContacts) IsNew(ctx context.Context, tenantID, conversationID, except string) (bool, error) {
	var exists bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE tenant_id = $1 AND conversation_id = $2
		AND id <> $3 AND status <> 'refused')`, tenantID, conversationID, except).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("checking whether the recipient is new: %w", err)
	}
	return !exists, nil
}

// CountSince implements NewContactCounter.
func (s SQLNewContacts) CountSince(ctx context.Context, tenantID, connectionID string, since time.Time) (int, error) {
	var n int
	err := s.Pool.QueryRow(ctx, `
SELECT count(*) FROM conversations cv
CROSS JOIN LATERAL (
    SELECT m.direction, m.created_at FROM messages m
    WHERE m.conversation_id = cv.id AND m.status NOT IN ('refused', 'queued', 'deferred')
    ORDER BY m.created_at LIMIT 1
) first
WHERE cv.tenant_id = $1 AND cv.connection_id = $2 AND cv.updated_at >= $3
  AND first.direction = 'out' AND first.created_at >= $3`, tenantID, connectionID, since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting today's new contacts: %w", err)
	}
	return n, nil
}

// linkedPacer spaces a linked-device number's sends: one at a time per
// number, at least 60/MessagesPerMinute seconds apart and a random pause
// between MinGap and MaxGap. With a SlotSource (the messaging service's
// always has one, on Postgres) a number's turns come from its one schedule,
// whichever process sends: the session lives on one node, but the sends
// are paced where they are made, on any node.
type linkedPacer struct {
	clock Clock
	slots SlotSource // nil: this process's own schedule below
	mu    sync.Mutex
	next  map[string]time.Time // number → earliest next send
}

func newLinkedPacer(clock Clock) *linkedPacer {
	return &linkedPacer{clock: clock, next: map[string]time.Time{}}
}

// wait takes the number's next turn and sleeps until it. On error (ctx
// ended) the turn is given back when no later one was taken since.
func (p *linkedPacer) wait(ctx context.Context, number string, pc LinkedPacing) error {
	gap := time.Minute / time.Duration(max(pc.MessagesPerMinute, 1))
	if pc.MaxGap > 0 {
		spread := pc.MinGap
		if pc.MaxGap > pc.MinGap {
			spread += rand.N(pc.MaxGap - pc.MinGap)
		}
		gap = max(gap, spread)
	}
	if p.slots != nil {
		// One slot, gap before the next: the turn after every turn taken
		// by any process. A turn given up is not given back; it costs the
		// number one gap.
		firstIn, err := p.slots.Claim(ctx, number, 1, gap)
		if err != nil {
			return fmt.Errorf("taking the linked-device number's turn: %w", err)
		}
		if firstIn <= 0 {
			return ctx.Err()
		}
		return p.clock.Sleep(ctx, firstIn)
	}
	now := p.clock.Now()
	p.mu.Lock()
	prev := p.next[number]
	slot := prev
	if slot.Before(now) {
		slot = now
	}
	p.next[number] = slot.Add(gap)
	p.mu.Unlock()
	if err := p.clock.Sleep(ctx, slot.Sub(now)); err != nil && slot.After(now) {
		p.mu.Lock()
		if p.next[number].Equal(slot.Add(gap)) {
			p.next[number] = prev
		}
		p.mu.Unlock()
		return err
	}
	return nil
}

// LinkedMessageID is the WhatsApp message id a linked-device send of ledger
// row id goes out with: fixed before the call and recorded on the row, so a
// receipt finds its row even when the process died between the call and the
// record, and a repeated call reuses the id (WhatsApp clients drop a second
// message with an id they have). The shape is WhatsApp Web's: "3EB0" and
// upper-case hex.
func LinkedMessageID(ledgerID string) string {
	sum := sha256.Sum256([]byte("ponte/linked-message-id/" + ledgerID))
	return "3EB0" + strings.ToUpper(hex.EncodeToString(sum[:9]))
}

// checkLinked refuses what a linked-device number cannot send and applies
// the daily cap on new contacts.
func (s *Service) checkLinked(ctx context.Context, p *plan, now time.Time) (*RefusedError, error) {
	pc, err := s.linkedPacing(ctx, p)
	if err != nil {
		return nil, err
	}
	if s.newContacts == nil || p.rcpt.LastInboundAt != nil {
		return nil, nil
	}
	isNew, err := s.newContacts.IsNew(ctx, p.row.TenantID, p.rcpt.ConversationID, p.row.ID)
	if err != nil || !isNew {
		return nil, err
	}
	day := now.UTC().Truncate(24 * time.Hour)
	n, err := s.newContacts.CountSince(ctx, p.row.TenantID, p.row.ConnectionID, day)
	if err != nil {
		return nil, err
	}
	if n >= pc.NewContactsPerDay {
		return &RefusedError{Reason: ReasonNewContactLimit, DeferUntil: day.Add(24 * time.Hour),
			Detail: fmt.Sprintf("the number already contacted %d new people today (its limit is %d)", n, pc.NewContactsPerDay)}, nil
	}
	return nil, nil
}

func (s *Service) linkedPacing(ctx context.Context, p *plan) (LinkedPacing, error) {
	if s.pacing == nil {
		return DefaultLinkedPacing, nil
	}
	pc, err := s.pacing.LinkedPacing(ctx, p.row.TenantID, p.row.ConnectionID)
	if err != nil {
		return LinkedPacing{}, fmt.Errorf("reading the number's pacing: %w", err)
	}
	return pc, nil
}

// paceLinked waits the number's turn and, for a reply, shows "typing..." for
// a while first, as a person would. A failing typing indicator does not stop
// the send.
func (s *Service) paceLinked(ctx context.Context, p *plan) error {
	pc, err := s.linkedPacing(ctx, p)
	if err != nil {
		return err
	}
	if err := s.linked.wait(ctx, p.row.ConnectionID, pc); err != nil {
		return err
	}
	isReply := p.rcpt.LastInboundAt != nil && s.clock.Now().Sub(*p.rcpt.LastInboundAt) < Window
	if !pc.Typing || !isReply || p.kind == KindReaction {
		return nil
	}
	typing := min(time.Duration(utf8.RuneCountInString(p.c.Text))*60*time.Millisecond+time.Second, pc.TypingMax)
	if _, err := s.invoker.Invoke(ctx, invoke.Call{TenantID: p.row.TenantID, ConnectionID: p.row.ConnectionID,
		Action: ActionSendChatState, Params: mustJSON(map[string]string{"to": p.c.To, "state": "composing"})}); err != nil {
		s.log.DebugContext(ctx, "messaging: typing indicator failed", "message", p.row.ID, "error", err)
		return nil
	}
	return s.clock.Sleep(ctx, typing)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("messaging: encoding %T: %v", v, err))
	}
	return b
}

// recipientAddress is the `to` of a send to rcpt: its phone, or for a
// contact known only by its LID the LID JID ("123456789@lid"), which only a
// linked-device number can send to (the Cloud API addresses phone numbers).
func recipientAddress(rcpt Recipient, linked bool) (string, error) {
	if rcpt.Phone != "" {
		return rcpt.Phone, nil
	}
	if rcpt.LID == "" {
		return "", &InvalidError{Field: "contact_id", Reason: "the contact has neither a phone number nor a WhatsApp LID"}
	}
	if !linked {
		return "", &InvalidError{Field: "connection_id", Reason: "this contact is known only by its WhatsApp LID; answer from a linked-device number"}
	}
	jid, ok := LIDJID(rcpt.LID)
	if !ok {
		return "", &InvalidError{Field: "contact_id", Reason: fmt.Sprintf("the contact's LID %q is not a WhatsApp LID (digits, optionally followed by @lid)", rcpt.LID)}
	}
	return jid, nil
}

// LIDJID returns the JID a linked-device send to a LID goes to,
// "<digits>@lid", from a LID as the connector reports it ("123@lid") or as
// an operator may have typed it (digits only); false when lid is neither.
func LIDJID(lid string) (string, bool) {
	user := strings.TrimSuffix(strings.TrimSpace(lid), "@lid")
	if user == "" || len(user) > 20 {
		return "", false
	}
	for _, r := range user {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return user + "@lid", true
}

// linkedParams builds the linked-device connector's action and parameters.
// c.To is a phone or a LID JID; the connector takes both in to and in
// reply_to.from.
func linkedParams(k Kind, c content, ledgerID string) (string, map[string]any) {
	params := map[string]any{"to": c.To, "ledger_id": ledgerID, "message_id": LinkedMessageID(ledgerID)}
	if c.ReplyTo != "" {
		params["reply_to"] = map[string]string{"message_id": c.ReplyTo, "from": c.To}
	}
	if k == KindReaction {
		delete(params, "message_id")
		params["reaction_id"] = LinkedMessageID(ledgerID)
		params["message_id"], params["emoji"], params["from_me"] = c.Reaction.MessageID, c.Reaction.Emoji, c.FromMe
		delete(params, "reply_to")
		return ActionSendReaction, params
	}
	if k == KindMedia {
		params["type"], params["link"] = c.Media.Type, c.Media.Link
		if c.Media.Caption != "" {
			params["caption"] = c.Media.Caption
		}
		if c.Media.Filename != "" {
			params["filename"] = c.Media.Filename
		}
		return ActionSendMedia, params
	}
	params["body"] = c.Text
	if c.PreviewURL {
		params["link_preview"] = true
	}
	return ActionSendText, params
}

// channelUnavailable reports whether a linked-device send failed because
// the number's session could not take it: nothing left, so it may wait.
func channelUnavailable(se *sdk.Error) bool {
	return se != nil && (se.Code == sdk.CodeSessionNotHeld || se.Code == codeNotConnected)
}

// Module is the part of Ponte a send comes from, for the per-number module
// switches (numbers.modules).
type Module string

// Modules a number can switch off.
const (
	ModuleAutomations Module = "automations"
	ModuleCampaigns   Module = "campaigns"
)

// ReasonModuleDisabled: the number has the sending module switched off.
const ReasonModuleDisabled = "module_disabled"

// Numbers chooses the number of a send bound to "any number" and reads the
// numbers' module switches; [SQLNumbers] implements it.
type Numbers interface {
	// Choose returns the connection of the tenant's number that should send:
	// a connected linked device when the message can go over one, else a
	// Cloud API number; only numbers with module on (when given).
	// cloudOnly asks for a Cloud API number (templates, interactive).
	// An error wrapping ErrNotFound when none can.
	Choose(ctx context.Context, tenantID string, module Module, cloudOnly bool) (string, error)
	// ModuleEnabled reports whether the number on connectionID has module
	// on; connections that are not numbers have every module on.
	ModuleEnabled(ctx context.Context, tenantID, connectionID string, module Module) (bool, error)
}

// SQLNumbers implements Numbers on the numbers, session_states and
// connections tables.
type SQLNumbers struct{ Pool *pgxpool.Pool }

// Choose implements Numbers.
func (s SQLNumbers) Choose(ctx context.Context, tenantID string, module Module, cloudOnly bool) (string, error) {
	var id string
	err := s.Pool.QueryRow(ctx, `
SELECT c.id FROM connections c
LEFT JOIN numbers n ON n.connection_id = c.id
LEFT JOIN session_states st ON st.connection_id = c.id
WHERE c.tenant_id = $1 AND c.status = 'active'
  AND (c.connector = 'cloudapi' OR (c.connector = 'linkeddevice' AND st.state = 'connected' AND NOT $3))
  AND ($2 = '' OR n.id IS NULL OR COALESCE((n.modules->>$2)::boolean, true))
ORDER BY (c.connector = 'linkeddevice') DESC, n.created_at NULLS LAST, c.created_at
LIMIT 1`, tenantID, string(module), cloudOnly).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("choosing a number: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("choosing a number: %w", err)
	}
	return id, nil
}

// ModuleEnabled implements Numbers.
func (s SQLNumbers) ModuleEnabled(ctx context.Context, tenantID, connectionID string, module Module) (bool, error) {
	if module == "" {
		return true, nil
	}
	var on bool
	err := s.Pool.QueryRow(ctx, `SELECT COALESCE((modules->>$3)::boolean, true) FROM numbers
		WHERE tenant_id = $1 AND connection_id = $2`, tenantID, connectionID, string(module)).Scan(&on)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the modules of number %s: %w", connectionID, err)
	}
	return on, nil
}

// sentByUs reports whether the message with WhatsApp id wamid on the
// connection is one the number sent (a reaction must say whose message it
// is on).
func (s *Service) sentByUs(ctx context.Context, tenantID, connectionID, wamid string) (bool, error) {
	if s.fromMe == nil {
		return false, nil
	}
	return s.fromMe(ctx, tenantID, connectionID, wamid)
}
