package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/dispatch"
)

// Notifier sends the confirmation of a STOP or START keyword; the messaging
// core implements it. The send is a service message (the contact just wrote,
// so the customer-service window is open) and must be idempotent on
// IdempotencyKey: Route may call Notify again with the same key after a crash.
//
// The context of the call carries a mark that makes [Service.Check] allow
// this one message to the contact although it just opted out (never to an
// excluded number), so a sender that passes the context through to its
// consent check needs nothing else; one that does not must set
// CheckRequest.ConsentConfirmation.
//
// An error for which dispatch.IsPermanent is true (wrap it with
// dispatch.Permanent: the send was refused for good, e.g. an excluded number)
// is recorded and the confirmation given up; any other error is retried.
type Notifier interface {
	Notify(ctx context.Context, req NotifyRequest) error
}

// NotifyRequest is a confirmation to send.
type NotifyRequest struct {
	TenantID     string
	ContactID    string
	ConnectionID string
	// Text is the tenant's stop or start confirmation text.
	Text string
	// IdempotencyKey is "consent-confirm:" + the wamid of the keyword message.
	IdempotencyKey string
}

// ContactResolver finds (or creates) the contact of a phone number; the
// contacts service implements it, through [ContactResolverFunc] if its
// signature differs.
type ContactResolver interface {
	Resolve(ctx context.Context, tenantID, phone string) (contactID string, err error)
}

// ContactResolverFunc is a function that is a ContactResolver.
type ContactResolverFunc func(ctx context.Context, tenantID, phone string) (string, error)

// Resolve implements ContactResolver.
func (f ContactResolverFunc) Resolve(ctx context.Context, tenantID, phone string) (string, error) {
	return f(ctx, tenantID, phone)
}

// EventMessageReceived is the event type of an inbound message.
const EventMessageReceived = "message.received"

// inboundMessage is the part of a message.received payload keywords need.
type inboundMessage struct {
	From string `json:"from"`
	// LID is the sender's hidden-number identity; a linked device may know
	// only this (From empty).
	LID       string `json:"lid"`
	MessageID string `json:"message_id"`
	Type      string `json:"type"`
	Text      string `json:"text"`
	Button    *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Interactive *struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"interactive"`
}

// texts returns what the contact wrote or tapped, to match keywords against:
// a text message's body, a template quick-reply button's text and payload,
// an interactive reply button's title and id.
func (m inboundMessage) texts() []string {
	switch m.Type {
	case "text":
		return []string{m.Text}
	case "button":
		if m.Button != nil {
			return []string{m.Button.Text, m.Button.Payload}
		}
	case "interactive":
		if m.Interactive != nil && m.Interactive.Type == "button_reply" {
			return []string{m.Interactive.Title, m.Interactive.ID}
		}
	}
	return nil
}

// Route returns the router of the consent keywords: a message.received event
// whose whole text matches one of the tenant's stop or start keywords gets an
// in-process delivery that records the opt-out (every purpose) or opt-in
// (marketing and utility) and sends the confirmation once. Other events get
// no delivery.
func Route(s *Service) dispatch.Router {
	return dispatch.RouterFunc(s.route)
}

func (s *Service) route(ctx context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
	if ev.Type != EventMessageReceived {
		return nil, nil
	}
	var m inboundMessage
	if err := json.Unmarshal(ev.Payload, &m); err != nil {
		return nil, dispatch.Permanent(fmt.Errorf("consent: decoding message.received payload of event %d: %w", ev.ID, err))
	}
	texts := m.texts()
	if len(texts) == 0 {
		return nil, nil
	}
	st, err := s.settingsFor(ctx, ev.TenantID)
	if err != nil {
		return nil, fmt.Errorf("consent: reading settings of tenant %s: %w", ev.TenantID, err)
	}
	kind := st.match(texts...)
	if kind == KeywordNone {
		return nil, nil
	}
	if !(ValidPhone(m.From) || m.From == "" && m.LID != "") || m.MessageID == "" {
		return nil, dispatch.Permanent(fmt.Errorf("consent: %s keyword in event %d without a valid sender and message id", kind, ev.ID))
	}
	if s.notifier == nil || s.contacts == nil {
		return nil, errors.New("consent: keywords need Options.Notifier and Options.Contacts")
	}
	text := texts[0]
	return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
		return s.applyKeyword(ctx, ev, m, kind, text)
	}}}, nil
}

// applyKeyword records a keyword's consent change and sends its confirmation.
// Idempotent: the records are unique per contact, purpose and wamid, and the
// confirmation row is claimed before sending and marked after.
func (s *Service) applyKeyword(ctx context.Context, ev dispatch.Event, m inboundMessage, kind, text string) error {
	contactID, err := s.keywordContact(ctx, ev.TenantID, m)
	if err != nil {
		return fmt.Errorf("consent: resolving contact of %s keyword: %w", kind, err)
	}
	evidence, err := json.Marshal(map[string]string{"message_id": m.MessageID, "connection_id": ev.ConnectionID, "text": text})
	if err != nil {
		return fmt.Errorf("consent: encoding evidence: %w", err)
	}
	action := ActionOptOut
	if kind == KeywordStart {
		action = ActionOptIn
	}
	occurred := keywordTime(ev.OccurredAt, s.now())
	rec := NewRecord{
		ContactID: contactID, Purposes: LedgerPurposes, Action: action, Source: SourceKeyword, Method: MethodKeyword,
		Evidence: evidence, OccurredAt: occurred,
	}
	var written int
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockContactExclusive(ctx, tx, contactID); err != nil {
			return err
		}
		recs, err := insertRecords(ctx, tx, ev.TenantID, contactID, rec, true)
		if err != nil {
			return err
		}
		written = len(recs)
		if _, err := tx.Exec(ctx, `
			INSERT INTO consent_confirmations (tenant_id, message_id, contact_id, connection_id, keyword)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			ev.TenantID, m.MessageID, contactID, ev.ConnectionID, kind); err != nil {
			return fmt.Errorf("recording confirmation to send: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("consent: applying %s keyword of message %s: %w", kind, m.MessageID, err)
	}
	if written > 0 {
		s.log.InfoContext(ctx, "consent: keyword applied", "tenant", ev.TenantID, "contact", contactID, "keyword", kind, "records", written)
	}
	return s.confirm(ctx, ev.TenantID, m.MessageID)
}

