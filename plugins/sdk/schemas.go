package sdk

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
)

// ActionSpec names an action and says what it does, for [ActionsFromSchemas].
type ActionSpec struct {
	// Name is the action's name, e.g. "create_payment_link".
	Name string
	// Description says what the action does.
	Description string
}

// ActionsFromSchemas builds a manifest's actions from JSON Schema files, the
// way connectors keep them: for each spec, dir/NAME.params.json (required)
// and dir/NAME.result.json (required) in fsys, usually an embed.FS:
//
//	//go:embed schemas/*.json
//	var schemaFiles embed.FS
//
//	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas",
//		sdk.ActionSpec{Name: "create_payment_link", Description: "Creates a payment link."})
//
// A missing file or one that is not JSON is an error naming it, so a
// connector fails at start rather than offering an action without a schema.
func ActionsFromSchemas(fsys fs.FS, dir string, specs ...ActionSpec) ([]Action, error) {
	read := func(name string) (json.RawMessage, error) {
		p := path.Join(dir, name+".json")
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("reading schema %s: %w", p, err)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("schema %s is not valid JSON", p)
		}
		return json.RawMessage(b), nil
	}
	actions := make([]Action, 0, len(specs))
	for _, s := range specs {
		params, err := read(s.Name + ".params")
		if err != nil {
			return nil, err
		}
		result, err := read(s.Name + ".result")
		if err != nil {
			return nil, err
		}
		actions = append(actions, Action{Name: s.Name, Description: s.Description, Params: params, Result: result})
	}
	return actions, nil
}
