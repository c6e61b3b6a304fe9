package sdk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignHMACSHA256 returns the HMAC-SHA256 of body under secret. Connectors use
// it to verify webhook signatures (see [VerifyHMACSHA256Hex]) and tests use it
// to sign fixtures.
func SignHMACSHA256(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// VerifyHMACSHA256 reports whether signature is the HMAC-SHA256 of body under
// secret. The comparison takes constant time, so a caller probing signatures
// learns nothing from how long a rejection takes. An empty secret never
// verifies: a connection without a signing secret must not accept anything.
func VerifyHMACSHA256(secret, body, signature []byte) bool {
	if len(secret) == 0 || len(signature) == 0 {
		return false
	}
	return hmac.Equal(SignHMACSHA256(secret, body), signature)
}

// VerifyHMACSHA256Hex is [VerifyHMACSHA256] for the common case of a
// hex-encoded signature header, optionally prefixed as in "sha256=ab12...".
// Upper- and lower-case hex are both accepted.
func VerifyHMACSHA256Hex(secret, body []byte, signature string) bool {
	signature = strings.TrimPrefix(strings.TrimSpace(signature), "sha256=")
	sig, err := hex.DecodeString(signature)
	if err != nil {
		return false
	}
	return VerifyHMACSHA256(secret, body, sig)
}
