package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/api"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestIntegrationNumbersLifecycle(t *testing.T) {
	t.Parallel()
	f := newNumFixture(t)
	ctx := context.Background()

	n := decode[api.NumberBody](t, f.do(t, "POST", "/v1/numbers", "a-write",
		`{"kind":"linked_device","label":"Support","device_name":"Ponte Support","pacing":{"messages_per_minute":3}}`), http.StatusCreated)
	if n.Kind != "linked_device" || n.Label != "Support" || n.Session != nil || !n.Modules.Automations || !n.Modules.Campaigns {
		t.Errorf("created %+v", n)
	}
	want := numbers.DefaultPacing()
	want.MessagesPerMinute = 3
	if n.Pacing == nil || *n.Pacing != want {
		t.Errorf("pacing %+v, want %+v", n.Pacing, want)
	}
	if got := f.refresh.n.Load(); got != 1 {
		t.Errorf("session manager refreshed %d times, want 1", got)
	}
	c, err := f.st.GetConnection(ctx, f.tenantA, n.ConnectionID)
	if err != nil || c.Connector != "linkeddevice" || c.Name != "Support" || !strings.Contains(string(c.Config), "Ponte Support") {
		t.Errorf("the number's connection: %+v %s, %v", c, c.Config, err)
	}

	// Its session, once reported, shows on the number without the QR code.
	exp := time.Now().Add(time.Minute)
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: "2@SECRETQRPAYLOAD", qrExpires: &exp})
	r := f.do(t, "GET", "/v1/numbers/"+n.ID, "a-read", "")
	got := decode[api.NumberBody](t, r, http.StatusOK)
	if got.Session == nil || got.Session.State != "pairing" || got.Session.QRExpiresAt == nil {
		t.Errorf("session %+v", got.Session)
	}
	if strings.Contains(r.Body, "SECRETQRPAYLOAD") {
		t.Errorf("GET /v1/numbers/{id} shows the QR code: %s", r.Body)
	}

	cloud := decode[api.NumberBody](t, f.do(t, "POST", "/v1/numbers", "a-write",
		`{"kind":"cloud_api","label":"Main","connection_id":"`+f.cloudA+`","modules":{"automations":true,"campaigns":false}}`), http.StatusCreated)
	if cloud.Pacing != nil || cloud.Modules.Campaigns || cloud.ConnectionID != f.cloudA {
		t.Errorf("cloud number %+v", cloud)
	}
	if got := f.refresh.n.Load(); got != 1 {
		t.Errorf("a Cloud API number refreshed sessions (%d)", got)
	}

	refusals := map[string]struct {
		body   string
		status int
		loc    string
	}{
		"already a number":    {`{"kind":"cloud_api","label":"x","connection_id":"` + f.cloudA + `"}`, http.StatusConflict, ""},
		"stripe connection":   {`{"kind":"cloud_api","label":"x","connection_id":"` + f.stripeA + `"}`, http.StatusUnprocessableEntity, "body.connection_id"},
		"B's connection":      {`{"kind":"cloud_api","label":"x","connection_id":"` + f.cloudB + `"}`, http.StatusUnprocessableEntity, "body.connection_id"},
		"unknown kind":        {`{"kind":"sms","label":"x"}`, http.StatusUnprocessableEntity, "body.kind"},
		"bad device name":     {`{"kind":"linked_device","label":"x","device_name":"a\nb"}`, http.StatusUnprocessableEntity, "body.device_name"},
		"pacing out of range": {`{"kind":"linked_device","label":"x","pacing":{"messages_per_minute":0}}`, http.StatusUnprocessableEntity, "body.pacing.messages_per_minute"},
		"gaps inverted":       {`{"kind":"linked_device","label":"x","pacing":{"min_gap_seconds":30}}`, http.StatusUnprocessableEntity, "body.pacing.min_gap_seconds"},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			p := problem(t, f.do(t, "POST", "/v1/numbers", "a-write", tc.body), tc.status)
			if tc.loc != "" && (len(p.Errors) == 0 || p.Errors[0].Location != tc.loc) {
				t.Errorf("errors %+v, want one at %s", p.Errors, tc.loc)
			}
		})
	}

	list := decode[struct {
		Data       []api.NumberBody `json:"data"`
		NextCursor string           `json:"next_cursor"`
	}](t, f.do(t, "GET", "/v1/numbers?limit=1", "a-read", ""), http.StatusOK)
	if len(list.Data) != 1 || list.Data[0].ID != n.ID || list.NextCursor == "" {
		t.Fatalf("first page %+v", list)
	}
	list2 := decode[struct {
		Data       []api.NumberBody `json:"data"`
		NextCursor string           `json:"next_cursor"`
	}](t, f.do(t, "GET", "/v1/numbers?limit=1&cursor="+list.NextCursor, "a-read", ""), http.StatusOK)
	if len(list2.Data) != 1 || list2.Data[0].ID != cloud.ID || list2.NextCursor != "" {
		t.Errorf("second page %+v", list2)
	}
	problem(t, f.do(t, "GET", "/v1/numbers?cursor=nonsense", "a-read", ""), http.StatusBadRequest)

	upd := decode[api.NumberBody](t, f.do(t, "PATCH", "/v1/numbers/"+n.ID, "a-write",
		`{"label":"Help","modules":{"campaigns":false},"pacing":{"messages_per_minute":null,"typing":false}}`), http.StatusOK)
	want = numbers.DefaultPacing()
	want.Typing = false
	if upd.Label != "Help" || upd.Modules.Campaigns || !upd.Modules.Automations || *upd.Pacing != want {
		t.Errorf("updated %+v pacing %+v", upd, upd.Pacing)
	}
	p := problem(t, f.do(t, "PATCH", "/v1/numbers/"+n.ID, "a-write", `{"pacing":{"max_gap_seconds":2}}`), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.pacing.max_gap_seconds" {
		t.Errorf("errors %+v", p.Errors)
	}
	problem(t, f.do(t, "PATCH", "/v1/numbers/"+cloud.ID, "a-write", `{"pacing":{"typing":false}}`), http.StatusUnprocessableEntity)

	// Deleting a linked device logs it out first, and goes ahead when the
	// logout fails (the session is unreachable).
	f.inv.fail(errors.New("no node holds the session"))
	if r := f.do(t, "DELETE", "/v1/numbers/"+n.ID, "a-write", ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	f.inv.fail(nil)
	if diff := cmp.Diff([]string{"logout " + n.ConnectionID + " "}, f.inv.take()); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if _, err := f.st.GetConnection(ctx, f.tenantA, n.ConnectionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted linked device's connection: %v", err)
	}
	if !strings.Contains(f.logs.String(), "logging a deleted linked device out failed") {
		t.Error("the failed logout was not logged")
	}
	problem(t, f.do(t, "GET", "/v1/numbers/"+n.ID, "a-read", ""), http.StatusNotFound)

	// Deleting a linked device's connection instead of its number logs it
	// out the same way, and the number goes with its connection.
	second := decode[api.NumberBody](t, f.do(t, "POST", "/v1/numbers", "a-write",
		`{"kind":"linked_device","label":"Sales"}`), http.StatusCreated)
	refreshes := f.refresh.n.Load()
	if r := f.do(t, "DELETE", "/v1/connections/"+second.ConnectionID, "a-write", ""); r.Code != http.StatusNoContent {
		t.Fatalf("deleting the linked device's connection: %d %s", r.Code, r.Body)
	}
	if diff := cmp.Diff([]string{"logout " + second.ConnectionID + " "}, f.inv.take()); diff != "" {
		t.Errorf("actions of DELETE /v1/connections (-want +got):\n%s", diff)
	}
	if got := f.refresh.n.Load(); got <= refreshes {
		t.Error("deleting the linked device's connection did not refresh the node's sessions")
	}
	problem(t, f.do(t, "GET", "/v1/numbers/"+second.ID, "a-read", ""), http.StatusNotFound)

	if r := f.do(t, "DELETE", "/v1/numbers/"+cloud.ID, "a-write", ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete cloud: %d %s", r.Code, r.Body)
	}
	if got := f.inv.take(); len(got) != 0 {
		t.Errorf("a Cloud API number's deletion invoked %v", got)
	}
	if _, err := f.st.GetConnection(ctx, f.tenantA, f.cloudA); err != nil {
		t.Errorf("the Cloud API connection went with its number: %v", err)
	}
	if strings.Contains(f.logs.String(), "SECRETQRPAYLOAD") {
		t.Error("a QR code was logged")
	}
}

