package linkeddevice

import (
	"context"
	"fmt"
	"log/slog"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// slogWA adapts whatsmeow's logger to slog. whatsmeow is chatty and its
// info lines describe protocol internals ("Successfully authenticated",
// prekey uploads, app state syncs), and its debug lines may quote message
// contents, so info and debug both go to slog's debug level; warnings and
// errors keep theirs. Formatting is skipped when the level is off, so 1,000
// sessions logging debug lines nobody reads cost nothing.
type slogWA struct {
	log *slog.Logger
}

// newWALogger returns a whatsmeow logger writing to log with a "module"
// attribute.
func newWALogger(log *slog.Logger, module string) waLog.Logger {
	return slogWA{log: log.With("module", "whatsmeow/"+module)}
}

func (l slogWA) emit(level slog.Level, msg string, args []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(msg, args...))
}

func (l slogWA) Errorf(msg string, args ...any) { l.emit(slog.LevelError, msg, args) }
func (l slogWA) Warnf(msg string, args ...any)  { l.emit(slog.LevelWarn, msg, args) }
func (l slogWA) Infof(msg string, args ...any)  { l.emit(slog.LevelDebug, msg, args) }
func (l slogWA) Debugf(msg string, args ...any) { l.emit(slog.LevelDebug, msg, args) }

func (l slogWA) Sub(module string) waLog.Logger {
	return slogWA{log: l.log.With("submodule", module)}
}
