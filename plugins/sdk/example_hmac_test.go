package sdk_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func ExampleSignHMACSHA256() {
	// A connector's test signs a recorded fixture the way the provider would,
	// so the handler's signature check runs for real. (The digest below was
	// computed independently with: openssl dgst -sha256 -hmac whsec_test.)
	secret := []byte("whsec_test")
	body := []byte(`{"id":"evt_81","type":"deal.won"}`)
	header := "sha256=" + hex.EncodeToString(sdk.SignHMACSHA256(secret, body))
	fmt.Println(header)
	// Output: sha256=98e17445f45e34a4cee96f6b347553b467f3f5d5b42d839ab060ca2f07cb58b1
}

func ExampleVerifyHMACSHA256() {
	// Some providers send the signature base64-encoded (Shopify's
	// X-Shopify-Hmac-Sha256, for one): decode it, then verify the raw bytes.
	secret := []byte("shpss_test")
	body := []byte(`{"id":820982911946154508}`)
	header := base64.StdEncoding.EncodeToString(sdk.SignHMACSHA256(secret, body))

	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		fmt.Println(sdk.Auth("signature is not base64"))
		return
	}
	fmt.Println(sdk.VerifyHMACSHA256(secret, body, sig))
	fmt.Println(sdk.VerifyHMACSHA256(secret, []byte(`{"id":1}`), sig))
	// A connection without a secret verifies nothing.
	fmt.Println(sdk.VerifyHMACSHA256(nil, body, sdk.SignHMACSHA256(nil, body)))
	// Output:
	// true
	// false
	// false
}

func ExampleVerifyHMACSHA256Hex() {
	// GitHub-style X-Hub-Signature-256: "sha256=" and the hex digest.
	secret := []byte("s3cret")
	body := []byte(`{"id":"evt_1"}`)
	header := "sha256=" + hex.EncodeToString(sdk.SignHMACSHA256(secret, body))

	fmt.Println(sdk.VerifyHMACSHA256Hex(secret, body, header))
	fmt.Println(sdk.VerifyHMACSHA256Hex(secret, []byte(`{"id":"evt_2"}`), header))
	fmt.Println(sdk.VerifyHMACSHA256Hex(secret, body, ""))
	// Output:
	// true
	// false
	// false
}
