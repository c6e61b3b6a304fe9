// Package textvars fills the {{name}} placeholders of the free-text messages
// automations send (order notifications' free_text, cart recovery steps'
// text), the one syntax both use.
package textvars

import "regexp"

// placeholder matches {{name}}, spaces inside the braces allowed.
var placeholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// Names returns the names of text's placeholders in order, repeats included.
func Names(text string) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// Render replaces each placeholder whose name vals has with its value and
// leaves the others as they are.
func Render(text string, vals map[string]string) string {
	return placeholder.ReplaceAllStringFunc(text, func(ph string) string {
		if v, ok := vals[placeholder.FindStringSubmatch(ph)[1]]; ok {
			return v
		}
		return ph
	})
}
