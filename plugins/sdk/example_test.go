package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// The examples in this file show the SDK's types one at a time. The connector
// types they use (crmWebhooks, crmActions, crmPoller, memHost, ...) are
// complete examples of their own, in the files example_*_test.go.

// A Manifest for a small CRM: three configuration fields, of which the API
// key is secret (encrypted at rest, never shown again), the events it emits
// and one action whose parameters are described by a JSON Schema.
func ExampleManifest() {
	m := sdk.Manifest{
		Name:        "tinycrm",
		Version:     "1.2.0",
		DisplayName: "Tiny CRM",
		Description: "Contacts and deals from Tiny CRM.",
		Config: []sdk.ConfigField{
			{Name: "subdomain", Type: sdk.FieldString, Required: true, Pattern: `^[a-z0-9-]+$`,
				Description: "The part before .tinycrm.example in your CRM's address"},
			{Name: "api_key", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "Settings > API > Personal key"},
			{Name: "region", Type: sdk.FieldString, Enum: []string{"eu", "us"}, Default: "eu"},
		},
		Events: []sdk.EventType{
			{Type: "contact.created", Description: "A contact was added."},
			{Type: "deal.won", Description: "A deal moved to Won."},
		},
		Actions: []sdk.Action{{
			Name:        "create_contact",
			Description: "Creates a contact, once per idempotency key.",
			Params: json.RawMessage(`{
				"type": "object",
				"required": ["email"],
				"properties": {
					"email": {"type": "string", "format": "email"},
					"name": {"type": "string", "maxLength": 200}
				},
				"additionalProperties": false
			}`),
		}},
		Webhooks: true,
	}

	for _, f := range m.Config {
		fmt.Printf("config %s %s required=%t secret=%t\n", f.Name, f.Type, f.Required, f.Secret)
	}
	for _, a := range m.Actions {
		fmt.Printf("action %s params schema valid JSON: %t\n", a.Name, json.Valid(a.Params))
	}
	// Output:
	// config subdomain string required=true secret=false
	// config api_key string required=true secret=true
	// config region string required=false secret=false
	// action create_contact params schema valid JSON: true
}

