package nodenet

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Backend is how pod traffic crosses between nodes; one per cluster.
type Backend string

const (
	// BackendVXLAN encapsulates pod traffic in VXLAN (VNI 1, UDP 8472)
	// between the nodes' underlay addresses: works across any IP underlay.
	BackendVXLAN Backend = "vxlan"
	// BackendHostGW routes each peer's podCIDR via the peer's node IP: no
	// encapsulation, but every node must be on one L2 segment.
	BackendHostGW Backend = "host-gw"
	// BackendNone programs nothing between nodes: the user's own CNI
	// conflist carries cross-node traffic.
	BackendNone Backend = "none"
)

// Backends lists the valid backends, for flag help and errors.
var Backends = []Backend{BackendVXLAN, BackendHostGW, BackendNone}

// ParseBackend returns the backend named s, or an error listing the valid ones.
func ParseBackend(s string) (Backend, error) {
	for _, b := range Backends {
		if string(b) == s {
			return b, nil
		}
	}
	return "", fmt.Errorf("unknown network backend %q (want %s)", s, backendList())
}

func backendList() string {
	names := make([]string, len(Backends))
	for i, b := range Backends {
		names[i] = string(b)
	}
	return strings.Join(names, ", ")
}

// ChecksumOffload says whether the VXLAN device keeps the kernel's TX
// checksum offload, which some kernels get wrong for VXLAN (flannel's
// documented workaround is `ethtool -K flannel.1 tx-checksum-ip-generic off`).
type ChecksumOffload string

const (
	// ChecksumOffloadAuto turns the offload off only on kernels older than
	// 5.7, whose NAT corrupts the UDP checksum of VXLAN packets (calico
	// #3145, fixed by "netfilter: nat: never update the UDP checksum when
	// it's 0"); newer kernels keep it, as it is worth several percent of
	// throughput.
	ChecksumOffloadAuto ChecksumOffload = ""
	// ChecksumOffloadOff always turns it off: for underlays behind NAT,
	// where flannel's troubleshooting guide applies the workaround on any
	// kernel (flannel #1279).
	ChecksumOffloadOff ChecksumOffload = "off"
	// ChecksumOffloadOn always leaves it on.
	ChecksumOffloadOn ChecksumOffload = "on"
)

// DefaultDevice is the name of the VXLAN device (the contract's peapod.1,
// as flannel's flannel.1 names the VNI).
const DefaultDevice = "peapod.1"

// VNI and Port are the VXLAN network identifier and UDP port every node
// uses (flannel's defaults, and the Linux kernel's legacy port).
const (
	VNI  = 1
	Port = 8472
)

// vxlanOverhead is what VXLAN encapsulation adds to each packet over IPv4:
// outer IP (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
const vxlanOverhead = 50

// Config is one node's share of the pod network between nodes.
type Config struct {
	// Backend is the cluster's backend (the server's --network-backend).
	Backend Backend
	// NodeName is this node's Node name; its own Node is never a peer.
	NodeName string
	// NodeIP is this node's underlay IPv4 address (--node-ip): the VXLAN
	// tunnel's local address and the address peers route to. It must be
	// configured on a link of the node (checked by Setup). Unused by
	// BackendNone.
	NodeIP string
	// PodCIDR is this node's pod range (the Node's spec.podCIDR).
	PodCIDR string
	// ClusterCIDR is the whole pod network; it contains every PodCIDR and
	// is forwarded even when the FORWARD policy is DROP.
	ClusterCIDR string
	// StateDir keeps what must survive restarts: the VTEP MAC (so peers'
	// FDB and neighbour entries stay valid), the config Setup applied and
	// the peers Sync last programmed (for Status and Teardown).
	StateDir string
	// Device names the VXLAN device; empty means DefaultDevice.
	Device string
	// NetNS, if set, is the path of the network namespace to program (a
	// node of `peapod cluster up`, or a test's); empty means the calling
	// process's namespace.
	NetNS string
	// ChecksumOffload decides the VXLAN checksum-offload workaround.
	ChecksumOffload ChecksumOffload
}

// settings is a validated Config, parsed.
type settings struct {
	Config
	nodeIP      netip.Addr
	podCIDR     netip.Prefix
	clusterCIDR netip.Prefix
}

// validate checks cfg without touching the kernel and returns it parsed,
// with defaults filled in. Errors name the Config field.
func validate(cfg Config) (settings, error) {
	s := settings{Config: cfg}
	if s.Device == "" {
		s.Device = DefaultDevice
	}
	if _, err := ParseBackend(string(cfg.Backend)); err != nil {
		return s, fmt.Errorf("nodenet config: Backend: %w", err)
	}
	if cfg.NodeName == "" {
		return s, fmt.Errorf("nodenet config: NodeName is empty")
	}
	if err := checkLinkName(s.Device); err != nil {
		return s, fmt.Errorf("nodenet config: Device %q: %w", s.Device, err)
	}
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return s, fmt.Errorf("nodenet config: StateDir %q: must be an absolute path", cfg.StateDir)
	}
	if cfg.NetNS != "" && !filepath.IsAbs(cfg.NetNS) {
		return s, fmt.Errorf("nodenet config: NetNS %q: must be an absolute path", cfg.NetNS)
	}
	switch cfg.ChecksumOffload {
	case ChecksumOffloadAuto, ChecksumOffloadOff, ChecksumOffloadOn:
	default:
		return s, fmt.Errorf("nodenet config: ChecksumOffload %q: want off, on or empty (auto)", cfg.ChecksumOffload)
	}
	var err error
	if s.clusterCIDR, err = parseNetwork("ClusterCIDR", cfg.ClusterCIDR); err != nil {
		return s, err
	}
	if s.podCIDR, err = parseNetwork("PodCIDR", cfg.PodCIDR); err != nil {
		return s, err
	}
	if s.podCIDR.Bits() < s.clusterCIDR.Bits() || !s.clusterCIDR.Contains(s.podCIDR.Addr()) {
		return s, fmt.Errorf("nodenet config: PodCIDR %s is outside ClusterCIDR %s", s.podCIDR, s.clusterCIDR)
	}
	if s.podCIDR.Bits() > 30 {
		return s, fmt.Errorf("nodenet config: PodCIDR %s: too small for pods (want /30 or larger)", s.podCIDR)
	}
	if cfg.Backend == BackendNone && cfg.NodeIP == "" {
		return s, nil
	}
	if s.nodeIP, err = netip.ParseAddr(cfg.NodeIP); err != nil || !s.nodeIP.Is4() {
		return s, fmt.Errorf("nodenet config: NodeIP %q: not an IPv4 address", cfg.NodeIP)
	}
	if s.clusterCIDR.Contains(s.nodeIP) {
		return s, fmt.Errorf("nodenet config: NodeIP %s is inside ClusterCIDR %s: the underlay and the pod network must not overlap", s.nodeIP, s.clusterCIDR)
	}
	return s, nil
}

// parseNetwork parses an IPv4 network in canonical form (the network
// address, as Kubernetes writes podCIDRs).
func parseNetwork(field, value string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(value)
	if err != nil || !p.Addr().Is4() {
		return p, fmt.Errorf("nodenet config: %s %q: not an IPv4 CIDR", field, value)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("nodenet config: %s %s: not a network address (want %s)", field, p, p.Masked())
	}
	return p, nil
}

// checkLinkName reports why name cannot name a Linux network interface.
func checkLinkName(name string) error {
	if len(name) > 15 {
		return fmt.Errorf("longer than 15 characters")
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("not a valid interface name")
	}
	return nil
}
