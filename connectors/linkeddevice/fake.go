//go:build linkeddevice_fake

package linkeddevice

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// This file is the linkeddevice_fake build: the same plugin with a fake
// whatsmeow client behind the connector's waClient seam and two test-only
// actions, test_inject and test_sent. Tests build it with
// `go build -tags linkeddevice_fake` and drive the real plugin process.
// The fake keeps its "device store" in memory; everything else (the
// session state machine, event handling, actions) is the production code.

// Test action names, declared only in this build.
const (
	ActionTestInject = "test_inject"
	ActionTestSent   = "test_sent"
)

//go:embed testschemas/*.json
var testSchemaFiles embed.FS

var fakeStore = newFakeBackend()

// The test build fetches media from the tests' own servers on 127.0.0.1.
func init() { mediaHTTP = newMediaHTTP(nil) }

func defaultBackend(*slog.Logger) backend { return fakeStore }

func buildActions() ([]sdk.Action, map[string]func(context.Context, *Connector, sdk.ActionCall) (json.RawMessage, error), error) {
	actions, err := sdk.ActionsFromSchemas(testSchemaFiles, "testschemas",
		sdk.ActionSpec{Name: ActionTestInject, Description: "Test build only: feeds a whatsmeow event (JSON-encoded) into the session's event handler, or sets a knob of the fake."},
		sdk.ActionSpec{Name: ActionTestSent, Description: "Test build only: returns what the fake whatsmeow client was asked to do."},
	)
	if err != nil {
		return nil, nil, err
	}
	return actions, map[string]func(context.Context, *Connector, sdk.ActionCall) (json.RawMessage, error){
		ActionTestInject: testInject,
		ActionTestSent:   testSent,
	}, nil
}

// Injection is the parameter of test_inject: a whatsmeow event by its type
// name in go.mau.fi/whatsmeow/types/events ("Message", "Receipt", ...) with
// Data the JSON encoding of that struct (Go field names; JIDs as strings),
// Message the protojson of the waE2E.Message of a Message event, Error the
// text of a PairError's error, TimeoutMS the life of each code of a QR
// event (whatsmeow's 60 s / 20 s when zero). Knobs of the fake use other
// names: LIDMapping (LID, PN), NotOnWhatsApp (Phones), ConnectError (Error:
// "dns", "refused" or "" to clear).
type Injection struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Message   json.RawMessage `json:"message"`
	Error     string          `json:"error"`
	TimeoutMS int             `json:"timeout_ms"`
	LID       string          `json:"lid"`
	PN        string          `json:"pn"`
	Phones    []string        `json:"phones"`
}

// decodeEvent builds the real events.* value of an injection.
func decodeEvent(in Injection) (any, error) {
	var evt any
	switch in.Event {
	case "Message":
		evt = &events.Message{}
	case "UndecryptableMessage":
		evt = &events.UndecryptableMessage{}
	case "Receipt":
		evt = &events.Receipt{}
	case "Presence":
		evt = &events.Presence{}
	case "ChatPresence":
		evt = &events.ChatPresence{}
	case "QR":
		evt = &events.QR{}
	case "PairSuccess":
		evt = &events.PairSuccess{}
	case "PairError":
		evt = &events.PairError{}
	case "Connected":
		evt = &events.Connected{}
	case "Disconnected":
		evt = &events.Disconnected{}
	case "LoggedOut":
		evt = &events.LoggedOut{}
	case "StreamReplaced":
		evt = &events.StreamReplaced{}
	case "TemporaryBan":
		evt = &events.TemporaryBan{}
	case "ConnectFailure":
		evt = &events.ConnectFailure{}
	case "ClientOutdated":
		evt = &events.ClientOutdated{}
	case "KeepAliveTimeout":
		evt = &events.KeepAliveTimeout{}
	default:
		return nil, sdk.Invalid("unknown event %q", in.Event)
	}
	if len(in.Data) > 0 {
		if err := json.Unmarshal(in.Data, evt); err != nil {
			return nil, sdk.Invalid("decoding %s: %v", in.Event, err)
		}
	}
	switch e := evt.(type) {
	case *events.Message:
		if len(in.Message) > 0 {
			msg := &waE2E.Message{}
			if err := protojson.Unmarshal(in.Message, msg); err != nil {
				return nil, sdk.Invalid("decoding the message protobuf: %v", err)
			}
			e.Message = msg
			e.RawMessage = msg
		}
	case *events.PairError:
		e.Error = errors.New(in.Error)
	}
	return evt, nil
}

