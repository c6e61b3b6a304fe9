package templates

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// maxSyncPages bounds a sync: a WABA holds at most a few thousand templates
// (Meta's limit is 6,000 per account), so 100 per page needs far fewer; a
// connector that keeps returning a next cursor is broken.
const maxSyncPages = 1000

// metaTemplate is a template as list_templates returns it.
type metaTemplate struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	Language       string          `json:"language"`
	Category       string          `json:"category"`
	Status         string          `json:"status"`
	Components     json.RawMessage `json:"components"`
	RejectedReason string          `json:"rejected_reason"`
}

// mapStatus maps a status of Meta's (template list or status webhook) to
// Ponte's. ok is false for statuses that say nothing about sendability
// (LOCKED, LIMIT_EXCEEDED) and for DELETED, which callers handle.
func mapStatus(meta string) (status string, ok bool) {
	switch strings.ToUpper(meta) {
	case "APPROVED", "REINSTATED":
		return StatusApproved, true
	case "PENDING", "IN_APPEAL":
		return StatusPending, true
	case "REJECTED":
		return StatusRejected, true
	case "PAUSED":
		return StatusPaused, true
	case "DISABLED", "PENDING_DELETION", "ARCHIVED":
		return StatusDisabled, true
	}
	return "", false
}

// mapCategory lowercases Meta's category; ok is false for a category Ponte
// does not know.
func mapCategory(meta string) (string, bool) {
	switch c := strings.ToLower(meta); c {
	case CategoryMarketing, CategoryUtility, CategoryAuthentication:
		return c, true
	}
	return "", false
}

// SyncResult counts what a sync changed.
type SyncResult struct {
	// Upserted is the number of templates listed by the provider and stored.
	Upserted int
	// Removed is the number of stored templates the provider no longer has.
	Removed int
	// Skipped is the number of listed templates that could not be stored (an
	// unknown category, a deleted status).
	Skipped int
}

// upsertSynced writes a listed template. A template we marked incompatible
// stays so while Meta still approves the very same components: the feature's
// finding still holds. New components, or another status, replace it.
const upsertSynced = `
INSERT INTO templates (id, tenant_id, connection_id, provider_id, name, language, category, status, status_reason,
                       components, parameters, synced_at, status_at)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, NULLIF($9, ''), $10, $11, $12, $12)
ON CONFLICT (connection_id, name, language) DO UPDATE SET
    provider_id = EXCLUDED.provider_id,
    category = EXCLUDED.category,
    status = CASE WHEN templates.status = 'incompatible' AND EXCLUDED.status = 'approved' AND templates.components = EXCLUDED.components
                  THEN templates.status ELSE EXCLUDED.status END,
    status_reason = CASE WHEN templates.status = 'incompatible' AND EXCLUDED.status = 'approved' AND templates.components = EXCLUDED.components
                  THEN templates.status_reason ELSE EXCLUDED.status_reason END,
    components = EXCLUDED.components,
    parameters = EXCLUDED.parameters,
    synced_at = EXCLUDED.synced_at,
    status_at = EXCLUDED.status_at,
    updated_at = now()
WHERE templates.tenant_id = EXCLUDED.tenant_id`