// errLIDContactNotYet makes the dispatcher retry a keyword from a sender
// known only by LID whose contact the contacts delivery of the same event has
// not created yet (deliveries of an event are retried together).
var errLIDContactNotYet = errors.New("no contact has this LID yet")

// keywordContact returns the contact of a keyword's sender: resolved by phone,
// or, for a sender known only by LID, the contact having the LID (the
// surviving one of a link first). Only core/contacts creates LID-only
// contacts, from the same message.received event.
func (s *Service) keywordContact(ctx context.Context, tenantID string, m inboundMessage) (string, error) {
	if m.From != "" {
		return s.contacts.Resolve(ctx, tenantID, m.From)
	}
	var id string
	err := s.pool.QueryRow(ctx, `
		SELECT COALESCE(merged_into, id) FROM contacts WHERE tenant_id = $1 AND lid = $2
		ORDER BY merged_into NULLS FIRST, phone NULLS LAST, created_at LIMIT 1`, tenantID, m.LID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("LID %s: %w", m.LID, errLIDContactNotYet)
	}
	if err != nil {
		return "", fmt.Errorf("finding the contact of LID %s: %w", m.LID, err)
	}
	return id, nil
}

// errConfirmationInFlight makes the dispatcher retry a delivery whose
// confirmation another delivery is sending right now: if that one fails, the
// retry sends it.
var errConfirmationInFlight = errors.New("consent: the confirmation is being sent by another delivery")

