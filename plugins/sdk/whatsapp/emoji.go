package whatsapp

import "unicode/utf8"

// MaxEmojiRunes is the length of the longest emoji WhatsApp shows as one:
// a couple with two skin tones joined by ZWJs is 10 code points.
const MaxEmojiRunes = 10

// Code points that build emoji sequences (Unicode TS #51).
const (
	zwj            = '\u200D'
	variationText  = '\uFE0E'
	variationEmoji = '\uFE0F'
	keycapMark     = '\u20E3'
	tagCancel      = '\U000E007F'
)

// IsEmoji reports whether s is exactly one emoji as Unicode TS #51 builds
// them: a flag (two regional indicators), a keycap (0-9, # or *, optionally
// U+FE0F, then U+20E3), or pictographs each with an optional variation
// selector and skin tone, joined by ZWJs, the last one optionally followed
// by tag characters ending in CANCEL TAG (subdivision flags).
//
// A WhatsApp reaction is one emoji: text, two emoji or a stray modifier
// fail at WhatsApp or show wrong on the phone, so connectors refuse them
// before the call.
func IsEmoji(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	if len(rs) == 0 || len(rs) > MaxEmojiRunes {
		return false
	}
	if isRegionalIndicator(rs[0]) {
		return len(rs) == 2 && isRegionalIndicator(rs[1])
	}
	if isKeycapBase(rs[0]) {
		rest := rs[1:]
		if len(rest) > 0 && rest[0] == variationEmoji {
			rest = rest[1:]
		}
		return len(rest) == 1 && rest[0] == keycapMark
	}
	i := 0
	for {
		if i >= len(rs) || !isPictograph(rs[i]) {
			return false
		}
		i++
		if i < len(rs) && (rs[i] == variationEmoji || rs[i] == variationText) {
			i++
		}
		if i < len(rs) && isSkinTone(rs[i]) {
			i++
		}
		if i < len(rs) && rs[i] == variationEmoji {
			i++
		}
		if i < len(rs) && isTag(rs[i]) {
			for i < len(rs) && isTag(rs[i]) && rs[i] != tagCancel {
				i++
			}
			return i == len(rs)-1 && rs[i] == tagCancel
		}
		if i == len(rs) {
			return true
		}
		if rs[i] != zwj {
			return false
		}
		i++
	}
}

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

func isSkinTone(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

func isTag(r rune) bool { return r >= 0xE0020 && r <= 0xE007F }

func isKeycapBase(r rune) bool { return (r >= '0' && r <= '9') || r == '#' || r == '*' }

// isPictograph approximates Unicode's Extended_Pictographic property (which
// Go's unicode package does not carry) by the blocks that hold emoji, so
// letters, digits, punctuation and spaces are never taken for one.
func isPictograph(r rune) bool {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF && !isRegionalIndicator(r):
		// Mahjong and cards through Symbols and Pictographs Extended-A.
		return true
	case r >= 0x1FC00 && r <= 0x1FFFD:
		// Reserved for future pictographs.
		return true
	case r >= 0x2600 && r <= 0x27BF:
		// Miscellaneous Symbols and Dingbats (☀ ❤ ✅ ✈ ...).
		return true
	case r >= 0x2190 && r <= 0x21FF, r >= 0x2300 && r <= 0x23FF, r >= 0x2900 && r <= 0x297F,
		r >= 0x2B00 && r <= 0x2BFF, r >= 0x25A0 && r <= 0x25FF:
		// Arrows, Miscellaneous Technical (⌚ ⏰), Supplemental Arrows-B,
		// Miscellaneous Symbols and Arrows (⭐ ⬆), Geometric Shapes (▶).
		return true
	}
	switch r {
	case 0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x24C2, 0x3030, 0x303D, 0x3297, 0x3299:
		// © ® ‼ ⁉ ™ ℹ Ⓜ 〰 〽 ㊗ ㊙
		return true
	}
	return false
}
