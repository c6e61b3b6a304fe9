package numbers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/store"
)

// Pacing is how fast a linked-device number may send, with every field
// effective (defaults applied). Unofficial clients are banned for bursts, so
// the defaults are conservative: a few messages a minute, few new contacts a
// day, a random gap between messages and a "typing..." indicator before a
// reply, as a person would.
type Pacing struct {
	// MessagesPerMinute caps the messages sent per minute (1..60).
	MessagesPerMinute int `json:"messages_per_minute" doc:"Most messages sent per minute (1..60)."`
	// NewContactsPerDay caps the contacts messaged for the first time per
	// day (0..1000); 0 means the number only answers contacts it knows.
	NewContactsPerDay int `json:"new_contacts_per_day" doc:"Most contacts written to for the first time per day (0..1000); 0 means no new contacts."`
	// MinGapSeconds and MaxGapSeconds bound the random wait between two
	// messages (0 <= min <= max <= 300).
	MinGapSeconds int `json:"min_gap_seconds" doc:"Least random wait between two messages, in seconds."`
	MaxGapSeconds int `json:"max_gap_seconds" doc:"Longest random wait between two messages, in seconds (at most 300)."`
	// Typing shows "typing..." before a reply for a time proportional to
	// its length, at most TypingMaxSeconds (1..60).
	Typing           bool `json:"typing" doc:"Show \"typing...\" before a reply, for a time proportional to its length."`
	TypingMaxSeconds int  `json:"typing_max_seconds" doc:"Longest \"typing...\" shown before a reply, in seconds (1..60)."`
}

// Pacing defaults and bounds.
const (
	DefaultMessagesPerMinute = 6
	DefaultNewContactsPerDay = 20
	DefaultMinGapSeconds     = 4
	DefaultMaxGapSeconds     = 12
	DefaultTyping            = true
	DefaultTypingMaxSeconds  = 6

	MaxMessagesPerMinute = 60
	MaxNewContactsPerDay = 1000
	MaxGapSeconds        = 300
	MaxTypingSeconds     = 60
)

// DefaultPacing returns the pacing of a linked device whose user set nothing.
func DefaultPacing() Pacing {
	return Pacing{
		MessagesPerMinute: DefaultMessagesPerMinute,
		NewContactsPerDay: DefaultNewContactsPerDay,
		MinGapSeconds:     DefaultMinGapSeconds,
		MaxGapSeconds:     DefaultMaxGapSeconds,
		Typing:            DefaultTyping,
		TypingMaxSeconds:  DefaultTypingMaxSeconds,
	}
}

// PacingSettings are the pacing fields a user set; nil fields take their
// defaults. Only these are stored, so a default changed in a later release
// reaches every number that did not choose otherwise.
type PacingSettings struct {
	MessagesPerMinute *int  `json:"messages_per_minute,omitempty" minimum:"1" maximum:"60"`
	NewContactsPerDay *int  `json:"new_contacts_per_day,omitempty" minimum:"0" maximum:"1000"`
	MinGapSeconds     *int  `json:"min_gap_seconds,omitempty" minimum:"0" maximum:"300"`
	MaxGapSeconds     *int  `json:"max_gap_seconds,omitempty" minimum:"0" maximum:"300"`
	Typing            *bool `json:"typing,omitempty"`
	TypingMaxSeconds  *int  `json:"typing_max_seconds,omitempty" minimum:"1" maximum:"60"`
}

// IsZero reports whether no field is set.
func (p PacingSettings) IsZero() bool { return p == PacingSettings{} }

// Effective applies the defaults to the fields left unset.
func (p PacingSettings) Effective() Pacing {
	out := DefaultPacing()
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&out.MessagesPerMinute, p.MessagesPerMinute)
	set(&out.NewContactsPerDay, p.NewContactsPerDay)
	set(&out.MinGapSeconds, p.MinGapSeconds)
	set(&out.MaxGapSeconds, p.MaxGapSeconds)
	set(&out.TypingMaxSeconds, p.TypingMaxSeconds)
	if p.Typing != nil {
		out.Typing = *p.Typing
	}
	return out
}

