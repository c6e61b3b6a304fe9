package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/ingress"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Limits on what a session report may carry. They keep a misbehaving
// plugin from filling rows and NOTIFY payloads; real values are far below.
const (
	MaxReasonBytes      = 1000
	MaxQRCodeBytes      = 4096
	MaxPairingCodeBytes = 64
	MaxAccountBytes     = 256 // each field of sdk.SessionAccount
	MaxSignalKindBytes  = 64
	// MaxNoticeBytes bounds a NOTIFY payload; Postgres refuses 8000 bytes
	// and more.
	MaxNoticeBytes = 7999
)

// downSinceKey is the host's connection_state key holding when the session
// last stopped being connected (RFC 3339, the database's clock). The
// cleanup clock runs from it rather than from session_states.since, which a
// session reconnecting with backoff (disconnected, connecting, disconnected,
// ...) moves at every attempt: such a session would never reach the
// cleanup although it has not been connected for days.
const downSinceKey = ingress.ReservedStatePrefix + "session.down_since"

// CheckHeld returns nil when this node holds connectionID's session now,
// else an *sdk.Error with code sdk.CodeSessionNotHeld.
//
// It is the check ingress makes before storing events a session plugin
// emits, and it looks at memory only (this node's lease and its deadline),
// not at the database: emitted events are deduplicated on (connection,
// dedupe key), so a node that lost the lease a moment ago and stores a
// message the new holder also receives stores it once between them, and
// within the local deadline no other node can hold the lease yet. The
// session's own records (state row, session.* events) are checked against
// the lease in the database, in the transaction that writes them.
func (m *Manager) CheckHeld(ctx context.Context, connectionID string) error {
	if m.current(connectionID) == nil {
		return notHeld(connectionID)
	}
	return nil
}

// errLeaseGone ends a transaction whose lease check failed.
var errLeaseGone = errors.New("session lease not held")

// lockLease locks the lease row of h if it is still h's and unexpired, and
// returns the database's now. The lock (FOR NO KEY UPDATE) is held to the
// end of the transaction: another node's acquisition waits for it and then
// finds the lease renewed or not yet expired, so whatever this transaction
// writes is written while this node holds the lease. It also serializes the
// writes made for one session (concurrent reports, the janitor).
func (m *Manager) lockLease(ctx context.Context, tx pgx.Tx, h *holding) (time.Time, error) {
	var now time.Time
	err := tx.QueryRow(ctx, `
		SELECT now() FROM session_leases
		WHERE connection_id = $1 AND owner = $2 AND fence = $3 AND expires_at > now()
		FOR NO KEY UPDATE`, h.connID, m.node, h.fence).Scan(&now)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, errLeaseGone
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("checking the session lease: %w", err)
	}
	return now, nil
}

// stateRow is a session_states row with the janitor's columns.
type stateRow struct {
	State
	CleanupWarnedAt *time.Time
	PhoneWarnedAt   *time.Time
}

const stateRowColumns = stateColumns + `, cleanup_warned_at, phone_warned_at`

func scanStateRow(row pgx.Row) (stateRow, error) {
	var s stateRow
	err := row.Scan(&s.ConnectionID, &s.TenantID, &s.State.State, &s.Reason, &s.Since, &s.RetryAt, &s.BannedUntil,
		&s.QRCode, &s.QRExpiresAt, &s.PairingCode, &s.Phone, &s.JID, &s.LID, &s.PushName, &s.Platform,
		&s.PhoneSeenAt, &s.ConnectedAt, &s.UpdatedAt, &s.CleanupWarnedAt, &s.PhoneWarnedAt)
	return s, err
}

