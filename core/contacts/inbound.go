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
	"github.com/ponte-hub/ponte/core/store"
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

// inboundSQL is the first statement of an inbound application: find or
// create the contact (the fragment ct, see [phoneContactSQL] and
// [lidContactSQL]), upsert its conversation on the connection moving
// last_inbound_at/last_message_at only forward (GREATEST, so late or repeated
// deliveries never move them back), insert the ledger row unless the wamid is
// already stored on this connection, and return the ids and the LID-only
// contact to link into the sender's (mf, "" when none).
//
// $1 new contact id, $2 tenant, $3 phone or NULL, $4 wa_id, $5 lid or ”, $6
// profile name, $7 new conversation id, $8 connection, $9 message time, $10
// inbound time or NULL, $11 new message id, $12 kind, $13 content, $14 wamid.
func inboundSQL(contactCTEs string) string {
	return `
WITH ` + contactCTEs + `, cv AS (
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
SELECT cv.contact_id, cv.id, COALESCE((SELECT id FROM m), ''), COALESCE((SELECT id FROM mf), '') FROM cv`
}

// phoneContactSQL are the contact CTEs of a sender with a phone number
// (and maybe a LID). When the event brings a LID that a LID-only contact
// (phone NULL) has and no contact has the phone yet, the phone is attached
// to that contact (att), which keeps its conversations. Otherwise the
// contact is upserted by phone following a link (up), and a LID-only
// contact with the LID is returned in mf so the caller links it into the
// sender's contact.
//
// Concurrency: two events attaching the same phone serialise on the
// LID-only row; the second finds phone set (the UPDATE re-checks its WHERE)
// and its upsert conflicts on the now-attached contact's phone. A contact
// created with the phone by another transaction after this snapshot makes
// the attach a unique violation, an error the dispatcher retries; the retry
// takes the link path.
const phoneContactSQL = `att AS (
	UPDATE contacts c SET phone = $3,
		wa_id = COALESCE(NULLIF($4, ''), c.wa_id),
		name = COALESCE(c.name, NULLIF($6, '')),
		updated_at = now()
	WHERE $5 <> '' AND c.tenant_id = $2 AND c.lid = $5 AND c.phone IS NULL AND c.merged_into IS NULL
	  AND NOT EXISTS (SELECT 1 FROM contacts p WHERE p.tenant_id = $2 AND p.phone = $3)
	RETURNING c.id
), up AS (` + upsertContactSelectSQL + `
	RETURNING COALESCE(c.merged_into, c.id) AS id
), ct AS (
	SELECT id FROM att UNION ALL SELECT id FROM up
), mf AS (
	SELECT l.id FROM contacts l
	WHERE $5 <> '' AND l.tenant_id = $2 AND l.lid = $5 AND l.phone IS NULL AND l.merged_into IS NULL
	  AND NOT EXISTS (SELECT 1 FROM att)
	LIMIT 1
)`

// upsertContactSelectSQL is [upsertContactSQL] as INSERT ... SELECT, skipped
// when att attached the phone to a LID-only contact.
const upsertContactSelectSQL = `
	INSERT INTO contacts AS c (id, tenant_id, phone, wa_id, lid, name)
	SELECT $1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, '') WHERE NOT EXISTS (SELECT 1 FROM att)
	ON CONFLICT (tenant_id, phone) DO UPDATE SET ` + upsertContactSet

// lidContactSQL are the contact CTEs of a sender known only by LID: the
// contact having the LID (the surviving one of a link first, then one with
// a phone), else a new LID-only contact (phone NULL). The upsert conflicts on
// contacts_lid_only, so concurrent first messages from one LID make one
// contact. $3 is NULL here.
const lidContactSQL = `found AS (
	SELECT COALESCE(merged_into, id) AS id FROM contacts
	WHERE tenant_id = $2 AND lid = $5
	ORDER BY merged_into NULLS FIRST, phone NULLS LAST, created_at
	LIMIT 1
), named AS (
	UPDATE contacts c SET name = NULLIF($6, ''), updated_at = now()
	FROM found f WHERE c.id = f.id AND c.name IS NULL AND $6 <> ''
), ins AS (
	INSERT INTO contacts AS c (id, tenant_id, phone, wa_id, lid, name)
	SELECT $1, $2, $3::text, NULLIF($4, ''), $5, NULLIF($6, '') WHERE NOT EXISTS (SELECT 1 FROM found)
	ON CONFLICT (tenant_id, lid) WHERE phone IS NULL AND lid IS NOT NULL DO UPDATE SET ` + upsertContactSet + `
	RETURNING COALESCE(c.merged_into, c.id) AS id
), ct AS (
	SELECT id FROM found UNION ALL SELECT id FROM ins
), mf AS (
	SELECT NULL::text AS id WHERE false
)`

