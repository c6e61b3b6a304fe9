package sdk

import (
	"errors"
	"net/netip"
	"testing"
)

func TestIsPublicAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450:4002:402::200e": true, "157.240.1.35": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.1.1": false, "172.16.0.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "::1": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "::ffff:127.0.0.1": false,
		"64:ff9b::7f00:1": false, "2002:7f00:1::": false, "224.0.0.1": false, "203.0.113.9": false,
	} {
		if got := IsPublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
	if err := PublicOnlyControl("tcp", "127.0.0.1:80", nil); !errors.Is(err, ErrNonPublicAddress) {
		t.Errorf("PublicOnlyControl(loopback) = %v", err)
	}
	if err := PublicOnlyControl("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("PublicOnlyControl(public) = %v", err)
	}
}
