package woocommerce

import (
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// NormalizePhone reads a phone number as a WooCommerce store has it
// (customers type it freely into the checkout's phone field) and returns it
// in E.164. A number without an international prefix is read as a number of
// region (ISO 3166 alpha-2), the address's country or the connection's
// default_country. A missing number gives problem [commerce.PhoneMissing];
// one that is not a valid number, even read that way, gives
// [commerce.PhoneInvalid] and raw, the number as given. Neither is an
// error: the event is still emitted and the workflow records why it cannot
// reach the customer.
func NormalizePhone(number, region string) (e164, raw, problem string) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", "", commerce.PhoneMissing
	}
	// "00" is the international prefix in most of the world; phonenumbers
	// only strips it when the region's own prefix is 00, so a number typed
	// as 0039... at a store without a country would otherwise be lost.
	if strings.HasPrefix(number, "00") {
		number = "+" + number[2:]
	}
	region = strings.ToUpper(strings.TrimSpace(region))
	if region == "" && !strings.HasPrefix(number, "+") {
		return "", number, commerce.PhoneInvalid
	}
	num, err := phonenumbers.Parse(number, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", number, commerce.PhoneInvalid
	}
	return phonenumbers.Format(num, phonenumbers.E164), "", ""
}