func testInject(ctx context.Context, c *Connector, call sdk.ActionCall) (json.RawMessage, error) {
	var in Injection
	if err := json.Unmarshal(call.Params, &in); err != nil {
		return nil, sdk.Invalid("decoding the injection: %v", err)
	}
	switch in.Event {
	case "LIDMapping":
		lid, err1 := types.ParseJID(in.LID)
		pn, err2 := types.ParseJID(in.PN)
		if err := errors.Join(err1, err2); err != nil {
			return nil, sdk.Invalid("LIDMapping: %v", err)
		}
		fakeStore.mu.Lock()
		fakeStore.lids[lid.ToNonAD()] = pn.ToNonAD()
		fakeStore.mu.Unlock()
		return json.RawMessage(`{}`), nil
	case "NotOnWhatsApp":
		fakeStore.mu.Lock()
		for _, p := range in.Phones {
			if d, ok := phoneDigits(p); ok {
				fakeStore.notOnWA[d] = true
			}
		}
		fakeStore.mu.Unlock()
		return json.RawMessage(`{}`), nil
	case "ConnectError":
		fakeStore.mu.Lock()
		fakeStore.connectErr = in.Error
		fakeStore.mu.Unlock()
		return json.RawMessage(`{}`), nil
	}
	s := c.session(call.Connection.ID)
	if s == nil {
		return nil, &sdk.Error{Kind: sdk.KindRetryable, Code: sdk.CodeSessionNotHeld, Message: "no session for " + call.Connection.ID}
	}
	evt, err := decodeEvent(in)
	if err != nil {
		return nil, err
	}
	cli, _ := s.current()
	fc, ok := cli.(*fakeClient)
	if !ok {
		return nil, sdk.Permanent("the session has no fake client")
	}
	fc.dispatch(evt, time.Duration(in.TimeoutMS)*time.Millisecond)
	return json.RawMessage(`{}`), nil
}

func testSent(context.Context, *Connector, sdk.ActionCall) (json.RawMessage, error) {
	fakeStore.mu.Lock()
	defer fakeStore.mu.Unlock()
	b, err := json.Marshal(map[string]any{"calls": fakeStore.calls})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// FakeCall is one thing the fake client was asked to do, as test_sent
// returns it.
type FakeCall struct {
	// Method is the whatsmeow method: SendMessage, Upload, MarkRead,
	// SendChatPresence, IsOnWhatsApp, PairPhone, Logout, Download.
	Method string `json:"method"`
	// Device is the JID of the device that made the call ("" unpaired).
	Device string `json:"device"`
	To     string `json:"to,omitempty"`
	ID     string `json:"id,omitempty"`
	// Message is the protojson of a sent message.
	Message json.RawMessage `json:"message,omitempty"`
	IDs     []string        `json:"ids,omitempty"`
	State   string          `json:"state,omitempty"`
	Phones  []string        `json:"phones,omitempty"`
	Size    int             `json:"size,omitempty"`
}

type fakeBackend struct {
	mu         sync.Mutex
	devices    map[string]deviceInfo
	lids       map[types.JID]types.JID
	media      map[string][]byte
	notOnWA    map[string]bool
	connectErr string
	calls      []FakeCall
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{devices: map[string]deviceInfo{}, lids: map[types.JID]types.JID{}, media: map[string][]byte{}, notOnWA: map[string]bool{}}
}

func (b *fakeBackend) client(_ context.Context, jid types.JID, _ waLog.Logger) (waClient, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if jid.IsEmpty() {
		return &fakeClient{b: b}, true, nil
	}
	d, ok := b.devices[jid.String()]
	if !ok {
		return nil, false, nil
	}
	return &fakeClient{b: b, dev: d}, true, nil
}

func (b *fakeBackend) record(c FakeCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, c)
}

