// Package secrets seals small secret values (connector credentials) with
// AES-256-GCM under Ponte's master key.
//
// A sealed value is nonce || ciphertext || tag. Every Seal draws a fresh random
// 96-bit nonce from crypto/rand; with the volumes Ponte seals (a handful of
// values per connection write) the birthday bound of random nonces (2^32
// messages per key, NIST SP 800-38D) is far away.
//
// Callers pass additional authenticated data (AAD) that binds a ciphertext to
// where it is stored, e.g. the row id: a ciphertext copied to another row then
// fails to open instead of silently handing one tenant's credentials to another.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a master key in bytes (AES-256).
const KeySize = 32

// ErrOpen is returned when a ciphertext cannot be opened: it was tampered
// with, sealed under another key, or sealed with other additional data. The
// causes are not told apart on purpose.
var ErrOpen = errors.New("secrets: message authentication failed")

// Sealer seals and opens values under one master key. It is safe for
// concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != KeySize {
		return nil, fmt.Errorf("secrets: master key must be %d bytes, got %d", KeySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: creating GCM: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, binding it to aad. The result is
// nonce || ciphertext || tag.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonceSize := s.aead.NonceSize()
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("secrets: reading nonce: %w", err)
	}
	return s.aead.Seal(out, out[:nonceSize], plaintext, aad), nil
}

// Open authenticates and decrypts a value made by Seal with the same aad. It
// returns ErrOpen when the value was altered, sealed under another key or with
// other additional data.
func (s *Sealer) Open(ciphertext, aad []byte) ([]byte, error) {
	nonceSize := s.aead.NonceSize()
	if len(ciphertext) < nonceSize+s.aead.Overhead() {
		return nil, ErrOpen
	}
	plaintext, err := s.aead.Open(nil, ciphertext[:nonceSize], ciphertext[nonceSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// ParseMasterKey decodes a master key given as standard or URL-safe base64
// (padded or not) or as hex, and checks that it is 32 bytes long. The error
// never repeats the input, which is a secret.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secrets: master key is empty")
	}
	// Hex first: 64 hex characters are also valid base64 (decoding to 48
	// bytes), so the order matters and the length check keeps it unambiguous.
	if len(s) == hex.EncodedLen(KeySize) {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("secrets: master key must decode to %d bytes, got %d", KeySize, len(key))
		}
		return key, nil
	}
	return nil, fmt.Errorf("secrets: master key is neither base64 nor hex of %d bytes", KeySize)
}

// GenerateMasterKey returns a new random master key, base64-encoded (standard
// alphabet, padded), ready for PONTE_MASTER_KEY.
func GenerateMasterKey() string {
	key := make([]byte, KeySize)
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+
	// crashes the program instead), so there is nothing to handle here.
	_, _ = rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}
