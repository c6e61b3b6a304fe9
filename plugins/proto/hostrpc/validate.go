package hostrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// ParamValidator checks action parameters against the JSON Schemas a
// manifest declares, so that a connector only ever sees parameters that match
// its schema (as the sdk promises).
type ParamValidator struct {
	schemas map[string]*jsonschema.Schema // nil value: the action takes any parameters
}

// NewParamValidator compiles the parameter schemas of every action in m. It
// fails when a schema is not valid JSON Schema (draft 2020-12 unless the
// schema names another draft in $schema).
func NewParamValidator(m sdk.Manifest) (*ParamValidator, error) {
	v := &ParamValidator{schemas: make(map[string]*jsonschema.Schema, len(m.Actions))}
	for _, a := range m.Actions {
		if len(a.Params) == 0 {
			v.schemas[a.Name] = nil
			continue
		}
		s, err := CompileSchema(fmt.Sprintf("ponte:%s/actions/%s/params", m.Name, a.Name), a.Params)
		if err != nil {
			return nil, fmt.Errorf("action %q: params schema: %w", a.Name, err)
		}
		v.schemas[a.Name] = s
	}
	return v, nil
}

// CompileSchema compiles one JSON Schema document, checking it against its
// meta-schema.
func CompileSchema(url string, schema json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	// No loader but the built-in meta-schemas: a manifest's schema must be
	// self-contained. Without this the compiler would follow file:// (and
	// other) references a plugin put in its schema and read the host's files.
	c.UseLoader(jsonschema.SchemeURLLoader{})
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("adding schema: %w", err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	return s, nil
}

// Validate returns an *sdk.Error of kind Invalid when action is not declared,
// params are not a JSON object, or they do not match the action's schema;
// the message names each failing location. Empty params are validated as {}.
func (v *ParamValidator) Validate(action string, params json.RawMessage) error {
	s, ok := v.schemas[action]
	if !ok {
		return sdk.Invalid("unknown action %q", action)
	}
	params = bytes.TrimSpace(params)
	if len(params) == 0 || bytes.Equal(params, []byte("null")) {
		params = json.RawMessage("{}")
	}
	if params[0] != '{' {
		if !json.Valid(params) {
			return sdk.Invalid("parameters of %s are not valid JSON", action)
		}
		return sdk.Invalid("parameters of %s must be a JSON object", action)
	}
	if s == nil {
		if !json.Valid(params) {
			return sdk.Invalid("parameters of %s are not valid JSON", action)
		}
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(params))
	if err != nil {
		return sdk.Invalid("parameters of %s are not valid JSON: %v", action, err)
	}
	if err := s.Validate(inst); err != nil {
		var verr *jsonschema.ValidationError
		if errors.As(err, &verr) {
			return &sdk.Error{Kind: sdk.KindInvalid, Message: fmt.Sprintf("parameters of %s: %s", action, describe(verr)), Err: err}
		}
		return sdk.Invalid("validating parameters of %s: %v", action, err)
	}
	return nil
}

// describe turns a validation error into one line listing each failing
// location and why.
func describe(verr *jsonschema.ValidationError) string {
	lines := strings.Split(strings.TrimSpace(verr.Error()), "\n")
	// The first line only repeats the schema's URL; the causes follow it.
	if len(lines) > 1 {
		lines = lines[1:]
	}
	for i, l := range lines {
		lines[i] = strings.TrimLeft(strings.TrimSpace(l), "- ")
	}
	return strings.Join(lines, "; ")
}

// validateSessionUpdate refuses a session report the host cannot record.
func validateSessionUpdate(u sdk.SessionUpdate) error {
	switch u.State {
	case sdk.SessionPairing, sdk.SessionConnecting, sdk.SessionConnected, sdk.SessionDisconnected,
		sdk.SessionLoggedOut, sdk.SessionBanned, sdk.SessionTemporarilyBanned:
	default:
		return sdk.Invalid("unknown session state %q", u.State)
	}
	if len(u.Reason) > 500 {
		return sdk.Invalid("session reason longer than 500 bytes")
	}
	if len(u.QRCode) > 2000 {
		return sdk.Invalid("QR code longer than 2000 bytes")
	}
	return nil
}
