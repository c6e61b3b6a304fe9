package linkeddevice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestDescribeConnectError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err  error
		want string
	}{
		"dns": {fmt.Errorf("failed to dial websocket: %w", &net.DNSError{Err: "server misbehaving", Name: "web.whatsapp.com", Server: "10.0.0.53:53"}),
			"network unreachable: lookup web.whatsapp.com: server misbehaving"},
		"dial": {fmt.Errorf("failed to dial websocket: %w", &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connect: %w", errors.New("network is unreachable"))}),
			"network unreachable: dial: network is unreachable"},
		"timeout": {fmt.Errorf("noise handshake failed: %w", context.DeadlineExceeded), "network unreachable: timed out"},
		"other":   {errors.New("noise handshake failed: bad cert"), "connecting failed: noise handshake failed: bad cert"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := describeConnectError(tc.err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		attempt  int
		min, max time.Duration
	}{
		"first":   {1, 1600 * time.Millisecond, 2400 * time.Millisecond},
		"second":  {2, 3200 * time.Millisecond, 4800 * time.Millisecond},
		"fifth":   {5, 25600 * time.Millisecond, 38400 * time.Millisecond},
		"ceiling": {30, 4 * time.Minute, 6 * time.Minute},
		"huge":    {1 << 20, 4 * time.Minute, 6 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := backoff(tc.attempt)
				if d < tc.min || d > tc.max {
					t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.min, tc.max)
				}
				seen[d] = true
			}
			if len(seen) < 50 {
				t.Errorf("backoff(%d) has little jitter: %d distinct delays in 200", tc.attempt, len(seen))
			}
		})
	}
}

func TestMessageIDForLedger(t *testing.T) {
	t.Parallel()
	a := MessageIDForLedger("msg_1")
	if len(a) != 22 || a[:4] != whatsmeow.WebMessageIDPrefix {
		t.Errorf("id %q is not in WhatsApp Web's shape", a)
	}
	// core/messaging.LinkedMessageID records this id before the call: the
	// derivation is a contract between the two.
	sum := sha256.Sum256([]byte("ponte/linked-message-id/msg_1"))
	if want := "3EB0" + strings.ToUpper(hex.EncodeToString(sum[:9])); a != want {
		t.Errorf("id %q, want %q", a, want)
	}
	if b := MessageIDForLedger("msg_2"); b == a {
		t.Error("two ledger ids gave one message id")
	}
	if got := sendID("3EB0CALLERCHOSE", "msg_1"); got != "3EB0CALLERCHOSE" {
		t.Errorf("sendID with a message_id = %q", got)
	}
	if got := sendID("", "msg_1"); got != a {
		t.Errorf("sendID without a message_id = %q, want %q", got, a)
	}
}

