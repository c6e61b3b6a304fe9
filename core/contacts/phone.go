package contacts

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone is returned (wrapped, with the reason) for a phone number
// that cannot be read as a valid number.
var ErrInvalidPhone = errors.New("invalid phone number")

// NormalizePhone returns raw in E.164 ("+393331234567"). Numbers written
// without an international prefix are read as numbers of region (ISO 3166
// alpha-2, e.g. "IT"); "00" international prefixes and punctuation are
// accepted. Numbers that are not valid for their country (wrong length,
// unassigned ranges, per libphonenumber's metadata) are refused with
// ErrInvalidPhone.
func NormalizePhone(raw, region string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidPhone)
	}
	if len(s) > 64 {
		return "", fmt.Errorf("%w: too long", ErrInvalidPhone)
	}
	// A WhatsApp id is the number's digits without "+": accept it when it
	// carries a country code the metadata knows and is valid as such.
	if isDigits(s) && !strings.HasPrefix(s, "0") && len(s) > 10 {
		if n, err := phonenumbers.Parse("+"+s, ""); err == nil && phonenumbers.IsValidNumber(n) {
			return phonenumbers.Format(n, phonenumbers.E164), nil
		}
	}
	n, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidPhone, err)
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", fmt.Errorf("%w: not a valid number for its country", ErrInvalidPhone)
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