// UpdateSession records a report of a session this node holds: the
// session_states row, and when the state changed a session.state_changed
// event, in one transaction under the lease lock (see lockLease). Live
// listeners are told on NotifyChannel when the state, the QR code or the
// pairing code changed; the NOTIFY is sent at commit.
//
// The event is written in the same transaction as the row, not through the
// ingress committer, so the two cannot part: a report retried after a
// failure either finds its change committed with its event (and, the state
// being unchanged now, adds no second event) or finds nothing committed.
func (m *Manager) UpdateSession(ctx context.Context, conn store.Connection, u sdk.SessionUpdate) error {
	if err := validateUpdate(u); err != nil {
		return err
	}
	h := m.current(conn.ID)
	if h == nil {
		return notHeld(conn.ID)
	}
	var changed, codes bool
	var next stateRow
	var prevState string
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		now, err := m.lockLease(ctx, tx, h)
		if err != nil {
			return err
		}
		var prev *stateRow
		p, err := scanStateRow(tx.QueryRow(ctx, `SELECT `+stateRowColumns+` FROM session_states WHERE connection_id = $1`, conn.ID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading the session state: %w", err)
		default:
			prev = &p
			prevState = p.State.State
		}
		next, changed, codes = merge(prev, u, now)
		next.ConnectionID, next.TenantID = conn.ID, conn.TenantID
		if err := writeState(ctx, tx, next, now); err != nil {
			return err
		}
		if err := trackDownSince(ctx, tx, conn.ID, next.State.State, now); err != nil {
			return err
		}
		if changed {
			payload := stateChangedPayload{
				State: next.State.State, Previous: prevState, Reason: next.Reason,
				RetryAt: next.RetryAt, BannedUntil: next.BannedUntil, Phone: next.Phone,
			}
			key := fmt.Sprintf("%s:%d:%d:%s", sdk.EventSessionStateChanged, h.fence, now.UnixMicro(), next.State.State)
			if _, err := insertEvent(ctx, tx, conn.TenantID, conn.ID, sdk.EventSessionStateChanged, key, now, payload); err != nil {
				return err
			}
		}
		if changed || codes {
			if err := notify(ctx, tx, Notice{TenantID: conn.TenantID, ConnectionID: conn.ID, Kind: NoticeState}); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errLeaseGone) {
		m.log.Warn("session report refused: lease no longer held", h.attrs(m.node)...)
		return notHeld(conn.ID)
	}
	if err != nil {
		return &sdk.Error{Kind: sdk.KindRetryable, Message: "storing the session report failed", Err: err}
	}
	if changed {
		m.log.Info("session state changed", append(h.attrs(m.node), "state", next.State.State, "previous", prevState, "reason", next.Reason)...)
	}
	return nil
}

// stateChangedPayload is the payload of sdk.EventSessionStateChanged.
type stateChangedPayload struct {
	State       string     `json:"state"`
	Previous    string     `json:"previous,omitempty"` // empty for a session's first report
	Reason      string     `json:"reason,omitempty"`
	RetryAt     *time.Time `json:"retry_at,omitempty"`
	BannedUntil *time.Time `json:"banned_until,omitempty"`
	Phone       string     `json:"phone,omitempty"`
}

// merge applies a report to the previous row (nil for a session's first
// report) at the database time now. changed says the state changed; codes
// that the QR code or pairing code did.
func merge(prev *stateRow, u sdk.SessionUpdate, now time.Time) (next stateRow, changed, codes bool) {
	if prev != nil {
		next = *prev
	}
	state := string(u.State)
	changed = prev == nil || prev.State.State != state
	next.State.State = state
	next.Reason = u.Reason
	if changed {
		next.Since = now
	}
	next.RetryAt = timePtr(u.RetryAt)
	next.BannedUntil = timePtr(u.BannedUntil)

	// Codes mean something only while pairing. A pairing report carrying a
	// code states the current codes; one carrying none (a change of reason)
	// keeps those shown.
	switch {
	case u.State != sdk.SessionPairing:
		next.QRCode, next.QRExpiresAt, next.PairingCode = "", nil, ""
	case u.QRCode != "" || u.PairingCode != "":
		next.QRCode, next.QRExpiresAt, next.PairingCode = u.QRCode, timePtr(u.QRExpiresAt), u.PairingCode
		if u.QRCode == "" {
			next.QRExpiresAt = nil
		}
	case changed:
		next.QRCode, next.QRExpiresAt, next.PairingCode = "", nil, ""
	}
	if prev == nil {
		codes = next.QRCode != "" || next.PairingCode != ""
	} else {
		codes = prev.QRCode != next.QRCode || prev.PairingCode != next.PairingCode
	}

	// A report without account fields keeps those known.
	if a := u.Account; a != nil {
		next.Phone = nonEmpty(a.Phone, next.Phone)
		next.JID = nonEmpty(a.JID, next.JID)
		next.LID = nonEmpty(a.LID, next.LID)
		next.PushName = nonEmpty(a.PushName, next.PushName)
		next.Platform = nonEmpty(a.Platform, next.Platform)
	}
	// The phone's last sighting only moves forward; seeing it again ends a
	// phone-away episode, so a later one is warned about again.
	if !u.PhoneSeenAt.IsZero() && (next.PhoneSeenAt == nil || u.PhoneSeenAt.After(*next.PhoneSeenAt)) {
		t := u.PhoneSeenAt.UTC()
		next.PhoneSeenAt = &t
		next.PhoneWarnedAt = nil
	}
	if u.State == sdk.SessionConnected {
		if changed || next.ConnectedAt == nil {
			next.ConnectedAt = &now
		}
		// Connected again: a later disconnection is a new episode.
		next.CleanupWarnedAt = nil
	}
	next.UpdatedAt = now
	return next, changed, codes
}

func nonEmpty(v, old string) string {
	if v != "" {
		return v
	}
	return old
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func writeState(ctx context.Context, tx pgx.Tx, s stateRow, now time.Time) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO session_states (connection_id, tenant_id, state, reason, since, retry_at, banned_until,
			qr_code, qr_expires_at, pairing_code, phone, jid, lid, push_name, platform,
			phone_seen_at, connected_at, cleanup_warned_at, phone_warned_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), $9, NULLIF($10, ''), NULLIF($11, ''), NULLIF($12, ''),
			NULLIF($13, ''), NULLIF($14, ''), NULLIF($15, ''), $16, $17, $18, $19, $20)
		ON CONFLICT (connection_id) DO UPDATE SET
			tenant_id = EXCLUDED.tenant_id, state = EXCLUDED.state, reason = EXCLUDED.reason, since = EXCLUDED.since,
			retry_at = EXCLUDED.retry_at, banned_until = EXCLUDED.banned_until, qr_code = EXCLUDED.qr_code,
			qr_expires_at = EXCLUDED.qr_expires_at, pairing_code = EXCLUDED.pairing_code, phone = EXCLUDED.phone,
			jid = EXCLUDED.jid, lid = EXCLUDED.lid, push_name = EXCLUDED.push_name, platform = EXCLUDED.platform,
			phone_seen_at = EXCLUDED.phone_seen_at, connected_at = EXCLUDED.connected_at,
			cleanup_warned_at = EXCLUDED.cleanup_warned_at, phone_warned_at = EXCLUDED.phone_warned_at,
			updated_at = EXCLUDED.updated_at`,
		s.ConnectionID, s.TenantID, s.State.State, s.Reason, s.Since, s.RetryAt, s.BannedUntil,
		s.QRCode, s.QRExpiresAt, s.PairingCode, s.Phone, s.JID, s.LID, s.PushName, s.Platform,
		s.PhoneSeenAt, s.ConnectedAt, s.CleanupWarnedAt, s.PhoneWarnedAt, now)
	if err != nil {
		return fmt.Errorf("writing the session state: %w", err)
	}
	return nil
}

// trackDownSince keeps downSinceKey: removed while connected, set once when
// the session is anything else.
func trackDownSince(ctx context.Context, tx pgx.Tx, connectionID, state string, now time.Time) error {
	var err error
	if state == string(sdk.SessionConnected) {
		_, err = tx.Exec(ctx, `DELETE FROM connection_state WHERE connection_id = $1 AND key = $2`, connectionID, downSinceKey)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO connection_state (connection_id, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (connection_id, key) DO NOTHING`, connectionID, downSinceKey, []byte(now.UTC().Format(time.RFC3339Nano)))
	}
	if err != nil {
		return fmt.Errorf("tracking since when the session is down: %w", err)
	}
	return nil
}

