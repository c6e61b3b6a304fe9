package contacts

import (
	"errors"
	"testing"
)

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		raw, region, want string
		invalid           bool
	}{
		"e164 italian mobile":      {raw: "+393331234567", region: "IT", want: "+393331234567"},
		"spaces and dashes":        {raw: " +39 333-123 4567 ", region: "IT", want: "+393331234567"},
		"national italian mobile":  {raw: "333 1234567", region: "IT", want: "+393331234567"},
		"italian landline keeps 0": {raw: "06 6982 1234", region: "IT", want: "+390669821234"},
		"00 prefix":                {raw: "0039 333 1234567", region: "IT", want: "+393331234567"},
		"wa_id digits":             {raw: "393331234567", region: "US", want: "+393331234567"},
		"us national":              {raw: "(415) 555-2671", region: "US", want: "+14155552671"},
		"lower-case region":        {raw: "333 1234567", region: "it", want: "+393331234567"},
		"german with parentheses":  {raw: "+49 (30) 901820", region: "IT", want: "+4930901820"},
		"empty":                    {raw: "  ", region: "IT", invalid: true},
		"letters":                  {raw: "call me", region: "IT", invalid: true},
		"too short":                {raw: "+39 12", region: "IT", invalid: true},
		"unknown country code":     {raw: "+999 1234567", region: "IT", invalid: true},
		"national without region":  {raw: "333 1234567", region: "", invalid: true},
		"absurdly long":            {raw: "+39333123456789012345678901234567890123456789012345678901234567890", region: "IT", invalid: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizePhone(tc.raw, tc.region)
			if tc.invalid {
				if !errors.Is(err, ErrInvalidPhone) {
					t.Fatalf("NormalizePhone(%q) = %q, %v; want ErrInvalidPhone", tc.raw, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.raw, tc.region, got, err, tc.want)
			}
		})
	}
}
