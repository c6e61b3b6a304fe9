package shopify

import (
	"strings"

	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// phoneCandidate is a phone found somewhere in a Shopify object, with the
// country of the address it came from (empty when it is not an address's).
type phoneCandidate struct {
	raw     string
	country string
}

// phoneContext says how national numbers are read for one connection: the
// connection's default_country wins over the shop's own country; the
// address a phone came from wins over both, since a shipping address in
// Germany with a number written 0151... is a German number whatever the
// shop's country.
type phoneContext struct {
	defaultCountry string
	shopCountry    string
}

// normalize picks the first candidate that is a valid number and returns it
// in E.164. It never fails: with no candidate it reports
// commerce.PhoneMissing, with candidates none of which is valid it reports
// commerce.PhoneInvalid and the first raw value.
func (pc phoneContext) normalize(cands ...phoneCandidate) (phone, raw, problem string) {
	var firstRaw string
	for _, c := range cands {
		r := strings.TrimSpace(c.raw)
		if r == "" {
			continue
		}
		if firstRaw == "" {
			firstRaw = r
		}
		if e164, ok := pc.e164(r, c.country); ok {
			return e164, "", ""
		}
	}
	if firstRaw == "" {
		return "", "", commerce.PhoneMissing
	}
	return "", firstRaw, commerce.PhoneInvalid
}

// e164 reads one number. A number with a + (or 00) prefix is read as
// international; a national one with the first known country of: the
// address's, default_country, the shop's. Only one country is tried, on
// purpose: trying several until one fits would turn a typo into some
// stranger's valid number abroad.
func (pc phoneContext) e164(raw, addressCountry string) (string, bool) {
	region := ""
	for _, r := range []string{addressCountry, pc.defaultCountry, pc.shopCountry} {
		if r = strings.ToUpper(strings.TrimSpace(r)); r != "" {
			region = r
			break
		}
	}
	e164, _, problem := commerce.NormalizePhone(raw, region)
	return e164, problem == ""
}

// applyPhone fills a commerce.Contact's phone fields.
func applyPhone(c *commerce.Contact, pc phoneContext, cands ...phoneCandidate) {
	c.Phone, c.PhoneRaw, c.PhoneProblem = pc.normalize(cands...)
}
