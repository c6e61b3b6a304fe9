package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ponte-hub/ponte/connectors/linkeddevice"
	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// linkedPlugin plays the linked-device connector's plugin behind the real
// invoke.Invoker, so every call is checked against the connector's real
// action schemas (its manifest) before it gets here. download_media serves
// the files put in files by direct path, as whatsmeow would after checking
// the keys; check_numbers says phones ending in an even digit are on
// WhatsApp. err, when set, is the answer to every call.
type linkedPlugin struct {
	pluginhost.Client // only Manifest, ValidateParams and Invoke are called
	manifest          sdk.Manifest

	mu    sync.Mutex
	files map[string][]byte
	calls []sdk.ActionCall
	err   error
}

func (p *linkedPlugin) Manifest() sdk.Manifest { return p.manifest }

// ValidateParams checks params against the manifest's schemas, as the
// plugin host does.
func (p *linkedPlugin) ValidateParams(action string, params json.RawMessage) error {
	v, err := hostrpc.NewParamValidator(p.manifest)
	if err != nil {
		return err
	}
	return v.Validate(action, params)
}

func (p *linkedPlugin) Invoke(_ context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	if err := p.ValidateParams(call.Action, call.Params); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
	if p.err != nil {
		return nil, p.err
	}
	switch call.Action {
	case linkeddevice.ActionDownloadMedia:
		var in struct{ Media linkeddevice.Media }
		if err := json.Unmarshal(call.Params, &in); err != nil {
			return nil, sdk.Invalid("decoding parameters: %v", err)
		}
		data, ok := p.files[in.Media.DirectPath]
		if !ok {
			return nil, sdk.NotFound("the media is no longer on WhatsApp's servers")
		}
		sum := sha256.Sum256(data)
		return json.Marshal(linkeddevice.DownloadResult{MimeType: in.Media.MimeType, FileLength: len(data),
			SHA256: hex.EncodeToString(sum[:]), Data: base64.StdEncoding.EncodeToString(data)})
	case linkeddevice.ActionCheckNumbers:
		var in struct{ Phones []string }
		if err := json.Unmarshal(call.Params, &in); err != nil {
			return nil, sdk.Invalid("decoding parameters: %v", err)
		}
		out := make([]linkeddevice.NumberCheck, len(in.Phones))
		for i, ph := range in.Phones {
			out[i] = linkeddevice.NumberCheck{Phone: ph}
			if (ph[len(ph)-1]-'0')%2 == 0 {
				out[i].OnWhatsApp, out[i].JID = true, ph[1:]+"@s.whatsapp.net"
			}
		}
		return json.Marshal(map[string]any{"results": out})
	}
	return nil, sdk.Invalid("unexpected action %q", call.Action)
}

func (p *linkedPlugin) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// take returns the calls so far and forgets them.
func (p *linkedPlugin) take() []sdk.ActionCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.calls
	p.calls = nil
	return out
}

// linkedRegistry is the invoker's plugin registry: the linked-device plugin
// only.
type linkedRegistry struct{ p *linkedPlugin }

func (r linkedRegistry) Connector(name string) (pluginhost.Client, error) {
	if name != "linkeddevice" {
		return nil, fmt.Errorf("%s: %w", name, pluginhost.ErrUnknownConnector)
	}
	return r.p, nil
}

// mediaFixture is an API with the messages, inbox and numbers operations on
// a real Postgres, the real invoker and the linked-device plugin above:
// tenant A with a linked-device number (mediaNumber) and a Cloud API
// connection whose plugin is not installed here (the real one runs in
// media_cloudapi_integration_test.go), users of every role, received messages of each sort; tenant B
// with a linked-device number of its own.
type mediaFixture struct {
	h      *gin.Engine
	st     *store.Store
	plugin *linkedPlugin
	logs   *syncBuffer
	keys   map[string]string

	tenantA, tenantB string
	linkedA, cloudA  string // connection ids
	numberA, cloudN  string // number ids
	numberB          string

	image, doc, text, gone, big, cloudImage, outbound, other string // ledger ids
	imageData, docData                                       []byte
	imageMedia                                               json.RawMessage // the stored media object of image
}

// Secrets of the fixture's media objects: they must never be logged.
const (
	mediaKeyImage = "bWVkaWEta2V5LW9mLXRoZS1pbWFnZS0xMjM0NTY3OA=="
	mediaKeyDoc   = "bWVkaWEta2V5LW9mLXRoZS1kb2N1bWVudC0xMjM0NTY="
)

