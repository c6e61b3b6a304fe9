package ordernotify

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/workflows/internal/textvars"
)

// values are a notification's variables by name.
func values(d Details, st Settings) map[string]string {
	v := map[string]string{
		VarName:           d.Name,
		VarOrder:          d.OrderName,
		VarTotal:          d.Total,
		VarItems:          d.Items,
		VarCarrier:        d.Carrier,
		VarTrackingNumber: d.TrackingNo,
		// The order status page shows the tracking when the carrier gives
		// no page of its own: a better link than none.
		VarTrackingURL: cmp.Or(d.TrackingURL, d.StatusURL),
		VarStatusURL:   d.StatusURL,
	}
	if st.ReviewRequest != nil {
		v[VarReviewURL] = st.ReviewRequest.ReviewURL
	}
	return v
}

// templateParam makes a value acceptable as a template parameter: WhatsApp
// refuses empty ones and ones with newlines, tabs or more than four spaces in
// a row.
func templateParam(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// renderTemplate builds the template send of a message: the body's
// parameters in the message's variable order, and the dynamic URL button's
// suffix when the message has one (then as Meta components, since the
// messaging core's Params shorthand covers the body only).
func renderTemplate(m *Message, vals map[string]string) (*messaging.Template, error) {
	t := &messaging.Template{Name: m.Template, Language: m.Language}
	params := make([]string, len(m.Variables))
	for i, name := range m.Variables {
		params[i] = templateParam(vals[name])
	}
	if m.ButtonURLVariable == "" {
		t.Params = params
		return t, nil
	}
	type param struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type component struct {
		Type       string  `json:"type"`
		SubType    string  `json:"sub_type,omitempty"`
		Index      string  `json:"index,omitempty"`
		Parameters []param `json:"parameters"`
	}
	var comps []component
	if len(params) > 0 {
		body := component{Type: "body"}
		for _, p := range params {
			body.Parameters = append(body.Parameters, param{Type: "text", Text: p})
		}
		comps = append(comps, body)
	}
	comps = append(comps, component{Type: "button", SubType: "url", Index: "0",
		Parameters: []param{{Type: "text", Text: templateParam(vals[m.ButtonURLVariable])}}})
	raw, err := json.Marshal(comps)
	if err != nil {
		return nil, fmt.Errorf("encoding template components: %w", err)
	}
	t.Components = raw
	return t, nil
}

// renderText fills a free text's {{name}} placeholders; unknown ones (which
// Validate refuses) are left as written.
func renderText(text string, vals map[string]string) string { return textvars.Render(text, vals) }
