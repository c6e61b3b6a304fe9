package ordernotify

import (
	"context"
	"fmt"
	"time"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/messaging"
)

// AutomationSettings loads order notification settings from core/automations
// (kind [SettingsKind]).
type AutomationSettings struct{ Store *automations.Store }

var _ SettingsLoader = AutomationSettings{}

// Load implements SettingsLoader.
func (a AutomationSettings) Load(ctx context.Context, tenantID, connectionID string) (Settings, bool, error) {
	var s Settings
	found, err := a.Store.Get(ctx, tenantID, connectionID, SettingsKind, &s)
	if err != nil {
		return Settings{}, false, err
	}
	return s, found, nil
}

// DirectoryWindow checks the 24-hour window on the messaging core's
// directory (a *messaging.SQLDirectory): the contact and conversation the
// send is about to use, created when new, which is what the send itself
// would do a moment later.
type DirectoryWindow struct{ Directory messaging.Directory }

var _ WindowChecker = DirectoryWindow{}

// WindowOpen implements WindowChecker.
func (w DirectoryWindow) WindowOpen(ctx context.Context, tenantID, channelConnectionID, phone string, now time.Time) (bool, error) {
	rc, err := w.Directory.Recipient(ctx, tenantID, channelConnectionID, phone, "")
	if err != nil {
		return false, fmt.Errorf("resolving recipient %s: %w", phone, err)
	}
	return contacts.WindowAt(rc.LastInboundAt, now).Open, nil
}
