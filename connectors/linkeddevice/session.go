package linkeddevice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Reconnect pacing. A disconnected session tries again after about
// backoffBase, doubling up to backoffMax, each delay spread by ±20% so that
// the sessions of a process that lost its network together do not retry in
// step: 1,000 sessions at the 5-minute ceiling make about three attempts a
// second, each a failed DNS lookup or dial.
const (
	backoffBase = 2 * time.Second
	backoffMax  = 5 * time.Minute
	// openSpread spreads the first connect of sessions opened in a burst
	// (a node taking over many sessions at once).
	openSpread = time.Second
	// pairedWatchdog: after a pairing succeeds whatsmeow reconnects by
	// itself (WhatsApp restarts the stream); if that reconnect fails the
	// session reconnects after this long.
	pairedWatchdog = 45 * time.Second
	// hostCallTimeout bounds one report to the host.
	hostCallTimeout = 15 * time.Second
	// phoneSeenInterval: how often at most a session reports that the
	// account's phone was seen. The host watches for phones away for days;
	// reporting every message would be noise.
	phoneSeenInterval = time.Minute
)

// MaxQRCodes is the most QR codes one pairing shows before it gives up and
// reports logged_out. whatsmeow's own list (six codes, about 160 s) ends
// sooner; the bound holds should WhatsApp ever send more.
const MaxQRCodes = 8

// Reasons reported with session states that callers may match on.
const (
	ReasonPairingTimedOut  = "pairing timed out: no QR code was scanned"
	ReasonStreamReplaced   = "stream replaced: the session was opened elsewhere"
	ReasonLoggedOutByUser  = "logged out by the user"
	ReasonNetworkPrefix    = "network unreachable"
	ReasonClientOutdated   = "client outdated: WhatsApp refuses this version of the connector's WhatsApp library; update the connector"
	reasonConnectionLost   = "connection lost"
	reasonPairingConnected = "paired, connecting"
)

// session is one connection's linked device held by this process.
type session struct {
	c   *Connector
	id  string
	log *slog.Logger
	// ctx lives as long as the session is held here; whatsmeow's socket
	// loops run under it.
	ctx    context.Context
	cancel context.CancelFunc

	reportMu sync.Mutex // held while a report is sent: reports stay in order

	mu         sync.Mutex
	conn       sdk.Connection
	client     waClient
	state      sdk.SessionState
	account    *sdk.SessionAccount
	closed     bool // no longer held here: no reports, no reconnects
	halted     bool // stopped by WhatsApp (replaced, banned, logged out): no automatic reconnect
	attempt    int  // consecutive failed connects
	timer      *time.Timer
	pairGen    int // generation of the current pairing, to stop stale QR loops
	pairCancel context.CancelFunc
	// pairingCode is the phone code of a pairing by phone number, kept on
	// the pairing's later reports.
	pairingCode string
	phoneSeen   time.Time // last PhoneSeenAt reported
	checks      tokenBucket
}

