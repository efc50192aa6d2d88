// Package clusternetwork holds the pod network settings a whole cluster
// shares, and the ConfigMap that carries them from the server to every node.
//
// Usage:
//
//  1. `peapod server` fills Settings from its flags (--cluster-cidr,
//     --node-cidr-mask-size, --service-cidr, --network-backend) and calls
//     Validate before it starts anything, so a bad flag leaves nothing
//     behind.
//  2. Once its API serves, the server calls Ensure: the first start
//     publishes the settings in ConfigMap kube-system/peapod-network; a
//     later start with settings that disagree is refused, because every
//     Node's podCIDR and every Service IP were carved from the stored ones.
//  3. Every node calls Read (waiting, with a watch, until the ConfigMap
//     exists) and configures its pod network from it: the cluster range it
//     must not masquerade and the backend that carries traffic to peers.
//
// The annotation keys nodes publish on their own Node for their peers are
// here too, so that readers and writers share one spelling.
package clusternetwork

import (
	"fmt"
	"net/netip"
	"strconv"
)

// ConfigMap that carries the settings, and its data keys.
const (
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "peapod-network"

	KeyClusterCIDR      = "clusterCIDR"
	KeyNodeCIDRMaskSize = "nodeCIDRMaskSize"
	KeyServiceCIDR      = "serviceCIDR"
	KeyBackend          = "backend"
)

// Backends: how pod traffic crosses between nodes.
const (
	// BackendVXLAN encapsulates pod traffic in VXLAN (VNI 1, UDP 8472)
	// between node IPs, as flannel's vxlan backend.
	BackendVXLAN = "vxlan"
	// BackendHostGW routes each peer's podCIDR via the peer's node IP,
	// which needs every node on one L2 segment, as flannel's host-gw.
	BackendHostGW = "host-gw"
	// BackendNone leaves traffic between nodes to the user's own CNI
	// configuration.
	BackendNone = "none"
)

// Annotations a node writes on its own Node, read by its peers. Only
// internal/nodenet writes them, once its Setup knows the values (the VTEP
// MAC exists only then); node registration writes none.
const (
	// AnnotationBackendType is the backend the node programs (vxlan or
	// host-gw; absent with none).
	AnnotationBackendType = "network.peapod.io/backend-type"
	// AnnotationPublicIP is the node's underlay address (--node-ip).
	AnnotationPublicIP = "network.peapod.io/public-ip"
	// AnnotationVTEPMAC is the MAC of the node's VXLAN device (vxlan only).
	AnnotationVTEPMAC = "network.peapod.io/vtep-mac"
)

// Defaults of `peapod server`, as k3s's.
const (
	DefaultClusterCIDR      = "10.42.0.0/16"
	DefaultNodeCIDRMaskSize = 24
	DefaultServiceCIDR      = "10.96.0.0/12"
	DefaultBackend          = BackendVXLAN
)

// Settings are the network settings of one cluster.
type Settings struct {
	// ClusterCIDR is the whole pod network; every Node's podCIDR is carved
	// from it, and traffic within it is never masqueraded.
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each Node's podCIDR.
	NodeCIDRMaskSize int
	// ServiceCIDR is the range Service ClusterIPs come from.
	ServiceCIDR string
	// Backend is BackendVXLAN, BackendHostGW or BackendNone.
	Backend string
}

// Defaults returns the settings of a server given no network flags.
func Defaults() Settings {
	return Settings{
		ClusterCIDR:      DefaultClusterCIDR,
		NodeCIDRMaskSize: DefaultNodeCIDRMaskSize,
		ServiceCIDR:      DefaultServiceCIDR,
		Backend:          DefaultBackend,
	}
}

// maxNodeCIDRMaskSize leaves a node's range room for its network address,
// the bridge's gateway address, one pod and the broadcast address.
const maxNodeCIDRMaskSize = 30

// Service ranges the API server's ClusterIP allocator accepts.
const (
	minServicePrefix = 8
	maxServicePrefix = 30
)

