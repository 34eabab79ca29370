package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrAddressNotAllowed: an endpoint's host is, or resolves to, an address the client never
// connects to (loopback, private, link-local, multicast and other non-global addresses). The
// error in a chain is an *AddressError naming the address and its class.
var ErrAddressNotAllowed = errors.New("address not allowed")

// AddressError is a refused address. It matches ErrAddressNotAllowed with errors.Is.
type AddressError struct {
	Addr  netip.Addr
	Class string // "loopback", "private", "link-local", "multicast", "unspecified", "non-global"
}

// Error implements error.
func (e *AddressError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: a %s address", e.Addr, e.Class)
}

// Is matches ErrAddressNotAllowed.
func (e *AddressError) Is(target error) bool { return target == ErrAddressNotAllowed }

// nonGlobal are special-purpose ranges that netip's predicates do not name but that are no
// place for a vendor API: shared address space (carrier-grade NAT, RFC 6598), "this network",
// the IETF protocol block, documentation and benchmarking ranges, the reserved class E, and
// the IPv6 forms that embed an IPv4 address a relay or translator would reach (NAT64,
// 6to4, Teredo, IPv4-compatible) or serve documentation and discard.
var nonGlobal = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddr returns nil when a is an address the client may connect to: a globally routable
// unicast address, or a loopback address when allowLoopback is set (tests against a local
// server only). Otherwise it returns an *AddressError. IPv4-mapped IPv6 addresses
// (::ffff:10.0.0.1) are judged as the IPv4 address they carry.
func CheckAddr(a netip.Addr, allowLoopback bool) error {
	a = a.Unmap().WithZone("")
	class := ""
	switch {
	case !a.IsValid():
		return &AddressError{Addr: a, Class: "invalid"}
	case a.IsLoopback():
		if allowLoopback {
			return nil
		}
		class = "loopback"
	case a.IsUnspecified():
		class = "unspecified"
	case a.IsPrivate(): // 10/8, 172.16/12, 192.168/16, fc00::/7
		class = "private"
	case a.IsLinkLocalUnicast(): // 169.254/16 (cloud metadata), fe80::/10
		class = "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		class = "multicast"
	case !a.IsGlobalUnicast(): // the broadcast address, among others
		class = "non-global"
	default:
		for _, p := range nonGlobal {
			if p.Contains(a) {
				class = "non-global"
				break
			}
		}
	}
	if class == "" {
		return nil
	}
	return &AddressError{Addr: a, Class: class}
}

// CheckHost resolves host (a name or an IP literal) and returns an *AddressError when any of
// its addresses is refused by CheckAddr. A failed resolution is returned as it is: the caller
// decides whether that is fatal (the dialer checks again at every connection anyway).
func CheckHost(ctx context.Context, host string, allowLoopback bool) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return CheckAddr(a, allowLoopback)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if err := CheckAddr(a, allowLoopback); err != nil {
			return err
		}
	}
	return nil
}

// guardedDialer is the default client's dialer: its Control hook runs after name resolution,
// on the very address about to be connected to, so neither an endpoint naming an internal
// address nor a name that resolves to one (DNS rebinding included: every connection is
// checked, not a lookup made earlier) reaches it (docs/security.md).
func guardedDialer(allowLoopback bool) *net.Dialer {
	return &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refusing to connect to %q: not an IP address and port", address)
			}
			return CheckAddr(ap.Addr(), allowLoopback)
		},
	}
}
