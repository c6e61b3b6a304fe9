package consent

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Normalize puts a message or keyword in the form keywords are compared in:
// compatibility-decomposed (NFKD, so full-width "ＳＴＯＰ" is "STOP") with the
// combining marks removed ("DISISCRIVIMÌ" is "DISISCRIVIMI"), lower case,
// runs of white space collapsed to one space, trimmed, and trailing
// punctuation removed ("Stop!!" and "stop." are "stop"). Matching is then
// equality of the whole message, so "stop please" is not STOP: people write
// "stop" inside ordinary sentences, and opting them out for that would be
// wrong.
func Normalize(s string) string {
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	folded, _, err := transform.String(t, s)
	if err != nil {
		// Only invalid UTF-8 gets here; compare it unfolded rather than not at all.
		folded = s
	}
	folded = strings.Join(strings.Fields(strings.ToLower(folded)), " ")
	return strings.TrimRightFunc(folded, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
}

// Keyword kinds a message can match.
const (
	KeywordNone  = ""
	KeywordStop  = "stop"
	KeywordStart = "start"
)

// match returns the keyword kind the whole of one of texts matches.
func (c *compiled) match(texts ...string) string {
	for _, t := range texts {
		n := Normalize(t)
		if n == "" {
			continue
		}
		if c.stop[n] {
			return KeywordStop
		}
		if c.start[n] {
			return KeywordStart
		}
	}
	return KeywordNone
}
