package commerce

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// NormalizePhone reads a phone number as a shop has it (customers type it
// freely) and returns it in E.164, for [Contact].Phone. A number without an
// international prefix is read as a number of region (ISO 3166 alpha-2: the
// address's country, or the shop's); only that one region is tried, since
// trying several until one fits would turn a typo into a stranger's valid
// number abroad. A missing number gives problem [PhoneMissing]; one that is
// not a valid number, even read that way, gives [PhoneInvalid] and raw, the
// number as given. Neither is an error: the event is still emitted and the
// workflow records why it cannot reach the customer.
func NormalizePhone(number, region string) (e164, raw, problem string) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", "", PhoneMissing
	}
	// "00" is the international prefix in most of the world; phonenumbers
	// only strips it when the region's own prefix is 00, so a number typed
	// as 0039... at a shop without a country would otherwise be lost.
	if strings.HasPrefix(number, "00") {
		number = "+" + number[2:]
	}
	region = strings.ToUpper(strings.TrimSpace(region))
	if region == "" && !strings.HasPrefix(number, "+") {
		return "", number, PhoneInvalid
	}
	num, err := phonenumbers.Parse(number, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", number, PhoneInvalid
	}
	return phonenumbers.Format(num, phonenumbers.E164), "", ""
}