// fakeClient behaves like a *whatsmeow.Client whose socket events come from
// test_inject: it tracks connected / logged in as whatsmeow does, saves and
// deletes its device where whatsmeow would, and runs a QR channel with
// whatsmeow's semantics.
type fakeClient struct {
	b *fakeBackend

	mu        sync.Mutex
	dev       deviceInfo
	handlers  []whatsmeow.EventHandler
	connected bool
	loggedIn  bool
	qr        *fakeQR
}

// fakeQR is a pending QR channel.
type fakeQR struct {
	ctx  context.Context
	out  chan whatsmeow.QRChannelItem
	stop chan struct{}
	once sync.Once
}

var _ waClient = (*fakeClient)(nil)

func (c *fakeClient) AddEventHandler(h whatsmeow.EventHandler) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = append(c.handlers, h)
	return uint32(len(c.handlers))
}

func (c *fakeClient) ConnectContext(context.Context) error {
	c.b.mu.Lock()
	failure := c.b.connectErr
	c.b.mu.Unlock()
	switch failure {
	case "dns":
		return fmt.Errorf("failed to dial websocket: %w", &net.DNSError{Err: "no such host", Name: "web.whatsapp.com", IsNotFound: true})
	case "refused":
		return fmt.Errorf("failed to dial websocket: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return whatsmeow.ErrAlreadyConnected
	}
	c.connected = true
	return nil
}

func (c *fakeClient) Disconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected = false
	c.loggedIn = false
}

func (c *fakeClient) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *fakeClient) IsLoggedIn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loggedIn
}

func (c *fakeClient) Logout(context.Context) error {
	c.mu.Lock()
	if !c.loggedIn || c.dev.ID.IsEmpty() {
		c.mu.Unlock()
		return whatsmeow.ErrNotLoggedIn
	}
	dev := c.dev.ID.String()
	c.connected, c.loggedIn = false, false
	c.mu.Unlock()
	c.b.record(FakeCall{Method: "Logout", Device: dev})
	return c.forget(context.Background())
}

func (c *fakeClient) GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return nil, whatsmeow.ErrQRAlreadyConnected
	}
	if !c.dev.ID.IsEmpty() {
		return nil, whatsmeow.ErrQRStoreContainsID
	}
	q := &fakeQR{ctx: ctx, out: make(chan whatsmeow.QRChannelItem, 8), stop: make(chan struct{})}
	c.qr = q
	return q.out, nil
}

// finish closes a QR channel with its last item, as whatsmeow's does.
func (q *fakeQR) finish(item *whatsmeow.QRChannelItem) {
	q.once.Do(func() {
		close(q.stop)
		if item != nil {
			q.out <- *item
		}
		close(q.out)
	})
}

func (c *fakeClient) emitQRs(q *fakeQR, codes []string, timeout time.Duration) {
	for i, code := range codes {
		t := timeout
		if t == 0 {
			t = 20 * time.Second
			if i == 0 {
				t = 60 * time.Second
			}
		}
		select {
		case q.out <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: code, Timeout: t}:
		case <-q.stop:
			return
		}
		select {
		case <-time.After(t):
		case <-q.stop:
			return
		case <-q.ctx.Done():
			q.finish(nil)
			return
		}
	}
	timeoutItem := whatsmeow.QRChannelTimeout
	q.finish(&timeoutItem)
	c.Disconnect()
}

