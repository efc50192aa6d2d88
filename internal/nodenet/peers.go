package nodenet

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/clusternetwork"
)

// The annotations each node writes on its own Node for its peers to read
// (the contract of issue 10; flannel's kube subnet manager keeps the same
// three under flannel.alpha.coreos.com/). Their spelling is
// clusternetwork's; nodenet is the only writer (Publish, Run).
const (
	AnnotationBackendType = clusternetwork.AnnotationBackendType
	AnnotationPublicIP    = clusternetwork.AnnotationPublicIP
	AnnotationVTEPMAC     = clusternetwork.AnnotationVTEPMAC
)

// Peer is another node as this node's kernel needs it.
type Peer struct {
	// Name is the peer's Node name.
	Name string
	// NodeIP is the peer's underlay address (its public-ip annotation).
	NodeIP netip.Addr
	// PodCIDR is the peer's pod range (its spec.podCIDR).
	PodCIDR netip.Prefix
	// VTEPMAC is the MAC of the peer's VXLAN device (vxlan only).
	VTEPMAC net.HardwareAddr
}

// Rejection is a Node that PeersFromNodes could not use, and why.
type Rejection struct {
	Node   string
	Reason string
}

func (r Rejection) String() string { return "node " + r.Node + ": " + r.Reason }

// Self is what PeersFromNodes needs to know of this node.
type Self struct {
	Name        string
	Backend     Backend
	NodeIP      netip.Addr
	PodCIDR     netip.Prefix
	ClusterCIDR netip.Prefix
}

// PeersFromNodes returns the peers of self among nodes, sorted by name. It
// is pure. Nodes not ready to be peers yet are skipped silently: self,
// nodes without a podCIDR, and nodes that have not published their
// backend annotations (or, for vxlan, their VTEP MAC). Nodes whose
// annotations or podCIDR are malformed or disagree with this cluster
// (another backend; a podCIDR outside the cluster range or overlapping
// self's or an earlier peer's; self's node IP or an earlier peer's node
// IP or VTEP MAC) are returned as rejections with the reason, for the
// caller to log; "earlier" is in name order, so every node decides alike.
// With BackendNone there are no peers.
func PeersFromNodes(nodes []*corev1.Node, self Self) ([]Peer, []Rejection) {
	if self.Backend == BackendNone {
		return nil, nil
	}
	sorted := append([]*corev1.Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var peers []Peer
	var rejected []Rejection
	for _, node := range sorted {
		if node == nil || node.Name == self.Name {
			continue
		}
		p, skip, reason := peerFromNode(node, self.Backend, self.ClusterCIDR)
		if skip {
			continue
		}
		if reason == "" {
			reason = conflictReason(p, self, peers)
		}
		if reason != "" {
			rejected = append(rejected, Rejection{Node: node.Name, Reason: reason})
			continue
		}
		peers = append(peers, p)
	}
	return peers, rejected
}

// peerFromNode reads one Node: skip says it is not ready to be a peer (not
// an error), reason says why it is unusable.
func peerFromNode(node *corev1.Node, backend Backend, clusterCIDR netip.Prefix) (p Peer, skip bool, reason string) {
	p.Name = node.Name
	cidr := node.Spec.PodCIDR
	if cidr == "" && len(node.Spec.PodCIDRs) > 0 {
		cidr = node.Spec.PodCIDRs[0]
	}
	ann := node.Annotations
	if cidr == "" || ann[AnnotationBackendType] == "" || ann[AnnotationPublicIP] == "" {
		return p, true, ""
	}
	if got := ann[AnnotationBackendType]; got != string(backend) {
		return p, false, fmt.Sprintf("annotation %s is %q, but this cluster's backend is %q", AnnotationBackendType, got, backend)
	}
	var err error
	if p.PodCIDR, err = netip.ParsePrefix(cidr); err != nil || !p.PodCIDR.Addr().Is4() || p.PodCIDR.Masked() != p.PodCIDR {
		return p, false, fmt.Sprintf("spec.podCIDR %q is not an IPv4 network address", cidr)
	}
	if p.PodCIDR.Bits() < clusterCIDR.Bits() || !clusterCIDR.Contains(p.PodCIDR.Addr()) {
		return p, false, fmt.Sprintf("spec.podCIDR %s is outside the cluster range %s", p.PodCIDR, clusterCIDR)
	}
	if p.NodeIP, err = netip.ParseAddr(ann[AnnotationPublicIP]); err != nil || !p.NodeIP.Is4() {
		return p, false, fmt.Sprintf("annotation %s %q is not an IPv4 address", AnnotationPublicIP, ann[AnnotationPublicIP])
	}
	if clusterCIDR.Contains(p.NodeIP) {
		return p, false, fmt.Sprintf("annotation %s %s is inside the cluster range %s", AnnotationPublicIP, p.NodeIP, clusterCIDR)
	}
	if backend != BackendVXLAN {
		return p, false, ""
	}
	mac := ann[AnnotationVTEPMAC]
	if mac == "" {
		return p, true, ""
	}
	if p.VTEPMAC, err = parseVTEPMAC(mac); err != nil {
		return p, false, fmt.Sprintf("annotation %s %q: %v", AnnotationVTEPMAC, mac, err)
	}
	return p, false, ""
}

// parseVTEPMAC accepts a unicast 48-bit Ethernet address.
func parseVTEPMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, err
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("not a 48-bit Ethernet address")
	}
	if mac[0]&1 == 1 {
		return nil, fmt.Errorf("a multicast address")
	}
	if isZero(mac) {
		return nil, fmt.Errorf("the zero address")
	}
	return mac, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// conflictReason says why p cannot be a peer beside self and the peers
// accepted so far, or "".
func conflictReason(p Peer, self Self, accepted []Peer) string {
	if self.PodCIDR.IsValid() && p.PodCIDR.Overlaps(self.PodCIDR) {
		return fmt.Sprintf("spec.podCIDR %s overlaps this node's %s", p.PodCIDR, self.PodCIDR)
	}
	if p.NodeIP == self.NodeIP {
		return fmt.Sprintf("annotation %s %s is this node's own address", AnnotationPublicIP, p.NodeIP)
	}
	for _, q := range accepted {
		if p.NodeIP == q.NodeIP {
			return fmt.Sprintf("annotation %s %s is also node %s's", AnnotationPublicIP, p.NodeIP, q.Name)
		}
		if p.PodCIDR.Overlaps(q.PodCIDR) {
			return fmt.Sprintf("spec.podCIDR %s overlaps node %s's %s", p.PodCIDR, q.Name, q.PodCIDR)
		}
		if p.VTEPMAC != nil && p.VTEPMAC.String() == q.VTEPMAC.String() {
			return fmt.Sprintf("VTEP MAC %s is also node %s's", p.VTEPMAC, q.Name)
		}
	}
	return ""
}

// localAnnotations are the annotations this node publishes on its Node.
func localAnnotations(backend Backend, nodeIP netip.Addr, mac net.HardwareAddr) map[string]string {
	if backend == BackendNone {
		return map[string]string{}
	}
	ann := map[string]string{
		AnnotationBackendType: string(backend),
		AnnotationPublicIP:    nodeIP.String(),
	}
	if backend == BackendVXLAN {
		ann[AnnotationVTEPMAC] = mac.String()
	}
	return ann
}
