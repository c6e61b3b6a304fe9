package contacts

import (
	"errors"
	"fmt"
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

// TestPhoneCache: the cache answers what NormalizePhone answers, refused
// numbers included, and holds at most two generations of numbers.
func TestPhoneCache(t *testing.T) {
	t.Parallel()
	c := newPhoneCache("IT", 4)
	for round := range 3 {
		for _, raw := range []string{"333 1234567", "+39 333-123 4567", "393331234568", "06 6982 1234", "call me", "+39 12"} {
			want, wantErr := NormalizePhone(raw, "IT")
			got, err := c.normalize(raw)
			if got != want || (err == nil) != (wantErr == nil) || err != nil && !errors.Is(err, ErrInvalidPhone) {
				t.Errorf("round %d: %q gave %q, %v; NormalizePhone gives %q, %v", round, raw, got, err, want, wantErr)
			}
		}
	}
	for i := range 100 {
		if _, err := c.normalize(fmt.Sprintf("+39333%07d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	held := len(c.current) + len(c.previous)
	c.mu.Unlock()
	if held > 8 {
		t.Errorf("the cache holds %d numbers, want at most 2 × 4", held)
	}
	// A number from the previous generation moves back to the current one.
	c.mu.Lock()
	var old string
	for raw := range c.previous {
		old = raw
	}
	c.mu.Unlock()
	if _, err := c.normalize(old); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	_, kept := c.current[old]
	c.mu.Unlock()
	if !kept {
		t.Errorf("%q from the previous generation was not kept in the current one", old)
	}
}

// BenchmarkNormalizePhone compares parsing a WhatsApp id with
// libphonenumber against finding it in the phone cache, as a repeat
// sender's messages do.
func BenchmarkNormalizePhone(b *testing.B) {
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := NormalizePhone("393331234567", "IT"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := newPhoneCache("IT", phoneCacheSize)
		for b.Loop() {
			if _, err := c.normalize("393331234567"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
