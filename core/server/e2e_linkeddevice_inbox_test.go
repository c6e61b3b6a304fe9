package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/secrets"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// fakeLinkedDevicePlugin builds the linked-device plugin with its fake
// whatsmeow client (build tag linkeddevice_fake): the production connector
// code, with WhatsApp's socket replaced by events the test injects.
func fakeLinkedDevicePlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ponte-connector-linkeddevice")
	cmd := exec.Command("go", "build", "-tags", "linkeddevice_fake", "-o", out, "./connectors/linkeddevice/cmd/ponte-connector-linkeddevice")
	cmd.Dir = testenv.RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake linked-device plugin: %v\n%s", err, b)
	}
	return out
}

// linkedDriver talks to the plugin of a running node the way the node's
// peers do: through the node's internal endpoint, signed with the key every
// node derives from the master key.
type linkedDriver struct {
	t      *testing.T
	in     *installation
	fwd    *invoke.Forwarder
	connID string
}

func (d *linkedDriver) call(action string, params any) json.RawMessage {
	d.t.Helper()
	out, err := d.try(action, params)
	if err != nil {
		d.t.Fatalf("%s: %v", action, err)
	}
	return out
}

// try is call without failing the test (the session may not be open yet).
func (d *linkedDriver) try(action string, params any) (json.RawMessage, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	return d.fwd.Forward(context.Background(), "http://"+d.in.addr, invoke.Call{TenantID: d.in.tenantID,
		ConnectionID: d.connID, Action: action, Params: raw, IdempotencyKey: fmt.Sprint(time.Now().UnixNano())})
}

func (d *linkedDriver) inject(event string, data any, extra map[string]any) {
	d.t.Helper()
	params := map[string]any{"event": event}
	if data != nil {
		params["data"] = data
	}
	for k, v := range extra {
		params[k] = v
	}
	d.call("test_inject", params)
}

// sent returns the sends the fake client was asked for.
func (d *linkedDriver) sent() []map[string]any {
	d.t.Helper()
	var res struct {
		Calls []map[string]any `json:"calls"`
	}
	if err := json.Unmarshal(d.call("test_sent", map[string]any{}), &res); err != nil {
		d.t.Fatal(err)
	}
	return res.Calls
}

// waitFor is eventually for checks that say what is still wrong ("" once
// it holds).
func waitFor(t *testing.T, within time.Duration, what string, check func() string) {
	t.Helper()
	var problem string
	eventually(t, within, func() bool { problem = check(); return problem == "" }, func() string { return what + ": " + problem })
}

