package daemon

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/dns"
)

// withClusterDNS returns node configured with the cluster DNS its pods
// resolve through (resolv.conf's nameserver and search path).
//
// This is the one place a node learns them. Every node, the server's own
// included, reads the two values (dns.KeyClusterDNS, dns.KeyClusterDomain)
// from the cluster's network settings ConfigMap (kube-system/peapod-network,
// parsed with dns.NodeSettingsFromData), where the server publishes them
// beside the network settings.
func withClusterDNS(node config.Node, s dns.NodeSettings) config.Node {
	node.ClusterDNS = s.ClusterDNS
	node.ClusterDomain = s.ClusterDomain
	return node
}

func serviceCIDR(api apiserver.Config) string {
	if api.ServiceCIDR != "" {
		return api.ServiceCIDR
	}
	return apiserver.DefaultServiceCIDR
}

// dnsAddress is where this server's cluster DNS listens: the address
// agents and pods reach the server at. That is the API's --listen address
// when it names a routable one, else the first IPv4 address of the link
// holding the default route (the address kube-apiserver advertises by
// default). Never 0.0.0.0: a host resolver on 127.0.0.53 or on another
// address must not be in the way.
func dnsAddress(listen string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--listen %q: %w", listen, err)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() && a.IsGlobalUnicast() {
		return a, nil
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cluster DNS: find the node's address: list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
			continue
		}
		if a, ok := netip.AddrFromSlice(r.Src.To4()); ok && a.IsGlobalUnicast() {
			return a, nil
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if a, ok := netip.AddrFromSlice(ad.IP.To4()); ok && a.IsGlobalUnicast() {
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("cluster DNS: no address for pods to reach it at: --listen %s names none and no link holds a default route; "+
		"give --listen this node's address", listen)
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