// A ConfigField as the host's API shows it to users (the JSON form of the
// field). Mark every credential Secret: the host then encrypts it at rest and
// never returns or logs it.
func ExampleConfigField() {
	f := sdk.ConfigField{
		Name:        "api_key",
		Type:        sdk.FieldString,
		Description: "Settings > API > Personal key",
		Required:    true,
		Secret:      true,
		Pattern:     `^tc_(live|test)_[A-Za-z0-9]{24}$`,
	}
	b, err := json.Marshal(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output:
	// {"name":"api_key","type":"string","description":"Settings \u003e API \u003e Personal key","required":true,"secret":true,"pattern":"^tc_(live|test)_[A-Za-z0-9]{24}$"}
}

// Each FieldType maps to a Go type in the struct the connector decodes its
// Config into: FieldString to string, FieldInteger to an integer type,
// FieldBoolean to bool. The host has applied defaults before the connector
// sees the config.
func ExampleFieldType() {
	fields := []sdk.ConfigField{
		{Name: "subdomain", Type: sdk.FieldString, Required: true},
		{Name: "page_size", Type: sdk.FieldInteger, Default: 100},
		{Name: "sync_archived", Type: sdk.FieldBoolean, Default: false},
	}
	var cfg struct {
		Subdomain    string `json:"subdomain"`
		PageSize     int    `json:"page_size"`
		SyncArchived bool   `json:"sync_archived"`
	}
	if err := sdk.Config(`{"subdomain":"acme","page_size":100,"sync_archived":false}`).Decode(&cfg); err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fields {
		fmt.Println(f.Name, f.Type)
	}
	fmt.Printf("%+v\n", cfg)
	// Output:
	// subdomain string
	// page_size integer
	// sync_archived boolean
	// {Subdomain:acme PageSize:100 SyncArchived:false}
}

// EventTypes declare what a connector emits. The SDK refuses (as a connector
// bug, KindPermanent) an event whose type the manifest does not declare, so
// list every type here, with a sentence users can read in the host's API.
func ExampleEventType() {
	events := []sdk.EventType{
		{Type: "contact.created", Description: "A contact was added, by hand or by import."},
		{Type: "deal.won", Description: "A deal moved to the Won stage."},
	}
	for _, e := range events {
		fmt.Printf("%s: %s\n", e.Type, e.Description)
	}
	// Output:
	// contact.created: A contact was added, by hand or by import.
	// deal.won: A deal moved to the Won stage.
}

// An Action's Params schema is checked by the host before the call reaches the
// connector. A connector's own test can compile it with the same library the
// host uses and try a few parameter sets.
func ExampleAction() {
	a := sdk.Action{
		Name: "create_contact",
		Params: json.RawMessage(`{"type":"object","required":["email"],` +
			`"properties":{"email":{"type":"string"},"name":{"type":"string"}},"additionalProperties":false}`),
		Result: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}}}`),
	}

	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(a.Params))
	if err != nil {
		fmt.Println(err)
		return
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("create_contact.json", doc); err != nil {
		fmt.Println(err)
		return
	}
	schema, err := c.Compile("create_contact.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, params := range []string{`{"email":"ada@example.com"}`, `{"name":"Ada"}`, `{"email":"a@b.c","phone":"1"}`} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(params))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(params, "valid:", schema.Validate(inst) == nil)
	}
	// Output:
	// {"email":"ada@example.com"} valid: true
	// {"name":"Ada"} valid: false
	// {"email":"a@b.c","phone":"1"} valid: false
}

// A Connector only describes itself; what it can do follows from the other
// interfaces it implements. The host finds those the way this loop does.
func ExampleConnector() {
	for _, c := range []sdk.Connector{crmWebhooks{}, &crmActions{}, crmPoller{}} {
		_, webhooks := c.(sdk.WebhookHandler)
		_, actions := c.(sdk.ActionInvoker)
		_, polls := c.(sdk.Poller)
		m := c.Manifest()
		fmt.Printf("%s webhooks=%t actions=%t polls=%t (every %s)\n", m.Name, webhooks, actions, polls, m.PollInterval)
	}
	// Output:
	// tinycrm webhooks=true actions=false polls=false (every 0s)
	// tinycrm webhooks=false actions=true polls=false (every 0s)
	// tinycrm webhooks=false actions=false polls=true (every 1m0s)
}

// crmFactory returns the Factory handed to sdk.Serve. Taking dependencies as
// arguments lets tests build the connector with their own HTTP client.
func crmFactory(client *http.Client) sdk.Factory {
	return func(host sdk.Host) (sdk.Connector, error) {
		if client == nil {
			return nil, errors.New("tinycrm: no HTTP client")
		}
		return &crmActions{http: client}, nil
	}
}

// A Factory builds the connector once per plugin process. In main it goes to
// Serve (sdk.Serve(crmFactory(&http.Client{Timeout: 30 * time.Second})));
// in a test, call it with an in-memory Host.
func ExampleFactory() {
	factory := crmFactory(&http.Client{Timeout: 30 * time.Second})
	c, err := factory(newMemHost())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Manifest().Name, c.Manifest().Actions[0].Name)

	_, err = crmFactory(nil)(newMemHost())
	fmt.Println(err)
	// Output:
	// tinycrm create_contact
	// tinycrm: no HTTP client
}

// A Connection arrives with every call. Use its ID for anything kept per
// connection (host state, client caches, log attributes) and decode its Config
// for credentials; log the ID and tenant, never the config.
func ExampleConnection() {
	conn := sdk.Connection{
		ID:       "conn_2b9f",
		TenantID: "ten_01",
		Config:   sdk.Config(`{"subdomain":"acme","api_key":"tc_test_123"}`),
	}
	var cfg struct {
		Subdomain string `json:"subdomain"`
		APIKey    string `json:"api_key"`
	}
	if err := conn.Config.Decode(&cfg); err != nil {
		fmt.Println(err)
		return
	}
	// A handler without time, so the output is stable.
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	log.Info("syncing contacts", "connection", conn.ID, "tenant", conn.TenantID, "subdomain", cfg.Subdomain)
	// Output:
	// level=INFO msg="syncing contacts" connection=conn_2b9f tenant=ten_01 subdomain=acme
}

// Config is the connection's configuration as raw JSON, defaults applied and
// secrets decrypted. Decode it into a struct that mirrors the manifest's
// fields; a value of the wrong type is an error to report as Permanent, since
// retrying the same configuration cannot help.
func ExampleConfig() {
	type crmConfig struct {
		Subdomain string `json:"subdomain"`
		PageSize  int    `json:"page_size"`
	}
	for _, raw := range []sdk.Config{
		sdk.Config(`{"subdomain":"acme","page_size":50}`),
		nil, // no configuration at all: the zero value
		sdk.Config(`{"subdomain":"acme","page_size":"fifty"}`),
	} {
		var cfg crmConfig
		if err := raw.Decode(&cfg); err != nil {
			fmt.Println(sdk.KindOf(sdk.Permanent("reading config: %v", err)))
			continue
		}
		fmt.Printf("%+v\n", cfg)
	}
	// Output:
	// {Subdomain:acme PageSize:50}
	// {Subdomain: PageSize:0}
	// permanent
}

func ExampleConfig_Decode() {
	var cfg struct {
		APIKey        string `json:"api_key"`
		WebhookSecret string `json:"webhook_secret"`
	}
	conn := sdk.Connection{Config: sdk.Config(`{"api_key":"tc_test_123","webhook_secret":"whsec_1"}`)}
	if err := conn.Config.Decode(&cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.APIKey != "", cfg.WebhookSecret != "")
	// Output: true true
}

// A WebhookRequest carries the delivery exactly as received. Check
// timestamps against ReceivedAt rather than time.Now: the host sets it when
// the request arrives, and a recorded fixture replayed in a test keeps its
// own, so the check gives the same answer every time.
func ExampleWebhookRequest() {
	received := time.Date(2026, 1, 2, 9, 0, 10, 0, time.UTC)
	req := sdk.WebhookRequest{
		Method:     "POST",
		Path:       "/contacts",
		Query:      "account=acme",
		Headers:    map[string][]string{"X-Crm-Timestamp": {strconv.FormatInt(received.Add(-10*time.Second).Unix(), 10)}},
		Body:       []byte(`{"id":"evt_1"}`),
		ReceivedAt: received,
	}

	sent, err := strconv.ParseInt(req.Header("X-CRM-Timestamp"), 10, 64)
	if err != nil {
		fmt.Println(sdk.Auth("bad timestamp header"))
		return
	}
	age := req.ReceivedAt.Sub(time.Unix(sent, 0))
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		fmt.Println(sdk.Invalid("parsing query: %v", err))
		return
	}
	fmt.Println(req.Method, req.Path, q.Get("account"), "age", age, "within 5m:", age <= 5*time.Minute)
	// Output: POST /contacts acme age 10s within 5m: true
}

func ExampleWebhookRequest_Header() {
	// Header names are matched case-insensitively, whatever the spelling the
	// provider used.
	req := sdk.WebhookRequest{Headers: map[string][]string{
		"X-Hub-Signature-256": {"sha256=6a1c", "sha256=ignored"},
	}}
	fmt.Println(req.Header("x-hub-signature-256"))
	fmt.Printf("%q\n", req.Header("X-Missing"))
	// Output:
	// sha256=6a1c
	// ""
}

// Some providers validate a webhook URL with a POST and want a token echoed
// (Microsoft Graph sends ?validationToken=...). The handler returns no events
// and sets Response; otherwise the host answers an empty 200.
func ExampleWebhookResult() {
	handle := func(req sdk.WebhookRequest) (sdk.WebhookResult, error) {
		q, err := url.ParseQuery(req.Query)
		if err != nil {
			return sdk.WebhookResult{}, sdk.Invalid("parsing query: %v", err)
		}
		if token := q.Get("validationToken"); token != "" {
			return sdk.WebhookResult{Response: &sdk.HTTPResponse{
				Headers: map[string]string{"Content-Type": "text/plain"},
				Body:    []byte(token),
			}}, nil
		}
		return sdk.WebhookResult{Events: []sdk.Event{{
			DedupeKey: "sub_1/42", Type: "message.created", Payload: req.Body,
		}}}, nil
	}

	res, _ := handle(sdk.WebhookRequest{Method: "POST", Query: "validationToken=Validation%3A+Testing"})
	fmt.Printf("events=%d response=%q\n", len(res.Events), res.Response.Body)
	res, _ = handle(sdk.WebhookRequest{Method: "POST", Body: []byte(`{"id":"42"}`)})
	fmt.Printf("events=%d response=%v\n", len(res.Events), res.Response)
	// Output:
	// events=0 response="Validation: Testing"
	// events=1 response=<nil>
}

// An HTTPResponse is what a Handshaker (or a WebhookResult) sends back to the
// provider. A zero Status means 200; set it when the provider expects another
// code.
func ExampleHTTPResponse() {
	accepted := sdk.HTTPResponse{
		Status:  http.StatusAccepted,
		Headers: map[string]string{"Content-Type": "application/json"},
		Body:    []byte(`{"received":true}`),
	}
	challenge := sdk.HTTPResponse{Body: []byte("1158201444")}

	for _, r := range []sdk.HTTPResponse{accepted, challenge} {
		status := r.Status
		if status == 0 {
			status = http.StatusOK
		}
		fmt.Println(status, r.Headers["Content-Type"], string(r.Body))
	}
	// Output:
	// 202 application/json {"received":true}
	// 200  1158201444
}

// An Event normalizes what the provider sent. DedupeKey is the provider's own
// event id, so redeliveries are stored once; Correlation carries the business
// keys the host derives workflow ids from (here an order id and the Ponte
// payment link id the connector put into the provider's metadata).
func ExampleEvent() {
	e := sdk.Event{
		DedupeKey:  "evt_1QxA2b",
		Type:       "order.paid",
		OccurredAt: time.Unix(1767344400, 0).UTC(),
		Correlation: map[string]string{
			"order_id":     "ord_9",
			"payment_link": "pl_01J",
		},
		Payload: json.RawMessage(`{"order_id":"ord_9","amount":1999,"currency":"eur"}`),
	}
	b, err := json.Marshal(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output:
	// {"dedupe_key":"evt_1QxA2b","type":"order.paid","occurred_at":"2026-01-02T09:00:00Z","correlation":{"order_id":"ord_9","payment_link":"pl_01J"},"payload":{"order_id":"ord_9","amount":1999,"currency":"eur"}}
}

// An ActionCall's Params decode into the action's parameter struct; they
// already passed the action's schema, so a decoding failure is a mismatch
// between schema and struct, reported as Invalid.
func ExampleActionCall() {
	call := sdk.ActionCall{
		Connection:     sdk.Connection{ID: "conn_1"},
		Action:         "create_contact",
		Params:         json.RawMessage(`{"email":"ada@example.com","name":"Ada Lovelace"}`),
		IdempotencyKey: "paymentlink-pl_01J/create_contact",
	}
	var p struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := json.Unmarshal(call.Params, &p); err != nil {
		fmt.Println(sdk.Invalid("decoding %s parameters: %v", call.Action, err))
		return
	}
	fmt.Println(call.Action, p.Email, p.Name)
	fmt.Println("Idempotency-Key:", call.IdempotencyKey)
	// Output:
	// create_contact ada@example.com Ada Lovelace
	// Idempotency-Key: paymentlink-pl_01J/create_contact
}

// When nothing changed, a PollResult returns the cursor it was given: an
// empty Cursor would make the next poll start again from the beginning.
func ExamplePollResult() {
	p := crmPoller{changes: func(context.Context, int64, int) ([]contactChange, error) { return nil, nil }}
	res, err := p.Poll(context.Background(), sdk.Connection{ID: "conn_1"}, "42")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("events=%d cursor=%q more=%t\n", len(res.Events), res.Cursor, res.More)
	// Output: events=0 cursor="42" more=false
}
