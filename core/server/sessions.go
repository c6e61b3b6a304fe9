package server

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/sessions"
)

// Environment of the linked-device connector's plugin: its device store is
// whatsmeow's tables in Postgres (connectors/linkeddevice documents the
// names). Only that plugin gets the database URL; other plugins get none.
const (
	linkedDeviceStoreURLEnv    = "PONTE_LINKEDDEVICE_STORE_URL"
	linkedDeviceStoreSchemaEnv = "PONTE_LINKEDDEVICE_STORE_SCHEMA"
	linkedDeviceStoreSchema    = "whatsmeow" // created by migration 0010
)

// pluginEnv is the environment given to particular plugins.
func pluginEnv(cfg Config) map[string][]string {
	return map[string][]string{
		"linkeddevice": {
			linkedDeviceStoreURLEnv + "=" + cfg.DatabaseURL,
			linkedDeviceStoreSchemaEnv + "=" + linkedDeviceStoreSchema,
		},
	}
}

// sessionOwners adapts the session manager to the invoker's routing.
type sessionOwners struct{ m *sessions.Manager }

func (o sessionOwners) Holds(connectionID string) bool { return o.m.Holds(connectionID) }

func (o sessionOwners) OwnerURL(ctx context.Context, connectionID string) (string, error) {
	l, err := o.m.Owner(ctx, connectionID)
	if err != nil {
		return "", err
	}
	return l.OwnerURL, nil
}

// numbersPacing gives the messaging core each linked-device number's pacing
// (core/numbers keeps it with the number).
type numbersPacing struct{ pool *pgxpool.Pool }

func (p numbersPacing) LinkedPacing(ctx context.Context, tenantID, connectionID string) (messaging.LinkedPacing, error) {
	n, err := numbers.PacingFor(ctx, p.pool, tenantID, connectionID)
	if err != nil {
		return messaging.LinkedPacing{}, err
	}
	return messaging.LinkedPacing{
		MessagesPerMinute: n.MessagesPerMinute, NewContactsPerDay: n.NewContactsPerDay,
		MinGap: time.Duration(n.MinGapSeconds) * time.Second, MaxGap: time.Duration(n.MaxGapSeconds) * time.Second,
		Typing: n.Typing, TypingMax: time.Duration(n.TypingMaxSeconds) * time.Second,
	}, nil
}

// automationsReleaser unbinds automations from a deleted number.
type automationsReleaser struct{ s *automations.Store }

func (r automationsReleaser) ReleaseConnection(ctx context.Context, tenantID, connectionID string) error {
	_, err := r.s.ReleaseConnection(ctx, tenantID, connectionID)
	return err
}