// OpenSession starts holding conn's session: it loads the connection's
// device from the store and connects in the background, or starts pairing
// by QR code when the connection has no device. It returns once the session
// is set up, without waiting for WhatsApp.
func (c *Connector) OpenSession(ctx context.Context, conn sdk.Connection) error {
	c.mu.Lock()
	if s, ok := c.sessions[conn.ID]; ok {
		c.mu.Unlock()
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		return nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &session{
		c: c, id: conn.ID, conn: conn, ctx: sctx, cancel: cancel,
		log:    c.log.With("connection_id", conn.ID, "tenant_id", conn.TenantID),
		checks: newTokenBucket(checkNumbersBurst, checkNumbersEvery),
	}
	// Reserve the id before the slow part, so a concurrent OpenSession of
	// the same connection finds it and does not build a second client.
	c.sessions[conn.ID] = s
	c.mu.Unlock()

	if err := s.start(ctx); err != nil {
		c.mu.Lock()
		if c.sessions[conn.ID] == s {
			delete(c.sessions, conn.ID)
		}
		c.mu.Unlock()
		cancel()
		return err
	}
	return nil
}

// CloseSession stops holding the session: it disconnects from WhatsApp
// without logging out, so the session can be opened again here or on
// another node.
func (c *Connector) CloseSession(_ context.Context, connectionID string) error {
	c.mu.Lock()
	s := c.sessions[connectionID]
	delete(c.sessions, connectionID)
	c.mu.Unlock()
	if s != nil {
		s.close()
		s.log.Info("session closed")
	}
	return nil
}

// session returns the session of a connection held by this process, or nil.
func (c *Connector) session(connectionID string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[connectionID]
}

// start loads the device and sets the session going.
func (s *session) start(ctx context.Context) error {
	jid, err := s.storedJID(ctx)
	if err != nil {
		return err
	}
	cli, found, err := s.c.backend.client(ctx, jid, newWALogger(s.log, "Client"))
	if err != nil {
		return err
	}
	if !jid.IsEmpty() && !found {
		// The device was deleted from the store (logged out elsewhere, or
		// the store was reset): the connection must pair again.
		s.log.Warn("the connection's device is not in the device store; pairing again", "device_jid", jid.String())
		if err := s.c.host.SetState(ctx, s.id, StateDeviceJID, nil); err != nil {
			return fmt.Errorf("clearing the device of connection %s: %w", s.id, err)
		}
		if cli, _, err = s.c.backend.client(ctx, types.EmptyJID, newWALogger(s.log, "Client")); err != nil {
			return err
		}
	}
	s.setClient(cli)
	dev := cli.device()
	if dev.ID.IsEmpty() {
		s.log.Info("session opened without a device: pairing by QR code")
		s.schedule(0, s.startQR)
		return nil
	}
	s.mu.Lock()
	s.account = accountOf(dev)
	s.mu.Unlock()
	s.log.Info("session opened", "device_jid", dev.ID.String())
	s.report(sdk.SessionUpdate{State: sdk.SessionConnecting})
	s.schedule(rand.N(openSpread), s.connectNow)
	return nil
}

// storedJID reads the connection's device JID from host state.
func (s *session) storedJID(ctx context.Context) (types.JID, error) {
	raw, err := s.c.host.GetState(ctx, s.id, StateDeviceJID)
	if err != nil {
		return types.EmptyJID, fmt.Errorf("reading the device of connection %s: %w", s.id, err)
	}
	if len(raw) == 0 {
		return types.EmptyJID, nil
	}
	jid, err := types.ParseJID(string(raw))
	if err != nil {
		return types.EmptyJID, sdk.Permanent("the stored device of connection %s is not a JID: %v", s.id, err)
	}
	return jid, nil
}

// setClient makes cli the session's client and routes its events here.
func (s *session) setClient(cli waClient) {
	s.mu.Lock()
	s.client = cli
	s.mu.Unlock()
	cli.AddEventHandler(func(evt any) { s.handleEvent(cli, evt) })
}

// current returns the session's client and whether the session is still
// held here.
func (s *session) current() (waClient, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client, !s.closed
}

// close stops the session locally: no more reports, no reconnects, the
// socket closed. The device stays linked.
func (s *session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.pairCancel != nil {
		s.pairCancel()
	}
	cli := s.client
	s.mu.Unlock()
	s.cancel()
	if cli != nil {
		cli.Disconnect()
	}
}

// notHeld closes the session after the host said this node no longer holds
// it: another node does, and two clients of one device would replace each
// other's stream.
func (s *session) notHeld() {
	s.log.Warn("the host says this node no longer holds the session; closing it here")
	s.c.mu.Lock()
	if s.c.sessions[s.id] == s {
		delete(s.c.sessions, s.id)
	}
	s.c.mu.Unlock()
	s.close()
}

// checkHeld closes the session when err is the host's "not held" answer,
// and reports whether it was.
func (s *session) checkHeld(err error) bool {
	var e *sdk.Error
	if errors.As(err, &e) && e.Code == sdk.CodeSessionNotHeld {
		go s.notHeld() // not inline: we may be inside a whatsmeow event handler
		return true
	}
	return false
}

// report sends a state report to the host. The session's account, when
// known, rides along on every report. An update without State reports the
// current state (PhoneSeenAt). Reports are sent one at a time, so the host
// sees them in the order the session's state changed.
func (s *session) report(u sdk.SessionUpdate) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	s.mu.Lock()
	if s.closed || (u.State == "" && s.state == "") {
		s.mu.Unlock()
		return
	}
	if u.State == "" {
		u.State = s.state
	}
	s.state = u.State
	if u.Account == nil && s.account != nil {
		a := *s.account
		u.Account = &a
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	if err := s.c.host.UpdateSession(ctx, s.id, u); err != nil {
		if s.checkHeld(err) {
			return
		}
		s.log.Error("reporting the session state to the host", "state", string(u.State), "error", err)
		return
	}
	s.log.Debug("session state reported", "state", string(u.State), "reason", u.Reason)
}

// schedule runs f after d on a timer, replacing a pending one. Timers hold
// no goroutine while they wait, so idle and backing-off sessions cost none.
func (s *session) schedule(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(d, f)
}

// backoff returns the delay before the attempt-th reconnect (1-based).
func backoff(attempt int) time.Duration {
	d := backoffBase
	for i := 1; i < attempt && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	// ±20% jitter.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// connectNow connects a paired session's client.
func (s *session) connectNow() {
	s.mu.Lock()
	if s.closed || s.halted {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	cli := s.client
	s.mu.Unlock()
	if cli.device().ID.IsEmpty() {
		return // logged out meanwhile; pairing is started by the user
	}
	err := cli.ConnectContext(s.ctx)
	if err == nil || errors.Is(err, whatsmeow.ErrAlreadyConnected) {
		// Connected or ConnectFailure/LoggedOut/... follow as events.
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	s.retryLater(describeConnectError(err), s.connectNow)
}

// retryLater reports the session disconnected with reason and runs again
// after the next backoff delay.
func (s *session) retryLater(reason string, again func()) {
	s.mu.Lock()
	s.attempt++
	attempt := s.attempt
	s.mu.Unlock()
	d := backoff(attempt)
	s.log.Info("session disconnected; retrying", "reason", reason, "attempt", attempt, "retry_in", d.Round(time.Millisecond).String())
	s.report(sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: reason, RetryAt: time.Now().Add(d)})
	s.schedule(d, again)
}

// describeConnectError turns a failed connect into a short reason. Network
// failures (DNS, dial, TLS, timeouts) say "network unreachable: ...", with
// the innermost cause only: no addresses of resolvers, no stack of wrappers.
func describeConnectError(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("%s: lookup %s: %s", ReasonNetworkPrefix, dnsErr.Name, dnsErr.Err)
	case errors.As(err, &opErr):
		cause := opErr.Err
		for {
			next := errors.Unwrap(cause)
			if next == nil {
				break
			}
			cause = next
		}
		return fmt.Sprintf("%s: %s: %v", ReasonNetworkPrefix, opErr.Op, cause)
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonNetworkPrefix + ": timed out"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Sprintf("%s: %v", ReasonNetworkPrefix, netErr)
	}
	return "connecting failed: " + err.Error()
}

// accountOf is the account a device is linked to.
func accountOf(d deviceInfo) *sdk.SessionAccount {
	if d.ID.IsEmpty() {
		return nil
	}
	a := &sdk.SessionAccount{
		Phone:    e164(d.ID.User),
		JID:      d.ID.String(),
		PushName: d.PushName,
		Platform: d.Platform,
	}
	if !d.LID.IsEmpty() {
		a.LID = d.LID.ToNonAD().String()
	}
	return a
}

// beginQR starts a pairing with the session's unpaired client: it opens
// whatsmeow's QR channel, starts the loop that reports its codes and
// connects. ready is closed when the first code arrives (the pairing socket
// is up). It must not run inside a whatsmeow event handler (GetQRChannel
// registers a handler, which waits for the handler lock).
func (s *session) beginQR() (ready <-chan struct{}, connectErr, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, errSessionClosed
	}
	s.halted = false
	s.pairGen++
	gen := s.pairGen
	if s.pairCancel != nil {
		s.pairCancel()
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.pairCancel = cancel
	s.pairingCode = ""
	readyCh := make(chan struct{})
	cli := s.client
	s.mu.Unlock()

	ch, err := cli.GetQRChannel(ctx)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("starting QR pairing: %w", err)
	}
	go s.qrLoop(ctx, gen, ch, readyCh)
	if err := cli.ConnectContext(s.ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
		cancel()
		return nil, err, nil
	}
	return readyCh, nil, nil
}

var errSessionClosed = errors.New("the session is closed")

// startQR starts pairing by QR code in the background; a failed connect is
// reported and retried with backoff and a fresh device.
func (s *session) startQR() {
	_, connErr, err := s.beginQR()
	switch {
	case errors.Is(err, errSessionClosed) || s.ctx.Err() != nil:
	case err != nil:
		s.log.Error("starting QR pairing", "error", err)
		s.report(sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: "pairing failed: " + err.Error()})
	case connErr != nil:
		// The QR channel's handler stays on the failed client, so the
		// next attempt gets a fresh client for a fresh device.
		s.retryLater(describeConnectError(connErr), s.restartPairing)
	}
}

