package consent

import (
	"testing"
	"time"
)

func TestKeywordTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 5, 300_000_000, time.UTC)
	tests := map[string]struct {
		stamped, want time.Time
	}{
		"unstamped is now": {time.Time{}, now},
		"end of its second": {
			time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC),
			time.Date(2026, 11, 22, 12, 0, 0, 999_999_000, time.UTC),
		},
		"never after now": {
			time.Date(2026, 11, 22, 12, 0, 5, 0, time.UTC),
			now,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := keywordTime(tc.stamped, now); !got.Equal(tc.want) {
				t.Errorf("keywordTime(%v) = %v, want %v", tc.stamped, got, tc.want)
			}
		})
	}
}