func newMediaFixture(t *testing.T) *mediaFixture {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	conn, err := linkeddevice.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &mediaFixture{st: st, logs: &syncBuffer{}, keys: map[string]string{},
		plugin: &linkedPlugin{manifest: conn.(interface{ Manifest() sdk.Manifest }).Manifest(), files: map[string][]byte{}}}

	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	f.tenantA, f.tenantB = a.ID, b.ID
	for name, spec := range map[string]struct{ tenant, scope string }{
		"a-admin": {a.ID, "admin"}, "a-write": {a.ID, "write"}, "a-read": {a.ID, "read"}, "b-admin": {b.ID, "admin"},
	} {
		if _, plain, err := st.CreateAPIKey(ctx, spec.tenant, name, []string{spec.scope}); err != nil {
			t.Fatal(err)
		} else {
			f.keys[name] = plain
		}
	}
	users := map[string]string{}
	for _, role := range store.Roles {
		u, err := st.CreateUser(ctx, a.ID, store.NewUser{Email: role + "@a.example", Name: "A " + role, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		_, plain, err := st.CreateUserAPIKey(ctx, a.ID, u.ID, "key of "+role)
		if err != nil {
			t.Fatal(err)
		}
		users[role], f.keys["a-user-"+role] = u.ID, plain
	}

	nums := numbers.NewStore(st.Pool(), st, nil)
	linked := func(tenantID string) numbers.Number {
		n, err := nums.Create(ctx, tenantID, numbers.NewNumber{Kind: numbers.KindLinkedDevice, Label: "Support", Fields: linkedDeviceManifest.Config})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	na := linked(a.ID)
	f.numberA, f.linkedA = na.ID, na.ConnectionID
	f.numberB = linked(b.ID).ID
	cc, err := st.CreateConnection(ctx, a.ID, store.NewConnection{Connector: "cloudapi", Name: "cloud", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	f.cloudA = cc.ID
	cn, err := nums.Create(ctx, a.ID, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "Main", ConnectionID: cc.ID})
	if err != nil {
		t.Fatal(err)
	}
	f.cloudN = cn.ID

	// Received messages, stored the way the linked-device connector's
	// message.received events are.
	inbox, err := contacts.New(contacts.Config{Pool: st.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	receive := func(connID, connector, from string, msg linkeddevice.InboundMessage) contacts.InboundResult {
		t.Helper()
		seq++
		msg.PhoneNumberID, msg.From, msg.WAID = "+393300000000", from, from[1:]
		msg.MessageID, msg.Timestamp = fmt.Sprintf("3EB0MEDIA%03d", seq), time.Now().UTC()
		payload, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := inbox.ApplyInbound(ctx, dispatch.Event{TenantID: a.ID, ConnectionID: connID, Connector: connector,
			Type: contacts.EventMessageReceived, Payload: payload})
		if err != nil || r.MessageID == "" {
			t.Fatalf("storing a received message: %v (%+v)", err, r)
		}
		return r
	}
	media := func(kind, mimeType, filename, directPath, mediaKey string, data []byte, announced uint64) *linkeddevice.Media {
		sum := sha256.Sum256(data)
		if announced == 0 {
			announced = uint64(len(data))
		}
		f.plugin.files[directPath] = data
		return &linkeddevice.Media{Kind: kind, MimeType: mimeType, Filename: filename, SHA256: hex.EncodeToString(sum[:]),
			FileLength: announced, DirectPath: directPath, MediaKey: mediaKey, FileEncSHA256: "ZW5jLXNoYTI1Ng=="}
	}
	const mine, other = "+393330000001", "+393330000002"
	f.imageData = []byte("\xff\xd8\xff\xe0 a JPEG of the broken parcel")
	f.docData = []byte("%PDF-1.7 the invoice")
	img := receive(f.linkedA, "linkeddevice", mine, linkeddevice.InboundMessage{Type: "image",
		Media: media("image", "image/jpeg", "", "/v/t62.7118-24/image", mediaKeyImage, f.imageData, 0)})
	f.image = img.MessageID
	f.doc = receive(f.linkedA, "linkeddevice", mine, linkeddevice.InboundMessage{Type: "document",
		Media: media("document", "application/pdf", "Fattura 7 – maggio.pdf", "/v/t62.7119-24/doc", mediaKeyDoc, f.docData, 0)}).MessageID
	f.text = receive(f.linkedA, "linkeddevice", mine, linkeddevice.InboundMessage{Type: "text", Text: "hello"}).MessageID
	gone := media("video", "video/mp4", "", "/v/t62.7161-24/gone", mediaKeyImage, []byte("video"), 0)
	delete(f.plugin.files, gone.DirectPath)
	f.gone = receive(f.linkedA, "linkeddevice", mine, linkeddevice.InboundMessage{Type: "video", Media: gone}).MessageID
	f.big = receive(f.linkedA, "linkeddevice", mine, linkeddevice.InboundMessage{Type: "video",
		Media: media("video", "video/mp4", "", "/v/t62.7161-24/big", mediaKeyImage, []byte("big"), 17<<20)}).MessageID
	f.other = receive(f.linkedA, "linkeddevice", other, linkeddevice.InboundMessage{Type: "image",
		Media: media("image", "image/jpeg", "", "/v/t62.7118-24/other", mediaKeyImage, []byte("\xff\xd8\xff other"), 0)}).MessageID
	cloud, _ := json.Marshal(map[string]any{"phone_number_id": "1234567890", "from": mine, "wa_id": mine[1:], "message_id": "wamid.cloud1",
		"type": "image", "media": map[string]any{"id": "1479537139650973", "mime_type": "image/jpeg",
			"sha256": "bCvtZlGxOWFJ3Ba0mpZg0tOIqt3LkLlAYMAMwVBd93s="}})
	cr, err := inbox.ApplyInbound(ctx, dispatch.Event{TenantID: a.ID, ConnectionID: f.cloudA, Connector: "cloudapi",
		Type: contacts.EventMessageReceived, Payload: cloud})
	if err != nil {
		t.Fatal(err)
	}
	f.cloudImage = cr.MessageID
	// An image the tenant sent by link: the ledger has the link only.
	f.outbound = "msg_mediaoutbound1"
	if _, err := st.Pool().Exec(ctx, `INSERT INTO messages (id, tenant_id, conversation_id, contact_id, connection_id, direction, kind, content, status)
		VALUES ($1, $2, $3, $4, $5, 'out', 'image', $6, 'sent')`, f.outbound, a.ID, img.ConversationID, img.ContactID, f.linkedA,
		`{"to":"+393330000001","media":{"type":"image","link":"https://shop.example/p.jpg"}}`); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT content->'media' FROM messages WHERE id = $1`, f.image).Scan(&f.imageMedia); err != nil {
		t.Fatal(err)
	}
	// The operator works the conversation of mine, not that of other.
	if err := inbox.Assign(ctx, a.ID, img.ConversationID, users[store.RoleOperator]); err != nil {
		t.Fatal(err)
	}

	f.h = mediaAPI(t, st, numRegistry{}, invoke.New(st, linkedRegistry{f.plugin}), inbox, nums, f.logs)
	return f
}

// mediaAPI is the API of the media fixtures on st: messages through a
// messaging service that invokes connectors with inv, inbox and numbers,
// logging to logs.
func mediaAPI(t *testing.T, st *store.Store, connectors pluginhost.Registry, inv *invoke.Invoker, inbox *contacts.Service, nums *numbers.Store, logs io.Writer) *gin.Engine {
	t.Helper()
	cons := consent.New(st.Pool(), consent.Options{})
	msgs, err := messaging.New(messaging.Config{Pool: st.Pool(), Invoker: inv,
		Consent: messaging.ConsentService{Service: cons}, Guard: messaging.ConsentService{Service: cons}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(msgs.Close)
	hub := contacts.NewHub(st.Pool(), nil)
	t.Cleanup(hub.Close)
	watcher := numbers.NewWatcher(st.Pool(), nil)
	t.Cleanup(watcher.Close)
	h, err := api.New(api.Deps{
		Store:        st,
		Connectors:   connectors,
		PaymentLinks: &fakePaymentLinks{},
		PublicURL:    publicURL,
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:      prometheus.NewRegistry(),
		Inbox:        inbox,
		Sender:       &fakeSender{},
		InboxStream:  hub,
		Messages:     msgs,
		Numbers:      api.NumbersDeps{Store: nums, Invoker: inv, Watcher: watcher},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends a request (see apiRequest).
func (f *mediaFixture) do(t *testing.T, method, path, key, body string, headers ...string) response {
	t.Helper()
	return serveFor(f.h, apiRequest(t, f.keys, method, path, key, body, headers...), 0)
}
