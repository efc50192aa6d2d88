package scheduler

import (
	"math"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Reasons of the PodTopologySpread filter, worded as Kubernetes words them.
const (
	reasonSpread             = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel = reasonSpread + " (missing required label)"
)

// systemDefaultSpread are the constraints kube-scheduler applies, for
// scoring only, to a pod that has none of its own ("system defaulting"):
// spread over hostnames with skew 3 and over zones with skew 5, both
// ScheduleAnyway, against the pods selected by the services and
// controllers that select the pod.
var systemDefaultSpread = []v1.TopologySpreadConstraint{
	{TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 3},
	{TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 5},
}

// spreadConstraint is a parsed topology spread constraint.
type spreadConstraint struct {
	maxSkew       int32
	topologyKey   string
	selector      labels.Selector
	minDomains    int32
	honorAffinity bool // nodeAffinityPolicy Honor (the default)
	honorTaints   bool // nodeTaintsPolicy Honor (the default is Ignore)
}

// spreadConstraints parses the pod's constraints with the given
// whenUnsatisfiable, as kube-scheduler does: minDomains defaults to 1,
// nodeAffinityPolicy to Honor and nodeTaintsPolicy to Ignore. The API
// server has merged matchLabelKeys into each selector when the pod was
// created (as Kubernetes does since 1.34), so they are not read again. A
// constraint whose selector does not parse selects nothing.
func spreadConstraints(cs []v1.TopologySpreadConstraint, action v1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for _, c := range cs {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			sel = labels.Nothing()
		}
		sc := spreadConstraint{
			maxSkew: c.MaxSkew, topologyKey: c.TopologyKey, selector: sel, minDomains: 1,
			honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor,
			honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// defaultSpreadConstraints are the system default constraints for a pod
// without its own, all selecting what sel selects; none when sel is nil or
// empty (nothing selects the pod).
func defaultSpreadConstraints(sel labels.Selector) []spreadConstraint {
	if sel == nil || sel.Empty() {
		return nil
	}
	cs := spreadConstraints(systemDefaultSpread, v1.ScheduleAnyway)
	for i := range cs {
		cs[i].selector = sel
	}
	return cs
}

// includes reports whether node counts as a domain of the constraint for
// pod: with nodeAffinityPolicy Honor the node must satisfy the pod's
// nodeSelector and required node affinity; with nodeTaintsPolicy Honor it
// must have no NoSchedule or NoExecute taint the pod does not tolerate.
func (c *spreadConstraint) includes(pod *v1.Pod, node *v1.Node, required nodeaffinity.RequiredNodeAffinity) bool {
	if c.honorAffinity {
		if ok, _ := required.Match(node); !ok {
			return false
		}
	}
	if c.honorTaints {
		for i := range node.Spec.Taints {
			t := &node.Spec.Taints[i]
			if (t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute) && !tolerated(pod.Spec.Tolerations, t) {
				return false
			}
		}
	}
	return true
}

// hasAllKeys reports whether the node labels carry every constraint's key.
func hasAllKeys(nodeLabels map[string]string, cs []spreadConstraint) bool {
	for i := range cs {
		if _, ok := nodeLabels[cs[i].topologyKey]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts the pods of ni in namespace ns that sel selects,
// leaving out terminating pods as kube-scheduler does.
func countMatching(ni *NodeInfo, sel labels.Selector, ns string) int {
	n := 0
	for _, ep := range ni.pods {
		p := ep.pod
		if p.DeletionTimestamp == nil && p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
			n++
		}
	}
	return n
}

// spreadFilterState is the PodTopologySpread filter's view of the cluster
// for one pod: for each DoNotSchedule constraint, the matching pods per
// eligible domain and the smallest such count.
type spreadFilterState struct {
	constraints []spreadConstraint
	counts      []map[string]int
	minCounts   []int
}

// newSpreadFilterState counts, over every node carrying all the
// constraints' keys and included by each constraint's policies, the pods
// each constraint selects per domain. It is nil when the pod has no
// DoNotSchedule constraint.
func newSpreadFilterState(pod *v1.Pod, required nodeaffinity.RequiredNodeAffinity, snap *Snapshot) *spreadFilterState {
	cs := spreadConstraints(pod.Spec.TopologySpreadConstraints, v1.DoNotSchedule)
	if len(cs) == 0 {
		return nil
	}
	s := &spreadFilterState{constraints: cs, counts: make([]map[string]int, len(cs)), minCounts: make([]int, len(cs))}
	for i := range cs {
		s.counts[i] = map[string]int{}
	}
	for _, ni := range snap.Nodes {
		node := ni.Node
		if node == nil || !hasAllKeys(node.Labels, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if !c.includes(pod, node, required) {
				continue
			}
			s.counts[i][node.Labels[c.topologyKey]] += countMatching(ni, c.selector, pod.Namespace)
		}
	}
	for i := range cs {
		low := math.MaxInt32
		for _, n := range s.counts[i] {
			low = min(low, n)
		}
		// Fewer eligible domains than minDomains: the global minimum is 0.
		if len(s.counts[i]) < int(cs[i].minDomains) {
			low = 0
		}
		s.minCounts[i] = low
	}
	return s
}

// filterPodTopologySpread is PodTopologySpread's filter: placing the pod on
// the node must not make any DoNotSchedule constraint's domain exceed the
// least populated eligible domain by more than maxSkew. A node without a
// constraint's topology key can never fit.
func filterPodTopologySpread(st *cycleState, ni *NodeInfo) *status {
	s := st.spread
	if s == nil {
		return nil
	}
	podLabels := labels.Set(st.pod.pod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := ni.Node.Labels[c.topologyKey]
		if !ok {
			return &status{reasons: []string{reasonSpreadMissingLabel}, unresolvable: true}
		}
		self := 0
		if c.selector.Matches(podLabels) {
			self = 1
		}
		if s.counts[i][value]+self-s.minCounts[i] > int(c.maxSkew) {
			return &status{reasons: []string{reasonSpread}}
		}
	}
	return nil
}

// scorePodTopologySpread is PodTopologySpread's score over the feasible
// nodes: for each ScheduleAnyway constraint (or, for a pod without
// constraints, the system defaults against snap.SpreadSelector) a node
// earns count×log(domains+2) + maxSkew−1 for the pods selected in its
// domain, and fewer is better once normalized. With the pod's own
// constraints, nodes missing a topology key score 0.
func scorePodTopologySpread(st *cycleState, nodes []*NodeInfo, snap *Snapshot) []int64 {
	out := make([]int64, len(nodes))
	pod := st.pod.pod
	own := len(pod.Spec.TopologySpreadConstraints) > 0
	var cs []spreadConstraint
	if own {
		cs = spreadConstraints(pod.Spec.TopologySpreadConstraints, v1.ScheduleAnyway)
	} else if snap.SpreadSelector != nil {
		cs = defaultSpreadConstraints(snap.SpreadSelector(pod))
	}
	if len(cs) == 0 {
		return out
	}
	// Only the pod's own constraints require every key: with the system
	// defaults a node without a zone label is still spread by hostname.
	requireAll := own
	ignored := make([]bool, len(nodes))
	domains := make([]map[string]int64, len(cs)) // non-hostname constraints: domain → matching pods
	sizes := make([]int, len(cs))
	for i := range cs {
		domains[i] = map[string]int64{}
	}
	eligible := 0
	for n, ni := range nodes {
		if requireAll && !hasAllKeys(ni.Node.Labels, cs) {
			ignored[n] = true
			continue
		}
		eligible++
		for i := range cs {
			if cs[i].topologyKey == v1.LabelHostname {
				continue
			}
			v := ni.Node.Labels[cs[i].topologyKey]
			if _, ok := domains[i][v]; !ok {
				domains[i][v] = 0
				sizes[i]++
			}
		}
	}
	weights := make([]float64, len(cs))
	for i := range cs {
		size := sizes[i]
		if cs[i].topologyKey == v1.LabelHostname {
			size = eligible
		}
		weights[i] = math.Log(float64(size + 2))
	}
	required := st.nodeAffinity.required
	for _, ni := range snap.Nodes {
		node := ni.Node
		if node == nil || (requireAll && !hasAllKeys(node.Labels, cs)) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if c.topologyKey == v1.LabelHostname || !c.includes(pod, node, required) {
				continue
			}
			v := node.Labels[c.topologyKey]
			if _, ok := domains[i][v]; ok {
				domains[i][v] += int64(countMatching(ni, c.selector, pod.Namespace))
			}
		}
	}
	raw := make([]int64, len(nodes))
	for n, ni := range nodes {
		if ignored[n] {
			continue
		}
		var score float64
		for i := range cs {
			c := &cs[i]
			v, ok := ni.Node.Labels[c.topologyKey]
			if !ok {
				continue
			}
			cnt := domains[i][v]
			if c.topologyKey == v1.LabelHostname {
				cnt = int64(countMatching(ni, c.selector, pod.Namespace))
			}
			score += float64(cnt)*weights[i] + float64(c.maxSkew-1)
		}
		raw[n] = int64(math.Round(score))
	}
	var lo, hi int64 = math.MaxInt64, 0
	for n := range nodes {
		if !ignored[n] {
			lo, hi = min(lo, raw[n]), max(hi, raw[n])
		}
	}
	for n := range nodes {
		switch {
		case ignored[n]:
			out[n] = 0
		case hi == 0:
			out[n] = maxScore
		default:
			out[n] = maxScore * (hi + lo - raw[n]) / hi
		}
	}
	return out
}
