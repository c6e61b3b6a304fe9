package sdk_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestVerifyHMACSHA256Hex(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	body := []byte("payload")
	good := hex.EncodeToString(sdk.SignHMACSHA256(secret, body))
	tests := map[string]struct {
		secret []byte
		body   []byte
		sig    string
		want   bool
	}{
		"valid":            {secret, body, good, true},
		"valid upper case": {secret, body, strings.ToUpper(good), true},
		"sha256= prefix":   {secret, body, "sha256=" + good, true},
		"tampered body":    {secret, []byte("payloaD"), good, false},
		"wrong secret":     {[]byte("other"), body, good, false},
		"empty secret":     {nil, body, hex.EncodeToString(sdk.SignHMACSHA256(nil, body)), false},
		"missing":          {secret, body, "", false},
		"not hex":          {secret, body, "zz" + good[2:], false},
		"truncated":        {secret, body, good[:62], false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := sdk.VerifyHMACSHA256Hex(tc.secret, tc.body, tc.sig); got != tc.want {
				t.Errorf("got %t, want %t", got, tc.want)
			}
		})
	}
}
