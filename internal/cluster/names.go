package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

const (
	// DefaultName names a cluster when --name is not given.
	DefaultName = "peapod"
	// DefaultClusterCIDR is the pod network of the whole cluster, as the
	// server's --cluster-cidr defaults to.
	DefaultClusterCIDR = "10.42.0.0/16"
	// DefaultBackend is the pod network between nodes the server uses
	// unless told otherwise.
	DefaultBackend = "vxlan"
	// MaxNodes bounds a cluster by the veth names (ppv-<name>-<i>, at most
	// 15 characters) and by sanity on one machine.
	MaxNodes = 99
	// apiPort is where node 1's API server listens on its underlay address.
	apiPort = 6443
	// cgroupRoot holds one cgroup subtree per cluster, one per node below it.
	cgroupRoot = "peapod-cluster"
	// stateFileName is the cluster's record in its directory.
	stateFileName = "cluster.json"
	// netnsPrefix starts every node namespace's name; pods' namespaces are
	// peapod-<sandbox id>, so neither is ever mistaken for the other.
	netnsPrefix = "pp-"
)

// Backends are the values of --network-backend.
func Backends() []string { return []string{"vxlan", "host-gw", "none"} }

// defaultUnderlays is where Up looks for a free underlay range: the
// 172.31.X.0/24 ranges, at the top of the 172.16.0.0/12 private block,
// which home and cloud networks rarely use.
func defaultUnderlays() []*net.IPNet {
	var out []*net.IPNet
	for x := 0; x < 256; x++ {
		out = append(out, &net.IPNet{IP: net.IPv4(172, 31, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)})
	}
	return out
}

// DefaultDir is where a cluster named name keeps its state unless --dir says otherwise.
func DefaultDir(name string) string { return filepath.Join("/var/lib/peapod-clusters", name) }

var nameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,6}[a-z0-9])?$`)

// ValidateName checks a cluster name: it becomes part of Kubernetes node
// names and of Linux interface names (ppv-<name>-<i>), which the kernel
// limits to 15 characters.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("--name %q: want 1 to 8 lowercase letters, digits or '-', starting with a letter and not ending with '-' (it names the bridge ppu-NAME and veths ppv-NAME-I, which Linux limits to 15 characters)", name)
	}
	return nil
}

// NodeName is the Kubernetes name of node i (from 1) of cluster name.
func NodeName(name string, i int) string { return fmt.Sprintf("%s-node%d", name, i) }

func netnsName(nodeName string) string      { return netnsPrefix + nodeName }
func underlayBridge(name string) string     { return "ppu-" + name }
func hostVeth(name string, i int) string    { return fmt.Sprintf("ppv-%s-%d", name, i) }
func podBridge(i int) string                { return fmt.Sprintf("ppbr%d", i) }
func cgroupParent(name, node string) string { return path.Join(cgroupRoot, name, node) }

// nodeLinkName is the node's end of its underlay veth, inside its
// namespace: eth0, as on a machine.
const nodeLinkName = "eth0"

// underlayAddrs are the bridge's (host's) address and node i's address in
// the underlay range: the first usable address for the host, the next ones
// for the nodes in order.
func underlayAddr(underlay *net.IPNet, i int) (*net.IPNet, error) {
	base := underlay.IP.To4()
	if base == nil {
		return nil, fmt.Errorf("underlay %s: IPv4 only", underlay)
	}
	ones, bits := underlay.Mask.Size()
	size := uint64(1) << uint(bits-ones)
	// network address and broadcast are not usable; index 0 is the host.
	if uint64(i)+2 > size-1 || size < 4 {
		return nil, fmt.Errorf("underlay %s has no room for node %d", underlay, i)
	}
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(base)+uint32(i)+1)
	return &net.IPNet{IP: ip, Mask: underlay.Mask}, nil
}

// parseUnderlay validates --underlay-cidr for n nodes (plus the host).
func parseUnderlay(cidr string, nodes int) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("--underlay-cidr %q: %w", cidr, err)
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("--underlay-cidr %q: IPv4 only", cidr)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("--underlay-cidr %q: not a network address (did you mean %s?)", cidr, n)
	}
	n.IP = n.IP.To4()
	if _, err := underlayAddr(n, nodes); err != nil {
		return nil, fmt.Errorf("--underlay-cidr %q: too small for %d nodes and the host", cidr, nodes)
	}
	return n, nil
}

// pickUnderlay returns the first candidate range that overlaps none of
// inUse (the host's addresses and routes).
func pickUnderlay(candidates, inUse []*net.IPNet) (*net.IPNet, error) {
	for _, c := range candidates {
		if !overlapsAny(c, inUse) {
			return c, nil
		}
	}
	return nil, errors.New("no free underlay range among 172.31.0.0/24 to 172.31.255.0/24; give one with --underlay-cidr")
}

func overlapsAny(n *net.IPNet, others []*net.IPNet) bool {
	for _, o := range others {
		if n.Contains(o.IP) || o.Contains(n.IP) {
			return true
		}
	}
	return false
}

// parseClusterCIDR validates --cluster-cidr: IPv4, and room for a /24 per
// node when peapod gives the ranges out itself.
func parseClusterCIDR(cidr string, nodes int) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("--cluster-cidr %q: %w", cidr, err)
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("--cluster-cidr %q: IPv4 only", cidr)
	}
	if ones, _ := n.Mask.Size(); ones > 24 || 1<<(24-ones) < nodes {
		return nil, fmt.Errorf("--cluster-cidr %q: too small for a /24 per node for %d nodes", cidr, nodes)
	}
	n.IP = n.IP.To4()
	return n, nil
}

// nodePodCIDR is the i-th (from 1) /24 of the cluster range.
func nodePodCIDR(cluster *net.IPNet, i int) string {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.BigEndian.Uint32(cluster.IP.To4())+uint32(i-1)<<8)
	return (&net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}).String()
}

// Features says which flags the peapod binary's server and agent have, so
// one version of this package drives binaries from before and after a
// flag was added (cmd/peapod fills it in from its own commands).
type Features struct {
	// NetworkBackend: `peapod server --network-backend`.
	NetworkBackend bool
	// ServerAllocatesPodCIDRs: the server gives each Node its podCIDR from
	// --cluster-cidr (node IPAM); agents take no --pod-cidr.
	ServerAllocatesPodCIDRs bool
	// NodeIP: node commands take --node-ip.
	NodeIP bool
}

// podRangeFlags is the one place that decides which pod-range flags node
// i gets, and podCIDR is the range it was given ("" when the server gives
// ranges out). Until the server allocates ranges, each node gets the i-th
// /24 of the cluster range and the cluster range (never masqueraded);
// after, only the server gets the cluster range.
func podRangeFlags(f Features, cluster *net.IPNet, i int, server bool) (flags []string, podCIDR string) {
	if f.ServerAllocatesPodCIDRs {
		if server {
			return []string{"--cluster-cidr", cluster.String()}, ""
		}
		return nil, ""
	}
	podCIDR = nodePodCIDR(cluster, i)
	return []string{"--pod-cidr", podCIDR, "--cluster-cidr", cluster.String()}, podCIDR
}

// nodeRef resolves a node named by its Kubernetes name or its number, or
// an etcd member by its name.
func (s *State) nodeRef(ref string) (*Node, error) {
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Name == ref || strconv.Itoa(n.Index) == ref {
			return n, nil
		}
	}
	for i := range s.Etcd {
		if s.Etcd[i].Name == ref {
			return &s.Etcd[i], nil
		}
	}
	names := make([]string, 0, len(s.Nodes)+len(s.Etcd))
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	for _, m := range s.Etcd {
		names = append(names, m.Name)
	}
	return nil, fmt.Errorf("no node %q in cluster %s (nodes: %s)", ref, s.Name, strings.Join(names, ", "))
}