var (
	inboundByPhoneSQL = inboundSQL(phoneContactSQL)
	inboundByLIDSQL   = inboundSQL(lidContactSQL)
)

// countSQL is the second statement: it counts the message as unread and
// notifies live inboxes, both only when the first statement inserted the
// ledger row (the row with our fresh id exists), so a redelivery changes
// nothing. pg_notify is transactional: listeners hear it at commit, never
// for a rolled-back message. $1 message id, $2 tenant, $3 unread increment.
//
// Both rows are found by primary key alone, the tenant compared with IS NOT
// DISTINCT FROM, which no index serves. With "m.tenant_id = $2", a plan
// prepared while the tables were still empty (a new installation, before
// autovacuum's first ANALYZE) could take the (tenant_id, idempotency_key)
// index instead of the key: a scan of every message of the tenant for each
// inbound message, 170 buffers a message at 5,000 messages
// (TestIntegrationApplyInboundPlansUseKeys).
const countSQL = `
WITH u AS (
	UPDATE conversations cv SET unread_count = cv.unread_count + $3::int, updated_at = now()
	WHERE cv.id = (SELECT m.conversation_id FROM messages m WHERE m.id = $1 AND m.tenant_id IS NOT DISTINCT FROM $2)
	RETURNING cv.id, cv.tenant_id, cv.assignee_id
)
SELECT pg_notify('` + NotifyChannel + `', json_build_object(
	'tenant_id', u.tenant_id, 'conversation_id', u.id, 'message_id', $1::text,
	'kind', 'message', 'assignee_id', u.assignee_id)::text)
FROM u`

// ApplyInbound stores an inbound message event: the contact (created by
// phone, WhatsApp id recorded, profile name set when the contact has none;
// for a linked device's sender known only by LID, found or created without a
// phone by LID, and given its phone when a later event brings both),
// its conversation on the connection, the ledger row (direction in, status
// received), the conversation's activity times and unread count, and a
// notification to live inboxes. It is idempotent: the wamid is unique per
// connection, and a message already stored changes nothing.
//
// A sender known by phone alone (every Cloud API message) is applied in a
// group with the other such messages being applied at that moment: one
// statement and one commit for the group (see [inboundGroupSQL]). Others
// (a LID comes with the event) take [Service.applyOne], as does every
// member of a group whose statement failed.
// Malformed events are dispatch.Permanent errors: retrying cannot fix them.
func (s *Service) ApplyInbound(ctx context.Context, ev dispatch.Event) (InboundResult, error) {
	in, err := s.decodeInbound(ev)
	if err != nil {
		return InboundResult{}, err
	}
	if in.lid == "" {
		return s.inbound.apply(ctx, in)
	}
	return s.applyOne(ctx, in)
}

// inboundMessage is a message.received event decoded for applying.
type inboundMessage struct {
	ev dispatch.Event
	// phone is the sender's E.164 number; nil for a sender known only by
	// lid.
	phone   *string
	lid     string
	waID    string
	name    string
	wamid   string
	kind    string
	content []byte
	// at is when the message was sent; inboundAt is at when the message
	// opens the customer-service window, else nil.
	at        time.Time
	inboundAt *time.Time
	// unread is 1 when the message counts as unread, else 0.
	unread int
}

