package whatsapp_test

import (
	"testing"

	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

func TestIsEmoji(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want bool
	}{
		"thumbs up":                  {"👍", true},
		"grinning face":              {"\U0001F600", true},
		"red heart with selector":    {"❤️", true},
		"red heart text style":       {"❤", true},
		"thumbs up medium skin tone": {"👍🏽", true},
		"flag of Italy":              {"🇮🇹", true},
		"flag of England (tags)":     {"🏴󠁧󠁢󠁥󠁮󠁧󠁿", true},
		"keycap one":                 {"1️⃣", true},
		"keycap hash bare":           {"#⃣", true},
		"rainbow flag (ZWJ)":         {"🏳️‍🌈", true},
		"family of four (ZWJ)":       {"👨‍👩‍👧‍👦", true},
		"kiss with two skin tones":   {"🧑🏻‍❤️‍💋‍🧑🏼", true},
		"heart on fire":              {"❤️‍🔥", true},
		"check mark button":          {"✅", true},
		"star":                       {"⭐", true},
		"empty":                      {"", false},
		"letter":                     {"a", false},
		"word":                       {"ok", false},
		"digit":                      {"1", false},
		"two emoji":                  {"👍👍", false},
		"emoji and text":             {"👍 thanks", false},
		"space":                      {" ", false},
		"lone regional indicator":    {"🇮", false},
		"three regional indicators":  {"🇮🇹🇮", false},
		"trailing ZWJ":               {"👍\u200D", false},
		"leading ZWJ":                {"\u200D👍", false},
		"lone variation selector":    {"\uFE0F", false},
		"unterminated tag sequence":  {"🏴\U000E0067\U000E0062", false},
		"keycap mark without base":   {"\u20E3", false},
		"invalid UTF-8":              {"\xff", false},
		"too long":                   {"👨‍👩‍👧‍👦‍👨‍👩", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := whatsapp.IsEmoji(tc.in); got != tc.want {
				t.Errorf("IsEmoji(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