// Reads are open to every role but operators; changes, the QR code and
// pairing need admin or manager (write scope for service keys). Tenant B
// sees none of A's numbers.
func TestIntegrationNumbersRoles(t *testing.T) {
	t.Parallel()
	f := newNumFixture(t)
	n := f.createLinked(t, "Support")
	exp := time.Now().Add(time.Minute)
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: "2@code", qrExpires: &exp})
	routes := []struct {
		method, path, body string
		write              bool
	}{
		{"GET", "/v1/numbers", "", false},
		{"GET", "/v1/numbers/" + n.ID, "", false},
		{"POST", "/v1/numbers", `{"kind":"linked_device","label":"x"}`, true},
		{"PATCH", "/v1/numbers/" + n.ID, `{"label":"y"}`, true},
		{"GET", "/v1/numbers/" + n.ID + "/qr", "", true},
		{"GET", "/v1/numbers/" + n.ID + "/qr.png", "", true},
		{"POST", "/v1/numbers/" + n.ID + "/pairing", `{}`, true},
		{"DELETE", "/v1/numbers/" + n.ID, "", true},
	}
	keys := map[string]struct{ read, write bool }{
		"a-read": {true, false}, "a-write": {true, true}, "a-admin": {true, true},
		"a-user-admin": {true, true}, "a-user-manager": {true, true},
		"a-user-read_only": {true, false}, "a-user-operator": {false, false},
	}
	for key, may := range keys {
		for _, rt := range routes {
			if rt.method == "DELETE" {
				continue // run last, below
			}
			allowed := may.read && (!rt.write || may.write)
			r := f.do(t, rt.method, rt.path, key, rt.body)
			if !allowed {
				problem(t, r, http.StatusForbidden)
				continue
			}
			if r.Code >= 300 {
				t.Errorf("%s %s with %s: %d %s", rt.method, rt.path, key, r.Code, r.Body)
			}
		}
	}
	// Tenant B: A's number does not exist; the list has none of A's.
	for _, rt := range routes {
		r := f.do(t, rt.method, rt.path, "b-admin", rt.body)
		switch {
		case rt.path == "/v1/numbers" && rt.method == "GET":
			if r.Code != http.StatusOK || strings.Contains(r.Body, n.ID) {
				t.Errorf("B's list: %d %s", r.Code, r.Body)
			}
		case rt.path == "/v1/numbers":
			decode[api.NumberBody](t, r, http.StatusCreated)
		default:
			problem(t, r, http.StatusNotFound)
		}
	}
	for key, may := range keys {
		r := f.do(t, "DELETE", "/v1/numbers/"+n.ID, key, "")
		if !may.write {
			problem(t, r, http.StatusForbidden)
		}
	}
	problem(t, f.do(t, "GET", "/v1/numbers/"+n.ID, "a-read", ""), http.StatusNotFound)

	// Every numbers operation is documented, with its security.
	doc := decode[struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}](t, f.do(t, "GET", "/openapi.json", "", ""), http.StatusOK)
	for _, rt := range routes {
		path := strings.ReplaceAll(rt.path, n.ID, "{id}")
		op, ok := doc.Paths[path][strings.ToLower(rt.method)]
		if !ok || len(op.Security) == 0 {
			t.Errorf("%s %s is not documented with security", rt.method, path)
		}
	}
}