// TestIntegrationLinkedDeviceInbox pairs a linked-device number through
// ponte serve (QR on the API as PNG, then the account), receives a
// customer's message into the same contacts and inbox as the Cloud API,
// replies from the inbox (paced, "typing..." first, the message id recorded
// before the call), applies the read receipt to the ledger, sends through
// the Twilio-shaped SMS endpoint from the number's phone, and refuses an SMS
// after the customer's STOP.
func TestIntegrationLinkedDeviceInbox(t *testing.T) {
	in := newInstallation(t, "cloudapi")
	dir := pluginDir(t, testenv.BuildBinary(t, "./connectors/cloudapi/cmd/ponte-connector-cloudapi"), fakeLinkedDevicePlugin(t))
	in.env = append(in.env, "PONTE_PLUGIN_DIR="+dir)
	in.start()

	var masterKey string
	for _, kv := range in.env {
		if v, ok := strings.CutPrefix(kv, "PONTE_MASTER_KEY="); ok {
			masterKey = v
		}
	}
	key, err := secrets.ParseMasterKey(masterKey)
	if err != nil {
		t.Fatal(err)
	}

	var number struct {
		ID           string `json:"id"`
		ConnectionID string `json:"connection_id"`
		Session      *struct {
			State    string `json:"state"`
			Phone    string `json:"phone"`
			PushName string `json:"push_name"`
		} `json:"session"`
	}
	if code := in.call("POST", "/v1/numbers", map[string]any{"kind": "linked_device", "label": "Support"}, &number); code != http.StatusCreated {
		t.Fatalf("creating the number: %d\n%s", code, in.logs())
	}
	// The test's own pacing: one message a second at most, little typing
	// (the defaults space sends 4 to 12 s apart).
	var patched struct {
		Pacing map[string]any `json:"pacing"`
	}
	if code := in.call("PATCH", "/v1/numbers/"+number.ID, map[string]any{"pacing": map[string]any{"messages_per_minute": 60,
		"min_gap_seconds": 0, "max_gap_seconds": 1, "typing_max_seconds": 1}}, &patched); code != http.StatusOK || patched.Pacing["messages_per_minute"] != float64(60) {
		t.Fatalf("setting the pacing: %d %v", code, patched.Pacing)
	}
	d := &linkedDriver{t: t, in: in, fwd: invoke.NewForwarder(invoke.DeriveInternalKey(key)), connID: number.ConnectionID}

	// Pairing: the session starts its QR loop; the code shows on the API.
	waitFor(t, 30*time.Second, "the number never showed a QR code", func() string {
		// The node takes the session on its next scan; until then the
		// plugin has no session to inject into.
		if _, err := d.try("test_inject", map[string]any{"event": "QR", "data": map[string]any{"Codes": []string{"2@e2e-qr-code"}}}); err != nil {
			return err.Error()
		}
		req, _ := http.NewRequest("GET", in.url("/v1/numbers/"+number.ID+"/qr.png"), nil)
		req.Header.Set("Authorization", "Bearer "+in.apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("qr.png: %d", resp.StatusCode)
		}
		if _, err := png.Decode(resp.Body); err != nil {
			return "qr.png is not a PNG: " + err.Error()
		}
		return ""
	})
	d.inject("PairSuccess", map[string]any{"ID": "393330001111:7@s.whatsapp.net", "LID": "77788899:7@lid", "Platform": "android"}, nil)
	d.inject("Connected", nil, nil)
	waitFor(t, 10*time.Second, "the number is not connected", func() string {
		in.call("GET", "/v1/numbers/"+number.ID, nil, &number)
		if number.Session == nil || number.Session.State != "connected" || number.Session.Phone != "+393330001111" {
			return fmt.Sprintf("session %+v", number.Session)
		}
		return ""
	})

	// A customer writes: contact, conversation and message as for the
	// Cloud API.
	const anna = "393339990001@s.whatsapp.net"
	now := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	d.inject("Message", map[string]any{"Info": map[string]any{"Chat": anna, "Sender": anna, "ID": "3EB0CUSTOMER1", "PushName": "Anna", "Timestamp": now}},
		map[string]any{"message": map[string]any{"conversation": "Ciao, avete la taglia M?"}})
	var conv struct {
		ID      string `json:"id"`
		Contact struct {
			ID    string `json:"id"`
			Phone string `json:"phone"`
			Name  string `json:"name"`
		} `json:"contact"`
		UnreadCount int `json:"unread_count"`
	}
	waitFor(t, 15*time.Second, "the message did not reach the inbox", func() string {
		var list struct {
			Data []json.RawMessage `json:"data"`
		}
		in.call("GET", "/v1/conversations?connection_id="+number.ConnectionID, nil, &list)
		if len(list.Data) != 1 {
			return fmt.Sprintf("%d conversations", len(list.Data))
		}
		_ = json.Unmarshal(list.Data[0], &conv)
		return ""
	})
	if conv.Contact.Phone != "+393339990001" || conv.Contact.Name != "Anna" || conv.UnreadCount != 1 {
		t.Fatalf("conversation %+v; want Anna's, one unread", conv)
	}

	// A live inbox sees Anna typing.
	streamReq, _ := http.NewRequest("GET", in.url("/v1/stream"), nil)
	streamReq.Header.Set("Authorization", "Bearer "+in.apiKey)
	streamCtx, stopStream := context.WithTimeout(context.Background(), 20*time.Second)
	defer stopStream()
	streamResp, err := http.DefaultClient.Do(streamReq.WithContext(streamCtx))
	if err != nil {
		t.Fatal(err)
	}
	defer streamResp.Body.Close()
	typing, listening := make(chan string, 1), make(chan struct{})
	go func(listening chan struct{}) {
		buf := make([]byte, 0, 4096)
		chunk := make([]byte, 1024)
		for {
			n, err := streamResp.Body.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if listening != nil && strings.Contains(string(buf), ": connected") {
				close(listening) // the stream's LISTEN is in place
				listening = nil
			}
			if i := strings.Index(string(buf), "event: signal\ndata: "); i >= 0 {
				line, _, _ := strings.Cut(string(buf[i+len("event: signal\ndata: "):]), "\n")
				typing <- line
				return
			}
			if err != nil {
				close(typing)
				return
			}
		}
	}(listening)
	select {
	case <-listening:
	case <-streamCtx.Done():
		t.Fatal("the inbox stream did not start")
	}
	d.inject("ChatPresence", map[string]any{"Chat": anna, "Sender": anna, "State": "composing", "Media": ""}, nil)
	select {
	case line, ok := <-typing:
		if !ok || !strings.Contains(line, `"conversation_id":"`+conv.ID+`"`) || !strings.Contains(line, "composing") {
			t.Fatalf("stream signal %q; want Anna typing in her conversation", line)
		}
	case <-streamCtx.Done():
		t.Fatal("no typing signal on the inbox stream")
	}
	stopStream()

	// The agent answers from the inbox.
	var reply struct {
		ID                string `json:"id"`
		Status            string `json:"status"`
		ProviderMessageID string `json:"provider_message_id"`
	}
	if code := in.call("POST", "/v1/conversations/"+conv.ID+"/messages", map[string]any{"text": "Sì, certo!"}, &reply, "Idempotency-Key", "reply-1"); code >= 300 {
		t.Fatalf("reply: %d\n%s", code, in.logs())
	}
	if reply.Status != "sent" || reply.ProviderMessageID != messaging.LinkedMessageID(reply.ID) {
		t.Fatalf("reply %+v; want sent with the id fixed before the call", reply)
	}
	calls := d.sent()
	var sawTyping, sawText bool
	for _, c := range calls {
		switch c["method"] {
		case "SendChatPresence":
			sawTyping = !sawText
		case "SendMessage":
			sawText = true
		}
	}
	if !sawTyping || !sawText {
		t.Fatalf("fake client calls %v; want typing, then the text", calls)
	}

	// Anna reads it: the ledger moves to read.
	d.inject("Receipt", map[string]any{"Chat": anna, "Sender": anna, "MessageIDs": []string{reply.ProviderMessageID}, "Type": "read", "Timestamp": time.Now().UTC().Format(time.RFC3339)}, nil)
	waitFor(t, 15*time.Second, "the read receipt did not reach the ledger", func() string {
		var m struct {
			Status string `json:"status"`
		}
		in.call("GET", "/v1/messages/"+reply.ID, nil, &m)
		if m.Status != "read" {
			return "status " + m.Status
		}
		return ""
	})

	// A reaction on Anna's message, through the same core.
	var reaction struct {
		Status string `json:"status"`
	}
	if code := in.call("POST", "/v1/messages", map[string]any{"connection_id": number.ConnectionID, "to": "+393339990001", "kind": "reaction",
		"reaction": map[string]any{"message_id": "3EB0CUSTOMER1", "emoji": "👍"}}, &reaction, "Idempotency-Key", "react-1"); code >= 300 || reaction.Status != "sent" {
		t.Fatalf("reaction: %d %+v", code, reaction)
	}
	calls = d.sent()
	if last := calls[len(calls)-1]; last["method"] != "SendMessage" || !strings.Contains(fmt.Sprint(last["message"]), "3EB0CUSTOMER1") ||
		!strings.Contains(fmt.Sprint(last["message"]), "reactionMessage") {
		t.Fatalf("last fake client call %v; want the reaction on 3EB0CUSTOMER1", last)
	}

	// A tool that only speaks SMS sends from the number's phone.
	sms := func(body string) (int, map[string]any) {
		form := url.Values{"To": {"+393339990001"}, "From": {"whatsapp:+393330001111"}, "Body": {body}}
		req, _ := http.NewRequest("POST", in.url("/2010-04-01/Accounts/"+in.tenantID+"/Messages.json"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(in.tenantID, in.apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	code, msg := sms("Il suo ordine è pronto.")
	if code != http.StatusCreated || !strings.HasPrefix(fmt.Sprint(msg["sid"]), "SM") {
		t.Fatalf("SMS send: %d %v\n%s", code, msg, in.logs())
	}
	if n := len(d.sent()); n <= len(calls) {
		t.Fatalf("the SMS did not reach the fake client (%d calls)", n)
	}

	// STOP: the next SMS is refused as Twilio refuses unsubscribed recipients.
	d.inject("Message", map[string]any{"Info": map[string]any{"Chat": anna, "Sender": anna, "ID": "3EB0CUSTOMER2", "PushName": "Anna", "Timestamp": time.Now().UTC().Format(time.RFC3339)}},
		map[string]any{"message": map[string]any{"conversation": "STOP"}})
	waitFor(t, 15*time.Second, "the STOP was not recorded", func() string {
		var cc struct {
			States map[string]string `json:"states"`
		}
		in.call("GET", "/v1/contacts/"+conv.Contact.ID+"/consent", nil, &cc)
		if cc.States["utility"] != "out" {
			return fmt.Sprintf("consent %v", cc.States)
		}
		return ""
	})
	if code, msg := sms("Offerta!"); code != http.StatusBadRequest || fmt.Sprint(msg["code"]) != "21610" {
		t.Fatalf("SMS after STOP: %d %v; want 400 with code 21610", code, msg)
	}
	if os.Getenv("PONTE_E2E_VERBOSE") != "" {
		t.Log(in.logs())
	}
}
