package testkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

var (
	connectorNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	identifierRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	eventTypeRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	// Config field names that hold credentials. A field named like this that
	// is not marked Secret would be stored in clear and returned by the API.
	secretNameRE = regexp.MustCompile(`(secret|token|password|passwd|api_?key|private_?key|credential)`)
)

// CheckManifest reports everything wrong with a manifest, joined into one
// error (nil when it is sound):
//
//   - name is lower-case snake case (it names the binary
//     ponte-connector-<name> and appears in URLs), version and display name
//     are set;
//   - config fields have unique names, a known type, enum values only on
//     strings, a compiling pattern, a default of the field's type, and every
//     field named like a credential (secret, token, password, api key, ...) is
//     marked Secret;
//   - event types are unique, dotted lower-case names ("order.created");
//   - actions have unique snake-case names and a parameter schema that is a
//     valid JSON Schema for an object; result schemas, when given, are valid.
func CheckManifest(m sdk.Manifest) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !connectorNameRE.MatchString(m.Name) {
		add("name %q: want lower-case letters, digits and underscores, starting with a letter", m.Name)
	}
	if m.Version == "" {
		add("version is empty")
	}
	if m.DisplayName == "" {
		add("display_name is empty")
	}
	if m.PollInterval < 0 {
		add("poll_interval is negative")
	}

	fields := map[string]bool{}
	for _, f := range m.Config {
		where := fmt.Sprintf("config field %q", f.Name)
		if !identifierRE.MatchString(f.Name) {
			add("%s: want a snake_case name", where)
		}
		if fields[f.Name] {
			add("%s: declared twice", where)
		}
		fields[f.Name] = true
		switch f.Type {
		case sdk.FieldString, sdk.FieldInteger, sdk.FieldBoolean:
		default:
			add("%s: unknown type %q", where, f.Type)
		}
		if len(f.Enum) > 0 && f.Type != sdk.FieldString {
			add("%s: enum is only allowed on string fields", where)
		}
		if f.Pattern != "" {
			if f.Type != sdk.FieldString {
				add("%s: pattern is only allowed on string fields", where)
			} else if _, err := regexp.Compile(f.Pattern); err != nil {
				add("%s: pattern does not compile: %v", where, err)
			}
		}
		if f.Default != nil && !defaultMatches(f) {
			add("%s: default %v is not of type %s", where, f.Default, f.Type)
		}
		if !f.Secret && secretNameRE.MatchString(f.Name) {
			add("%s: looks like a credential but is not marked secret", where)
		}
		if f.Description == "" {
			add("%s: no description (users need to know what to paste here)", where)
		}
	}

	events := map[string]bool{}
	for _, e := range m.Events {
		if !eventTypeRE.MatchString(e.Type) {
			add("event type %q: want dotted lower-case names like \"order.created\"", e.Type)
		}
		if events[e.Type] {
			add("event type %q: declared twice", e.Type)
		}
		events[e.Type] = true
	}

	actions := map[string]bool{}
	for _, a := range m.Actions {
		where := fmt.Sprintf("action %q", a.Name)
		if !identifierRE.MatchString(a.Name) {
			add("%s: want a snake_case name", where)
		}
		if actions[a.Name] {
			add("%s: declared twice", where)
		}
		actions[a.Name] = true
		if len(a.Params) == 0 {
			add("%s: no params schema (use {\"type\":\"object\"} for an action without parameters)", where)
		} else {
			if _, err := hostrpc.CompileSchema("ponte:check/"+a.Name+"/params", a.Params); err != nil {
				add("%s: params schema: %v", where, err)
			}
			var top struct {
				Type any `json:"type"`
			}
			if err := json.Unmarshal(a.Params, &top); err == nil && top.Type != "object" {
				add("%s: params schema must have \"type\": \"object\"", where)
			}
		}
		if len(a.Result) > 0 {
			if _, err := hostrpc.CompileSchema("ponte:check/"+a.Name+"/result", a.Result); err != nil {
				add("%s: result schema: %v", where, err)
			}
		}
	}
	return errors.Join(errs...)
}

func defaultMatches(f sdk.ConfigField) bool {
	switch v := f.Default.(type) {
	case string:
		return f.Type == sdk.FieldString && (len(f.Enum) == 0 || slices.Contains(f.Enum, v))
	case bool:
		return f.Type == sdk.FieldBoolean
	case int, int32, int64:
		return f.Type == sdk.FieldInteger
	case float64:
		return f.Type == sdk.FieldInteger && v == float64(int64(v))
	}
	return false
}

// CheckManifest fails the test when the connector's manifest (as it crossed
// the protocol) has any of the problems [CheckManifest] finds, or when it does
// not match what the connector implements: Webhooks set without a
// WebhookHandler (or the reverse), actions declared without an ActionInvoker,
// a poll interval without a Poller.
func (h *Harness) CheckManifest(t testing.TB) {
	t.Helper()
	err := CheckManifest(h.manifest)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// Build a second instance to look at which interfaces it implements; the
	// one in the plugin is behind the protocol.
	c, ferr := h.factory(NewMemoryHost())
	if ferr != nil {
		t.Fatalf("testkit: building the connector: %v", ferr)
	}
	_, webhooks := c.(sdk.WebhookHandler)
	_, invoker := c.(sdk.ActionInvoker)
	_, poller := c.(sdk.Poller)
	if h.manifest.Webhooks != webhooks {
		errs = append(errs, fmt.Errorf("manifest says webhooks=%t but the connector %s WebhookHandler", h.manifest.Webhooks, implementsWord(webhooks)))
	}
	if len(h.manifest.Actions) > 0 && !invoker {
		errs = append(errs, errors.New("manifest declares actions but the connector does not implement ActionInvoker"))
	}
	if h.manifest.PollInterval > 0 && !poller {
		errs = append(errs, errors.New("manifest sets poll_interval but the connector does not implement Poller"))
	}
	if len(errs) > 0 {
		t.Errorf("manifest of %q:\n%s", h.manifest.Name, strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "\n  "))
	}
}

func implementsWord(b bool) string {
	if b {
		return "implements"
	}
	return "does not implement"
}