// Validate reports the first setting that cannot work, naming its
// `peapod server` flag. It is pure.
func (s Settings) Validate() error {
	cluster, err := ParseIPv4Prefix(s.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("--cluster-cidr %q: %w", s.ClusterCIDR, err)
	}
	switch {
	case s.NodeCIDRMaskSize < cluster.Bits():
		return fmt.Errorf("--node-cidr-mask-size %d: smaller than --cluster-cidr %s's prefix length /%d; a node's range must fit in the cluster's",
			s.NodeCIDRMaskSize, cluster, cluster.Bits())
	case s.NodeCIDRMaskSize > maxNodeCIDRMaskSize:
		return fmt.Errorf("--node-cidr-mask-size %d: leaves no room for pods; at most %d (a /30 holds the gateway and one pod)",
			s.NodeCIDRMaskSize, maxNodeCIDRMaskSize)
	}
	service, err := ParseIPv4Prefix(s.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("--service-cidr %q: %w", s.ServiceCIDR, err)
	}
	if service.Bits() < minServicePrefix || service.Bits() > maxServicePrefix {
		return fmt.Errorf("--service-cidr %s: prefix length must be between /%d and /%d", service, minServicePrefix, maxServicePrefix)
	}
	if cluster.Overlaps(service) {
		return fmt.Errorf("--service-cidr %s overlaps --cluster-cidr %s: Service IPs and pod IPs must not share addresses", service, cluster)
	}
	switch s.Backend {
	case BackendVXLAN, BackendHostGW, BackendNone:
	default:
		return fmt.Errorf("--network-backend %q: unknown; want %s, %s or %s", s.Backend, BackendVXLAN, BackendHostGW, BackendNone)
	}
	return nil
}

// ParseIPv4Prefix parses an IPv4 network in CIDR notation whose host bits
// are zero; its errors say what is wrong without naming the setting.
func ParseIPv4Prefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR (want e.g. %s)", DefaultClusterCIDR)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("not IPv4 (peapod's pod and Service networks are IPv4 only)")
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("host bits are set (did you mean %s?)", p.Masked())
	}
	return p, nil
}

// ClusterPrefix returns ClusterCIDR parsed; call it on validated settings.
func (s Settings) ClusterPrefix() netip.Prefix {
	p, _ := netip.ParsePrefix(s.ClusterCIDR)
	return p
}

// Data renders the settings as the ConfigMap's data.
func (s Settings) Data() map[string]string {
	return map[string]string{
		KeyClusterCIDR:      s.ClusterCIDR,
		KeyNodeCIDRMaskSize: strconv.Itoa(s.NodeCIDRMaskSize),
		KeyServiceCIDR:      s.ServiceCIDR,
		KeyBackend:          s.Backend,
	}
}

// FromData parses and validates the ConfigMap's data; errors name the key.
func FromData(data map[string]string) (Settings, error) {
	for _, k := range []string{KeyClusterCIDR, KeyNodeCIDRMaskSize, KeyServiceCIDR, KeyBackend} {
		if data[k] == "" {
			return Settings{}, fmt.Errorf("ConfigMap %s/%s: data.%s is missing", ConfigMapNamespace, ConfigMapName, k)
		}
	}
	size, err := strconv.Atoi(data[KeyNodeCIDRMaskSize])
	if err != nil {
		return Settings{}, fmt.Errorf("ConfigMap %s/%s: data.%s %q is not a number", ConfigMapNamespace, ConfigMapName, KeyNodeCIDRMaskSize, data[KeyNodeCIDRMaskSize])
	}
	s := Settings{
		ClusterCIDR:      data[KeyClusterCIDR],
		NodeCIDRMaskSize: size,
		ServiceCIDR:      data[KeyServiceCIDR],
		Backend:          data[KeyBackend],
	}
	if err := s.Validate(); err != nil {
		return Settings{}, fmt.Errorf("ConfigMap %s/%s holds settings peapod cannot use: %w", ConfigMapNamespace, ConfigMapName, err)
	}
	return s, nil
}

// CheckUnchanged reports, naming the flag, the first setting s changes
// from stored, the settings the cluster already uses. Every one of them
// is fixed for a cluster's life: Nodes' podCIDRs are carved from the
// cluster range by the mask size, Service IPs from the service range, and
// every node programs the backend. It is pure.
func (s Settings) CheckUnchanged(stored Settings) error {
	strand := func(flag, now, was, what string) error {
		return fmt.Errorf("%s %s: the cluster already uses %s (ConfigMap %s/%s); changing it would strand %s. "+
			"Start the server with %s %s, or make a new cluster with a new data dir",
			flag, now, was, ConfigMapNamespace, ConfigMapName, what, flag, was)
	}
	switch {
	case s.ClusterCIDR != stored.ClusterCIDR:
		return strand("--cluster-cidr", s.ClusterCIDR, stored.ClusterCIDR, "every node's pod range")
	case s.NodeCIDRMaskSize != stored.NodeCIDRMaskSize:
		return strand("--node-cidr-mask-size", strconv.Itoa(s.NodeCIDRMaskSize), strconv.Itoa(stored.NodeCIDRMaskSize), "every node's pod range")
	case s.ServiceCIDR != stored.ServiceCIDR:
		return strand("--service-cidr", s.ServiceCIDR, stored.ServiceCIDR, "every Service's ClusterIP")
	case s.Backend != stored.Backend:
		return strand("--network-backend", s.Backend, stored.Backend, "the routes every node programmed for its peers")
	}
	return nil
}