// confirm sends the confirmation of a keyword message once.
func (s *Service) confirm(ctx context.Context, tenantID, messageID string) error {
	var contactID, connectionID, kind string
	err := s.pool.QueryRow(ctx, `
		UPDATE consent_confirmations
		SET claimed_until = now() + $3::bigint * interval '1 millisecond', attempts = attempts + 1
		WHERE tenant_id = $1 AND message_id = $2 AND notified_at IS NULL AND gave_up_reason IS NULL
		  AND (claimed_until IS NULL OR claimed_until < now())
		RETURNING contact_id, connection_id, keyword`, tenantID, messageID, s.lease.Milliseconds()).Scan(&contactID, &connectionID, &kind)
	if errors.Is(err, pgx.ErrNoRows) {
		var done bool
		if err := s.pool.QueryRow(ctx, `
			SELECT notified_at IS NOT NULL OR gave_up_reason IS NOT NULL FROM consent_confirmations
			WHERE tenant_id = $1 AND message_id = $2`, tenantID, messageID).Scan(&done); err != nil {
			return fmt.Errorf("consent: reading confirmation of %s: %w", messageID, err)
		}
		if done {
			return nil
		}
		return errConfirmationInFlight
	}
	if err != nil {
		return fmt.Errorf("consent: claiming confirmation of %s: %w", messageID, err)
	}
	st, err := s.settingsFor(ctx, tenantID)
	if err == nil {
		text := st.StopConfirmation
		if kind == KeywordStart {
			text = st.StartConfirmation
		}
		nctx := context.WithValue(ctx, confirmationKey{}, confirmationMark{tenantID: tenantID, contactID: contactID})
		err = s.notifier.Notify(nctx, NotifyRequest{
			TenantID: tenantID, ContactID: contactID, ConnectionID: connectionID, Text: text,
			IdempotencyKey: "consent-confirm:" + messageID,
		})
	}
	// Record the outcome even if ctx ended meanwhile: the send happened or not.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case err == nil:
		if _, err := s.pool.Exec(wctx, `UPDATE consent_confirmations SET notified_at = now(), claimed_until = NULL WHERE tenant_id = $1 AND message_id = $2`, tenantID, messageID); err != nil {
			// The send went out; a retry sends again with the same
			// idempotency key, which the ledger turns into nothing.
			return fmt.Errorf("consent: marking confirmation of %s sent: %w", messageID, err)
		}
		return nil
	case dispatch.IsPermanent(err):
		s.log.WarnContext(ctx, "consent: keyword confirmation refused; not retried", "tenant", tenantID, "contact", contactID, "message_id", messageID, "error", err)
		if _, err2 := s.pool.Exec(wctx, `UPDATE consent_confirmations SET gave_up_reason = $3, claimed_until = NULL WHERE tenant_id = $1 AND message_id = $2`,
			tenantID, messageID, truncate(err.Error(), 500)); err2 != nil {
			return fmt.Errorf("consent: recording refused confirmation of %s: %w", messageID, err2)
		}
		return nil
	default:
		if _, err2 := s.pool.Exec(wctx, `UPDATE consent_confirmations SET claimed_until = NULL WHERE tenant_id = $1 AND message_id = $2`, tenantID, messageID); err2 != nil {
			s.log.WarnContext(ctx, "consent: releasing confirmation claim", "message_id", messageID, "error", err2)
		}
		return fmt.Errorf("consent: sending confirmation of %s: %w", messageID, err)
	}
}

type confirmationKey struct{}

type confirmationMark struct{ tenantID, contactID string }

// isConfirmationCall reports whether ctx is the Notify call of a keyword
// confirmation to the contact of req, sent as a service message.
func isConfirmationCall(ctx context.Context, req CheckRequest) bool {
	m, ok := ctx.Value(confirmationKey{}).(confirmationMark)
	return ok && req.Purpose == PurposeService && m.tenantID == req.TenantID && m.contactID == req.ContactID
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// keywordTime is when a keyword record takes effect. WhatsApp stamps messages
// to the whole second while other records (an opt-in through the API) carry
// microseconds, and the current state is the latest record: a STOP typed at
// 12:00:00.9 arrives stamped 12:00:00 and would lose to an opt-in recorded at
// 12:00:00.6. The keyword counts from the last instant of its second, never
// later than now.
func keywordTime(stamped, now time.Time) time.Time {
	if stamped.IsZero() {
		return now
	}
	end := stamped.Truncate(time.Second).Add(time.Second - time.Microsecond)
	if end.After(now) {
		return now
	}
	return end
}
