package main

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

	"github.com/mdp/qrterminal/v3"
)

// fakeNumbersAPI serves the numbers operations the CLI uses: it creates
// num_1 and streams script as the pairing events of GET /v1/numbers/num_1/qr.
type fakeNumbersAPI struct {
	t      *testing.T
	script []string // "event data" lines, each sent as one event
	mu     sync.Mutex
	reqs   []string // "METHOD path body"
	// pairingBusy answers POST .../pairing with 503 this many times first.
	pairingBusy int
}

func (f *fakeNumbersAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.Path+" "+strings.TrimSpace(string(body)))
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer ponte_test_key" {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"status":401,"title":"Unauthorized"}`)
		return
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/numbers":
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"num_1","kind":"linked_device","label":"Support","connection_id":"con_1"}`)
	case r.Method == "POST" && r.URL.Path == "/v1/numbers/num_1/pairing":
		f.mu.Lock()
		busy := f.pairingBusy > 0
		f.pairingBusy--
		f.mu.Unlock()
		if busy {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":503,"title":"Service Unavailable","detail":"the session is starting"}`)
			return
		}
		if strings.Contains(string(body), "phone") {
			_, _ = io.WriteString(w, `{"pairing_code":"ABCD-EFGH"}`)
			return
		}
		_, _ = io.WriteString(w, `{}`)
	case r.Method == "GET" && r.URL.Path == "/v1/numbers/num_1/qr":
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		_, _ = io.WriteString(w, ": connected\n\n")
		fl.Flush()
		for _, ev := range f.script {
			name, data, _ := strings.Cut(ev, " ")
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n: heartbeat\n\n", name, data)
			fl.Flush()
			time.Sleep(5 * time.Millisecond)
		}
	case r.Method == "GET" && r.URL.Path == "/v1/numbers":
		if r.URL.Query().Get("cursor") == "" {
			_, _ = io.WriteString(w, `{"data":[{"id":"num_1","kind":"linked_device","label":"Support","connection_id":"con_1",
				"session":{"state":"connected","phone":"+393331234567","push_name":"Shop"}}],"next_cursor":"c2"}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":[{"id":"num_2","kind":"cloud_api","label":"Main","connection_id":"con_2"}],"next_cursor":""}`)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeNumbersAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// runNumbers runs `ponte numbers args...` in-process against srv.
func runNumbers(t *testing.T, srv *httptest.Server, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newNumbersCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--api", srv.URL, "--key", "ponte_test_key"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func qrText(code string) string {
	var b bytes.Buffer
	qrterminal.GenerateHalfBlock(code, qrterminal.L, &b)
	return b.String()
}

func TestNumbersPairShowsQRUntilConnected(t *testing.T) {
	t.Parallel()
	api := &fakeNumbersAPI{t: t, script: []string{
		`state {"state":"pairing"}`,
		`qr {"code":"2@first,abc","expires_at":"2026-03-01T10:00:20Z"}`,
		`qr {"code":"2@second,def","expires_at":"2026-03-01T10:00:40Z"}`,
		`state {"state":"connected"}`,
		`connected {"phone":"+393331234567","push_name":"Shop"}`,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()

	out, errOut, err := runNumbers(t, srv, "pair", "--label", "Support", "--device-name", "Ponte Support")
	if err != nil {
		t.Fatalf("pair: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	first, second := qrText("2@first,abc"), qrText("2@second,def")
	i, j := strings.Index(out, first), strings.Index(out, second)
	if i < 0 || j < i {
		t.Errorf("the QR codes are not printed in order:\n%s", out)
	}
	if !strings.HasSuffix(out, "Connected: +393331234567 (Shop)\n") {
		t.Errorf("stdout does not end with the account:\n%s", out)
	}
	if !strings.Contains(errOut, "Created number num_1 (Support)") || !strings.Contains(errOut, "Session: pairing") {
		t.Errorf("stderr %q", errOut)
	}
	reqs := api.requests()
	if len(reqs) != 2 || reqs[0] != `POST /v1/numbers {"device_name":"Ponte Support","kind":"linked_device","label":"Support"}` ||
		reqs[1] != "GET /v1/numbers/num_1/qr " {
		t.Errorf("requests %q", reqs)
	}
}

func TestNumbersPairEndsWithTheReason(t *testing.T) {
	t.Parallel()
	api := &fakeNumbersAPI{t: t, script: []string{
		`state {"state":"pairing"}`,
		`qr {"code":"2@only"}`,
		`state {"state":"logged_out","reason":"pairing timed out"}`,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	out, _, err := runNumbers(t, srv, "pair", "--label", "Support")
	if err == nil || !strings.Contains(err.Error(), "pairing timed out") || !strings.Contains(err.Error(), "--number num_1") {
		t.Fatalf("error %v, want the reason and how to retry", err)
	}
	if !strings.Contains(out, qrText("2@only")) {
		t.Errorf("QR not shown:\n%s", out)
	}
}

// With --phone the CLI asks for a pairing code once the session pairs
// (retrying while the API says it is starting) and shows it, not the QR.
func TestNumbersPairByPhone(t *testing.T) {
	t.Parallel()
	api := &fakeNumbersAPI{t: t, pairingBusy: 1, script: []string{
		`state {"state":"pairing"}`,
		`qr {"code":"2@ignored"}`,
		`pairing_code {"code":"ABCD-EFGH"}`,
		`connected {"phone":"+393331234567"}`,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	out, errOut, err := runNumbers(t, srv, "pair", "--label", "Support", "--phone", "+393331234567")
	if err != nil {
		t.Fatalf("pair: %v\n%s\n%s", err, out, errOut)
	}
	if strings.Count(out, "ABCD-EFGH") != 1 {
		t.Errorf("the pairing code is not shown exactly once:\n%s", out)
	}
	if strings.Contains(out, qrText("2@ignored")) {
		t.Error("a QR code was shown when pairing by phone")
	}
	var pairings int
	for _, r := range api.requests() {
		if strings.HasPrefix(r, "POST /v1/numbers/num_1/pairing") {
			pairings++
			var body map[string]string
			_ = json.Unmarshal([]byte(strings.TrimPrefix(r, "POST /v1/numbers/num_1/pairing ")), &body)
			if body["phone"] != "+393331234567" {
				t.Errorf("pairing request %q", r)
			}
		}
	}
	if pairings != 2 {
		t.Errorf("%d pairing requests, want the busy one and its retry", pairings)
	}
}

func TestNumbersListAndErrors(t *testing.T) {
	t.Parallel()
	api := &fakeNumbersAPI{t: t}
	srv := httptest.NewServer(api)
	defer srv.Close()
	out, _, err := runNumbers(t, srv, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"num_1", "connected", "+393331234567", "num_2", "cloud_api", "Main"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	var errOut bytes.Buffer
	cmd := newNumbersCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"list", "--api", srv.URL, "--key", "wrong"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: %v", err)
	}
	if _, _, err := runNumbers(t, srv, "pair"); err == nil || !strings.Contains(err.Error(), "--label") {
		t.Errorf("pair without a label: %v", err)
	}
}

// --number restarts pairing of an existing number; the ended session the
// stream reports first does not end the command.
func TestNumbersPairAgain(t *testing.T) {
	t.Parallel()
	api := &fakeNumbersAPI{t: t, script: []string{
		`state {"state":"logged_out","reason":"pairing timed out"}`,
		`state {"state":"pairing"}`,
		`qr {"code":"2@again"}`,
		`state {"state":"connected"}`,
		`connected {"phone":"+393331234567","push_name":"Shop"}`,
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	out, errOut, err := runNumbers(t, srv, "pair", "--number", "num_1")
	if err != nil {
		t.Fatalf("pair again: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, qrText("2@again")) || !strings.HasSuffix(out, "Connected: +393331234567 (Shop)\n") {
		t.Errorf("stdout:\n%s", out)
	}
	reqs := api.requests()
	if len(reqs) != 2 || reqs[0] != "POST /v1/numbers/num_1/pairing {}" || reqs[1] != "GET /v1/numbers/num_1/qr " {
		t.Errorf("requests %q", reqs)
	}
}