type sseEvent struct{ name, data string }

// readEvents parses a server-sent event stream until it ends; comment lines
// are counted in comments.
func readEvents(body *bufio.Reader, events chan<- sseEvent, comments *atomic.Int32) {
	defer close(events)
	var ev sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			comments.Add(1)
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// openPairing opens GET /v1/numbers/{id}/qr on a real server and returns
// its events; the channel is closed when the server ends the stream.
func openPairing(t *testing.T, srv *httptest.Server, f *numFixture, id string) (<-chan sseEvent, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/numbers/"+id+"/qr", nil)
	req.Header.Set("Authorization", "Bearer "+f.keys["a-user-manager"])
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 16)
	comments := new(atomic.Int32)
	go readEvents(bufio.NewReader(resp.Body), events, comments)
	return events, comments
}

func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return sseEvent{}
}

func ended(t *testing.T, events <-chan sseEvent) {
	t.Helper()
	select {
	case ev, ok := <-events:
		if ok {
			t.Fatalf("event %+v, want the end of the stream", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// The pairing stream shows each QR code, the state changes, and ends on the
// connected account; another stream ends when pairing times out.
func TestIntegrationNumbersPairingStream(t *testing.T) {
	t.Parallel()
	f := newNumFixture(t)
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	n := f.createLinked(t, "Support")

	events, comments := openPairing(t, srv, f, n.ID)
	exp := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: "2@first", qrExpires: &exp})
	if diff := cmp.Diff(sseEvent{"state", `{"state":"pairing"}`}, next(t, events), cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("first event (-want +got):\n%s", diff)
	}
	ev := next(t, events)
	var qr api.PairingQREvent
	if err := json.Unmarshal([]byte(ev.data), &qr); ev.name != "qr" || err != nil || qr.Code != "2@first" || qr.ExpiresAt == nil || !qr.ExpiresAt.Equal(exp) {
		t.Errorf("qr event %+v (%+v, %v)", ev, qr, err)
	}
	// A new code in the same state is a qr event alone.
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: "2@second", qrExpires: &exp})
	if ev := next(t, events); ev.name != "qr" || !strings.Contains(ev.data, "2@second") {
		t.Errorf("second code: %+v", ev)
	}
	// A notice without a change sends nothing.
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: "2@second", qrExpires: &exp})
	time.Sleep(150 * time.Millisecond)
	if n := comments.Load(); n < 2 {
		t.Errorf("%d comment lines, want the opening one and heartbeats", n)
	}
	f.report(t, n.ConnectionID, sessionReport{state: "connected", phone: "+393331234567", pushName: "Shop"})
	if diff := cmp.Diff(sseEvent{"state", `{"state":"connected"}`}, next(t, events), cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sseEvent{"connected", `{"phone":"+393331234567","push_name":"Shop"}`}, next(t, events), cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ended(t, events)

	// A connected number has nothing to pair.
	problem(t, f.do(t, "GET", "/v1/numbers/"+n.ID+"/qr", "a-write", ""), http.StatusConflict)

	// A code already current when the stream opens is sent at once; a
	// QR loop nobody scans ends the stream with the reason.
	m := f.createLinked(t, "Sales")
	f.report(t, m.ConnectionID, sessionReport{state: "pairing", qr: "2@current", qrExpires: &exp})
	events, _ = openPairing(t, srv, f, m.ID)
	if ev := next(t, events); ev.name != "state" {
		t.Errorf("first event %+v", ev)
	}
	if ev := next(t, events); ev.name != "qr" || !strings.Contains(ev.data, "2@current") {
		t.Errorf("current code: %+v", ev)
	}
	f.report(t, m.ConnectionID, sessionReport{state: "pairing", pairingCode: "WXYZ-1234"})
	if ev := next(t, events); ev.name != "pairing_code" || ev.data != `{"code":"WXYZ-1234"}` {
		t.Errorf("pairing code: %+v", ev)
	}
	f.report(t, m.ConnectionID, sessionReport{state: "logged_out", reason: "pairing timed out"})
	if diff := cmp.Diff(sseEvent{"state", `{"state":"logged_out","reason":"pairing timed out"}`}, next(t, events), cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ended(t, events)

	// Only linked devices pair.
	cloud := decode[api.NumberBody](t, f.do(t, "POST", "/v1/numbers", "a-write", `{"kind":"cloud_api","label":"Main","connection_id":"`+f.cloudA+`"}`), http.StatusCreated)
	problem(t, f.do(t, "GET", "/v1/numbers/"+cloud.ID+"/qr", "a-write", ""), http.StatusConflict)
	problem(t, f.do(t, "GET", "/v1/numbers/"+cloud.ID+"/qr.png", "a-write", ""), http.StatusConflict)
	problem(t, f.do(t, "POST", "/v1/numbers/"+cloud.ID+"/pairing", "a-write", `{}`), http.StatusConflict)
	if strings.Contains(f.logs.String(), "2@current") || strings.Contains(f.logs.String(), "2@first") {
		t.Error("a QR code was logged")
	}
}

func TestIntegrationNumbersQRImage(t *testing.T) {
	t.Parallel()
	f := newNumFixture(t)
	n := f.createLinked(t, "Support")
	path := "/v1/numbers/" + n.ID + "/qr.png"
	problem(t, f.do(t, "GET", path, "a-write", ""), http.StatusNotFound) // no report yet

	code := "2@Xk3vP0aQ9mZ,Jw8dN5tR2yL7cF1hB4sE6gU0iO3pA9qW=,kT7xV2nM5rY8bC1zD4fG6hJ0lP3sQ9w=,vR1tY4uI7oP0aS3dF6gH9jK2lZ5xC8b="
	exp := time.Now().Add(time.Minute)
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: code, qrExpires: &exp})
	for _, size := range []int{256, 512} {
		q := ""
		if size != 256 {
			q = "?size=512"
		}
		r := f.do(t, "GET", path+q, "a-user-manager", "")
		if r.Code != http.StatusOK || r.Header.Get("Content-Type") != "image/png" || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("qr.png: %d %v %s", r.Code, r.Header, r.Body)
		}
		img, err := png.Decode(bytes.NewReader([]byte(r.Body)))
		if err != nil {
			t.Fatalf("decoding the PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Errorf("image %v, want %dx%d", b, size, size)
		}
	}
	problem(t, f.do(t, "GET", path+"?size=5000", "a-write", ""), http.StatusUnprocessableEntity)

	past := time.Now().Add(-time.Second)
	f.report(t, n.ConnectionID, sessionReport{state: "pairing", qr: code, qrExpires: &past})
	problem(t, f.do(t, "GET", path, "a-write", ""), http.StatusNotFound) // expired
	f.report(t, n.ConnectionID, sessionReport{state: "disconnected", reason: "network unreachable", qr: code, qrExpires: &exp})
	problem(t, f.do(t, "GET", path, "a-write", ""), http.StatusNotFound) // not pairing
	if strings.Contains(f.logs.String(), "Xk3vP0aQ9mZ") {
		t.Error("a QR code was logged")
	}
}