// dispatch applies an event as whatsmeow would (client and store state,
// the QR channel) and hands it to the handlers.
func (c *fakeClient) dispatch(evt any, qrTimeout time.Duration) {
	c.mu.Lock()
	q := c.qr
	switch e := evt.(type) {
	case *events.PairSuccess:
		// whatsmeow saves the device before it reports the pairing.
		c.dev = deviceInfo{ID: e.ID, LID: e.LID, Platform: e.Platform, Business: e.BusinessName}
		c.b.mu.Lock()
		c.b.devices[e.ID.String()] = c.dev
		c.b.mu.Unlock()
	case *events.Connected:
		c.connected, c.loggedIn = true, true
	case *events.Disconnected, *events.StreamReplaced, *events.TemporaryBan, *events.ConnectFailure, *events.ClientOutdated:
		c.connected, c.loggedIn = false, false
	case *events.LoggedOut:
		// whatsmeow deletes the device from its store on a logout.
		c.connected, c.loggedIn = false, false
		c.b.mu.Lock()
		delete(c.b.devices, c.dev.ID.String())
		c.b.mu.Unlock()
		c.dev.ID, c.dev.LID = types.EmptyJID, types.EmptyJID
	}
	handlers := slices.Clone(c.handlers)
	c.mu.Unlock()

	if q != nil {
		var last *whatsmeow.QRChannelItem
		switch e := evt.(type) {
		case *events.QR:
			go c.emitQRs(q, slices.Clone(e.Codes), qrTimeout)
		case *events.PairSuccess:
			last = &whatsmeow.QRChannelSuccess
		case *events.PairError:
			last = &whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventError, Error: e.Error}
		case *events.ClientOutdated:
			last = &whatsmeow.QRChannelClientOutdated
		case *events.Disconnected:
			last = &whatsmeow.QRChannelTimeout
		case *events.Connected, *events.ConnectFailure, *events.LoggedOut, *events.TemporaryBan:
			last = &whatsmeow.QRChannelErrUnexpectedEvent
		}
		if last != nil {
			item := *last
			q.finish(&item)
		}
	}
	for _, h := range handlers {
		h(evt)
	}
}

func (c *fakeClient) deviceJID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev.ID.IsEmpty() {
		return ""
	}
	return c.dev.ID.String()
}

func (c *fakeClient) PairPhone(_ context.Context, phone string, _ bool, _ whatsmeow.PairClientType, _ string) (string, error) {
	if !c.IsConnected() {
		return "", whatsmeow.ErrNotConnected
	}
	c.b.record(FakeCall{Method: "PairPhone", Phones: []string{phone}})
	h := sha256.Sum256([]byte(phone))
	code := fmt.Sprintf("%X", h[:4])
	return code[:4] + "-" + code[4:], nil
}

func (c *fakeClient) SendMessage(_ context.Context, to types.JID, message *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	if !c.IsLoggedIn() {
		return whatsmeow.SendResponse{}, whatsmeow.ErrNotConnected
	}
	c.b.mu.Lock()
	missing := c.b.notOnWA[to.User]
	c.b.mu.Unlock()
	if missing {
		return whatsmeow.SendResponse{}, fmt.Errorf("getting devices of %s: %w", to, whatsmeow.ErrIQNotFound)
	}
	var id types.MessageID
	if len(extra) > 0 {
		id = extra[0].ID
	}
	if id == "" {
		id = "3EB0FAKE" + fmt.Sprint(time.Now().UnixNano())
	}
	body, err := protojson.Marshal(message)
	if err != nil {
		return whatsmeow.SendResponse{}, err
	}
	c.b.record(FakeCall{Method: "SendMessage", Device: c.deviceJID(), To: to.String(), ID: id, Message: body})
	return whatsmeow.SendResponse{ID: id, Timestamp: time.Now()}, nil
}

