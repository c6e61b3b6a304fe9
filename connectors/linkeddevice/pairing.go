package linkeddevice

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// PairingResult is the result of start_pairing.
type PairingResult struct {
	// Started is true when a QR pairing was started; its codes arrive as
	// session updates.
	Started bool `json:"started"`
	// PairingCode is the code to type on the phone (Settings > Linked
	// devices > Link with phone number), for a pairing by phone number.
	PairingCode string `json:"pairing_code,omitempty"`
}

func (s *session) startPairing(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Phone string `json:"phone"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	cli, held := s.current()
	if !held {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "the session is no longer held by this plugin process"}
	}
	if cli != nil && !cli.device().ID.IsEmpty() {
		return nil, &sdk.Error{Kind: sdk.KindInvalid, Code: "already_paired", Message: "the connection is already paired with " + e164(cli.device().ID.User) + "; log out first"}
	}
	if p.Phone == "" {
		// A new QR pairing: its codes and outcome come as session
		// updates, so the action does not wait for WhatsApp.
		s.schedule(0, s.restartPairing)
		return PairingResult{Started: true}, nil
	}
	digits, ok := phoneDigits(p.Phone)
	if !ok {
		return nil, sdk.Invalid("%q is not a phone number in E.164", p.Phone)
	}
	if _, err := s.freshClient(ctx); err != nil {
		return nil, err
	}
	ready, connErr, err := s.beginQR()
	switch {
	case err != nil:
		return nil, sdk.Retryable("starting the pairing: %v", err)
	case connErr != nil:
		reason := describeConnectError(connErr)
		s.report(sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: reason})
		return nil, sdk.Retryable("%s", reason)
	}
	// whatsmeow asks to wait for the first QR code: only then is the
	// pairing socket ready for a phone code request.
	wait, cancel := context.WithTimeout(ctx, pairCodeWait)
	defer cancel()
	select {
	case <-ready:
	case <-wait.Done():
		return nil, sdk.Retryable("WhatsApp did not open a pairing session within %v", pairCodeWait)
	}
	cli, _ = s.current()
	code, err := cli.PairPhone(ctx, digits, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		if errors.Is(err, whatsmeow.ErrPhoneNumberTooShort) || errors.Is(err, whatsmeow.ErrPhoneNumberIsNotInternational) {
			return nil, sdk.Invalid("%q is not an international phone number: %v", p.Phone, err)
		}
		return nil, mapWAError("requesting a pairing code", err)
	}
	s.mu.Lock()
	s.pairingCode = code
	s.mu.Unlock()
	s.log.Info("pairing by phone code started")
	s.report(sdk.SessionUpdate{State: sdk.SessionPairing, PairingCode: code})
	return PairingResult{PairingCode: code}, nil
}

// LogoutResult is the result of logout.
type LogoutResult struct {
	// Unlinked is true when WhatsApp was told to unlink the device. When
	// the session was not connected the device is forgotten here only, and
	// the phone lists it until WhatsApp drops it.
	Unlinked bool `json:"unlinked"`
}

func (s *session) logout(ctx context.Context) (any, error) {
	cli, held := s.current()
	if !held {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "the session is no longer held by this plugin process"}
	}
	s.halt()
	s.mu.Lock()
	s.pairGen++ // stops a running QR loop
	if s.pairCancel != nil {
		s.pairCancel()
		s.pairCancel = nil
	}
	s.pairingCode = ""
	s.mu.Unlock()
	var res LogoutResult
	if cli != nil && !cli.device().ID.IsEmpty() && cli.IsLoggedIn() {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := cli.Logout(lctx)
		cancel()
		if err != nil {
			// The device is forgotten anyway: the user asked for it to
			// go, and WhatsApp drops unreachable devices by itself.
			s.log.Warn("unlinking the device at WhatsApp failed; forgetting it here", "error", err)
		} else {
			res.Unlinked = true
		}
	}
	if cli != nil {
		cli.Disconnect()
		s.forgetDevice(ctx, cli)
	}
	s.log.Info("logged out by the user", "unlinked", res.Unlinked)
	s.report(sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: ReasonLoggedOutByUser})
	return res, nil
}