func TestIntegrationNumbersStartPairing(t *testing.T) {
	t.Parallel()
	f := newNumFixture(t)
	n := f.createLinked(t, "Support")
	path := "/v1/numbers/" + n.ID + "/pairing"

	got := decode[map[string]string](t, f.do(t, "POST", path, "a-write", `{"phone":"+393331234567"}`), http.StatusOK)
	if got["pairing_code"] != "ABCD-EFGH" {
		t.Errorf("pairing by phone: %v", got)
	}
	got = decode[map[string]string](t, f.do(t, "POST", path, "a-write", `{}`), http.StatusOK)
	if len(got) != 0 {
		t.Errorf("restarting QR pairing answered %v", got)
	}
	want := []string{
		"start_pairing " + n.ConnectionID + ` {"phone":"+393331234567"}`,
		"start_pairing " + n.ConnectionID + ` {}`,
	}
	if diff := cmp.Diff(want, f.inv.take()); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	problem(t, f.do(t, "POST", path, "a-write", `{"phone":"3331234567"}`), http.StatusUnprocessableEntity)

	errs := map[string]struct {
		err        error
		status     int
		retryAfter string
	}{
		"session moving":  {&sdk.Error{Kind: sdk.KindInvalid, Code: sdk.CodeSessionNotHeld, Message: "not held"}, http.StatusServiceUnavailable, "5"},
		"rate limited":    {sdk.RateLimited(30*time.Second, "too many pairing attempts"), http.StatusServiceUnavailable, "30"},
		"invalid phone":   {sdk.Invalid("phone is not on WhatsApp"), http.StatusUnprocessableEntity, ""},
		"refused":         {sdk.Permanent("device limit reached"), http.StatusBadGateway, ""},
		"connection gone": {&sdk.Error{Kind: sdk.KindNotFound, Message: "connection not found"}, http.StatusNotFound, ""},
	}
	for name, tc := range errs {
		t.Run(name, func(t *testing.T) {
			f.inv.fail(tc.err)
			r := f.do(t, "POST", path, "a-write", `{}`)
			problem(t, r, tc.status)
			if r.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", r.Header.Get("Retry-After"), tc.retryAfter)
			}
		})
	}
	f.inv.fail(nil)

	f.report(t, n.ConnectionID, sessionReport{state: "connected", phone: "+393331234567"})
	problem(t, f.do(t, "POST", path, "a-write", `{}`), http.StatusConflict)
}