// freshClient replaces the session's client by one for a new device, for a
// new pairing.
func (s *session) freshClient(ctx context.Context) (waClient, error) {
	s.mu.Lock()
	old := s.client
	s.mu.Unlock()
	if old != nil {
		old.Disconnect()
	}
	cli, _, err := s.c.backend.client(ctx, types.EmptyJID, newWALogger(s.log, "Client"))
	if err != nil {
		return nil, err
	}
	s.setClient(cli)
	return cli, nil
}

// restartPairing starts QR pairing again with a new client for a new
// device.
func (s *session) restartPairing() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, hostCallTimeout)
	defer cancel()
	if _, err := s.freshClient(ctx); err != nil {
		s.retryLater("pairing failed: "+err.Error(), s.restartPairing)
		return
	}
	s.startQR()
}

// qrLoop reports the QR codes of one pairing until it ends. It is bounded:
// whatsmeow ends the channel after its last code, and the loop gives up
// after MaxQRCodes codes itself.
func (s *session) qrLoop(ctx context.Context, gen int, ch <-chan whatsmeow.QRChannelItem, ready chan struct{}) {
	codes := 0
	stale := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closed || s.pairGen != gen
	}
	end := func(reason string) {
		if stale() {
			return
		}
		if cli, ok := s.current(); ok {
			cli.Disconnect()
		}
		s.log.Info("pairing ended", "reason", reason)
		s.report(sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: reason})
	}
	for {
		var item whatsmeow.QRChannelItem
		var ok bool
		select {
		case <-ctx.Done():
			return
		case item, ok = <-ch:
		}
		if !ok || stale() {
			return
		}
		switch item.Event {
		case whatsmeow.QRChannelEventCode:
			codes++
			if codes > MaxQRCodes {
				end(ReasonPairingTimedOut)
				return
			}
			if codes == 1 {
				close(ready)
			}
			s.mu.Lock()
			pairingCode := s.pairingCode
			s.mu.Unlock()
			s.report(sdk.SessionUpdate{State: sdk.SessionPairing, QRCode: item.Code, QRExpiresAt: time.Now().Add(item.Timeout), PairingCode: pairingCode})
		case whatsmeow.QRChannelTimeout.Event:
			end(ReasonPairingTimedOut)
			return
		case whatsmeow.QRChannelSuccess.Event, whatsmeow.QRChannelEventError:
			// Reported by the PairSuccess / PairError handlers.
			return
		case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
			s.report(sdk.SessionUpdate{State: sdk.SessionPairing, Reason: "the QR code was scanned by a phone without multi-device support; update WhatsApp on the phone and scan again"})
		case whatsmeow.QRChannelClientOutdated.Event:
			end("pairing failed: " + ReasonClientOutdated)
			return
		default:
			end("pairing failed: unexpected event while pairing (" + item.Event + ")")
			return
		}
	}
}

