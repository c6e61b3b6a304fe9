package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// FieldProblem is one thing wrong with an input, located by a dotted path
// relative to the input ("name", "config.api_key", "scopes").
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in an input, so a caller can
// fix them all at once. The API renders each as an entry of problem+json
// "errors".
type ValidationError struct {
	Problems []FieldProblem
}

// Error joins the problems into one line.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// validatedConfig is a configuration checked against a manifest, split into
// the part stored in clear and the part sealed.
type validatedConfig struct {
	public  map[string]any
	secret  map[string]any
	secrets []string // names of the secret fields that hold a value, sorted
}

// decodeObject decodes a JSON object keeping numbers exact. Empty input and
// null are an empty object.
func decodeObject(raw json.RawMessage) (map[string]any, bool) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return map[string]any{}, true
	}
	if trimmed[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil, false
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, true
}

// normalizeDefault turns a manifest default (which may arrive as float64,
// int, or json.Number after a trip through JSON) into the form decodeObject
// produces.
func normalizeDefault(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return v
	}
	return out
}

// validateConfig checks a configuration object against a connector's fields:
// unknown fields are rejected, required ones must be present and non-empty,
// values must have the declared type and match enum and pattern. Absent fields
// (and optional strings given as "") get their default. Problems are reported
// under "config.<field>".
func validateConfig(fields []sdk.ConfigField, config map[string]any) (validatedConfig, error) {
	out := validatedConfig{public: map[string]any{}, secret: map[string]any{}}
	var problems []FieldProblem
	add := func(field, format string, args ...any) {
		problems = append(problems, FieldProblem{Field: "config." + field, Message: fmt.Sprintf(format, args...)})
	}

	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.Name] = true
	}
	for name := range config {
		if !known[name] {
			add(name, "unknown field")
		}
	}

	for _, f := range fields {
		v, present := config[f.Name]
		if s, isString := v.(string); present && isString && s == "" && !f.Required {
			present = false // forms send "" for "not set"
		}
		if !present || v == nil {
			if f.Default == nil {
				if f.Required {
					add(f.Name, "is required")
				}
				continue
			}
			v = normalizeDefault(f.Default)
		}
		value, msg := checkValue(f, v)
		if msg != "" {
			add(f.Name, "%s", msg)
			continue
		}
		if f.Secret {
			out.secret[f.Name] = value
			out.secrets = append(out.secrets, f.Name)
		} else {
			out.public[f.Name] = value
		}
	}
	if problems != nil {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Field < problems[j].Field })
		return validatedConfig{}, &ValidationError{Problems: problems}
	}
	sort.Strings(out.secrets)
	return out, nil
}

// checkValue checks one value against its field and returns it in the form it
// is stored, or a message saying what is wrong. Messages never include the
// value: it may be a secret.
func checkValue(f sdk.ConfigField, v any) (any, string) {
	var asString string
	switch f.Type {
	case sdk.FieldString:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string"
		}
		if f.Required && strings.TrimSpace(s) == "" {
			return nil, "must not be empty"
		}
		if f.Pattern != "" {
			re, err := regexp.Compile(f.Pattern)
			if err != nil {
				return nil, "cannot be checked: the connector's manifest has an invalid pattern for it"
			}
			if !re.MatchString(s) {
				return nil, fmt.Sprintf("must match the pattern %s", f.Pattern)
			}
		}
		asString = s
	case sdk.FieldInteger:
		n, ok := v.(json.Number)
		if !ok {
			return nil, "must be an integer"
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, "must be an integer"
		}
		v = i
		asString = strconv.FormatInt(i, 10)
	case sdk.FieldBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, "must be a boolean"
		}
		asString = strconv.FormatBool(b)
	default:
		return nil, fmt.Sprintf("cannot be checked: the connector's manifest gives it the unsupported type %q", f.Type)
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, asString) {
		return nil, "must be one of " + strings.Join(f.Enum, ", ")
	}
	return v, ""
}

// mergePatch applies a JSON merge patch (RFC 7396) to the top level of a
// configuration: keys in the patch replace, null removes, absent keys keep
// their old value. Connection configurations are flat, so one level is all
// there is.
func mergePatch(old, patch map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(patch))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range patch {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}
