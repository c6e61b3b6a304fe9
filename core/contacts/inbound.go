package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/dispatch"
)

// EventMessageReceived is the event type of an inbound message (Cloud API
// and linked-device connectors).
const EventMessageReceived = "message.received"

// NotifyChannel is the Postgres channel live inboxes listen on. Payloads are
// small JSON objects: {"tenant_id", "conversation_id", "message_id", "kind"}
// with kind "message" for a new message (this package, with "assignee_id")
// and "status" for a status change (the messaging package).
const NotifyChannel = "ponte_inbox"

// ChannelConnectors are the connectors whose message.received events this
// package stores.
var ChannelConnectors = []string{"cloudapi", "linkeddevice"}

// inboundEnvelope are the fields of a message.received payload that describe
// the message rather than make up its content.
type inboundEnvelope struct {
	PhoneNumberID string `json:"phone_number_id"`
	From          string `json:"from"`
	WaID          string `json:"wa_id"`
	// LID is the sender's hidden-number identity (linked devices), when known.
	LID         string    `json:"lid"`
	ProfileName string    `json:"profile_name"`
	MessageID   string    `json:"message_id"`
	Timestamp   time.Time `json:"timestamp"`
	Type        string    `json:"type"`
}

var envelopeKeys = []string{"phone_number_id", "from", "wa_id", "lid", "profile_name", "message_id", "timestamp", "type"}

// Kinds of inbound messages that do not count as unread: they change or
// annotate a message rather than say something new.
var notUnreadKinds = []string{"reaction", "edit", "revoke", "deleted", "system"}

// Kinds that do not open the customer-service window: notices WhatsApp
// itself sends about the user (number changed, ...), not the user's words.
var noWindowKinds = []string{"system"}

// InboundResult is what applying an inbound message did.
type InboundResult struct {
	ContactID      string
	ConversationID string
	// MessageID is the ledger id of the stored message; "" when the message
	// was already stored (a redelivery), which changed nothing.
	MessageID string
}

// Route returns the dispatch route of inbound messages: each
// message.received event of a channel connector becomes an in-process
// delivery that applies it with [Service.ApplyInbound].
func (s *Service) Route() dispatch.Router {
	return dispatch.RouterFunc(func(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		if ev.Type != EventMessageReceived || !slices.Contains(ChannelConnectors, ev.Connector) {
			return nil, nil
		}
		return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
			_, err := s.ApplyInbound(ctx, ev)
			return err
		}}}, nil
	})
}

// inboundSQL is the first statement of an inbound application: upsert the
// contact by phone (following a link), upsert its conversation on the
// connection moving last_inbound_at/last_message_at only forward (GREATEST,
// so late or repeated deliveries never move them back), insert the ledger row
// unless the wamid is already stored on this connection, and return the ids.
//
// $1 new contact id, $2 tenant, $3 phone, $4 wa_id, $5 lid or ”, $6
// profile name, $7 new conversation id, $8 connection, $9 message time, $10
// inbound time or NULL, $11 new message id, $12 kind, $13 content, $14 wamid.
const inboundSQL = `
WITH ct AS (` + upsertContactSQL + `
	RETURNING COALESCE(c.merged_into, c.id) AS id
), cv AS (
	INSERT INTO conversations AS cv (id, tenant_id, contact_id, connection_id, last_inbound_at, last_message_at)
	SELECT $7, $2, ct.id, $8, $10, $9 FROM ct
	ON CONFLICT (tenant_id, contact_id, connection_id) DO UPDATE SET
		last_inbound_at = GREATEST(cv.last_inbound_at, EXCLUDED.last_inbound_at),
		last_message_at = GREATEST(cv.last_message_at, EXCLUDED.last_message_at)
	RETURNING cv.id, cv.contact_id
), m AS (
	INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content,
	                      provider_message_id, status, created_at)
	SELECT $11, $2, cv.id, cv.contact_id, $8, 'in', $12, $13, $14, 'received', $9 FROM cv
	ON CONFLICT (connection_id, provider_message_id) DO NOTHING
	RETURNING id
)
SELECT cv.contact_id, cv.id, COALESCE((SELECT id FROM m), '') FROM cv`

// countSQL is the second statement: it counts the message as unread and
// notifies live inboxes, both only when the first statement inserted the
// ledger row (the row with our fresh id exists), so a redelivery changes
// nothing. pg_notify is transactional: listeners hear it at commit, never
// for a rolled-back message. $1 message id, $2 tenant, $3 unread increment.
const countSQL = `
WITH u AS (
	UPDATE conversations cv SET unread_count = cv.unread_count + $3::int, updated_at = now()
	FROM messages m
	WHERE m.id = $1 AND m.tenant_id = $2 AND cv.id = m.conversation_id
	RETURNING cv.id, cv.tenant_id, cv.assignee_id
)
SELECT pg_notify('` + NotifyChannel + `', json_build_object(
	'tenant_id', u.tenant_id, 'conversation_id', u.id, 'message_id', $1::text,
	'kind', 'message', 'assignee_id', u.assignee_id)::text)
FROM u`

