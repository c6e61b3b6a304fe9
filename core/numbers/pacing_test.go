package numbers

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/store"
)

func ip(v int) *int { return &v }

func problemFields(err error) []string {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.Field
	}
	return out
}

func TestPacingValidate(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   PacingSettings
		want []string // problem fields; nil when valid
	}{
		"nothing set":              {PacingSettings{}, nil},
		"bounds inclusive":         {PacingSettings{MessagesPerMinute: ip(60), NewContactsPerDay: ip(0), MinGapSeconds: ip(300), MaxGapSeconds: ip(300), TypingMaxSeconds: ip(60)}, nil},
		"zero messages":            {PacingSettings{MessagesPerMinute: ip(0)}, []string{"pacing.messages_per_minute"}},
		"too many new contacts":    {PacingSettings{NewContactsPerDay: ip(1001)}, []string{"pacing.new_contacts_per_day"}},
		"negative gap":             {PacingSettings{MinGapSeconds: ip(-1)}, []string{"pacing.min_gap_seconds"}},
		"gap over 300":             {PacingSettings{MaxGapSeconds: ip(301)}, []string{"pacing.max_gap_seconds"}},
		"min above default max":    {PacingSettings{MinGapSeconds: ip(13)}, []string{"pacing.min_gap_seconds"}},
		"max below default min":    {PacingSettings{MaxGapSeconds: ip(3)}, []string{"pacing.max_gap_seconds"}},
		"both set, inverted":       {PacingSettings{MinGapSeconds: ip(10), MaxGapSeconds: ip(5)}, []string{"pacing.min_gap_seconds"}},
		"equal gaps":               {PacingSettings{MinGapSeconds: ip(0), MaxGapSeconds: ip(0)}, nil},
		"typing max zero":          {PacingSettings{TypingMaxSeconds: ip(0)}, []string{"pacing.typing_max_seconds"}},
		"several problems at once": {PacingSettings{MessagesPerMinute: ip(61), TypingMaxSeconds: ip(61)}, []string{"pacing.messages_per_minute", "pacing.typing_max_seconds"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, problemFields(tc.in.Validate())); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergePacing(t *testing.T) {
	t.Parallel()
	cur := PacingSettings{MessagesPerMinute: ip(10), MaxGapSeconds: ip(30)}
	tests := map[string]struct {
		patch  string
		want   PacingSettings
		fields []string
	}{
		"empty patch keeps":   {``, cur, nil},
		"empty object keeps":  {`{}`, cur, nil},
		"field replaces":      {`{"messages_per_minute": 12}`, PacingSettings{MessagesPerMinute: ip(12), MaxGapSeconds: ip(30)}, nil},
		"null resets a field": {`{"max_gap_seconds": null}`, PacingSettings{MessagesPerMinute: ip(10)}, nil},
		"null resets all":     {`null`, PacingSettings{}, nil},
		"unknown field":       {`{"burst": 1}`, PacingSettings{}, []string{"pacing"}},
		"wrong type":          {`{"min_gap_seconds": "4"}`, PacingSettings{}, []string{"pacing.min_gap_seconds"}},
		"fraction":            {`{"min_gap_seconds": 4.5}`, PacingSettings{}, []string{"pacing.min_gap_seconds"}},
		"not an object":       {`3`, PacingSettings{}, []string{"pacing"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := mergePacing(cur, json.RawMessage(tc.patch))
			if tc.fields != nil {
				if diff := cmp.Diff(tc.fields, problemFields(err)); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEffectivePacing(t *testing.T) {
	t.Parallel()
	off := false
	got := PacingSettings{NewContactsPerDay: ip(0), Typing: &off}.Effective()
	want := Pacing{MessagesPerMinute: 6, NewContactsPerDay: 0, MinGapSeconds: 4, MaxGapSeconds: 12, Typing: false, TypingMaxSeconds: 6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("effective (-want +got):\n%s", diff)
	}
}
