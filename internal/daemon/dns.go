package daemon

import (
	"fmt"
	"net/netip"

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

// dnsAddress is where this server's cluster DNS listens: the address it
// advertises for the kubernetes Service (apiserver.AdvertisedAddress:
// --advertise-address, else --listen's when it names one, else the
// default route's). Never 0.0.0.0: a host resolver on 127.0.0.53 or on
// another address must not be in the way.
func dnsAddress(advertise, listen string) (netip.Addr, error) {
	a, ok, err := apiserver.AdvertisedAddress(advertise, listen)
	if err != nil {
		return netip.Addr{}, err
	}
	if !ok {
		return netip.Addr{}, fmt.Errorf("cluster DNS: no address for pods to reach it at: --listen %s names none and no link holds a default route; "+
			"give --advertise-address this node's address", listen)
	}
	return a, nil
}