// decodeInbound reads a message.received event. Its errors are
// dispatch.Permanent: retrying cannot fix a malformed event.
func (s *Service) decodeInbound(ev dispatch.Event) (inboundMessage, error) {
	var env inboundEnvelope
	if err := json.Unmarshal(ev.Payload, &env); err != nil {
		return inboundMessage{}, dispatch.Permanent(fmt.Errorf("decoding message.received payload: %w", err))
	}
	if env.MessageID == "" {
		return inboundMessage{}, dispatch.Permanent(errors.New("message.received without message_id"))
	}
	in := inboundMessage{ev: ev, lid: strings.TrimSpace(env.LID), waID: env.WaID, name: strings.TrimSpace(env.ProfileName),
		wamid: env.MessageID}
	// A linked device may know a sender only by LID: the contact is then
	// found, or created without a phone, by LID.
	if strings.TrimSpace(env.From) != "" {
		p, err := s.NormalizePhone(env.From)
		if err != nil {
			return inboundMessage{}, dispatch.Permanent(fmt.Errorf("message.received sender: %w", err))
		}
		in.phone = &p
	} else if in.lid == "" {
		return inboundMessage{}, dispatch.Permanent(errors.New("message.received without a sender: neither from nor lid is set"))
	}
	content, err := messageContent(ev.Payload)
	if err != nil {
		return inboundMessage{}, dispatch.Permanent(err)
	}
	in.content = content
	in.kind = strings.TrimSpace(env.Type)
	if in.kind == "" {
		in.kind = "unsupported"
	}
	in.at = env.Timestamp
	if in.at.IsZero() {
		in.at = ev.OccurredAt
	}
	if in.at.IsZero() {
		in.at = time.Now()
	}
	// A sender's clock is not trusted to be in the future: a message dated
	// ahead would hold the window open longer than WhatsApp does.
	if now := time.Now(); in.at.After(now) {
		in.at = now
	}
	if !slices.Contains(noWindowKinds, in.kind) {
		in.inboundAt = &in.at
	}
	in.unread = 1
	if slices.Contains(notUnreadKinds, in.kind) {
		in.unread = 0
	}
	return in, nil
}

// applyOne applies one message in its own transaction, sent as one pgx
// batch: a single round trip to the database. The one exception is the
// first event bringing the phone of a LID-only contact when another contact
// already has that phone: the LID-only contact is then linked into it with
// [Service.Link], in its own transaction after the batch (once per LID).
func (s *Service) applyOne(ctx context.Context, in inboundMessage) (InboundResult, error) {
	msgID := store.NewID("msg")
	b := &pgx.Batch{}
	var res InboundResult
	// Asynchronous commit is safe here and is what lets one Postgres take
	// thousands of inbound messages a second: the event is already durable
	// in the outbox, and the dispatcher marks it done only after Apply
	// returns, in a synchronous commit whose WAL flush covers this earlier
	// transaction. A crash in between loses at most this commit, and the
	// event is then applied again (idempotently). Groups commit the same way.
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	sql := inboundByPhoneSQL
	if in.phone == nil {
		sql = inboundByLIDSQL
	}
	var mergeFrom string
	b.Queue(sql, store.NewID("ct"), in.ev.TenantID, in.phone, in.waID, in.lid, in.name,
		store.NewID("cv"), in.ev.ConnectionID, in.at, in.inboundAt, msgID, in.kind, in.content, in.wamid).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&res.ContactID, &res.ConversationID, &res.MessageID, &mergeFrom)
		})
	b.Queue(countSQL, msgID, in.ev.TenantID, in.unread)
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		if pgCode(err) == pgForeignKeyViolation {
			// The connection or tenant was deleted after the event was
			// stored: nothing left to attach the message to.
			return InboundResult{}, dispatch.Permanent(fmt.Errorf("storing inbound message: %w", err))
		}
		return InboundResult{}, fmt.Errorf("storing inbound message: %w", err)
	}
	if mergeFrom != "" {
		// The sender wrote before from its LID only, and its number is a
		// contact already: the LID-only contact and its conversations join
		// that contact. Not in the batch above (Link is several statements
		// under row locks), so it runs once per LID, after the message is
		// stored; a failure is retried by the dispatcher, and the retry
		// finds the message stored and links again.
		if _, err := s.Link(ctx, in.ev.TenantID, mergeFrom, res.ContactID, ""); err != nil && !errors.Is(err, ErrAlreadyMerged) {
			return InboundResult{}, fmt.Errorf("linking the LID-only contact %s into %s: %w", mergeFrom, res.ContactID, err)
		}
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
