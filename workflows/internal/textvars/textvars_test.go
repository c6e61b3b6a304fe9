package textvars

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRender(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"name": "Anna", "link": "https://shop.example/c/1"}
	for in, want := range map[string]string{
		"Ciao {{name}}, il tuo carrello: {{ link }}": "Ciao Anna, il tuo carrello: https://shop.example/c/1",
		"{{name}}{{name}}":                           "AnnaAnna",
		"{{unknown}} stays":                          "{{unknown}} stays",
		"no placeholders":                            "no placeholders",
	} {
		if got := Render(in, vals); got != want {
			t.Errorf("Render(%q) = %q, want %q", in, got, want)
		}
	}
	if diff := cmp.Diff([]string{"name", "link", "name"}, Names("{{name}} {{ link }} {{name}}")); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}
