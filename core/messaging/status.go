package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/dispatch"
)

// EventMessageStatus is the Cloud API connector's status event type.
const EventMessageStatus = "message.status"

// InboxChannel is the Postgres channel notified after a message changes,
// for live inboxes: {"tenant_id", "conversation_id", "message_id", "kind"}.
const InboxChannel = "ponte_inbox"

// StatusEvent is the payload of a message.status event, as the Cloud API
// connector normalizes it (the fields messaging reads).
type StatusEvent struct {
	PhoneNumberID string `json:"phone_number_id"`
	// MessageID is the wamid.
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
	// LedgerID is our message id, from biz_opaque_callback_data.
	LedgerID string `json:"ledger_id"`
	Errors   []struct {
		Code    json.Number `json:"code"`
		Title   string      `json:"title"`
		Message string      `json:"message"`
		Details string      `json:"details"`
	} `json:"errors"`
}

// Route returns the dispatch route of Cloud API status events: each is
// applied to its ledger row in process (see ApplyStatus).
func Route(pool *pgxpool.Pool) dispatch.Router {
	return dispatch.RouterFunc(func(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		if (ev.Connector != Connector && ev.Connector != ConnectorLinkedDevice) || ev.Type != EventMessageStatus {
			return nil, nil
		}
		return []dispatch.Delivery{{Apply: func(ctx context.Context) error { return ApplyStatus(ctx, pool, ev) }}}, nil
	})
}

// rowState is the part of a ledger row status webhooks change.
type rowState struct {
	Status       Status
	StatusReason string
	ErrorCode    string
	ErrorDetail  string
	WAMID        string
	SentAt       *time.Time
	DeliveredAt  *time.Time
	ReadAt       *time.Time
	FailedAt     *time.Time
}

// rank orders the provider statuses; everything before the provider's
// first word (sending, unknown, queued) is 0.
func rank(s Status) int {
	switch s {
	case StatusSent:
		return 1
	case StatusDelivered:
		return 2
	case StatusRead:
		return 3
	}
	return 0
}

// nextState applies one status update to a row and reports whether anything
// changed. Statuses only move forward, so duplicates and late arrivals
// change nothing and out-of-order arrivals end where in-order ones would:
//
//   - sent < delivered < read; a lower status arriving after a higher one
//     only fills its timestamp when missing;
//   - failed applies to a row not yet delivered (sending, unknown, sent),
//     with the provider's error code; it is terminal for sent;
//   - delivered or read after failed wins: the customer has the message, so
//     the failure was wrong or stale (the error code stays for the record);
//   - refused rows never went out and are left alone.
//
// A row whose outcome was unknown (sending or unknown) is settled by any
// status, and takes the wamid the update carries.
func nextState(cur rowState, status Status, at time.Time, code, detail string) (rowState, bool) {
	if cur.Status == StatusRefused || cur.Status == StatusReceived {
		return cur, false
	}
	next := cur
	setOnce := func(p **time.Time) {
		if *p == nil {
			t := at
			*p = &t
		}
	}
	switch status {
	case StatusSent, StatusDelivered, StatusRead:
		switch status {
		case StatusSent:
			setOnce(&next.SentAt)
		case StatusDelivered:
			setOnce(&next.DeliveredAt)
		case StatusRead:
			setOnce(&next.ReadAt)
		}
		if cur.Status == StatusFailed && status == StatusSent {
			break // a late "sent" does not undo a failure
		}
		if rank(status) > rank(cur.Status) || (cur.Status == StatusFailed && status != StatusSent) {
			next.Status = status
			next.StatusReason = "" // delivered: whatever was pending or wrong is settled
		}
	case StatusFailed:
		if rank(cur.Status) >= rank(StatusDelivered) || cur.Status == StatusFailed {
			break
		}
		next.Status = StatusFailed
		next.StatusReason = ReasonStatusFailed
		next.ErrorCode, next.ErrorDetail = code, detail
		setOnce(&next.FailedAt)
	}
	return next, !sameState(cur, next)
}

func sameState(a, b rowState) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.Status == b.Status && a.StatusReason == b.StatusReason && a.ErrorCode == b.ErrorCode &&
		a.ErrorDetail == b.ErrorDetail && a.WAMID == b.WAMID && eqT(a.SentAt, b.SentAt) &&
		eqT(a.DeliveredAt, b.DeliveredAt) && eqT(a.ReadAt, b.ReadAt) && eqT(a.FailedAt, b.FailedAt)
}

// ErrNoLedgerRow is wrapped by ApplyStatus's error for a status of a message
// the ledger does not have.
var ErrNoLedgerRow = errors.New("no ledger row for the status")

// unmatchedGrace is how long a status without a matching row is retried: a
// status webhook can overtake the record of the wamid it needs when it has
// no ledger id. After that the message was not sent by Ponte (Meta's own
// tools, another integration) and the event is dropped with a reason.
const unmatchedGrace = 10 * time.Minute

