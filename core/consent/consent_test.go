package consent

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/store"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in, want string
	}{
		"upper":                 {"STOP", "stop"},
		"mixed case":            {"sToP", "stop"},
		"trailing bang":         {"Stop!!", "stop"},
		"trailing dot":          {"stop.", "stop"},
		"trailing space punct":  {"stop !", "stop"},
		"leading and trailing":  {"   stop  \n", "stop"},
		"inner spaces":          {"STOP    ALL", "stop all"},
		"tab inside":            {"stop\tall", "stop all"},
		"accent grave":          {"DISISCRIVIMÌ", "disiscrivimi"},
		"accent acute":          {"annullá", "annulla"},
		"decomposed accent":     {"annulla\u0301", "annulla"},
		"full width":            {"ＳＴＯＰ", "stop"},
		"inner punctuation":     {"stop, please", "stop, please"},
		"ellipsis":              {"stop…", "stop"},
		"question":              {"riprendi?", "riprendi"},
		"empty":                 {"", ""},
		"only punctuation":      {"?!", ""},
		"emoji kept":            {"stop 🛑", "stop 🛑"},
		"leading punct kept":    {"¡stop", "¡stop"},
		"non-breaking space":    {"stop\u00a0all", "stop all"},
		"german sharp s intact": {"STRAẞE", "straße"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, Normalize(tc.in)); diff != "" {
				t.Errorf("Normalize(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func defaultSettings() Settings {
	return Settings{
		Timezone:          "Europe/Rome",
		StopKeywords:      []string{"STOP", "STOP ALL", "UNSUBSCRIBE", "ANNULLA", "DISISCRIVIMI"},
		StartKeywords:     []string{"START", "RIPRENDI"},
		StopConfirmation:  "bye",
		StartConfirmation: "hi",
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	c, err := compile(defaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		texts []string
		want  string
	}{
		"stop":                 {[]string{"STOP"}, KeywordStop},
		"stop lower bang":      {[]string{"stop!"}, KeywordStop},
		"stop all spaced":      {[]string{" Stop   all. "}, KeywordStop},
		"unsubscribe":          {[]string{"Unsubscribe"}, KeywordStop},
		"annulla accent":       {[]string{"Annullà"}, KeywordStop},
		"disiscrivimi accents": {[]string{"DÏSÌSCRIVIMI!"}, KeywordStop},
		"start":                {[]string{"start"}, KeywordStart},
		"riprendi":             {[]string{"Riprendi."}, KeywordStart},
		"stop please":          {[]string{"stop please"}, KeywordNone},
		"please stop":          {[]string{"please stop"}, KeywordNone},
		"stopped":              {[]string{"stopped"}, KeywordNone},
		"sentence":             {[]string{"Can you stop sending me these?"}, KeywordNone},
		"empty":                {[]string{""}, KeywordNone},
		"button payload":       {[]string{"Stop promotions", "STOP"}, KeywordStop},
		"no texts":             {nil, KeywordNone},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := c.match(tc.texts...); got != tc.want {
				t.Errorf("match(%q) = %q, want %q", tc.texts, got, tc.want)
			}
		})
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestQuietUntil(t *testing.T) {
	t.Parallel()
	rome := mustLoc(t, "Europe/Rome")
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := map[string]struct {
		tz         string
		start, end string
		at         time.Time
		quiet      bool
		until      time.Time
	}{
		"no quiet hours":         {"Europe/Rome", "", "", utc("2025-06-10T22:00:00Z"), false, time.Time{}},
		"evening, across night":  {"Europe/Rome", "21:00", "08:00", utc("2025-06-10T20:30:00Z"), true, utc("2025-06-11T06:00:00Z")}, // 22:30 CEST
		"morning, across night":  {"Europe/Rome", "21:00", "08:00", utc("2025-06-11T04:00:00Z"), true, utc("2025-06-11T06:00:00Z")}, // 06:00 CEST
		"at start":               {"Europe/Rome", "21:00", "08:00", utc("2025-06-10T19:00:00Z"), true, utc("2025-06-11T06:00:00Z")},
		"just before start":      {"Europe/Rome", "21:00", "08:00", utc("2025-06-10T18:59:00Z"), false, time.Time{}},
		"at end is allowed":      {"Europe/Rome", "21:00", "08:00", utc("2025-06-11T06:00:00Z"), false, time.Time{}},
		"midday":                 {"Europe/Rome", "21:00", "08:00", utc("2025-06-11T10:00:00Z"), false, time.Time{}},
		"same-day window inside": {"Europe/Rome", "12:00", "14:00", utc("2025-01-15T11:30:00Z"), true, utc("2025-01-15T13:00:00Z")}, // 12:30 CET
		"same-day window before": {"Europe/Rome", "12:00", "14:00", utc("2025-01-15T10:30:00Z"), false, time.Time{}},
		"same-day window after":  {"Europe/Rome", "12:00", "14:00", utc("2025-01-15T13:00:00Z"), false, time.Time{}},
		"utc tenant":             {"UTC", "22:00", "07:00", utc("2025-01-15T23:00:00Z"), true, utc("2025-01-16T07:00:00Z")},
		// Last Sunday of March 2025 (30th): clocks jump 02:00 CET -> 03:00
		// CEST. The night of the 29th lasts an hour less: 22:00 CET on the
		// 29th is 21:00Z; 08:00 CEST on the 30th is 06:00Z (not 07:00Z).
		"spring forward night":            {"Europe/Rome", "21:00", "08:00", utc("2025-03-29T21:00:00Z"), true, utc("2025-03-30T06:00:00Z")},
		"spring forward, after the jump":  {"Europe/Rome", "21:00", "08:00", utc("2025-03-30T01:30:00Z"), true, utc("2025-03-30T06:00:00Z")}, // 03:30 CEST
		"spring forward, before the jump": {"Europe/Rome", "21:00", "08:00", utc("2025-03-30T00:30:00Z"), true, utc("2025-03-30T06:00:00Z")}, // 01:30 CET
		// An end inside the skipped hour resolves to just after the gap.
		"end in the gap": {"Europe/Rome", "00:00", "02:30", utc("2025-03-30T00:30:00Z"), true, utc("2025-03-30T01:30:00Z")},
		// Last Sunday of October 2025 (26th): 03:00 CEST -> 02:00 CET. The
		// night lasts an hour more: 22:00 CEST on the 25th is 20:00Z; 08:00
		// CET on the 26th is 07:00Z (not 06:00Z).
		"fall back night": {"Europe/Rome", "21:00", "08:00", utc("2025-10-25T20:00:00Z"), true, utc("2025-10-26T07:00:00Z")},
		// 02:30 happens twice that night; both are quiet.
		"fall back first 02:30":   {"Europe/Rome", "21:00", "08:00", utc("2025-10-26T00:30:00Z"), true, utc("2025-10-26T07:00:00Z")},
		"fall back second 02:30":  {"Europe/Rome", "21:00", "08:00", utc("2025-10-26T01:30:00Z"), true, utc("2025-10-26T07:00:00Z")},
		"fall back morning after": {"Europe/Rome", "21:00", "08:00", utc("2025-10-26T07:00:00Z"), false, time.Time{}},
		"new year across":         {"Europe/Rome", "21:00", "08:00", utc("2025-12-31T22:00:00Z"), true, utc("2026-01-01T07:00:00Z")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := defaultSettings()
			st.Timezone, st.QuietHoursStart, st.QuietHoursEnd = tc.tz, tc.start, tc.end
			c, err := compile(st)
			if err != nil {
				t.Fatal(err)
			}
			until, quiet := c.quietUntil(tc.at)
			if quiet != tc.quiet || !until.Equal(tc.until) {
				t.Errorf("quietUntil(%s) = %s, %v; want %s, %v", tc.at.In(rome), until.UTC(), quiet, tc.until, tc.quiet)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		change func(*Settings)
		fields []string
	}{
		"valid":               {func(*Settings) {}, nil},
		"bad zone":            {func(s *Settings) { s.Timezone = "Mars/Olympus" }, []string{"timezone"}},
		"empty zone":          {func(s *Settings) { s.Timezone = "" }, []string{"timezone"}},
		"only start":          {func(s *Settings) { s.QuietHoursStart = "21:00" }, []string{"quiet_hours_start"}},
		"bad clock":           {func(s *Settings) { s.QuietHoursStart, s.QuietHoursEnd = "24:00", "8:00" }, []string{"quiet_hours_start", "quiet_hours_end"}},
		"equal ends":          {func(s *Settings) { s.QuietHoursStart, s.QuietHoursEnd = "08:00", "08:00" }, []string{"quiet_hours_end"}},
		"no stop keywords":    {func(s *Settings) { s.StopKeywords = nil }, []string{"stop_keywords"}},
		"punctuation keyword": {func(s *Settings) { s.StartKeywords = []string{"!!"} }, []string{"start_keywords"}},
		"duplicate by accent": {func(s *Settings) { s.StopKeywords = []string{"annulla", "ANNULLÀ"} }, []string{"stop_keywords"}},
		"overlap":             {func(s *Settings) { s.StartKeywords = []string{"Stop"} }, []string{"start_keywords"}},
		"empty confirmation":  {func(s *Settings) { s.StopConfirmation = "" }, []string{"stop_confirmation"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := defaultSettings()
			tc.change(&st)
			_, err := compile(st)
			var fields []string
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					fields = append(fields, p.Field)
				}
			} else if err != nil {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
		})
	}
}