// Sync pulls every template of the connection from the provider (all pages
// of list_templates) and stores them, removing the ones the provider no
// longer has. A template created while the sync ran is kept. Errors of the
// connector keep their *sdk.Error kind; a connection that is not the
// tenant's is an *sdk.Error of kind not found wrapping store.ErrNotFound.
func (s *Service) Sync(ctx context.Context, tenantID, connectionID string) (SyncResult, error) {
	// The database's clock, not ours: rows are compared with updated_at,
	// which the database stamps.
	var started time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return SyncResult{}, fmt.Errorf("syncing templates of %s: reading the clock: %w", connectionID, err)
	}
	var all []metaTemplate
	after := ""
	for page := 0; ; page++ {
		if page == maxSyncPages {
			return SyncResult{}, fmt.Errorf("syncing templates of %s: more than %d pages; the connector keeps returning a next cursor", connectionID, maxSyncPages)
		}
		params := map[string]any{"limit": 100}
		if after != "" {
			params["after"] = after
		}
		raw, _ := json.Marshal(params)
		out, err := s.inv.Invoke(ctx, invoke.Call{TenantID: tenantID, ConnectionID: connectionID, Action: "list_templates", Params: raw})
		if err != nil {
			return SyncResult{}, fmt.Errorf("syncing templates of %s: %w", connectionID, err)
		}
		var resp struct {
			Templates []metaTemplate `json:"templates"`
			Next      string         `json:"next"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return SyncResult{}, fmt.Errorf("syncing templates of %s: decoding list_templates result: %w", connectionID, err)
		}
		all = append(all, resp.Templates...)
		if resp.Next == "" || resp.Next == after {
			break
		}
		after = resp.Next
	}

	var res SyncResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The connection must be the tenant's: the invoker checked it, but
		// the rows written here must be right on their own.
		var owner string
		if err := tx.QueryRow(ctx, `SELECT tenant_id FROM connections WHERE id = $1`, connectionID).Scan(&owner); err != nil || owner != tenantID {
			if err == nil || errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return fmt.Errorf("reading connection: %w", err)
		}
		var keepNames, keepLangs []string
		batch := &pgx.Batch{}
		for _, m := range all {
			status, ok := mapStatus(m.Status)
			category, okCat := mapCategory(m.Category)
			if !ok || !okCat || !nameRE.MatchString(m.Name) || m.Language == "" {
				res.Skipped++
				if strings.ToUpper(m.Status) != "DELETED" {
					s.log.WarnContext(ctx, "templates: listed template not stored", "connection", connectionID, "name", m.Name,
						"language", m.Language, "status", m.Status, "category", m.Category)
				}
				continue
			}
			components := m.Components
			if len(components) == 0 || string(components) == "null" {
				components = json.RawMessage(`[]`)
			}
			reason := ""
			if status == StatusRejected && m.RejectedReason != "" && m.RejectedReason != "NONE" {
				reason = m.RejectedReason
			}
			keepNames, keepLangs = append(keepNames, m.Name), append(keepLangs, m.Language)
			batch.Queue(upsertSynced, store.NewID("tpl"), tenantID, connectionID, m.ID, m.Name, m.Language, category, status, reason,
				components, bodyParameters(components), started)
			res.Upserted++
		}
		if batch.Len() > 0 {
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return fmt.Errorf("storing templates: %w", err)
			}
		}
		tag, err := tx.Exec(ctx, `
			DELETE FROM templates t
			WHERE t.connection_id = $1 AND t.tenant_id = $2 AND t.updated_at < $3
			  AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS k(name, language)
			                  WHERE k.name = t.name AND k.language = t.language)`,
			connectionID, tenantID, started, keepNames, keepLangs)
		if err != nil {
			return fmt.Errorf("removing templates deleted at the provider: %w", err)
		}
		res.Removed = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return SyncResult{}, fmt.Errorf("syncing templates of %s: %w", connectionID, err)
	}
	s.log.InfoContext(ctx, "templates: synced", "tenant", tenantID, "connection", connectionID,
		"upserted", res.Upserted, "removed", res.Removed, "skipped", res.Skipped)
	return res, nil
}

// IsNotFound reports whether err means the connection or template does not
// exist for the tenant (store.ErrNotFound, or a connector's not-found).
func IsNotFound(err error) bool {
	var se *sdk.Error
	return errors.Is(err, store.ErrNotFound) || (errors.As(err, &se) && se.Kind == sdk.KindNotFound)
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, c *cursor) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return err
	}
	if c.Name == "" {
		return errors.New("empty cursor")
	}
	return nil
}