// forgetDevice deletes the session's device from the store and the
// connection's device JID from host state.
func (s *session) forgetDevice(ctx context.Context, cli waClient) {
	if err := cli.forget(ctx); err != nil {
		s.log.Error("deleting the device from the store", "error", err)
	}
	if err := s.c.host.SetState(ctx, s.id, StateDeviceJID, nil); err != nil && !s.checkHeld(err) {
		s.log.Error("clearing the connection's device", "error", err)
	}
	s.mu.Lock()
	s.account = nil
	s.mu.Unlock()
}

// halt stops automatic reconnects and pending timers.
func (s *session) halt() {
	s.mu.Lock()
	s.halted = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
}

// handleEvent is the whatsmeow event handler of one client: a type switch
// that hands each event to one method. Events of a client the session no
// longer uses (replaced after a failed pairing) are dropped.
func (s *session) handleEvent(cli waClient, evt any) {
	s.mu.Lock()
	stale := s.closed || s.client != cli
	s.mu.Unlock()
	if stale {
		return
	}
	switch e := evt.(type) {
	case *events.Connected:
		s.onConnected(cli)
	case *events.Disconnected:
		s.onDisconnected(cli)
	case *events.PairSuccess:
		s.onPairSuccess(e)
	case *events.PairError:
		s.log.Warn("pairing failed", "error", e.Error)
		s.report(sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: fmt.Sprintf("pairing failed: %v", e.Error)})
	case *events.LoggedOut:
		s.onLoggedOut(cli, e)
	case *events.StreamReplaced:
		s.halt()
		cli.Disconnect()
		s.log.Warn("stream replaced: another client of this device connected")
		s.report(sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: ReasonStreamReplaced})
	case *events.TemporaryBan:
		s.onTemporaryBan(e)
	case *events.ConnectFailure:
		s.onConnectFailure(cli, e)
	case *events.ClientOutdated:
		s.halt()
		s.log.Error("WhatsApp says the client is outdated")
		s.report(sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: ReasonClientOutdated})
	case *events.StreamError:
		s.log.Warn("unknown stream error from WhatsApp", "code", e.Code)
	case *events.Message:
		s.onMessage(cli, e)
	case *events.UndecryptableMessage:
		s.onUndecryptable(cli, e)
	case *events.Receipt:
		s.onReceipt(cli, e)
	case *events.Presence:
		s.onPresence(cli, e)
	case *events.ChatPresence:
		s.onChatPresence(cli, e)
	case *events.KeepAliveTimeout:
		s.onKeepAliveTimeout(cli, e)
	default:
		s.log.Debug("whatsmeow event ignored", "event", fmt.Sprintf("%T", evt))
	}
}

