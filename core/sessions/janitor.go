package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// The janitor looks after the sessions this node holds, so each session is
// looked after by exactly one node: it warns about and then cleans up
// sessions that stay disconnected or logged out, and warns when a connected
// session's phone stays away. Each warning is given once per episode: the
// time it was given is kept in session_states (cleanup_warned_at,
// phone_warned_at) and cleared by UpdateSession when the episode ends (the
// session connects again, the phone is seen again); the events' dedupe keys
// name the episode too, so even a repeated attempt stores one event.

func (m *Manager) janitorLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.JanitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.janitor(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("session janitor failed", "node", m.node, "error", err)
		}
	}
}

// janitorRow is a held session as the janitor sees it.
type janitorRow struct {
	stateRow
	downSince *time.Time // nil when unknown
}

// janitor runs one round over the held sessions.
func (m *Manager) janitor(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.held))
	for id := range m.held {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	rows, err := m.pool.Query(ctx, `
		SELECT `+stateRowColumns+`,
			(SELECT cs.value FROM connection_state cs WHERE cs.connection_id = session_states.connection_id AND cs.key = $2)
		FROM session_states WHERE connection_id = ANY($1)`, ids, downSinceKey)
	if err != nil {
		return fmt.Errorf("reading held sessions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (janitorRow, error) {
		var j janitorRow
		var down []byte
		err := r.Scan(&j.ConnectionID, &j.TenantID, &j.State.State, &j.Reason, &j.Since, &j.RetryAt, &j.BannedUntil,
			&j.QRCode, &j.QRExpiresAt, &j.PairingCode, &j.Phone, &j.JID, &j.LID, &j.PushName, &j.Platform,
			&j.PhoneSeenAt, &j.ConnectedAt, &j.UpdatedAt, &j.CleanupWarnedAt, &j.PhoneWarnedAt, &down)
		if err == nil && down != nil {
			if t, perr := time.Parse(time.RFC3339Nano, string(down)); perr == nil {
				j.downSince = &t
			}
		}
		return j, err
	})
	if err != nil {
		return fmt.Errorf("reading held sessions: %w", err)
	}
	now := m.now()
	for _, j := range list {
		if ctx.Err() != nil {
			return nil
		}
		h := m.current(j.ConnectionID)
		if h == nil {
			continue
		}
		var err error
		switch sdk.SessionState(j.State.State) {
		case sdk.SessionDisconnected, sdk.SessionLoggedOut:
			err = m.janitorDown(ctx, h, j, now)
		case sdk.SessionConnected:
			if j.PhoneSeenAt != nil && j.PhoneWarnedAt == nil && now.Sub(*j.PhoneSeenAt) > m.cfg.PhoneAwayWarning {
				err = m.warnPhoneAway(ctx, h, j, now)
			}
		}
		if err != nil {
			m.log.Warn("session janitor failed for a session", append(h.attrs(m.node), "error", err)...)
		}
	}
	return nil
}

// janitorDown handles a disconnected or logged-out session: warn, then
// clean up.
func (m *Manager) janitorDown(ctx context.Context, h *holding, j janitorRow, now time.Time) error {
	if j.downSince == nil {
		// A row from before the key was kept: start the clock now.
		return m.fenced(ctx, h, func(tx pgx.Tx, dbNow time.Time) error {
			return trackDownSince(ctx, tx, h.connID, j.State.State, dbNow)
		})
	}
	cleanupAt := j.downSince.Add(m.cfg.CleanupAfter)
	switch {
	case !now.Before(cleanupAt):
		return m.cleanup(ctx, h, j, now)
	case !now.Before(cleanupAt.Add(-m.cfg.CleanupWarning)) && j.CleanupWarnedAt == nil:
		return m.warnCleanup(ctx, h, j, cleanupAt, now)
	}
	return nil
}

// fenced runs f in a transaction holding h's lease lock (see lockLease).
func (m *Manager) fenced(ctx context.Context, h *holding, f func(tx pgx.Tx, dbNow time.Time) error) error {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		dbNow, err := m.lockLease(ctx, tx, h)
		if err != nil {
			return err
		}
		return f(tx, dbNow)
	})
	if errors.Is(err, errLeaseGone) {
		return nil // the next holder's janitor takes over
	}
	return err
}

type cleanupWarningPayload struct {
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	DownSince time.Time `json:"down_since"`
	CleanupAt time.Time `json:"cleanup_at"`
	Phone     string    `json:"phone,omitempty"`
}