// statusRowColumns are what applying a status reads of the ledger row.
const statusRowColumns = `id, conversation_id, status, COALESCE(status_reason, ''), COALESCE(error_code, ''),
        COALESCE(error_detail, ''), COALESCE(provider_message_id, ''), sent_at, delivered_at, read_at, failed_at`

// statusByLedgerIDSQL and statusByWAMIDSQL lock the ledger row a status is
// about, by the ledger id Meta echoes back, else by the wamid: each by its
// key alone, the other columns compared so that no index serves them (see
// getSQL).
const (
	statusByLedgerIDSQL = `SELECT ` + statusRowColumns + ` FROM messages
            WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 AND connection_id IS NOT DISTINCT FROM $3
              AND direction = 'out' FOR UPDATE`
	statusByWAMIDSQL = `SELECT ` + statusRowColumns + ` FROM messages
            WHERE connection_id = $1 AND provider_message_id = $2 AND tenant_id IS NOT DISTINCT FROM $3
              AND direction = 'out' FOR UPDATE`
)

// ApplyStatus applies one message.status event to the ledger, idempotently:
// it finds the row by the ledger id the event carries (else by connection
// and wamid), moves it with nextState, and notifies InboxChannel (at commit)
// when something changed.
func ApplyStatus(ctx context.Context, pool *pgxpool.Pool, ev dispatch.Event) error {
	var se StatusEvent
	if err := json.Unmarshal(ev.Payload, &se); err != nil {
		return dispatch.Permanent(fmt.Errorf("decoding status event %d: %w", ev.ID, err))
	}
	status := Status(se.Status)
	if se.Status == "played" {
		status = StatusRead // a voice note or video played: read, and more
	}
	switch status {
	case StatusSent, StatusDelivered, StatusRead, StatusFailed:
	default:
		return dispatch.Permanent(fmt.Errorf("status event %d: unknown status %q", ev.ID, se.Status))
	}
	at := ev.OccurredAt
	if t, err := time.Parse(time.RFC3339, se.Timestamp); err == nil {
		at = t
	}
	var code, detail string
	if len(se.Errors) > 0 {
		e := se.Errors[0]
		code, detail = e.Code.String(), truncate(firstNonEmpty(e.Details, e.Message, e.Title))
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("applying status: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op

	var (
		id, conversationID string
		cur                rowState
	)
	scan := func(row pgx.Row) error {
		return row.Scan(&id, &conversationID, &cur.Status, &cur.StatusReason, &cur.ErrorCode, &cur.ErrorDetail,
			&cur.WAMID, &cur.SentAt, &cur.DeliveredAt, &cur.ReadAt, &cur.FailedAt)
	}
	err = pgx.ErrNoRows
	if se.LedgerID != "" {
		err = scan(tx.QueryRow(ctx, statusByLedgerIDSQL, se.LedgerID, ev.TenantID, ev.ConnectionID))
	}
	if errors.Is(err, pgx.ErrNoRows) && se.MessageID != "" {
		err = scan(tx.QueryRow(ctx, statusByWAMIDSQL, ev.ConnectionID, se.MessageID, ev.TenantID))
	}
	if errors.Is(err, pgx.ErrNoRows) {
		err := fmt.Errorf("status %s of %s (ledger id %q): %w", se.Status, se.MessageID, se.LedgerID, ErrNoLedgerRow)
		if time.Since(ev.ReceivedAt) > unmatchedGrace {
			return dispatch.Permanent(err)
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("reading ledger row for status: %w", err)
	}

	next, changed := nextState(cur, status, at, code, detail)
	if next.WAMID == "" && se.MessageID != "" {
		next.WAMID, changed = se.MessageID, true
	}
	if !changed {
		return nil // a duplicate, or an update the row is already past
	}
	_, err = tx.Exec(ctx, `
UPDATE messages SET status = $2, status_reason = NULLIF($3, ''), error_code = NULLIF($4, ''),
       error_detail = NULLIF($5, ''), provider_message_id = NULLIF($6, ''), sent_at = $7, delivered_at = $8,
       read_at = $9, failed_at = $10, updated_at = now()
WHERE id = $1`, id, string(next.Status), next.StatusReason, next.ErrorCode, next.ErrorDetail, next.WAMID,
		next.SentAt, next.DeliveredAt, next.ReadAt, next.FailedAt)
	if err != nil {
		return fmt.Errorf("applying status to message %s: %w", id, err)
	}
	if err := notifyInbox(ctx, tx, ev.TenantID, conversationID, id, "status"); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("applying status to message %s: %w", id, err)
	}
	return nil
}

// notifyInbox queues a notification that Postgres delivers when tx commits
// (and drops if it rolls back), so listeners never hear of a change they
// cannot read yet.
func notifyInbox(ctx context.Context, tx pgx.Tx, tenantID, conversationID, messageID, kind string) error {
	payload, err := json.Marshal(map[string]string{"tenant_id": tenantID, "conversation_id": conversationID,
		"message_id": messageID, "kind": kind})
	if err != nil {
		return fmt.Errorf("encoding inbox notification: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, InboxChannel, string(payload)); err != nil {
		return fmt.Errorf("notifying %s: %w", InboxChannel, err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