func (s *session) onConnected(cli waClient) {
	s.mu.Lock()
	s.attempt = 0
	s.halted = false
	acc := accountOf(cli.device())
	if acc != nil {
		s.account = acc
	}
	s.mu.Unlock()
	s.log.Info("connected to WhatsApp")
	s.report(sdk.SessionUpdate{State: sdk.SessionConnected})
}

func (s *session) onDisconnected(cli waClient) {
	if cli.device().ID.IsEmpty() {
		return // a pairing's socket: the QR loop reports how it ended
	}
	s.mu.Lock()
	halted := s.halted
	s.mu.Unlock()
	if halted {
		return
	}
	s.retryLater(reasonConnectionLost, s.connectNow)
}

// onKeepAliveTimeout drops a connection whose keepalives have failed for
// long: whatsmeow does that itself only with its own auto-reconnect, which
// the session replaces.
func (s *session) onKeepAliveTimeout(cli waClient, e *events.KeepAliveTimeout) {
	s.log.Debug("keepalive timed out", "errors", e.ErrorCount)
	if time.Since(e.LastSuccess) <= whatsmeow.KeepAliveMaxFailTime {
		return
	}
	s.mu.Lock()
	halted := s.halted
	s.mu.Unlock()
	if halted {
		return
	}
	cli.Disconnect()
	s.retryLater(reasonConnectionLost+": keepalive timed out", s.connectNow)
}

func (s *session) onPairSuccess(e *events.PairSuccess) {
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	s.mu.Lock()
	if s.pairCancel != nil {
		s.pairCancel()
		s.pairCancel = nil
	}
	s.account = &sdk.SessionAccount{Phone: e164(e.ID.User), JID: e.ID.String(), Platform: e.Platform}
	if !e.LID.IsEmpty() {
		s.account.LID = e.LID.ToNonAD().String()
	}
	s.attempt = 0
	s.mu.Unlock()
	if err := s.c.host.SetState(ctx, s.id, StateDeviceJID, []byte(e.ID.String())); err != nil {
		if s.checkHeld(err) {
			return
		}
		// The device is in the store but the connection does not point
		// at it: after a restart this connection would pair again.
		s.log.Error("storing the paired device of the connection", "device_jid", e.ID.String(), "error", err)
	}
	s.log.Info("paired", "device_jid", e.ID.String(), "platform", e.Platform)
	s.report(sdk.SessionUpdate{State: sdk.SessionConnecting, Reason: reasonPairingConnected})
	// whatsmeow reconnects by itself after pairing; should that fail, the
	// session's own reconnect takes over.
	s.schedule(pairedWatchdog, func() {
		if cli, ok := s.current(); ok && !cli.IsLoggedIn() {
			s.connectNow()
		}
	})
}

