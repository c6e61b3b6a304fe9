package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// NotifyChannel is the Postgres channel on which the lease holder announces
// session changes to every node (a pairing QR code shown in a browser served
// by another node). Payloads are JSON [Notice] values, small enough for
// NOTIFY's 8000-byte limit; listeners read the rest from session_states.
const NotifyChannel = "ponte_sessions"

// Notice kinds.
const (
	// NoticeState: session_states changed for the connection (state, QR
	// code, pairing code, account); read it with [LoadState].
	NoticeState = "state"
	// NoticeSignal: a short-lived signal of the session, carried in Signal.
	NoticeSignal = "signal"
)

// Notice is the payload of a NOTIFY on [NotifyChannel].
type Notice struct {
	TenantID     string `json:"tenant_id"`
	ConnectionID string `json:"connection_id"`
	Kind         string `json:"kind"`
	// Signal is set for NoticeSignal: {"kind", "payload", "at"} as in sdk.Signal.
	Signal *SignalNotice `json:"signal,omitempty"`
}

// SignalNotice is an sdk.Signal as relayed on NotifyChannel.
type SignalNotice struct {
	Kind    string         `json:"kind"`
	Payload map[string]any `json:"payload,omitempty"`
	At      time.Time      `json:"at"`
}

// State is a connection's session as last reported (a session_states row).
type State struct {
	ConnectionID string     `json:"connection_id"`
	TenantID     string     `json:"-"`
	State        string     `json:"state" enum:"pairing,connecting,connected,disconnected,logged_out,banned,temporarily_banned"`
	Reason       string     `json:"reason,omitempty"`
	Since        time.Time  `json:"since"`
	RetryAt      *time.Time `json:"retry_at,omitempty"`
	BannedUntil  *time.Time `json:"banned_until,omitempty"`
	QRCode       string     `json:"-"` // served by the QR endpoints only
	QRExpiresAt  *time.Time `json:"qr_expires_at,omitempty"`
	PairingCode  string     `json:"pairing_code,omitempty"`
	Phone        string     `json:"phone,omitempty"`
	JID          string     `json:"jid,omitempty"`
	LID          string     `json:"lid,omitempty"`
	PushName     string     `json:"push_name,omitempty"`
	Platform     string     `json:"platform,omitempty"`
	PhoneSeenAt  *time.Time `json:"phone_seen_at,omitempty"`
	ConnectedAt  *time.Time `json:"connected_at,omitempty"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

const stateColumns = `connection_id, tenant_id, state, reason, since, retry_at, banned_until,
	COALESCE(qr_code, ''), qr_expires_at, COALESCE(pairing_code, ''), COALESCE(phone, ''), COALESCE(jid, ''),
	COALESCE(lid, ''), COALESCE(push_name, ''), COALESCE(platform, ''), phone_seen_at, connected_at, updated_at`

func scanState(row pgx.Row) (State, error) {
	var s State
	err := row.Scan(&s.ConnectionID, &s.TenantID, &s.State, &s.Reason, &s.Since, &s.RetryAt, &s.BannedUntil,
		&s.QRCode, &s.QRExpiresAt, &s.PairingCode, &s.Phone, &s.JID, &s.LID, &s.PushName, &s.Platform,
		&s.PhoneSeenAt, &s.ConnectedAt, &s.UpdatedAt)
	return s, err
}

// LoadState reads a tenant's connection's session state; store.ErrNotFound
// when the session never reported.
func LoadState(ctx context.Context, pool *pgxpool.Pool, tenantID, connectionID string) (State, error) {
	s, err := scanState(pool.QueryRow(ctx, `SELECT `+stateColumns+` FROM session_states
		WHERE tenant_id = $1 AND connection_id = $2`, tenantID, connectionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, fmt.Errorf("reading session of %s: %w", connectionID, store.ErrNotFound)
	}
	if err != nil {
		return State{}, fmt.Errorf("reading session of %s: %w", connectionID, err)
	}
	return s, nil
}
