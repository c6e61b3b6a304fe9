package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

var testFields = []sdk.ConfigField{
	{Name: "api_key", Type: sdk.FieldString, Required: true, Secret: true, Pattern: `^sk_(test|live)_`},
	{Name: "webhook_secret", Type: sdk.FieldString, Secret: true},
	{Name: "mode", Type: sdk.FieldString, Enum: []string{"test", "live"}, Default: "test"},
	{Name: "timeout_seconds", Type: sdk.FieldInteger, Default: 30.0}, // as a manifest decoded from JSON carries it
	{Name: "retries", Type: sdk.FieldInteger, Enum: []string{"1", "3", "5"}},
	{Name: "sandbox", Type: sdk.FieldBoolean},
}

func TestValidateConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		config      string
		wantPublic  map[string]any
		wantSecret  map[string]any
		wantSecrets []string
		wantErr     []FieldProblem
	}{
		"minimal gets defaults": {
			config:      `{"api_key":"sk_test_1"}`,
			wantPublic:  map[string]any{"mode": "test", "timeout_seconds": int64(30)},
			wantSecret:  map[string]any{"api_key": "sk_test_1"},
			wantSecrets: []string{"api_key"},
		},
		"everything": {
			config:      `{"api_key":"sk_live_1","webhook_secret":"whsec_x","mode":"live","timeout_seconds":5,"retries":3,"sandbox":true}`,
			wantPublic:  map[string]any{"mode": "live", "timeout_seconds": int64(5), "retries": int64(3), "sandbox": true},
			wantSecret:  map[string]any{"api_key": "sk_live_1", "webhook_secret": "whsec_x"},
			wantSecrets: []string{"api_key", "webhook_secret"},
		},
		"empty optional string is unset": {
			config:      `{"api_key":"sk_test_1","webhook_secret":"","mode":""}`,
			wantPublic:  map[string]any{"mode": "test", "timeout_seconds": int64(30)},
			wantSecret:  map[string]any{"api_key": "sk_test_1"},
			wantSecrets: []string{"api_key"},
		},
		"null takes the default": {
			config:      `{"api_key":"sk_test_1","timeout_seconds":null}`,
			wantPublic:  map[string]any{"mode": "test", "timeout_seconds": int64(30)},
			wantSecret:  map[string]any{"api_key": "sk_test_1"},
			wantSecrets: []string{"api_key"},
		},
		"missing required": {
			config:  `{}`,
			wantErr: []FieldProblem{{Field: "config.api_key", Message: "is required"}},
		},
		"empty required": {
			config:  `{"api_key":"  "}`,
			wantErr: []FieldProblem{{Field: "config.api_key", Message: "must not be empty"}},
		},
		"every kind of problem at once": {
			config: `{"api_key":"pk_test_1","mode":"prod","timeout_seconds":1.5,"retries":2,"sandbox":"yes","extra":1}`,
			wantErr: []FieldProblem{
				{Field: "config.api_key", Message: "must match the pattern ^sk_(test|live)_"},
				{Field: "config.extra", Message: "unknown field"},
				{Field: "config.mode", Message: "must be one of test, live"},
				{Field: "config.retries", Message: "must be one of 1, 3, 5"},
				{Field: "config.sandbox", Message: "must be a boolean"},
				{Field: "config.timeout_seconds", Message: "must be an integer"},
			},
		},
		"wrong types": {
			config: `{"api_key":123,"timeout_seconds":"30"}`,
			wantErr: []FieldProblem{
				{Field: "config.api_key", Message: "must be a string"},
				{Field: "config.timeout_seconds", Message: "must be an integer"},
			},
		},
		"integer out of range": {
			config:  `{"api_key":"sk_test_1","timeout_seconds":99999999999999999999}`,
			wantErr: []FieldProblem{{Field: "config.timeout_seconds", Message: "must be an integer"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, ok := decodeObject(json.RawMessage(tc.config))
			if !ok {
				t.Fatalf("test config %s is not an object", tc.config)
			}
			got, err := validateConfig(testFields, cfg)
			if tc.wantErr != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("error = %v, want *ValidationError", err)
				}
				if diff := cmp.Diff(tc.wantErr, ve.Problems); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("validateConfig: %v", err)
			}
			if diff := cmp.Diff(tc.wantPublic, got.public); diff != "" {
				t.Errorf("public (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSecret, got.secret); diff != "" {
				t.Errorf("secret (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSecrets, got.secrets); diff != "" {
				t.Errorf("secret names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidationMessagesNeverCarryValues(t *testing.T) {
	t.Parallel()
	const secret = "pk_very_secret_value"
	cfg, _ := decodeObject(json.RawMessage(`{"api_key":"` + secret + `","mode":"` + secret + `"}`))
	_, err := validateConfig(testFields, cfg)
	if err == nil {
		t.Fatal("want a validation error")
	}
	if got := err.Error(); strings.Contains(got, secret) {
		t.Fatalf("error %q carries the submitted value", got)
	}
}

func TestDecodeObject(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in     string
		wantOK bool
	}{
		"object":        {in: `{"a":1}`, wantOK: true},
		"empty":         {in: ``, wantOK: true},
		"null":          {in: `null`, wantOK: true},
		"array":         {in: `[1]`},
		"string":        {in: `"x"`},
		"trailing data": {in: `{"a":1} {"b":2}`},
		"broken":        {in: `{"a":`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, ok := decodeObject(json.RawMessage(tc.in)); ok != tc.wantOK {
				t.Fatalf("decodeObject(%s) ok = %v, want %v", tc.in, ok, tc.wantOK)
			}
		})
	}
}

func TestMergePatch(t *testing.T) {
	t.Parallel()
	old := map[string]any{"a": "1", "b": "2", "c": "3"}
	got := mergePatch(old, map[string]any{"a": "x", "b": nil, "d": "4"})
	want := map[string]any{"a": "x", "c": "3", "d": "4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mergePatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"a": "1", "b": "2", "c": "3"}, old); diff != "" {
		t.Errorf("mergePatch changed its input (-want +got):\n%s", diff)
	}
}

func TestAPIKeyAllows(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		scopes []string
		want   map[string]bool
	}{
		"read":       {scopes: []string{"read"}, want: map[string]bool{"read": true, "write": false, "admin": false}},
		"write":      {scopes: []string{"write"}, want: map[string]bool{"read": true, "write": true, "admin": false}},
		"admin":      {scopes: []string{"admin"}, want: map[string]bool{"read": true, "write": true, "admin": true}},
		"none":       {scopes: nil, want: map[string]bool{"read": false, "write": false, "admin": false}},
		"unknown":    {scopes: []string{"root"}, want: map[string]bool{"read": false, "write": false, "admin": false}},
		"read+write": {scopes: []string{"read", "write"}, want: map[string]bool{"read": true, "write": true, "admin": false}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := APIKey{Scopes: tc.scopes}
			got := map[string]bool{}
			for sc := range tc.want {
				got[sc] = k.Allows(sc)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Allows (-want +got):\n%s", diff)
			}
			if k.Allows("superuser") {
				t.Error("Allows an unknown scope")
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := keyPrefix + "abcdefgh_" + randomString(keySecretBytes)
	tests := map[string]struct {
		in         string
		wantLookup string
		wantOK     bool
	}{
		"good":          {in: good, wantLookup: "abcdefgh", wantOK: true},
		"empty":         {in: ""},
		"no prefix":     {in: good[len(keyPrefix):]},
		"short":         {in: good[:len(good)-1]},
		"long":          {in: good + "a"},
		"upper case":    {in: keyPrefix + "ABCDEFGH_" + good[len(keyPrefix)+9:]},
		"bad separator": {in: keyPrefix + "abcdefgh-" + good[len(keyPrefix)+9:]},
		"bad alphabet":  {in: keyPrefix + "abcdefg1_" + good[len(keyPrefix)+9:]},
		"other vendor":  {in: "sk_live_abcdefgh"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lookup, ok := parseKey(tc.in)
			if ok != tc.wantOK || lookup != tc.wantLookup {
				t.Fatalf("parseKey = %q, %v; want %q, %v", lookup, ok, tc.wantLookup, tc.wantOK)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	in := eventCursor{Before: 42}
	var out eventCursor
	if err := DecodeCursor(EncodeCursor(in), &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("cursor (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"!!!", "eyJ4IjoxfQ", "e30="} { // garbage, {"x":1}, padded base64
		var c eventCursor
		if err := DecodeCursor(bad, &c); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
}
