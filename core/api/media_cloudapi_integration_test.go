package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

const (
	cloudMediaPNID   = "777000111"
	cloudMediaWABA   = "777000999"
	cloudMediaToken  = "EAAtoken-media-tests-0123"
	cloudMediaSecret = "app-secret-media"
)

// cloudMediaRig is GET /v1/messages/{id}/media for a Cloud API number on the
// real thing: Postgres, the Cloud API connector's plugin process under the
// plugin host, the real invoker, and the fake Graph API. Received messages
// come in as the fake's signed webhooks, parsed by the plugin and stored by
// the inbox, so the media object downloaded is exactly the one the
// connector emitted.
type cloudMediaRig struct {
	h      http.Handler
	st     *store.Store
	fake   *fakegraph.Server
	plugin pluginhost.Client
	inbox  *contacts.Service
	logs   *syncBuffer
	keys   map[string]string

	tenantA string
	connA   sdk.Connection
}

func newCloudMediaRig(t *testing.T) *cloudMediaRig {
	t.Helper()
	ctx := context.Background()
	stack := newCloudAPIStack(t)
	st, host, cl := stack.st, stack.host, stack.plugin

	r := &cloudMediaRig{st: st, plugin: cl, logs: &syncBuffer{}, keys: map[string]string{}}
	r.fake = fakegraph.New(t)
	r.fake.AddNumber(fakegraph.Number{PhoneNumberID: cloudMediaPNID, WABAID: cloudMediaWABA, AccessToken: cloudMediaToken})
	r.fake.SetStatusOptions(fakegraph.StatusOptions{Disabled: true})

	a, err := st.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.CreateTenant(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	r.tenantA = a.ID
	for name, tenant := range map[string]string{"a-read": a.ID, "b-admin": b.ID} {
		_, plain, err := st.CreateAPIKey(ctx, tenant, name, []string{store.ScopeRead})
		if err != nil {
			t.Fatal(err)
		}
		r.keys[name] = plain
	}
	cfg, _ := json.Marshal(map[string]any{"phone_number_id": cloudMediaPNID, "waba_id": cloudMediaWABA, "access_token": cloudMediaToken,
		"app_secret": cloudMediaSecret, "verify_token": "verify-me", "api_base": r.fake.URL()})
	c, err := st.CreateConnection(ctx, a.ID, store.NewConnection{Connector: "cloudapi", Name: "number", Config: cfg, Fields: cl.Manifest().Config})
	if err != nil {
		t.Fatal(err)
	}
	r.connA = sdk.Connection{ID: c.ID, TenantID: a.ID, Config: sdk.Config(cfg)}
	nums := numbers.NewStore(st.Pool(), st, nil)
	if _, err := nums.Create(ctx, a.ID, numbers.NewNumber{Kind: numbers.KindCloudAPI, Label: "Main", ConnectionID: c.ID}); err != nil {
		t.Fatal(err)
	}

	r.inbox, err = contacts.New(contacts.Config{Pool: st.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	r.h = mediaAPI(t, st, host, invoke.New(st, host), r.inbox, nums, r.logs)
	return r
}

// receive makes a customer send a media message through the fake: the
// signed webhook goes through the plugin's HandleWebhook and its
// message.received event into the inbox, as the dispatcher would store it.
// edit, when set, changes the event's payload first. It returns the
// message's ledger id.
func (r *cloudMediaRig) receive(t *testing.T, from, msgType string, media fakegraph.MediaRef, edit func(payload map[string]any)) string {
	t.Helper()
	ctx := t.Context()
	var (
		mu     sync.Mutex
		events []sdk.Event
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		res, err := r.plugin.HandleWebhook(req.Context(), r.connA, sdk.WebhookRequest{Method: req.Method, Headers: req.Header, Body: body, ReceivedAt: time.Now()})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		events = append(events, res.Events...)
		mu.Unlock()
	}))
	defer hook.Close()
	r.fake.SetWebhook(hook.URL, cloudMediaSecret)
	r.fake.CustomerSends(cloudMediaPNID, from, msgType, media)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.fake.WaitWebhooks(wctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Type != contacts.EventMessageReceived {
		t.Fatalf("events %+v", events)
	}
	payload := events[0].Payload
	if edit != nil {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		payload, _ = json.Marshal(m)
	}
	res, err := r.inbox.ApplyInbound(ctx, dispatch.Event{TenantID: r.tenantA, ConnectionID: r.connA.ID, Connector: "cloudapi",
		Type: contacts.EventMessageReceived, Payload: payload})
	if err != nil || res.MessageID == "" {
		t.Fatalf("storing the received message: %v (%+v)", err, res)
	}
	return res.MessageID
}

func (r *cloudMediaRig) get(t *testing.T, id, key string, headers ...string) response {
	t.Helper()
	return serveFor(r.h, apiRequest(t, r.keys, http.MethodGet, "/v1/messages/"+id+"/media", key, "", headers...), 0)
}

func TestIntegrationMessageMediaCloudAPI(t *testing.T) {
	t.Parallel()
	r := newCloudMediaRig(t)
	const from = "+393331230001"
	photo := []byte("\xff\xd8\xff\xe0\x00\x10JFIF the dented box")
	voice := []byte("OggS\x00\x02 please call me back")
	invoice := bytes.Repeat([]byte("%PDF-1.7 invoice "), 1000)

	imgRef := r.fake.AddMedia(cloudMediaPNID, "image/jpeg", photo)
	imgRef.Caption = "look at this"
	img := r.receive(t, from, "image", imgRef, nil)
	voiceRef := r.fake.AddMedia(cloudMediaPNID, "audio/ogg; codecs=opus", voice)
	voiceRef.Voice = true
	note := r.receive(t, from, "audio", voiceRef, nil)
	docRef := r.fake.AddMedia(cloudMediaPNID, "application/pdf", invoice)
	docRef.Filename = "Fattura 12.pdf"
	doc := r.receive(t, from, "document", docRef, nil)

	// Each file with its type, its SHA-256 (hex, although the webhook
	// stated it base64) as ETag, a document under its name.
	files := map[string]struct {
		id, contentType, disposition string
		data                         []byte
	}{
		"image":      {img, "image/jpeg", "", photo},
		"voice note": {note, "audio/ogg; codecs=opus", "", voice},
		"document":   {doc, "application/pdf", `attachment; filename="Fattura 12.pdf"`, invoice},
	}
	for name, tc := range files {
		res := r.get(t, tc.id, "a-read")
		if res.Code != http.StatusOK || res.Body != string(tc.data) {
			t.Fatalf("%s: %d %.200s", name, res.Code, res.Body)
		}
		want := map[string]string{"Content-Type": tc.contentType, "Content-Disposition": tc.disposition,
			"ETag": `"` + sha256Hex(tc.data) + `"`, "Content-Length": fmt.Sprint(len(tc.data)), "Cache-Control": "private, max-age=300"}
		for h, v := range want {
			if got := res.Header.Get(h); got != v {
				t.Errorf("%s: %s = %q, want %q", name, h, got, v)
			}
		}
	}
	if n := r.fake.MediaDownloads(imgRef.ID); n != 1 {
		t.Errorf("the image was downloaded %d times from Meta, want 1", n)
	}

	// A current copy is confirmed from the message's hash, without asking
	// Meta; another tenant does not see the message.
	etag := `"` + sha256Hex(photo) + `"`
	if res := r.get(t, img, "a-read", "If-None-Match", etag); res.Code != http.StatusNotModified || res.Header.Get("ETag") != etag {
		t.Errorf("If-None-Match: %d %v", res.Code, res.Header)
	}
	if n := r.fake.MediaDownloads(imgRef.ID); n != 1 {
		t.Errorf("a 304 downloaded the image (%d downloads)", n)
	}
	problem(t, r.get(t, img, "b-admin"), http.StatusNotFound)

	// A file larger than 16 MB: refused on Meta's file_size, never
	// downloaded.
	bigRef := r.fake.AddMedia(cloudMediaPNID, "video/mp4", make([]byte, 16<<20+1))
	big := r.receive(t, from, "video", bigRef, nil)
	if p := problem(t, r.get(t, big, "a-read"), http.StatusRequestEntityTooLarge); !strings.Contains(p.Detail, "16777216") {
		t.Errorf("413 detail %q", p.Detail)
	}
	if n := r.fake.MediaDownloads(bigRef.ID); n != 0 {
		t.Errorf("the large file was downloaded %d times", n)
	}

	// A message whose stated SHA-256 is not the file's: not served.
	wrongRef := r.fake.AddMedia(cloudMediaPNID, "image/jpeg", []byte("\xff\xd8\xff another photo"))
	wrong := r.receive(t, from, "image", wrongRef, func(p map[string]any) {
		p["media"].(map[string]any)["sha256"] = imgRef.SHA256
	})
	if p := problem(t, r.get(t, wrong, "a-read"), http.StatusBadGateway); !strings.Contains(p.Detail, "SHA-256") {
		t.Errorf("502 detail %q", p.Detail)
	}
	// A media id Meta does not have: gone.
	unknown := r.receive(t, from, "image", imgRef, func(p map[string]any) {
		p["media"].(map[string]any)["id"] = "123456789012345"
	})
	problem(t, r.get(t, unknown, "a-read"), http.StatusGone)

	// Meta keeps received media 30 days; then the file is gone too.
	r.fake.Advance(31 * 24 * time.Hour)
	problem(t, r.get(t, img, "a-read"), http.StatusGone)

	logs := r.logs.String()
	for _, secret := range []string{cloudMediaToken, "dented box", "call me back"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs carry %q", secret)
		}
	}
}
