package daemon

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/dns"
	"github.com/peapod/peapod/internal/nodeaddr"
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
// agents and pods reach the server at, the one it advertises for the
// kubernetes Service. That is --advertise-address, else the API's --listen
// address when it names a routable one, else the first IPv4 address of
// the link holding the default route (kube-apiserver's default). Never
// 0.0.0.0: a host resolver on 127.0.0.53 or on another address must not
// be in the way.
func dnsAddress(advertise, listen string) (netip.Addr, error) {
	if advertise != "" {
		a, err := netip.ParseAddr(advertise)
		if err != nil || !a.Is4() || !a.IsGlobalUnicast() {
			return netip.Addr{}, fmt.Errorf("--advertise-address %q: want an IPv4 address pods can reach", advertise)
		}
		return a, nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--listen %q: %w", listen, err)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() && a.IsGlobalUnicast() {
		return a, nil
	}
	a, ok, err := nodeaddr.DefaultRoute()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cluster DNS: find the node's address: %w", err)
	}
	if ok {
		return a.IP, nil
	}
	return netip.Addr{}, fmt.Errorf("cluster DNS: no address for pods to reach it at: --listen %s names none and no link holds a default route; "+
		"give --advertise-address this node's address", listen)
}
