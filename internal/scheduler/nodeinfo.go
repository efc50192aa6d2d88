package scheduler

import (
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Taint keys Kubernetes puts on nodes that are not ready or unreachable.
const (
	taintNotReady      = "node.kubernetes.io/not-ready"
	taintUnreachable   = "node.kubernetes.io/unreachable"
	taintUnschedulable = "node.kubernetes.io/unschedulable"
)

// Snapshot is the cluster as one scheduling decision sees it. Schedule only
// reads it.
type Snapshot struct {
	// Nodes are every node of the cluster, in a stable order.
	Nodes []*NodeInfo
	// NamespaceLabels are the labels of each namespace, consulted by pod
	// (anti-)affinity terms with a namespaceSelector. A namespace missing
	// here has no labels.
	NamespaceLabels map[string]map[string]string
	// SpreadSelector returns, for a pod without topologySpreadConstraints,
	// the selector of the pods Kubernetes' default constraints spread it
	// against (see DefaultSpreadSelector); nil or an empty selector means
	// no default spreading. A nil SpreadSelector turns it off.
	SpreadSelector func(*v1.Pod) labels.Selector
}

// NewSnapshot builds a snapshot from nodes and pods: each pod with
// spec.nodeName naming one of nodes counts against that node unless it has
// terminated (phase Succeeded or Failed). Other pods are ignored.
func NewSnapshot(nodes []*v1.Node, pods []*v1.Pod) *Snapshot {
	byName := make(map[string]*NodeInfo, len(nodes))
	s := &Snapshot{}
	for _, n := range nodes {
		ni := NewNodeInfo(n)
		byName[n.Name] = ni
		s.Nodes = append(s.Nodes, ni)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Node.Name < s.Nodes[j].Node.Name })
	for _, p := range pods {
		if ni := byName[p.Spec.NodeName]; ni != nil && !terminated(p) {
			ni.AddPod(p)
		}
	}
	return s
}

