package templates

import (
	"fmt"
	"strings"
)

// Reasons a feature cannot fill a template.
const (
	// IncompatibleParameterCount: the body has a different number of
	// variables than the feature provides.
	IncompatibleParameterCount = "parameter_count"
	// IncompatibleHeaderMedia: the header is an image, video or document and
	// the feature has no media to put there.
	IncompatibleHeaderMedia = "header_media"
	// IncompatibleHeaderParameter: the header text has a variable; features
	// fill body variables only.
	IncompatibleHeaderParameter = "header_parameter"
	// IncompatibleDynamicURL: a URL button ends in a variable the feature
	// cannot provide.
	IncompatibleDynamicURL = "dynamic_url_button"
	// IncompatibleLocationHeader: the header is a location, which no feature
	// provides.
	IncompatibleLocationHeader = "location_header"
)

// IncompatibleError says why a feature cannot fill a template. Record it
// with Service.MarkIncompatible so the template shows why it is not used.
type IncompatibleError struct {
	// Reason is one of the Incompatible... constants.
	Reason string
	// Detail explains it for people.
	Detail string
}

func (e *IncompatibleError) Error() string { return "template incompatible: " + e.Detail }

// CheckFillable reports whether a feature that fills provided body variables,
// and has a media link for the header when hasHeaderMedia, can send t: nil,
// or an *IncompatibleError with the first reason it cannot.
func CheckFillable(t Template, provided int, hasHeaderMedia bool) error {
	cs, err := parseComponents(t.Components)
	if err != nil {
		return &IncompatibleError{Reason: IncompatibleParameterCount, Detail: "the template's components cannot be read: " + err.Error()}
	}
	if t.Parameters != provided {
		return &IncompatibleError{Reason: IncompatibleParameterCount,
			Detail: fmt.Sprintf("the body has %d variables, the feature fills %d", t.Parameters, provided)}
	}
	for _, c := range cs {
		switch strings.ToUpper(c.Type) {
		case "HEADER":
			switch f := strings.ToUpper(c.Format); f {
			case "IMAGE", "VIDEO", "DOCUMENT":
				if !hasHeaderMedia {
					return &IncompatibleError{Reason: IncompatibleHeaderMedia,
						Detail: fmt.Sprintf("the header needs a %s, the feature has none", strings.ToLower(f))}
				}
			case "LOCATION":
				return &IncompatibleError{Reason: IncompatibleLocationHeader, Detail: "the header is a location, which the feature cannot provide"}
			default:
				if countVariables(c.Text) > 0 {
					return &IncompatibleError{Reason: IncompatibleHeaderParameter, Detail: "the header text has a variable; the feature fills body variables only"}
				}
			}
		case "BUTTONS":
			for _, b := range c.Buttons {
				if strings.EqualFold(b.Type, "URL") && countVariables(b.URL) > 0 {
					return &IncompatibleError{Reason: IncompatibleDynamicURL,
						Detail: fmt.Sprintf("the URL button %q has a dynamic suffix the feature cannot provide", b.Text)}
				}
			}
		}
	}
	return nil
}
