//go:build !linkeddevice_fake

package linkeddevice

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// defaultBackend is the production backend: whatsmeow on the Postgres
// device store named by the environment.
func defaultBackend(log *slog.Logger) backend { return newStoreBackend(log) }

// buildActions returns the build's extra actions: none in production (the
// linkeddevice_fake build adds its test actions).
func buildActions() ([]sdk.Action, map[string]func(context.Context, *Connector, sdk.ActionCall) (json.RawMessage, error), error) {
	return nil, nil, nil
}