// insertEvent stores one host event for a session in tx, deduplicated like
// every event, and wakes the dispatchers at commit. It reports whether the
// event was new.
func insertEvent(ctx context.Context, tx pgx.Tx, tenantID, connectionID, typ, dedupeKey string, at time.Time, payload any) (bool, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return false, fmt.Errorf("encoding the %s event: %w", typ, err)
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO events (tenant_id, connection_id, dedupe_key, type, occurred_at, payload)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (connection_id, dedupe_key) DO NOTHING`, tenantID, connectionID, dedupeKey, typ, at, body)
	if err != nil {
		return false, fmt.Errorf("storing the %s event: %w", typ, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	// Session events are rare, so notifying inside the transaction costs
	// nothing worth the committer's coalescing (see ingress.insertEvents).
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, ingress.NotifyChannel); err != nil {
		return false, fmt.Errorf("notifying dispatchers: %w", err)
	}
	return true, nil
}

// notify sends n on NotifyChannel at tx's commit.
func notify(ctx context.Context, tx pgx.Tx, n Notice) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encoding a session notice: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, string(b)); err != nil {
		return fmt.Errorf("notifying session listeners: %w", err)
	}
	return nil
}

// Signal relays a signal of a session this node holds to live listeners on
// NotifyChannel. Nothing is stored; a signal whose notice would not fit in a
// NOTIFY is dropped (signals are expendable by definition).
func (m *Manager) Signal(ctx context.Context, conn store.Connection, s sdk.Signal) error {
	if s.Kind == "" || len(s.Kind) > MaxSignalKindBytes || !cleanText(s.Kind) {
		return sdk.Invalid("signal kind must be 1 to %d bytes of text", MaxSignalKindBytes)
	}
	var payload map[string]any
	if len(s.Payload) > 0 && string(s.Payload) != "null" {
		if err := json.Unmarshal(s.Payload, &payload); err != nil {
			return sdk.Invalid("signal payload must be a JSON object")
		}
	}
	h := m.current(conn.ID)
	if h == nil {
		return notHeld(conn.ID)
	}
	at := s.At
	if at.IsZero() {
		at = time.Now()
	}
	n := Notice{TenantID: conn.TenantID, ConnectionID: conn.ID, Kind: NoticeSignal,
		Signal: &SignalNotice{Kind: s.Kind, Payload: payload, At: at.UTC()}}
	b, err := json.Marshal(n)
	if err != nil {
		return sdk.Invalid("encoding the signal: %v", err)
	}
	if len(b) > MaxNoticeBytes {
		m.log.Debug("session signal dropped: too large for a notice", append(h.attrs(m.node), "kind", s.Kind, "bytes", len(b))...)
		return nil
	}
	// Presence and typing of a contact also go to the live inboxes, as an
	// event of the contact's conversation on this number (when there is
	// one), with the conversation's assignee so operators see only theirs.
	// A contact WhatsApp shows only by LID (no phone in the signal) is
	// found by its LID.
	phone, _ := payload["phone"].(string)
	lid, _ := payload["lid"].(string)
	inbox, err := json.Marshal(map[string]any{"kind": s.Kind, "payload": payload, "at": at.UTC()})
	if err != nil {
		return sdk.Invalid("encoding the signal: %v", err)
	}
	if _, err := m.pool.Exec(ctx, `
WITH cv AS (
    SELECT cv.id, cv.assignee_id FROM conversations cv JOIN contacts c ON c.id = cv.contact_id
    WHERE cv.tenant_id = $3 AND cv.connection_id = $4
      AND ($5 <> '' AND c.phone = $5 OR $5 = '' AND $8 <> '' AND c.lid = $8)
    LIMIT 1
)
SELECT pg_notify($1, $2), (SELECT pg_notify($6, json_build_object('tenant_id', $3::text, 'conversation_id', cv.id,
    'kind', 'signal', 'assignee_id', cv.assignee_id, 'signal', $7::jsonb)::text) FROM cv)`,
		NotifyChannel, string(b), conn.TenantID, conn.ID, phone, contacts.NotifyChannel, string(inbox), lid); err != nil {
		return &sdk.Error{Kind: sdk.KindRetryable, Message: "relaying the signal failed", Err: err}
	}
	return nil
}

// validateUpdate refuses reports a well-behaved plugin never sends.
func validateUpdate(u sdk.SessionUpdate) error {
	switch u.State {
	case sdk.SessionPairing, sdk.SessionConnecting, sdk.SessionConnected, sdk.SessionDisconnected,
		sdk.SessionLoggedOut, sdk.SessionBanned, sdk.SessionTemporarilyBanned:
	default:
		return sdk.Invalid("unknown session state %q", u.State)
	}
	type field struct {
		name, value string
		limit       int
	}
	fields := []field{
		{"reason", u.Reason, MaxReasonBytes},
		{"qr_code", u.QRCode, MaxQRCodeBytes},
		{"pairing_code", u.PairingCode, MaxPairingCodeBytes},
	}
	if a := u.Account; a != nil {
		fields = append(fields,
			field{"account.phone", a.Phone, MaxAccountBytes},
			field{"account.jid", a.JID, MaxAccountBytes},
			field{"account.lid", a.LID, MaxAccountBytes},
			field{"account.push_name", a.PushName, MaxAccountBytes},
			field{"account.platform", a.Platform, MaxAccountBytes})
	}
	for _, f := range fields {
		if len(f.value) > f.limit {
			return sdk.Invalid("session %s is %d bytes, the limit is %d", f.name, len(f.value), f.limit)
		}
		if !cleanText(f.value) {
			return sdk.Invalid("session %s must be UTF-8 text without NUL", f.name)
		}
	}
	return nil
}

// cleanText reports whether s can be stored in a Postgres text column.
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