func TestUserJID(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want string // "" for an Invalid error
	}{
		"e164":           {"+393331234567", "393331234567@s.whatsapp.net"},
		"spaced":         {" +39 333 123-4567 ", "393331234567@s.whatsapp.net"},
		"lid":            {"987654321012345@lid", "987654321012345@lid"},
		"lid spaced":     {" 987654321012345@lid ", "987654321012345@lid"},
		"lid device":     {"987654321012345:12@lid", ""},
		"lid letters":    {"98765abc@lid", ""},
		"lid empty":      {"@lid", ""},
		"lid too long":   {"123456789012345678901@lid", ""},
		"phone server":   {"393331234567@s.whatsapp.net", ""},
		"national phone": {"03331234567", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := userJID(tc.in)
			if tc.want == "" {
				if sdk.KindOf(err) != sdk.KindInvalid {
					t.Errorf("userJID(%q) = %v, %v; want an Invalid error", tc.in, got, err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("userJID(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPhoneDigits(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want string
		ok   bool
	}{
		"e164":          {"+393331234567", "393331234567", true},
		"spaced":        {"+39 333 123-4567", "393331234567", true},
		"digits":        {"393331234567", "393331234567", true},
		"national zero": {"03331234567", "", false},
		"letters":       {"+39abc", "", false},
		"too short":     {"+12345", "", false},
		"too long":      {"+1234567890123456", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := phoneDigits(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("phoneDigits(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTokenBucket(t *testing.T) {
	t.Parallel()
	b := newTokenBucket(3, 20*time.Second)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []bool
	for range 4 {
		ok, _ := b.take(now)
		got = append(got, ok)
	}
	if diff := cmp.Diff([]bool{true, true, true, false}, got); diff != "" {
		t.Errorf("burst (-want +got):\n%s", diff)
	}
	if ok, wait := b.take(now.Add(5 * time.Second)); ok || wait != 15*time.Second {
		t.Errorf("after 5s: %v, wait %v; want refused, 15s", ok, wait)
	}
	if ok, _ := b.take(now.Add(25 * time.Second)); !ok {
		t.Error("no token after 25s")
	}
}

func TestSkipChat(t *testing.T) {
	t.Parallel()
	jid := func(s string) types.JID {
		j, err := types.ParseJID(s)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	tests := map[string]struct {
		src  types.MessageSource
		skip bool
	}{
		"direct":    {types.MessageSource{Chat: jid("393331234567@s.whatsapp.net")}, false},
		"lid":       {types.MessageSource{Chat: jid("12345@lid")}, false},
		"group":     {types.MessageSource{Chat: jid("1203630000@g.us"), IsGroup: true}, true},
		"status":    {types.MessageSource{Chat: types.StatusBroadcastJID}, true},
		"broadcast": {types.MessageSource{Chat: jid("12345@broadcast")}, true},
		"channel":   {types.MessageSource{Chat: jid("1203630000@newsletter")}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := skipChat(tc.src) != ""; got != tc.skip {
				t.Errorf("skip = %v, want %v", got, tc.skip)
			}
		})
	}
}

func TestMapWAError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err  error
		kind sdk.ErrorKind
		code string
	}{
		"not connected": {whatsmeow.ErrNotConnected, sdk.KindRetryable, ""},
		"rate limit":    {fmt.Errorf("usync: %w", whatsmeow.ErrIQRateOverLimit), sdk.KindRateLimited, "429"},
		"not found":     {fmt.Errorf("devices: %w", whatsmeow.ErrIQNotFound), sdk.KindInvalid, "not_on_whatsapp"},
		"timeout":       {whatsmeow.ErrMessageTimedOut, sdk.KindRetryable, ""},
		"server":        {whatsmeow.ErrIQInternalServerError, sdk.KindRetryable, ""},
		"forbidden":     {whatsmeow.ErrIQForbidden, sdk.KindAuth, ""},
		"bad recipient": {whatsmeow.ErrRecipientADJID, sdk.KindInvalid, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := mapWAError("sending", tc.err)
			var e *sdk.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || e.Code != tc.code {
				t.Errorf("mapWAError(%v) = %v; want kind %s code %q", tc.err, err, tc.kind, tc.code)
			}
		})
	}
}

func TestWithoutCode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"401: logged out from another device": "logged out from another device",
		"no code: here":                       "no code: here",
		"plain":                               "plain",
	} {
		if got := withoutCode(in); got != want {
			t.Errorf("withoutCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// The production build fetches media links only from the public internet:
// a link to the deployment's own network is refused before a byte is read.
func TestMediaLinksMustBePublic(t *testing.T) {
	var served atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Store(true)
		_, _ = w.Write([]byte("secret"))
	}))
	defer srv.Close()
	_, _, err := fetchMedia(t.Context(), srv.URL+"/latest/meta-data", 1<<20)
	if k := sdk.KindOf(err); k != sdk.KindInvalid || served.Load() {
		t.Fatalf("fetching a loopback link = %v (kind %v, served %v); want refused as invalid, never requested", err, k, served.Load())
	}
}