// ApplyInbound stores an inbound message event: the contact (created by
// phone, WhatsApp id recorded, profile name set when the contact has none),
// its conversation on the connection, the ledger row (direction in, status
// received), the conversation's activity times and unread count, and a
// notification to live inboxes. It is idempotent: the wamid is unique per
// connection, and a message already stored changes nothing.
//
// Everything happens in one transaction sent as one pgx batch: a single
// round trip to the database.
// Malformed events are dispatch.Permanent errors: retrying cannot fix them.
func (s *Service) ApplyInbound(ctx context.Context, ev dispatch.Event) (InboundResult, error) {
	var env inboundEnvelope
	if err := json.Unmarshal(ev.Payload, &env); err != nil {
		return InboundResult{}, dispatch.Permanent(fmt.Errorf("decoding message.received payload: %w", err))
	}
	if env.MessageID == "" {
		return InboundResult{}, dispatch.Permanent(errors.New("message.received without message_id"))
	}
	from := env.From
	if from == "" && env.LID != "" {
		// A linked device may know a sender only by LID; a contact that
		// has it gives the phone.
		err := s.pool.QueryRow(ctx, `SELECT phone FROM contacts WHERE tenant_id = $1 AND lid = $2
			ORDER BY merged_into NULLS FIRST LIMIT 1`, ev.TenantID, env.LID).Scan(&from)
		if errors.Is(err, pgx.ErrNoRows) {
			return InboundResult{}, dispatch.Permanent(fmt.Errorf("message.received from LID %s: no contact has this LID and the event carries no phone", env.LID))
		}
		if err != nil {
			return InboundResult{}, fmt.Errorf("finding the contact of LID %s: %w", env.LID, err)
		}
	}
	phone, err := s.NormalizePhone(from)
	if err != nil {
		return InboundResult{}, dispatch.Permanent(fmt.Errorf("message.received sender: %w", err))
	}
	content, err := messageContent(ev.Payload)
	if err != nil {
		return InboundResult{}, dispatch.Permanent(err)
	}
	kind := strings.TrimSpace(env.Type)
	if kind == "" {
		kind = "unsupported"
	}
	at := env.Timestamp
	if at.IsZero() {
		at = ev.OccurredAt
	}
	if at.IsZero() {
		at = time.Now()
	}
	// A sender's clock is not trusted to be in the future: a message dated
	// ahead would hold the window open longer than WhatsApp does.
	if now := time.Now(); at.After(now) {
		at = now
	}
	var inboundAt *time.Time
	if !slices.Contains(noWindowKinds, kind) {
		inboundAt = &at
	}
	unread := 1
	if slices.Contains(notUnreadKinds, kind) {
		unread = 0
	}
	msgID := newID("msg")

	b := &pgx.Batch{}
	var res InboundResult
	// Asynchronous commit is safe here and is what lets one Postgres take
	// thousands of inbound messages a second: the event is already durable
	// in the outbox, and the dispatcher marks it done only after Apply
	// returns, in a synchronous commit whose WAL flush covers this earlier
	// transaction. A crash in between loses at most this commit, and the
	// event is then applied again (idempotently).
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(inboundSQL, newID("ct"), ev.TenantID, phone, env.WaID, strings.TrimSpace(env.LID), strings.TrimSpace(env.ProfileName),
		newID("cv"), ev.ConnectionID, at, inboundAt, msgID, kind, content, env.MessageID).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&res.ContactID, &res.ConversationID, &res.MessageID)
		})
	b.Queue(countSQL, msgID, ev.TenantID, unread)
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		if pgCode(err) == pgForeignKeyViolation {
			// The connection or tenant was deleted after the event was
			// stored: nothing left to attach the message to.
			return InboundResult{}, dispatch.Permanent(fmt.Errorf("storing inbound message: %w", err))
		}
		return InboundResult{}, fmt.Errorf("storing inbound message: %w", err)
	}
	return res, nil
}

// messageContent is the payload without its envelope: the body of the
// message in the connector's normalized shape (text, media, location,
// contacts, interactive, button, reaction, context, errors, ...).
func messageContent(payload json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("decoding message.received payload: %w", err)
	}
	for _, k := range envelopeKeys {
		delete(m, k)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding message content: %w", err)
	}
	return b, nil
}