// terminated reports whether a pod no longer holds node resources.
func terminated(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// NodeInfo is one node with the pods bound (or assumed) to it and their
// aggregates, kept incrementally so a decision does not re-add every pod.
// It is not safe for concurrent use; the scheduler's cache guards it.
type NodeInfo struct {
	// Node is the node; nil while pods are known for a node that is not
	// (yet, or any more) in the cluster. Such NodeInfos are not offered to
	// Schedule.
	Node *v1.Node

	allocatable Resources
	allowedPods int64
	taints      []v1.Taint // spec taints plus readiness taints

	pods             []*podInfo
	index            map[string]int // pod key → position in pods
	requested        Resources
	nonZeroRequested Resources
	usedPorts        map[string]map[portKey]int // host IP → (protocol, port) → count
	withAffinity     int                        // pods with any pod (anti-)affinity
	withRequiredAnti int                        // pods with required anti-affinity
}

// portKey is one protocol and port on a host IP.
type portKey struct {
	protocol v1.Protocol
	port     int32
}

// NewNodeInfo returns the NodeInfo of node (which may be nil) with pods
// added.
func NewNodeInfo(node *v1.Node, pods ...*v1.Pod) *NodeInfo {
	ni := &NodeInfo{index: map[string]int{}, usedPorts: map[string]map[portKey]int{}}
	ni.SetNode(node)
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// SetNode replaces the node object, keeping the pods.
func (ni *NodeInfo) SetNode(node *v1.Node) {
	ni.Node = node
	ni.allocatable, ni.allowedPods, ni.taints = Resources{}, 0, nil
	if node == nil {
		return
	}
	ni.allocatable = resourcesOf(node.Status.Allocatable)
	if q, ok := node.Status.Allocatable[v1.ResourcePods]; ok {
		ni.allowedPods = q.Value()
	}
	ni.taints = effectiveTaints(node)
}

// effectiveTaints returns the node's taints plus, when its Ready condition
// is not True and the node lifecycle controller has not tainted it yet, the
// NoSchedule taint Kubernetes uses for that state (not-ready when Ready is
// False or missing, unreachable when it is Unknown), so readiness is
// enforced, and tolerated, exactly like the taint.
func effectiveTaints(node *v1.Node) []v1.Taint {
	ready := v1.ConditionFalse
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady {
			ready = c.Status
		}
	}
	if ready == v1.ConditionTrue {
		return node.Spec.Taints
	}
	for _, t := range node.Spec.Taints {
		if (t.Key == taintNotReady || t.Key == taintUnreachable) && t.Effect != v1.TaintEffectPreferNoSchedule {
			return node.Spec.Taints
		}
	}
	key := taintNotReady
	if ready == v1.ConditionUnknown {
		key = taintUnreachable
	}
	out := make([]v1.Taint, 0, len(node.Spec.Taints)+1)
	out = append(out, node.Spec.Taints...)
	return append(out, v1.Taint{Key: key, Effect: v1.TaintEffectNoSchedule})
}

// Pods returns the pods on the node, in no particular order.
func (ni *NodeInfo) Pods() []*v1.Pod {
	out := make([]*v1.Pod, len(ni.pods))
	for i, p := range ni.pods {
		out[i] = p.pod
	}
	return out
}

// Requested returns the sum of the effective requests of the node's pods.
func (ni *NodeInfo) Requested() Resources { return ni.requested }

// podKey identifies a pod: its UID, or namespace/name when it has none.
func podKey(p *v1.Pod) string {
	if p.UID != "" {
		return string(p.UID)
	}
	return p.Namespace + "/" + p.Name
}

// AddPod adds (or replaces) a pod on the node.
func (ni *NodeInfo) AddPod(p *v1.Pod) {
	key := podKey(p)
	if _, ok := ni.index[key]; ok {
		ni.RemovePod(p)
	}
	pi := newPodInfo(p)
	ni.index[key] = len(ni.pods)
	ni.pods = append(ni.pods, pi)
	ni.requested.Add(pi.requests)
	ni.nonZeroRequested.Add(pi.nonZero)
	for _, hp := range pi.hostPorts {
		m := ni.usedPorts[hp.ip]
		if m == nil {
			m = map[portKey]int{}
			ni.usedPorts[hp.ip] = m
		}
		m[hp.portKey]++
	}
	if pi.hasAffinity() {
		ni.withAffinity++
	}
	if len(pi.requiredAnti) > 0 {
		ni.withRequiredAnti++
	}
}

// RemovePod removes the pod with p's key; it reports whether it was there.
func (ni *NodeInfo) RemovePod(p *v1.Pod) bool {
	key := podKey(p)
	i, ok := ni.index[key]
	if !ok {
		return false
	}
	pi := ni.pods[i]
	last := len(ni.pods) - 1
	ni.pods[i] = ni.pods[last]
	ni.index[podKey(ni.pods[i].pod)] = i
	ni.pods[last] = nil
	ni.pods = ni.pods[:last]
	delete(ni.index, key)
	ni.requested.Sub(pi.requests)
	ni.nonZeroRequested.Sub(pi.nonZero)
	for _, hp := range pi.hostPorts {
		if m := ni.usedPorts[hp.ip]; m != nil {
			if m[hp.portKey]--; m[hp.portKey] <= 0 {
				delete(m, hp.portKey)
			}
			if len(m) == 0 {
				delete(ni.usedPorts, hp.ip)
			}
		}
	}
	if pi.hasAffinity() {
		ni.withAffinity--
	}
	if len(pi.requiredAnti) > 0 {
		ni.withRequiredAnti--
	}
	return true
}

// podInfo is a pod with what the scheduler derives from it, computed once.
type podInfo struct {
	pod       *v1.Pod
	requests  Resources
	nonZero   Resources
	hostPorts []hostPort

	requiredAffinity  []affinityTerm
	requiredAnti      []affinityTerm
	preferredAffinity []affinityTerm
	preferredAnti     []affinityTerm
}

// hostPort is one port a pod takes on its node's host IP.
type hostPort struct {
	ip string
	portKey
}

func newPodInfo(p *v1.Pod) *podInfo {
	pi := &podInfo{pod: p, requests: podRequests(p, false), nonZero: podRequests(p, true)}
	for i := range p.Spec.Containers {
		for _, cp := range p.Spec.Containers[i].Ports {
			if cp.HostPort <= 0 {
				continue
			}
			ip, proto := cp.HostIP, cp.Protocol
			if ip == "" {
				ip = "0.0.0.0"
			}
			if proto == "" {
				proto = v1.ProtocolTCP
			}
			pi.hostPorts = append(pi.hostPorts, hostPort{ip: ip, portKey: portKey{proto, cp.HostPort}})
		}
	}
	if a := p.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			pi.requiredAffinity = affinityTerms(p, pa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.preferredAffinity = weightedTerms(p, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			pi.requiredAnti = affinityTerms(p, pa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.preferredAnti = weightedTerms(p, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
	}
	return pi
}

func (pi *podInfo) hasAffinity() bool {
	return len(pi.requiredAffinity)+len(pi.requiredAnti)+len(pi.preferredAffinity)+len(pi.preferredAnti) > 0
}
