package stripeconnector

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestManifest(t *testing.T) {
	t.Parallel()
	m := testConnector(t).Manifest()
	if m.Name != "stripe" || m.Version != Version || !m.Webhooks {
		t.Errorf("manifest header = %q %q webhooks=%v", m.Name, m.Version, m.Webhooks)
	}
	type field struct {
		Name             string
		Required, Secret bool
	}
	var fields []field
	for _, f := range m.Config {
		fields = append(fields, field{f.Name, f.Required, f.Secret})
	}
	wantFields := []field{{"secret_key", true, true}, {"webhook_secret", true, true}, {"api_base", false, false}}
	if diff := cmp.Diff(wantFields, fields); diff != "" {
		t.Errorf("config fields (-want +got):\n%s", diff)
	}
	var events []string
	for _, e := range m.Events {
		events = append(events, e.Type)
	}
	if diff := cmp.Diff(EventTypes(), events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	var actions []string
	for _, a := range m.Actions {
		actions = append(actions, a.Name)
	}
	if diff := cmp.Diff([]string{ActionCreatePaymentLink, ActionDeactivatePaymentLink, ActionGetPaymentLink}, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestConfigPatterns(t *testing.T) {
	t.Parallel()
	m := testConnector(t).Manifest()
	patterns := map[string]string{}
	for _, f := range m.Config {
		patterns[f.Name] = f.Pattern
	}
	tests := map[string]struct {
		field, value string
		want         bool
	}{
		"secret test key":      {"secret_key", "sk_test_51HkT0aLkdIwHu7ix", true},
		"secret live key":      {"secret_key", "sk_live_51HkT0aLkdIwHu7ix", true},
		"restricted test key":  {"secret_key", "rk_test_51HkT0aLkdIwHu7ix", true},
		"restricted live key":  {"secret_key", "rk_live_51HkT0aLkdIwHu7ix", true},
		"publishable key":      {"secret_key", "pk_test_51HkT0aLkdIwHu7ix", false},
		"key with spaces":      {"secret_key", "sk_test_abc def", false},
		"empty key":            {"secret_key", "", false},
		"webhook secret":       {"webhook_secret", "whsec_Xy1AbC2dEf3GhI4jKl5MnO6pQr7StU8v", true},
		"not a webhook secret": {"webhook_secret", "sk_test_123", false},
		"bare prefix":          {"webhook_secret", "whsec_", false},
		"api base http":        {"api_base", "http://127.0.0.1:12111", true},
		"api base https":       {"api_base", "https://api.stripe.com", true},
		"api base no scheme":   {"api_base", "api.stripe.com", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := jsonschema.NewCompiler()
			schema := map[string]any{"type": "string", "pattern": patterns[tt.field]}
			if err := c.AddResource("p.json", schema); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile("p.json")
			if err != nil {
				t.Fatalf("compiling the manifest's pattern for %s: %v", tt.field, err)
			}
			if got := sch.Validate(tt.value) == nil; got != tt.want {
				t.Errorf("pattern %q matches %q = %v, want %v", patterns[tt.field], tt.value, got, tt.want)
			}
		})
	}
}

// TestActionSchemas compiles every action's params schema, as the host will,
// and checks what it accepts. The connector's own validation must agree.
func TestActionSchemas(t *testing.T) {
	t.Parallel()
	m := testConnector(t).Manifest()
	compile := func(t *testing.T, raw json.RawMessage) *jsonschema.Schema {
		t.Helper()
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("schema is not JSON: %v", err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("schema.json", doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile("schema.json")
		if err != nil {
			t.Fatalf("compiling schema: %v", err)
		}
		return sch
	}
	schemas := map[string]*jsonschema.Schema{}
	for _, a := range m.Actions {
		schemas[a.Name] = compile(t, a.Params)
		compile(t, a.Result)
	}

	tests := map[string]struct {
		action, params string
		valid          bool
	}{
		"amount, currency, name": {ActionCreatePaymentLink, `{"amount": 2500, "currency": "eur", "product_name": "Order A-1042"}`, true},
		"with quantity and metadata": {ActionCreatePaymentLink,
			`{"amount": 2500, "currency": "EUR", "product_name": "Order", "quantity": 2, "metadata": {"ponte_payment_link": "pl_1"}}`, true},
		"price id":                 {ActionCreatePaymentLink, `{"price_id": "price_1PfXwJLkdIwHu7ix"}`, true},
		"price id and amount":      {ActionCreatePaymentLink, `{"price_id": "price_1", "amount": 100, "currency": "eur", "product_name": "x"}`, false},
		"price id and currency":    {ActionCreatePaymentLink, `{"price_id": "price_1", "currency": "eur"}`, false},
		"amount without name":      {ActionCreatePaymentLink, `{"amount": 100, "currency": "eur"}`, false},
		"nothing":                  {ActionCreatePaymentLink, `{}`, false},
		"zero amount":              {ActionCreatePaymentLink, `{"amount": 0, "currency": "eur", "product_name": "x"}`, false},
		"fractional amount":        {ActionCreatePaymentLink, `{"amount": 12.5, "currency": "eur", "product_name": "x"}`, false},
		"amount too large":         {ActionCreatePaymentLink, `{"amount": 100000000, "currency": "eur", "product_name": "x"}`, false},
		"bad currency":             {ActionCreatePaymentLink, `{"amount": 100, "currency": "euro", "product_name": "x"}`, false},
		"empty product name":       {ActionCreatePaymentLink, `{"amount": 100, "currency": "eur", "product_name": ""}`, false},
		"zero quantity":            {ActionCreatePaymentLink, `{"price_id": "price_1", "quantity": 0}`, false},
		"metadata number":          {ActionCreatePaymentLink, `{"price_id": "price_1", "metadata": {"a": 1}}`, false},
		"metadata key too long":    {ActionCreatePaymentLink, `{"price_id": "price_1", "metadata": {"` + strings.Repeat("k", 41) + `": "v"}}`, false},
		"metadata value too long":  {ActionCreatePaymentLink, `{"price_id": "price_1", "metadata": {"k": "` + strings.Repeat("v", 501) + `"}}`, false},
		"metadata key brackets":    {ActionCreatePaymentLink, `{"price_id": "price_1", "metadata": {"a[b]": "v"}}`, false},
		"unknown param":            {ActionCreatePaymentLink, `{"price_id": "price_1", "color": "red"}`, false},
		"price id with slash":      {ActionCreatePaymentLink, `{"price_id": "price_1/../x"}`, false},
		"get by id":                {ActionGetPaymentLink, `{"id": "plink_1PfXwJLkdIwHu7ixr3GdS7Hk"}`, true},
		"get without id":           {ActionGetPaymentLink, `{}`, false},
		"get with a price id":      {ActionGetPaymentLink, `{"id": "price_123"}`, false},
		"deactivate by id":         {ActionDeactivatePaymentLink, `{"id": "plink_1PfXwJLkdIwHu7ixr3GdS7Hk"}`, true},
		"deactivate path traverse": {ActionDeactivatePaymentLink, `{"id": "plink_1/../../v1/charges"}`, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(tt.params))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := schemas[tt.action].Validate(doc)
			if got := schemaErr == nil; got != tt.valid {
				t.Errorf("schema accepts %s = %v (%v), want %v", tt.params, got, schemaErr, tt.valid)
			}
			// The connector's own checks agree with the schema. No Stripe
			// server is reachable, so valid params fail later, with a
			// non-invalid error.
			conn := testConn(t, map[string]string{"secret_key": "sk_test_123", "api_base": "http://127.0.0.1:1"})
			_, err = testConnector(t).Invoke(context.Background(), sdk.ActionCall{
				Connection: conn, Action: tt.action, Params: json.RawMessage(tt.params), IdempotencyKey: "k",
			})
			if gotInvalid := sdk.KindOf(err) == sdk.KindInvalid; gotInvalid == tt.valid {
				t.Errorf("connector error for %s = %v, want invalid: %v", tt.params, err, !tt.valid)
			}
		})
	}
}

func TestInvokeRejectsBadCallsBeforeCallingStripe(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cfg    map[string]string
		action string
		params string
		want   sdk.ErrorKind
	}{
		"unknown action": {
			cfg: map[string]string{"secret_key": "sk_test_123"}, action: "refund_everything", params: `{}`, want: sdk.KindInvalid,
		},
		"no secret key": {
			cfg: map[string]string{"webhook_secret": testWebhookSecret}, action: ActionGetPaymentLink, params: `{"id": "plink_1"}`, want: sdk.KindAuth,
		},
		"publishable key": {
			cfg: map[string]string{"secret_key": "pk_test_123"}, action: ActionGetPaymentLink, params: `{"id": "plink_1"}`, want: sdk.KindAuth,
		},
		"api base not a URL": {
			cfg: map[string]string{"secret_key": "sk_test_123", "api_base": "ftp://stripe"}, action: ActionGetPaymentLink, params: `{"id": "plink_1"}`, want: sdk.KindPermanent,
		},
		"params not an object": {
			cfg: map[string]string{"secret_key": "sk_test_123"}, action: ActionCreatePaymentLink, params: `[1]`, want: sdk.KindInvalid,
		},
		"trailing data": {
			cfg: map[string]string{"secret_key": "sk_test_123"}, action: ActionGetPaymentLink, params: `{"id": "plink_1"} {}`, want: sdk.KindInvalid,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := testConnector(t).Invoke(context.Background(), sdk.ActionCall{
				Connection: testConn(t, tt.cfg), Action: tt.action, Params: json.RawMessage(tt.params), IdempotencyKey: "k",
			})
			if got := sdk.KindOf(err); got != tt.want {
				t.Errorf("kind = %v (err %v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 250)
	tests := map[string]struct {
		key, suffix string
		want        *string
	}{
		"no key":          {"", "price", nil},
		"plain":           {"wf-123/create", "", ptr("wf-123/create")},
		"derived":         {"wf-123/create", "price", ptr("wf-123/create:price")},
		"long fits as is": {long, "", ptr(long)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, idempotencyKey(tt.key, tt.suffix)); diff != "" {
				t.Errorf("idempotencyKey (-want +got):\n%s", diff)
			}
		})
	}

	// A derived key over Stripe's limit is a hash of the call key: short
	// enough, suffix kept, stable, and distinct for distinct call keys.
	got := idempotencyKey(long, "price")
	if got == nil || len(*got) > maxIdempotencyKey || !strings.HasSuffix(*got, ":price") {
		t.Fatalf("idempotencyKey(long, price) = %v", deref(got))
	}
	if again := idempotencyKey(long, "price"); *again != *got {
		t.Errorf("derived key not stable: %s then %s", *got, *again)
	}
	if other := idempotencyKey(long+"y", "price"); *other == *got {
		t.Errorf("distinct call keys gave the same derived key %s", *got)
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
