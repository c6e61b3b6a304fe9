package cartrecovery

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

func TestDefaultSettings(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	if s.Enabled {
		t.Error("defaults are enabled before a number is chosen")
	}
	if err := s.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	var delays []time.Duration
	for _, st := range s.Steps {
		delays = append(delays, st.Delay.D())
	}
	if diff := cmp.Diff([]time.Duration{time.Hour, 24 * time.Hour, 48 * time.Hour}, delays); diff != "" {
		t.Errorf("default delays (-want +got):\n%s", diff)
	}
	if s.Steps[1].Discount == nil || s.Steps[0].Discount != nil || s.Steps[2].Discount != nil {
		t.Error("the discount belongs to the second step only")
	}
	s.Enabled = true
	if err := s.Validate(); err != nil {
		t.Errorf("the defaults enabled without a number (any number sends): %v", err)
	}
}

func TestSettingsJSON(t *testing.T) {
	t.Parallel()
	in := `{"enabled":true,"channel_connection_id":"con_wa","steps":[{"delay":"2s","template":"cart_reminder","language":"it",
		"variables":["name","link"],"button_url_variable":"link_path"},{"delay":"1h30m","template":"cart_discount","language":"it",
		"variables":["code"],"discount":{"percent":15,"valid_for":"48h","prefix":"TORNA-"},"require_marketing_consent":true}]}`
	var s Settings
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if s.Steps[0].Delay.D() != 2*time.Second || s.Steps[1].Delay.D() != 90*time.Minute || s.Steps[1].Discount.ValidFor.D() != 48*time.Hour ||
		!s.Steps[1].RequireMarketingConsent || s.Steps[0].ButtonURLVariable != VarLinkPath {
		t.Errorf("decoded %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Settings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("round trip of %s: %v", b, err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"steps":[{"delay":3600}]}`, `{"steps":[{"delay":"an hour"}]}`} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	valid := func() Settings {
		s := DefaultSettings()
		s.Enabled, s.ChannelConnectionID = true, "con_wa"
		return s
	}
	tests := map[string]struct {
		change func(*Settings)
		fields []string
	}{
		"no steps":              {func(s *Settings) { s.Steps = nil }, []string{"steps"}},
		"too many steps":        {func(s *Settings) { s.Steps = append(s.Steps, s.Steps...) }, []string{"steps"}},
		"zero first delay":      {func(s *Settings) { s.Steps[0].Delay = 0 }, []string{"steps[0].delay"}},
		"negative delay":        {func(s *Settings) { s.Steps[2].Delay = Duration(-time.Hour) }, []string{"steps[2].delay"}},
		"delay of months":       {func(s *Settings) { s.Steps[1].Delay = Duration(40 * 24 * time.Hour) }, []string{"steps[1].delay"}},
		"bad template name":     {func(s *Settings) { s.Steps[0].Template = "Cart Reminder" }, []string{"steps[0].template"}},
		"no language":           {func(s *Settings) { s.Steps[0].Language = "" }, []string{"steps[0].language"}},
		"unknown variable":      {func(s *Settings) { s.Steps[0].Variables = []string{"name", "price"} }, []string{"steps[0].variables[1]"}},
		"code without discount": {func(s *Settings) { s.Steps[0].Variables = []string{"code"} }, []string{"steps[0].variables[0]"}},
		"code in the fallback": {func(s *Settings) { s.Steps[1].FallbackTemplate.Variables = []string{"code"} },
			[]string{"steps[1].fallback_template.variables[0]"}},
		"bad button variable":  {func(s *Settings) { s.Steps[0].ButtonURLVariable = "items" }, []string{"steps[0].button_url_variable"}},
		"percent out of range": {func(s *Settings) { s.Steps[1].Discount.Percent = 0 }, []string{"steps[1].discount.percent"}},
		"bad prefix":           {func(s *Settings) { s.Steps[1].Discount.Prefix = "NO SPACES" }, []string{"steps[1].discount.prefix"}},
		"fallback without discount": {func(s *Settings) {
			s.Steps[0].FallbackTemplate = &TemplateRef{Template: "x", Language: "en"}
		}, []string{"steps[0].fallback_template"}},
		"several at once": {func(s *Settings) { s.NameFallback = strings.Repeat("x", 61); s.Steps[2].Language = "English" },
			[]string{"name_fallback", "steps[2].language"}},
		"any number":                      {func(s *Settings) { s.ChannelConnectionID = "" }, nil},
		"text for linked devices":         {func(s *Settings) { s.Steps[1].Text = "Ciao {{name}}, ecco {{code}}: {{ link }}" }, nil},
		"unknown text placeholder":        {func(s *Settings) { s.Steps[0].Text = "Ciao {{nome}}" }, []string{"steps[0].text"}},
		"code in a text without discount": {func(s *Settings) { s.Steps[0].Text = "{{code}}" }, []string{"steps[0].text"}},
		"text too long":                   {func(s *Settings) { s.Steps[2].Text = strings.Repeat("x", 4097) }, []string{"steps[2].text"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := valid()
			tc.change(&s)
			err := s.Validate()
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ve *store.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *store.ValidationError", err)
			}
			var fields []string
			for _, p := range ve.Problems {
				fields = append(fields, p.Field)
				if p.Message == "" {
					t.Errorf("%s: empty message", p.Field)
				}
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	long := make([]commerce.LineItem, 40)
	for i := range long {
		long[i] = commerce.LineItem{Title: "Handmade ceramic mug", Quantity: 1}
	}
	tests := map[string]struct {
		cart Cart
		code string
		want map[string]string
	}{
		"full cart": {
			Cart{FirstName: "Anna", Total: "49.90", Currency: "EUR", RecoveryURL: "https://shop.example.com/cart/c/abc?key=k",
				Items: []commerce.LineItem{{Title: "Blue  mug", VariantTitle: "Large", Quantity: 2}, {Title: "Tea\tbox", Quantity: 1}}},
			"CB-1",
			map[string]string{"name": "Anna", "items": "Blue mug (Large) ×2, Tea box", "total": "49.90 EUR",
				"link": "https://shop.example.com/cart/c/abc?key=k", "link_path": "cart/c/abc?key=k", "code": "CB-1"},
		},
		"nothing known": {Cart{}, "", map[string]string{"name": "friend"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := Values(tc.cart, tc.code, "friend")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
	items := []rune(Values(Cart{Items: long}, "", "")[VarItems])
	if len(items) != maxItemsText || string(items[len(items)-1:]) != "…" || string(items[:22]) != "Handmade ceramic mug, " {
		t.Errorf("a long cart's items %q: want %d runes ending in an ellipsis", string(items), maxItemsText)
	}
	if _, missing := buildTemplate(TemplateRef{Template: "t", Language: "en", Variables: []string{VarName, VarLink}}, Cart{}, "", ""); missing != VarLink {
		t.Errorf("a template needing the link of a cart without one: missing %q", missing)
	}
}

// The API describes settings with huma; a delay must be a string there, or
// huma's request validation would refuse "1h".
func TestSettingsSchema(t *testing.T) {
	t.Parallel()
	r := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	r.Schema(reflect.TypeOf(Settings{}), true, "")
	step := r.Map()["Step"]
	if step == nil {
		t.Fatalf("no Step schema among %v", slices.Collect(maps.Keys(r.Map())))
	}
	if d := step.Properties["delay"]; d == nil || d.Type != huma.TypeString {
		t.Errorf("delay schema %+v, want a string", d)
	}
	disc := r.Map()["Discount"]
	if disc == nil || disc.Properties["valid_for"] == nil || disc.Properties["valid_for"].Type != huma.TypeString {
		t.Errorf("discount schema %+v", disc)
	}
	if got := step.Properties["delay"].Pattern; got == "" {
		t.Error("no pattern on delay")
	} else if re := regexp.MustCompile(got); !re.MatchString("1h30m") || !re.MatchString("2s") || re.MatchString("an hour") {
		t.Errorf("delay pattern %q", got)
	}
}
