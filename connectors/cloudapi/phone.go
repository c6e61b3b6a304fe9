package cloudapi

import "strings"

// E.164 allows at most 15 digits; the shortest national numbers with their
// country code have 7 or so (a few small countries), so fewer digits than
// that is a typo, not a phone number.
const (
	minPhoneDigits = 7
	maxPhoneDigits = 15
)

// RecipientDigits turns a recipient given as E.164 ("+39 333 123 4567") or as
// a WhatsApp id ("393331234567") into the digits Meta's "to" field wants.
// Spaces, dashes, dots and parentheses people paste with numbers are dropped.
// It reports false for anything else: letters, a leading 0 (a national
// number without its country code, which would reach the wrong person), or
// a length no E.164 number has.
func RecipientDigits(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "+")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	d := b.String()
	if len(d) < minPhoneDigits || len(d) > maxPhoneDigits || d[0] == '0' {
		return "", false
	}
	return d, true
}

// E164 turns the digits Meta sends (a wa_id or a "from") into E.164 with a
// leading "+". Empty stays empty, and a value that is not all digits (a
// group id, a future identifier format) is returned unchanged rather than
// dressed up as a phone number.
func E164(digits string) string {
	if digits == "" {
		return ""
	}
	if strings.HasPrefix(digits, "+") {
		return digits
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return digits
		}
	}
	return "+" + digits
}
