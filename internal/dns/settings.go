package dns

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of `peapod server`.
const (
	// DefaultClusterDomain is the cluster's DNS domain (the kubelet's and
	// kubeadm's default).
	DefaultClusterDomain = "cluster.local"
	// DefaultPort is where the DNS server listens on the server's node
	// address, and the kube-dns Service's port.
	DefaultPort = 53
	// clusterDNSOffset: kubeadm gives kube-dns the 10th address of the
	// Service range (10.96.0.10 in 10.96.0.0/12).
	clusterDNSOffset = 10
)

// Keys of the cluster's network settings ConfigMap (kube-system/peapod-network)
// that tell every node the cluster DNS address and domain for its pods'
// resolv.conf.
const (
	KeyClusterDNS    = "clusterDNS"
	KeyClusterDomain = "clusterDomain"
)

// Settings configure the cluster DNS of `peapod server`.
type Settings struct {
	// ClusterDNS is the kube-dns Service's ClusterIP (--cluster-dns), the
	// nameserver of every ClusterFirst pod. Invalid means the 10th address
	// of the Service range.
	ClusterDNS netip.Addr
	// ClusterDomain is the cluster's DNS zone (--cluster-domain), without a
	// trailing dot.
	ClusterDomain string
	// Port is the port the DNS server listens on (--cluster-dns-port), UDP
	// and TCP; the kube-dns Service's port 53 targets it.
	Port int
	// Upstreams are the resolvers names outside the cluster are forwarded
	// to, as host:port (--cluster-dns-upstream); empty means the node's own
	// (see HostUpstreams).
	Upstreams []string
}

// DefaultClusterDNS returns the 10th address of serviceCIDR, as kubeadm
// picks kube-dns's ClusterIP.
func DefaultClusterDNS(serviceCIDR string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
	}
	a := p.Masked().Addr()
	for range clusterDNSOffset {
		a = a.Next()
	}
	if !p.Contains(a) {
		return netip.Addr{}, fmt.Errorf("service CIDR %s is too small for the cluster DNS address (its 10th address)", p)
	}
	return a, nil
}

// Complete fills the defaults and validates s against the Service range
// serviceCIDR. Errors name the `peapod server` flag. It is pure.
func (s Settings) Complete(serviceCIDR string) (Settings, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return s, fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
	}
	if !s.ClusterDNS.IsValid() {
		if s.ClusterDNS, err = DefaultClusterDNS(serviceCIDR); err != nil {
			return s, fmt.Errorf("--cluster-dns: %w", err)
		}
	}
	p = p.Masked()
	last := lastAddr(p)
	switch {
	case !p.Contains(s.ClusterDNS):
		return s, fmt.Errorf("--cluster-dns %s: not in the Service range %s; the kube-dns Service's ClusterIP must come from it", s.ClusterDNS, p)
	case s.ClusterDNS == p.Addr() || s.ClusterDNS == last:
		return s, fmt.Errorf("--cluster-dns %s: the network or broadcast address of the Service range %s; pick an address inside it", s.ClusterDNS, p)
	case s.ClusterDNS == p.Addr().Next():
		return s, fmt.Errorf("--cluster-dns %s: the kubernetes Service's ClusterIP (the first address of %s); pick another", s.ClusterDNS, p)
	}
	if s.ClusterDomain == "" {
		s.ClusterDomain = DefaultClusterDomain
	}
	s.ClusterDomain = strings.ToLower(strings.TrimSuffix(s.ClusterDomain, "."))
	if msgs := validation.IsDNS1123Subdomain(s.ClusterDomain); len(msgs) > 0 {
		return s, fmt.Errorf("--cluster-domain %q: %s", s.ClusterDomain, strings.Join(msgs, "; "))
	}
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.Port < 1 || s.Port > 65535 {
		return s, fmt.Errorf("--cluster-dns-port %d: must be between 1 and 65535", s.Port)
	}
	for i, u := range s.Upstreams {
		norm, err := normalizeUpstream(u)
		if err != nil {
			return s, fmt.Errorf("--cluster-dns-upstream %q: %w", u, err)
		}
		s.Upstreams[i] = norm
	}
	return s, nil
}

// normalizeUpstream turns "IP" or "IP:port" into "IP:port" (port 53 by
// default), refusing host names: the forwarder must not need DNS itself.
func normalizeUpstream(u string) (string, error) {
	if a, err := netip.ParseAddr(u); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return "", fmt.Errorf("want IP or IP:PORT")
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address (the forwarder must not need DNS to reach its upstream)", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q: must be between 1 and 65535", port)
	}
	return netip.AddrPortFrom(a, uint16(n)).String(), nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	hostBits := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// NodeSettings are what a node needs of the cluster DNS: the nameserver
// and search domain of its pods' resolv.conf (the kubelet's clusterDNS
// and clusterDomain).
type NodeSettings struct {
	// ClusterDNS is the nameserver of ClusterFirst pods; none means such
	// pods fall back to the node's own resolv.conf, as the kubelet's do.
	ClusterDNS []string
	// ClusterDomain is the search domain suffix, e.g. cluster.local.
	ClusterDomain string
}

// Node returns the settings s gives every node.
func (s Settings) Node() NodeSettings {
	return NodeSettings{ClusterDNS: []string{s.ClusterDNS.String()}, ClusterDomain: s.ClusterDomain}
}

// Data renders n as the two keys of the cluster's network settings
// ConfigMap.
func (n NodeSettings) Data() map[string]string {
	return map[string]string{KeyClusterDNS: strings.Join(n.ClusterDNS, ","), KeyClusterDomain: n.ClusterDomain}
}

// NodeSettingsFromData parses the two keys; errors name the key.
func NodeSettingsFromData(data map[string]string) (NodeSettings, error) {
	var n NodeSettings
	for _, s := range strings.Split(data[KeyClusterDNS], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, err := netip.ParseAddr(s); err != nil {
			return n, fmt.Errorf("data.%s %q: not an IP address", KeyClusterDNS, s)
		}
		n.ClusterDNS = append(n.ClusterDNS, s)
	}
	if len(n.ClusterDNS) == 0 {
		return n, fmt.Errorf("data.%s is missing", KeyClusterDNS)
	}
	n.ClusterDomain = data[KeyClusterDomain]
	if msgs := validation.IsDNS1123Subdomain(n.ClusterDomain); len(msgs) > 0 {
		return n, fmt.Errorf("data.%s %q: %s", KeyClusterDomain, n.ClusterDomain, strings.Join(msgs, "; "))
	}
	return n, nil
}
