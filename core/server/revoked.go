package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// revokedRoute applies sdk.EventConnectionRevoked: the provider says the
// connection no longer works (Shopify's app/uninstalled), so the connection
// is disabled with the connector's reason, its webhooks are refused and no
// actions or polls run for it until the user enables it again.
func revokedRoute(st *store.Store, log *slog.Logger) dispatch.Router {
	return dispatch.RouterFunc(func(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		if ev.Type != sdk.EventConnectionRevoked {
			return nil, nil
		}
		var p struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return nil, dispatch.Permanent(fmt.Errorf("decoding %s payload of event %d: %w", ev.Type, ev.ID, err))
		}
		reason := cmp.Or(p.Reason, "the provider revoked the connection")
		return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
			changed, err := st.RevokeConnection(ctx, ev.ConnectionID, reason)
			if errors.Is(err, store.ErrNotFound) {
				return dispatch.Permanent(fmt.Errorf("connection %s no longer exists", ev.ConnectionID))
			}
			if err != nil {
				return err
			}
			if changed {
				log.Warn("connection disabled: the provider revoked it", "connection", ev.ConnectionID,
					"tenant", ev.TenantID, "connector", ev.Connector, "reason", reason)
			}
			return nil
		}}}, nil
	})
}
