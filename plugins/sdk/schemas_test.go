package sdk

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestActionsFromSchemas(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"schemas/send.params.json": {Data: []byte(`{"type":"object"}`)},
		"schemas/send.result.json": {Data: []byte(`{"type":"object","properties":{"id":{"type":"string"}}}`)},
		"schemas/bad.params.json":  {Data: []byte(`{"type":`)},
		"schemas/bad.result.json":  {Data: []byte(`{}`)},
		"schemas/half.params.json": {Data: []byte(`{}`)},
	}
	got, err := ActionsFromSchemas(fsys, "schemas", ActionSpec{Name: "send", Description: "Sends."})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "send" || got[0].Description != "Sends." ||
		string(got[0].Params) != `{"type":"object"}` || !strings.Contains(string(got[0].Result), `"id"`) {
		t.Errorf("actions = %+v", got)
	}
	for name, want := range map[string]string{"bad": "schemas/bad.params.json is not valid JSON", "half": "reading schema schemas/half.result.json", "none": "reading schema schemas/none.params.json"} {
		if _, err := ActionsFromSchemas(fsys, "schemas", ActionSpec{Name: name}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}
