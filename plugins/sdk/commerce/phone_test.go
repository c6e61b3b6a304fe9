package commerce

import "testing"

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		number, region     string
		e164, raw, problem string
	}{
		"international":                {"+39 333 123 4567", "", "+393331234567", "", ""},
		"national with region":         {"333 123 4567", "it", "+393331234567", "", ""},
		"00 prefix, region without it": {"0044 7911 123456", "US", "+447911123456", "", ""},
		"national without region":      {"333 123 4567", "", "", "333 123 4567", PhoneInvalid},
		"not a number":                 {"(555) 555-5555", "US", "", "(555) 555-5555", PhoneInvalid},
		"missing":                      {"  ", "IT", "", "", PhoneMissing},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e164, raw, problem := NormalizePhone(tc.number, tc.region)
			if e164 != tc.e164 || raw != tc.raw || problem != tc.problem {
				t.Errorf("NormalizePhone(%q, %q) = %q, %q, %q; want %q, %q, %q", tc.number, tc.region, e164, raw, problem, tc.e164, tc.raw, tc.problem)
			}
		})
	}
}
