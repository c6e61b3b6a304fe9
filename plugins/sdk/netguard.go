package sdk

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrNonPublicAddress is returned when a connection to an address outside the
// public internet is refused by [PublicOnlyControl].
var ErrNonPublicAddress = errors.New("the address is not on the public internet")

// nonPublicRanges are ranges the netip predicates do not cover: carrier-grade
// NAT, IETF protocol assignments, benchmarking, documentation, reserved, and
// the NAT64 and 6to4 relays (which reach IPv4 addresses of any kind).
var nonPublicRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// IsPublicAddr reports whether ip is an address on the public internet: not
// loopback, private, link-local, multicast, unspecified or one of the special
// ranges above.
func IsPublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublicRanges {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// PublicOnlyControl is a [net.Dialer] Control function that refuses
// connections to addresses outside the public internet, with an error
// wrapping [ErrNonPublicAddress]. Use it for HTTP clients that fetch URLs
// given by users (a media link to send, a callback to call): it is checked
// on the address actually dialled, after DNS and on every redirect, so a
// public name resolving to 127.0.0.1 or a metadata service is refused too.
func PublicOnlyControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dialling %q: %w", host, ErrNonPublicAddress)
	}
	if !IsPublicAddr(ip) {
		return fmt.Errorf("dialling %s: %w", ip, ErrNonPublicAddress)
	}
	return nil
}