func (m *Manager) warnCleanup(ctx context.Context, h *holding, j janitorRow, cleanupAt, now time.Time) error {
	return m.fenced(ctx, h, func(tx pgx.Tx, dbNow time.Time) error {
		tag, err := tx.Exec(ctx, `
			UPDATE session_states SET cleanup_warned_at = $2
			WHERE connection_id = $1 AND cleanup_warned_at IS NULL AND state IN ('disconnected', 'logged_out')`,
			h.connID, now)
		if err != nil {
			return fmt.Errorf("recording the cleanup warning: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // warned already, or it connected meanwhile
		}
		key := fmt.Sprintf("%s:%d", sdk.EventSessionCleanupWarning, j.downSince.UnixMicro())
		payload := cleanupWarningPayload{State: j.State.State, Reason: j.Reason, DownSince: j.downSince.UTC(),
			CleanupAt: cleanupAt.UTC(), Phone: j.Phone}
		if _, err := insertEvent(ctx, tx, h.tenantID, h.connID, sdk.EventSessionCleanupWarning, key, dbNow, payload); err != nil {
			return err
		}
		m.log.Info("session cleanup warning given", append(h.attrs(m.node), "state", j.State.State, "cleanup_at", cleanupAt)...)
		return nil
	})
}

type cleanedPayload struct {
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	DownSince time.Time `json:"down_since"`
	Phone     string    `json:"phone,omitempty"`
	// LoggedOut says whether the connector's logout action succeeded.
	LoggedOut bool `json:"logged_out"`
}

// cleanup ends a session disconnected for CleanupAfter: logs it out (best
// effort; the session may be unable to reach the provider, which is why it
// is being cleaned), closes it and, in one fenced transaction, disables its
// connection, records the session.cleaned event and deletes the lease.
func (m *Manager) cleanup(ctx context.Context, h *holding, j janitorRow, now time.Time) error {
	loggedOut := m.logout(ctx, h, j)

	m.mu.Lock()
	if m.held[h.connID] != h {
		m.mu.Unlock()
		return nil // given up meanwhile
	}
	delete(m.held, h.connID)
	m.closing[h.connID]++
	m.mu.Unlock()
	defer m.doneClosing(h.connID)
	m.closeLocal(ctx, h)

	reason := "session cleaned up after " + days(m.cfg.CleanupAfter) + " disconnected"
	err := m.fenced(ctx, h, func(tx pgx.Tx, dbNow time.Time) error {
		if _, err := tx.Exec(ctx, `
			UPDATE connections SET status = $2, status_reason = $3, updated_at = now()
			WHERE id = $1 AND status = $4`, h.connID, store.StatusDisabled, reason, store.StatusActive); err != nil {
			return fmt.Errorf("disabling the connection: %w", err)
		}
		key := fmt.Sprintf("%s:%d", sdk.EventSessionCleaned, j.downSince.UnixMicro())
		payload := cleanedPayload{State: j.State.State, Reason: j.Reason, DownSince: j.downSince.UTC(), Phone: j.Phone, LoggedOut: loggedOut}
		if _, err := insertEvent(ctx, tx, h.tenantID, h.connID, sdk.EventSessionCleaned, key, dbNow, payload); err != nil {
			return err
		}
		// The next episode, should the connection be enabled again, starts
		// its own clock.
		if _, err := tx.Exec(ctx, `DELETE FROM connection_state WHERE connection_id = $1 AND key = $2`, h.connID, downSinceKey); err != nil {
			return fmt.Errorf("resetting the session's down time: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM session_leases WHERE connection_id = $1 AND owner = $2 AND fence = $3`,
			h.connID, m.node, h.fence); err != nil {
			return fmt.Errorf("releasing the lease: %w", err)
		}
		return notify(ctx, tx, Notice{TenantID: h.tenantID, ConnectionID: h.connID, Kind: NoticeState})
	})
	if err != nil {
		return fmt.Errorf("cleaning the session up: %w", err)
	}
	m.log.Info("session cleaned up and its connection disabled",
		append(h.attrs(m.node), "state", j.State.State, "down_since", j.downSince, "logged_out", loggedOut)...)
	return nil
}

// logout invokes the connector's logout action for h's session, when the
// connector declares one, and reports whether it succeeded.
func (m *Manager) logout(ctx context.Context, h *holding, j janitorRow) bool {
	client, err := m.plugins.Connector(h.connector)
	if err != nil {
		m.log.Warn("session cleanup: plugin unavailable, not logging out", append(h.attrs(m.node), "error", err)...)
		return false
	}
	declared := false
	for _, a := range client.Manifest().Actions {
		declared = declared || a.Name == LogoutAction
	}
	if !declared {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.OpenTimeout)
	defer cancel()
	conn, cfg, err := m.conns.ResolvedConnection(ctx, h.connID)
	if err != nil {
		m.log.Warn("session cleanup: resolving the connection failed, not logging out", append(h.attrs(m.node), "error", err)...)
		return false
	}
	_, err = client.Invoke(ctx, sdk.ActionCall{
		Connection:     sdk.Connection{ID: conn.ID, TenantID: conn.TenantID, Config: cfg},
		Action:         LogoutAction,
		Params:         json.RawMessage(`{}`),
		IdempotencyKey: fmt.Sprintf("session-cleanup:%s:%d", h.connID, j.downSince.UnixMicro()),
	})
	if err != nil {
		m.log.Warn("session cleanup: logout failed; cleaning up anyway", append(h.attrs(m.node), "error", err)...)
		return false
	}
	return true
}

type phoneAwayPayload struct {
	Phone       string    `json:"phone,omitempty"`
	PhoneSeenAt time.Time `json:"phone_seen_at"`
}

func (m *Manager) warnPhoneAway(ctx context.Context, h *holding, j janitorRow, now time.Time) error {
	return m.fenced(ctx, h, func(tx pgx.Tx, dbNow time.Time) error {
		tag, err := tx.Exec(ctx, `
			UPDATE session_states SET phone_warned_at = $2
			WHERE connection_id = $1 AND phone_warned_at IS NULL AND phone_seen_at = $3 AND state = 'connected'`,
			h.connID, now, *j.PhoneSeenAt)
		if err != nil {
			return fmt.Errorf("recording the phone-away warning: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // warned already, or the phone was seen meanwhile
		}
		key := fmt.Sprintf("%s:%d", sdk.EventSessionPhoneInactive, j.PhoneSeenAt.UnixMicro())
		payload := phoneAwayPayload{Phone: j.Phone, PhoneSeenAt: j.PhoneSeenAt.UTC()}
		if _, err := insertEvent(ctx, tx, h.tenantID, h.connID, sdk.EventSessionPhoneInactive, key, dbNow, payload); err != nil {
			return err
		}
		m.log.Info("session phone-away warning given", append(h.attrs(m.node), "phone_seen_at", *j.PhoneSeenAt)...)
		return nil
	})
}

// days says d in whole days when it is a whole number of days ("7 days"),
// else as a duration.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}