func (s *session) onLoggedOut(cli waClient, e *events.LoggedOut) {
	s.halt()
	cli.Disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	s.forgetDevice(ctx, cli)
	if e.Reason == events.ConnectFailureUnknownLogout {
		// 406 is what WhatsApp's own web client calls BANNED.
		s.log.Warn("logged out by WhatsApp with reason 406 (banned)")
		s.report(sdk.SessionUpdate{State: sdk.SessionBanned, Reason: fmt.Sprintf("banned (%d): %s", int(e.Reason), withoutCode(e.Reason.String()))})
		return
	}
	s.log.Warn("logged out by the phone or WhatsApp", "reason", e.Reason.String())
	s.report(sdk.SessionUpdate{State: sdk.SessionLoggedOut, Reason: "logged out: " + withoutCode(e.Reason.String())})
}

func (s *session) onTemporaryBan(e *events.TemporaryBan) {
	s.halt()
	until := time.Time{}
	if e.Expire > 0 {
		until = time.Now().Add(e.Expire)
	}
	reason := fmt.Sprintf("temporary ban (%d): %s", int(e.Code), withoutCode(e.Code.String()))
	s.log.Warn("account temporarily banned", "code", int(e.Code), "expire", e.Expire.String())
	s.report(sdk.SessionUpdate{State: sdk.SessionTemporarilyBanned, Reason: reason, BannedUntil: until})
	if !until.IsZero() {
		// Try again once the ban is over, spread like any reconnect.
		s.schedule(e.Expire+rand.N(backoffBase*5), func() {
			s.mu.Lock()
			s.halted = false
			s.mu.Unlock()
			s.connectNow()
		})
	}
}

func (s *session) onConnectFailure(cli waClient, e *events.ConnectFailure) {
	reason := fmt.Sprintf("(%d): %s", int(e.Reason), withoutCode(e.Reason.String()))
	if e.Message != "" {
		reason += " (" + e.Message + ")"
	}
	switch {
	case isBanFailure(e):
		s.halt()
		cli.Disconnect()
		s.log.Warn("WhatsApp refused the account", "reason", int(e.Reason))
		s.report(sdk.SessionUpdate{State: sdk.SessionBanned, Reason: "banned " + reason})
	case e.Reason >= 500:
		s.retryLater("WhatsApp unavailable "+reason, s.connectNow)
	default:
		s.halt()
		cli.Disconnect()
		s.log.Warn("WhatsApp refused the connection", "reason", int(e.Reason))
		s.report(sdk.SessionUpdate{State: sdk.SessionDisconnected, Reason: "connect failure " + reason})
	}
}

// withoutCode drops the "NNN: " whatsmeow puts before its reason texts.
func withoutCode(s string) string {
	if i := strings.Index(s, ": "); i > 0 && strings.Trim(s[:i], "0123456789") == "" {
		return s[i+2:]
	}
	return s
}

// isBanFailure reports whether a connect failure means WhatsApp refuses the
// account rather than the connection.
func isBanFailure(e *events.ConnectFailure) bool {
	switch e.Reason {
	case events.ConnectFailureTempBanned, events.ConnectFailureMainDeviceGone, events.ConnectFailureUnknownLogout:
		return true
	}
	return strings.Contains(strings.ToLower(e.Message), "ban")
}

// sawPhone reports that the account's primary phone was active at t, at
// most once per phoneSeenInterval.
func (s *session) sawPhone(t time.Time) {
	if t.IsZero() {
		t = time.Now()
	}
	s.mu.Lock()
	if t.Sub(s.phoneSeen) < phoneSeenInterval {
		s.mu.Unlock()
		return
	}
	s.phoneSeen = t
	s.mu.Unlock()
	s.report(sdk.SessionUpdate{PhoneSeenAt: t})
}
