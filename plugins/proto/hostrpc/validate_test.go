package hostrpc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func manifestWith(schema string) sdk.Manifest {
	return sdk.Manifest{Name: "pay", Version: "1", Actions: []sdk.Action{
		{Name: "charge", Params: json.RawMessage(schema)},
		{Name: "ping"},
	}}
}

const chargeSchema = `{"type":"object","properties":{"amount":{"type":"integer","minimum":1}},"required":["amount"],"additionalProperties":false}`

func TestParamValidator(t *testing.T) {
	t.Parallel()
	v, err := NewParamValidator(manifestWith(chargeSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		action, params string
		wantInErr      string // empty: valid
	}{
		"valid":                {"charge", `{"amount":5}`, ""},
		"no schema, no params": {"ping", ``, ""},
		"no schema, null":      {"ping", `null`, ""},
		"no schema, object":    {"ping", `{"x":1}`, ""},
		"failing the schema":   {"charge", `{"amount":0}`, "/amount"},
		"missing required":     {"charge", `{}`, "amount"},
		"unknown property":     {"charge", `{"amount":1,"evil":true}`, "evil"},
		"not an object":        {"ping", `[1]`, "JSON object"},
		"not JSON":             {"ping", `{`, "not valid JSON"},
		"not JSON with schema": {"charge", `{"amount":`, "not valid JSON"},
		"not JSON, not object": {"ping", `[`, "not valid JSON"},
		"undeclared action":    {"refund", `{}`, `unknown action "refund"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := v.Validate(tc.action, json.RawMessage(tc.params))
			if tc.wantInErr == "" {
				if err != nil {
					t.Fatalf("valid params refused: %v", err)
				}
				return
			}
			if sdk.KindOf(err) != sdk.KindInvalid || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("err = %v, want an Invalid error containing %q", err, tc.wantInErr)
			}
		})
	}
}

// TestParamValidatorRefusesBrokenSchemas: a manifest whose schema does not
// compile, or reaches outside itself, is refused when the plugin starts;
// in particular a file:// reference is not read from the host's disk even
// when the file is valid JSON Schema.
func TestParamValidatorRefusesBrokenSchemas(t *testing.T) {
	t.Parallel()
	local := filepath.Join(t.TempDir(), "open.json")
	if err := os.WriteFile(local, []byte(`{"type":"object"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"not JSON":            `{"type":`,
		"bad keyword":         `{"type":"objekt"}`,
		"file ref":            `{"$ref":"file://` + local + `"}`,
		"unresolvable remote": `{"$ref":"https://example.com/s.json"}`,
	}
	for name, schema := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewParamValidator(manifestWith(schema)); err == nil {
				t.Fatalf("schema %s compiled", schema)
			}
		})
	}
}