func (c *fakeClient) Upload(_ context.Context, data []byte, mt whatsmeow.MediaType) (whatsmeow.UploadResponse, error) {
	if !c.IsLoggedIn() {
		return whatsmeow.UploadResponse{}, whatsmeow.ErrNotConnected
	}
	sum := sha256.Sum256(data)
	key := sha256.Sum256(append([]byte("key"), data...))
	enc := sha256.Sum256(append([]byte("enc"), data...))
	path := "/v/fake/" + hex.EncodeToString(sum[:8])
	c.b.mu.Lock()
	c.b.media[path] = slices.Clone(data)
	c.b.mu.Unlock()
	c.b.record(FakeCall{Method: "Upload", Device: c.deviceJID(), State: string(mt), Size: len(data)})
	return whatsmeow.UploadResponse{URL: "https://mmg.whatsapp.net" + path, DirectPath: path, MediaKey: key[:], FileEncSHA256: enc[:], FileSHA256: sum[:], FileLength: uint64(len(data))}, nil
}

func (c *fakeClient) DownloadMediaWithPath(_ context.Context, directPath string, _, fileHash, _ []byte, _ int, _ whatsmeow.MediaType, _ string) ([]byte, error) {
	if !c.IsLoggedIn() {
		return nil, whatsmeow.ErrNotConnected
	}
	c.b.mu.Lock()
	data, ok := c.b.media[directPath]
	c.b.mu.Unlock()
	c.b.record(FakeCall{Method: "Download", Device: c.deviceJID(), To: directPath})
	if !ok {
		return nil, whatsmeow.ErrMediaDownloadFailedWith404
	}
	if sum := sha256.Sum256(data); len(fileHash) > 0 && string(sum[:]) != string(fileHash) {
		return nil, whatsmeow.ErrInvalidMediaSHA256
	}
	return slices.Clone(data), nil
}

func (c *fakeClient) MarkRead(_ context.Context, ids []types.MessageID, _ time.Time, chat, _ types.JID, _ ...types.ReceiptType) error {
	if !c.IsLoggedIn() {
		return whatsmeow.ErrNotConnected
	}
	c.b.record(FakeCall{Method: "MarkRead", Device: c.deviceJID(), To: chat.String(), IDs: slices.Clone(ids)})
	return nil
}

func (c *fakeClient) SendChatPresence(_ context.Context, jid types.JID, state types.ChatPresence, _ types.ChatPresenceMedia) error {
	if !c.IsLoggedIn() {
		return whatsmeow.ErrNotConnected
	}
	c.b.record(FakeCall{Method: "SendChatPresence", Device: c.deviceJID(), To: jid.String(), State: string(state)})
	return nil
}

func (c *fakeClient) IsOnWhatsApp(_ context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	if !c.IsLoggedIn() {
		return nil, whatsmeow.ErrNotConnected
	}
	c.b.record(FakeCall{Method: "IsOnWhatsApp", Device: c.deviceJID(), Phones: slices.Clone(phones)})
	out := make([]types.IsOnWhatsAppResponse, 0, len(phones))
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	for _, p := range phones {
		d, _ := phoneDigits(p)
		out = append(out, types.IsOnWhatsAppResponse{Query: p, JID: types.NewJID(d, types.DefaultUserServer), IsIn: !c.b.notOnWA[d]})
	}
	return out, nil
}

func (c *fakeClient) device() deviceInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dev
}

func (c *fakeClient) phoneForLID(_ context.Context, lid types.JID) (types.JID, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	return c.b.lids[lid.ToNonAD()], nil
}

func (c *fakeClient) forget(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev.ID.IsEmpty() {
		return nil
	}
	c.b.mu.Lock()
	delete(c.b.devices, c.dev.ID.String())
	c.b.mu.Unlock()
	c.dev.ID, c.dev.LID = types.EmptyJID, types.EmptyJID
	return nil
}
