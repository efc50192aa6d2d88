package endpointutil

import "net/netip"

// parseIP returns s in canonical form, or ok=false when it is no address.
func parseIP(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", false
	}
	return a.Unmap().String(), true
}

// IsIPv6 reports whether s is an IPv6 address (not IPv4-mapped).
func IsIPv6(s string) bool { a, ok := parseIP(s); return ok && isV6(a) }

// isV6 reports whether the canonical address s is IPv6.
func isV6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}
