package sessions

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	ptr := func(t time.Time) *time.Time { return &t }
	pairing := stateRow{State: State{State: "pairing", Since: t0, QRCode: "qr-1", QRExpiresAt: ptr(t0.Add(20 * time.Second)), UpdatedAt: t0}}
	connected := stateRow{
		State: State{State: "connected", Since: t0, Phone: "+393331234567", JID: "39333:1@s.whatsapp.net", PushName: "Shop",
			PhoneSeenAt: ptr(t0), ConnectedAt: ptr(t0), UpdatedAt: t0},
		PhoneWarnedAt: ptr(t0.Add(time.Minute)),
	}
	disconnectedWarned := stateRow{State: State{State: "disconnected", Since: t0, Phone: "+393331234567", ConnectedAt: ptr(t0.Add(-time.Hour)), UpdatedAt: t0},
		CleanupWarnedAt: ptr(t0)}

	tests := map[string]struct {
		prev           *stateRow
		update         sdk.SessionUpdate
		want           stateRow
		changed, codes bool
	}{
		"first report": {
			update:  sdk.SessionUpdate{State: sdk.SessionConnecting, Reason: "starting"},
			want:    stateRow{State: State{State: "connecting", Reason: "starting", Since: now, UpdatedAt: now}},
			changed: true,
		},
		"first report pairing with a QR": {
			update:  sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: "qr-1", QRExpiresAt: t0.Add(time.Minute)},
			want:    stateRow{State: State{State: "pairing", Since: now, QRCode: "qr-1", QRExpiresAt: ptr(t0.Add(time.Minute)), UpdatedAt: now}},
			changed: true, codes: true,
		},
		"next QR while pairing keeps since": {
			prev:   &pairing,
			update: sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: "qr-2", QRExpiresAt: now.Add(20 * time.Second)},
			want:   stateRow{State: State{State: "pairing", Since: t0, QRCode: "qr-2", QRExpiresAt: ptr(now.Add(20 * time.Second)), UpdatedAt: now}},
			codes:  true,
		},
		"pairing report without codes keeps the QR": {
			prev:   &pairing,
			update: sdk.SessionUpdate{State: sdk.SessionPairing, Reason: "waiting"},
			want:   stateRow{State: State{State: "pairing", Reason: "waiting", Since: t0, QRCode: "qr-1", QRExpiresAt: ptr(t0.Add(20 * time.Second)), UpdatedAt: now}},
		},
		"pairing code replaces the QR": {
			prev:   &pairing,
			update: sdk.SessionUpdate{State: sdk.SessionPairing, PairingCode: "ABCD-EFGH"},
			want:   stateRow{State: State{State: "pairing", Since: t0, PairingCode: "ABCD-EFGH", UpdatedAt: now}},
			codes:  true,
		},
		"paired: codes cleared, account and connected_at set": {
			prev: &pairing,
			update: sdk.SessionUpdate{State: sdk.SessionConnected, QRCode: "stale",
				Account: &sdk.SessionAccount{Phone: "+393331234567", JID: "39333:1@s.whatsapp.net", PushName: "Shop"}},
			want: stateRow{State: State{State: "connected", Since: now, Phone: "+393331234567", JID: "39333:1@s.whatsapp.net",
				PushName: "Shop", ConnectedAt: ptr(now), UpdatedAt: now}},
			changed: true, codes: true,
		},
		"report without account keeps it; phone seen earlier does not move back": {
			prev:   &connected,
			update: sdk.SessionUpdate{State: sdk.SessionConnected, PhoneSeenAt: t0.Add(-time.Hour), Account: &sdk.SessionAccount{LID: "123@lid"}},
			want: stateRow{State: State{State: "connected", Since: t0, Phone: "+393331234567", JID: "39333:1@s.whatsapp.net", LID: "123@lid",
				PushName: "Shop", PhoneSeenAt: ptr(t0), ConnectedAt: ptr(t0), UpdatedAt: now}, PhoneWarnedAt: ptr(t0.Add(time.Minute))},
		},
		"phone seen again ends the phone-away episode": {
			prev:   &connected,
			update: sdk.SessionUpdate{State: sdk.SessionConnected, PhoneSeenAt: now},
			want: stateRow{State: State{State: "connected", Since: t0, Phone: "+393331234567", JID: "39333:1@s.whatsapp.net",
				PushName: "Shop", PhoneSeenAt: ptr(now), ConnectedAt: ptr(t0), UpdatedAt: now}},
		},
		"disconnected with retry": {
			prev:   &connected,
			update: sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: "network unreachable", RetryAt: now.Add(time.Minute)},
			want: stateRow{State: State{State: "disconnected", Reason: "network unreachable", Since: now, RetryAt: ptr(now.Add(time.Minute)),
				Phone: "+393331234567", JID: "39333:1@s.whatsapp.net", PushName: "Shop", PhoneSeenAt: ptr(t0), ConnectedAt: ptr(t0), UpdatedAt: now},
				PhoneWarnedAt: ptr(t0.Add(time.Minute))},
			changed: true,
		},
		"connecting keeps the cleanup warning": {
			prev:   &disconnectedWarned,
			update: sdk.SessionUpdate{State: sdk.SessionConnecting},
			want: stateRow{State: State{State: "connecting", Since: now, Phone: "+393331234567", ConnectedAt: ptr(t0.Add(-time.Hour)), UpdatedAt: now},
				CleanupWarnedAt: ptr(t0)},
			changed: true,
		},
		"connected again ends the cleanup episode": {
			prev:    &disconnectedWarned,
			update:  sdk.SessionUpdate{State: sdk.SessionConnected},
			want:    stateRow{State: State{State: "connected", Since: now, Phone: "+393331234567", ConnectedAt: ptr(now), UpdatedAt: now}},
			changed: true,
		},
		"temporary ban": {
			prev:   &connected,
			update: sdk.SessionUpdate{State: sdk.SessionTemporarilyBanned, Reason: "spam", BannedUntil: now.Add(24 * time.Hour)},
			want: stateRow{State: State{State: "temporarily_banned", Reason: "spam", Since: now, BannedUntil: ptr(now.Add(24 * time.Hour)),
				Phone: "+393331234567", JID: "39333:1@s.whatsapp.net", PushName: "Shop", PhoneSeenAt: ptr(t0), ConnectedAt: ptr(t0), UpdatedAt: now},
				PhoneWarnedAt: ptr(t0.Add(time.Minute))},
			changed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, changed, codes := merge(tc.prev, tc.update, now)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
			if changed != tc.changed || codes != tc.codes {
				t.Errorf("changed, codes = %v, %v; want %v, %v", changed, codes, tc.changed, tc.codes)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		update  sdk.SessionUpdate
		wantErr string
	}{
		"ok":                 {update: sdk.SessionUpdate{State: sdk.SessionConnected, Account: &sdk.SessionAccount{Phone: "+39333"}}},
		"unknown state":      {update: sdk.SessionUpdate{State: "sleeping"}, wantErr: "unknown session state"},
		"empty state":        {update: sdk.SessionUpdate{}, wantErr: "unknown session state"},
		"long reason":        {update: sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: strings.Repeat("x", MaxReasonBytes+1)}, wantErr: "reason is 1001 bytes"},
		"long QR":            {update: sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: strings.Repeat("x", MaxQRCodeBytes+1)}, wantErr: "qr_code"},
		"NUL in push name":   {update: sdk.SessionUpdate{State: sdk.SessionConnected, Account: &sdk.SessionAccount{PushName: "a\x00b"}}, wantErr: "account.push_name must be UTF-8"},
		"invalid UTF-8 code": {update: sdk.SessionUpdate{State: sdk.SessionPairing, PairingCode: "\xff"}, wantErr: "pairing_code must be UTF-8"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := validateUpdate(tc.update)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validateUpdate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("validateUpdate = %v, want an error containing %q", err, tc.wantErr)
			}
			if sdk.KindOf(err) != sdk.KindInvalid {
				t.Errorf("kind = %v, want invalid", sdk.KindOf(err))
			}
		})
	}
}

func TestDays(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7 days",
		24 * time.Hour:     "1 day",
		90 * time.Minute:   "1h30m0s",
	} {
		if got := days(d); got != want {
			t.Errorf("days(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestNotHeldError(t *testing.T) {
	t.Parallel()
	err := notHeld("con_x")
	b, _ := json.Marshal(struct{ Kind, Code string }{err.Kind.String(), err.Code})
	if string(b) != `{"Kind":"invalid","Code":"session_not_held"}` {
		t.Errorf("notHeld = %s", b)
	}
}