// Validate checks the settings as they take effect: each field in its range
// and the gap bounds in order (a minimum set alone must not exceed the
// default maximum). Problems are located under "pacing.".
func (p PacingSettings) Validate() error {
	e := p.Effective()
	var problems []store.FieldProblem
	check := func(field string, set *int, v, lo, hi int) {
		if set != nil && (v < lo || v > hi) {
			problems = append(problems, store.FieldProblem{Field: "pacing." + field, Message: fmt.Sprintf("must be between %d and %d", lo, hi)})
		}
	}
	check("messages_per_minute", p.MessagesPerMinute, e.MessagesPerMinute, 1, MaxMessagesPerMinute)
	check("new_contacts_per_day", p.NewContactsPerDay, e.NewContactsPerDay, 0, MaxNewContactsPerDay)
	check("min_gap_seconds", p.MinGapSeconds, e.MinGapSeconds, 0, MaxGapSeconds)
	check("max_gap_seconds", p.MaxGapSeconds, e.MaxGapSeconds, 0, MaxGapSeconds)
	check("typing_max_seconds", p.TypingMaxSeconds, e.TypingMaxSeconds, 1, MaxTypingSeconds)
	if problems == nil && e.MinGapSeconds > e.MaxGapSeconds {
		field := "pacing.min_gap_seconds"
		if p.MinGapSeconds == nil {
			field = "pacing.max_gap_seconds"
		}
		problems = append(problems, store.FieldProblem{Field: field,
			Message: fmt.Sprintf("min_gap_seconds (%d) must not exceed max_gap_seconds (%d)", e.MinGapSeconds, e.MaxGapSeconds)})
	}
	if problems != nil {
		return &store.ValidationError{Problems: problems}
	}
	return nil
}

// mergePacing applies a JSON merge patch (RFC 7396) to stored settings:
// fields given replace, null resets a field to its default, fields left out
// keep their value. Unknown fields and wrong types are validation problems.
func mergePacing(cur PacingSettings, patch json.RawMessage) (PacingSettings, error) {
	trimmed := bytes.TrimSpace(patch)
	if len(trimmed) == 0 {
		return cur, nil
	}
	if bytes.Equal(trimmed, []byte("null")) {
		return PacingSettings{}, nil // the whole object reset to defaults
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return cur, &store.ValidationError{Problems: []store.FieldProblem{{Field: "pacing", Message: "must be a JSON object"}}}
	}
	doc, err := json.Marshal(cur)
	if err != nil {
		return cur, fmt.Errorf("encoding pacing: %w", err)
	}
	var merged map[string]json.RawMessage
	if err := json.Unmarshal(doc, &merged); err != nil {
		return cur, fmt.Errorf("decoding pacing: %w", err)
	}
	for k, v := range fields {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	doc, err = json.Marshal(merged)
	if err != nil {
		return cur, fmt.Errorf("encoding pacing: %w", err)
	}
	return decodePacing(doc)
}

// decodePacing reads stored or submitted settings strictly: an unknown
// field or a value of the wrong type is a validation problem, not silently
// dropped (a typo would otherwise leave the default in force).
func decodePacing(doc []byte) (PacingSettings, error) {
	var p PacingSettings
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var te *json.UnmarshalTypeError
		field := "pacing"
		msg := err.Error()
		if errors.As(err, &te) && te.Field != "" {
			field, msg = "pacing."+te.Field, "must be a whole number"
			if te.Type.Kind() == reflect.Bool {
				msg = "must be true or false"
			}
		}
		return PacingSettings{}, &store.ValidationError{Problems: []store.FieldProblem{{Field: field, Message: msg}}}
	}
	return p, nil
}

// PacingFor returns the effective pacing of the tenant's linked-device
// number on connectionID. A connection that is not a linked-device number
// (yet) gets the defaults: pacing only exists for linked devices, and the
// conservative default is the safe answer for a session that sends before
// its number row is readable.
func PacingFor(ctx context.Context, pool *pgxpool.Pool, tenantID, connectionID string) (Pacing, error) {
	var raw []byte
	err := pool.QueryRow(ctx, `SELECT pacing FROM numbers
		WHERE tenant_id = $1 AND connection_id = $2 AND kind = 'linked_device'`, tenantID, connectionID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultPacing(), nil
	}
	if err != nil {
		return Pacing{}, fmt.Errorf("reading pacing of connection %s: %w", connectionID, err)
	}
	p, err := decodePacing(raw)
	if err != nil {
		return Pacing{}, fmt.Errorf("decoding stored pacing of connection %s: %w", connectionID, err)
	}
	return p.Effective(), nil
}
