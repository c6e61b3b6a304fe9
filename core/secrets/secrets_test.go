package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustSealer(t *testing.T, key []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(key)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	otherKey := bytes.Repeat([]byte{8}, KeySize)
	plaintext := []byte(`{"api_key":"sk_test_123"}`)
	aad := []byte("con_a")

	tests := map[string]struct {
		mutate  func(sealed []byte) []byte
		openKey []byte
		openAAD []byte
		wantErr error
	}{
		"round trip": {
			mutate: func(b []byte) []byte { return b }, openKey: key, openAAD: aad,
		},
		"wrong aad": {
			mutate: func(b []byte) []byte { return b }, openKey: key, openAAD: []byte("con_b"), wantErr: ErrOpen,
		},
		"empty aad": {
			mutate: func(b []byte) []byte { return b }, openKey: key, openAAD: nil, wantErr: ErrOpen,
		},
		"wrong key": {
			mutate: func(b []byte) []byte { return b }, openKey: otherKey, openAAD: aad, wantErr: ErrOpen,
		},
		"tampered ciphertext": {
			mutate: func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, openKey: key, openAAD: aad, wantErr: ErrOpen,
		},
		"tampered nonce": {
			mutate: func(b []byte) []byte { b[0] ^= 0x80; return b }, openKey: key, openAAD: aad, wantErr: ErrOpen,
		},
		"tampered tag": {
			mutate: func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, openKey: key, openAAD: aad, wantErr: ErrOpen,
		},
		"truncated": {
			mutate: func(b []byte) []byte { return b[:10] }, openKey: key, openAAD: aad, wantErr: ErrOpen,
		},
		"empty": {
			mutate: func(b []byte) []byte { return nil }, openKey: key, openAAD: aad, wantErr: ErrOpen,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sealed, err := mustSealer(t, key).Seal(plaintext, aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if bytes.Contains(sealed, plaintext) {
				t.Fatal("sealed value contains the plaintext")
			}
			got, err := mustSealer(t, tc.openKey).Open(tc.mutate(sealed), tc.openAAD)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil {
				if diff := cmp.Diff(plaintext, got); diff != "" {
					t.Errorf("Open (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	t.Parallel()
	s := mustSealer(t, make([]byte, KeySize))
	a, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical; nonces are reused")
	}
}

func TestNewSealerKeySize(t *testing.T) {
	t.Parallel()
	for name, n := range map[string]int{"empty": 0, "aes-128": 16, "31": 31, "33": 33} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewSealer(make([]byte, n)); err == nil {
				t.Fatalf("NewSealer accepted a %d-byte key", n)
			}
		})
	}
}

func TestParseMasterKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	tests := map[string]struct {
		in      string
		want    []byte
		wantErr bool
	}{
		"base64 std":        {in: base64.StdEncoding.EncodeToString(key), want: key},
		"base64 raw":        {in: base64.RawStdEncoding.EncodeToString(key), want: key},
		"base64 url":        {in: base64.URLEncoding.EncodeToString(key), want: key},
		"base64 raw url":    {in: base64.RawURLEncoding.EncodeToString(key), want: key},
		"hex":               {in: hex.EncodeToString(key), want: key},
		"hex upper":         {in: strings.ToUpper(hex.EncodeToString(key)), want: key},
		"surrounding space": {in: "  " + hex.EncodeToString(key) + "\n", want: key},
		"empty":             {in: "", wantErr: true},
		"short base64":      {in: base64.StdEncoding.EncodeToString(key[:16]), wantErr: true},
		"long base64":       {in: base64.StdEncoding.EncodeToString(append(key, 1)), wantErr: true},
		"short hex":         {in: hex.EncodeToString(key[:31]), wantErr: true},
		"garbage":           {in: "not a key!", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMasterKey(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseMasterKey(%q) = %x, want error", tc.in, got)
				}
				if tc.in != "" && strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q repeats the secret input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMasterKey: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGenerateMasterKey(t *testing.T) {
	t.Parallel()
	a, b := GenerateMasterKey(), GenerateMasterKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	key, err := ParseMasterKey(a)
	if err != nil {
		t.Fatalf("generated key does not parse: %v", err)
	}
	if _, err := NewSealer(key); err != nil {
		t.Fatalf("generated key is not usable: %v", err)
	}
}
