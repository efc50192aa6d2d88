package scheduler

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
)

// Filter reasons, worded as Kubernetes' scheduler plugins word them.
const (
	reasonUnschedulable        = "node(s) were unschedulable"
	reasonNodeAffinity         = "node(s) didn't match Pod's node affinity/selector"
	reasonNodePorts            = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods          = "Too many pods"
	reasonPodAffinity          = "node(s) didn't match pod affinity rules"
	reasonPodAntiAffinity      = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
)

// status is why one node was filtered out. unresolvable marks failures that
// evicting pods could never fix (Kubernetes' UnschedulableAndUnresolvable),
// which decides the preemption half of the FailedScheduling message.
type status struct {
	reasons      []string
	unresolvable bool
}

// cycleState is what one decision precomputes once for all nodes.
type cycleState struct {
	pod      *podInfo
	nsLabels map[string]map[string]string

	// nodeAffinity is the pod's nodeSelector and node affinity, parsed.
	nodeAffinity nodeAffinity
	// spread is the PodTopologySpread filter's state; nil when the pod has
	// no DoNotSchedule constraint.
	spread *spreadFilterState

	// Required pod affinity: counts of existing pods matching all of the
	// pod's affinity terms, per topology domain.
	affinityCounts map[topologyPair]int
	// Counts of existing pods matching each required anti-affinity term of
	// the pod, per domain.
	antiAffinityCounts map[topologyPair]int
	// Domains where an existing pod's required anti-affinity rejects the pod.
	existingAntiCounts map[topologyPair]int
}

// newCycleState parses the pod's node affinity and precomputes its
// topology spread and inter-pod affinity state over the snapshot. Only pods
// that need it are walked.
func newCycleState(pod *v1.Pod, snap *Snapshot) *cycleState {
	st := &cycleState{pod: newPodInfo(pod), nsLabels: snap.NamespaceLabels, nodeAffinity: newNodeAffinity(pod)}
	st.spread = newSpreadFilterState(pod, st.nodeAffinity.required, snap)
	pi := st.pod
	needOwn := len(pi.requiredAffinity)+len(pi.requiredAnti) > 0
	for _, ni := range snap.Nodes {
		if ni.Node == nil || (!needOwn && ni.withRequiredAnti == 0) {
			continue
		}
		nodeLabels := ni.Node.Labels
		for _, ep := range ni.pods {
			// Existing pods whose required anti-affinity selects this pod.
			for i := range ep.requiredAnti {
				t := &ep.requiredAnti[i]
				if v, ok := nodeLabels[t.topologyKey]; ok && t.matches(pod, st.nsLabels) {
					inc(&st.existingAntiCounts, topologyPair{t.topologyKey, v})
				}
			}
			if !needOwn {
				continue
			}
			if matchesAll(pi.requiredAffinity, ep.pod, st.nsLabels) {
				for i := range pi.requiredAffinity {
					t := &pi.requiredAffinity[i]
					if v, ok := nodeLabels[t.topologyKey]; ok {
						inc(&st.affinityCounts, topologyPair{t.topologyKey, v})
					}
				}
			}
			for i := range pi.requiredAnti {
				t := &pi.requiredAnti[i]
				if v, ok := nodeLabels[t.topologyKey]; ok && t.matches(ep.pod, st.nsLabels) {
					inc(&st.antiAffinityCounts, topologyPair{t.topologyKey, v})
				}
			}
		}
	}
	return st
}

func inc(m *map[topologyPair]int, k topologyPair) {
	if *m == nil {
		*m = map[topologyPair]int{}
	}
	(*m)[k]++
}

// filters are Kubernetes' filter plugins peapod runs, in kube-scheduler's
// default order.
var filters = []func(*cycleState, *NodeInfo) *status{
	filterUnschedulable, filterTaints, filterNodeAffinity, filterNodePorts, filterResources,
	filterPodTopologySpread, filterInterPodAffinity,
}

// filter runs the filters in order, stopping at the first that fails (as
// the framework does): NodeUnschedulable, TaintToleration, NodeAffinity,
// NodePorts, NodeResourcesFit, PodTopologySpread and InterPodAffinity. It
// returns nil when the pod fits ni.
func filter(st *cycleState, ni *NodeInfo) *status {
	for _, f := range filters {
		if s := f(st, ni); s != nil {
			return s
		}
	}
	return nil
}

// filterUnschedulable rejects a cordoned node unless the pod tolerates the
// unschedulable taint.
func filterUnschedulable(st *cycleState, ni *NodeInfo) *status {
	if !ni.Node.Spec.Unschedulable {
		return nil
	}
	t := v1.Taint{Key: taintUnschedulable, Effect: v1.TaintEffectNoSchedule}
	if tolerated(st.pod.pod.Spec.Tolerations, &t) {
		return nil
	}
	return &status{reasons: []string{reasonUnschedulable}, unresolvable: true}
}

// filterTaints rejects a node with a NoSchedule or NoExecute taint (readiness
// taints included) the pod does not tolerate, naming the first.
func filterTaints(st *cycleState, ni *NodeInfo) *status {
	for i := range ni.taints {
		t := &ni.taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(st.pod.pod.Spec.Tolerations, t) {
			return &status{
				reasons:      []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)},
				unresolvable: true,
			}
		}
	}
	return nil
}

// tolerated reports whether any toleration tolerates the taint, by the
// rules of Toleration.ToleratesTaint (numeric Lt/Gt disabled, as in
// Kubernetes by default).
func tolerated(tols []v1.Toleration, t *v1.Taint) bool {
	for i := range tols {
		tol := &tols[i]
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case "", v1.TolerationOpEqual:
			if tol.Value == t.Value {
				return true
			}
		case v1.TolerationOpExists:
			return true
		}
	}
	return false
}

// filterNodeAffinity is NodeAffinity's filter: the nodeSelector and the
// required node affinity.
func filterNodeAffinity(st *cycleState, ni *NodeInfo) *status {
	if st.nodeAffinity.matches(ni.Node) {
		return nil
	}
	return &status{reasons: []string{reasonNodeAffinity}, unresolvable: true}
}

// filterNodePorts rejects a node where a host port the pod wants is taken:
// the same protocol and port on the same host IP, or where either side is
// 0.0.0.0.
func filterNodePorts(st *cycleState, ni *NodeInfo) *status {
	for _, hp := range st.pod.hostPorts {
		conflict := false
		if hp.ip == "0.0.0.0" {
			for _, m := range ni.usedPorts {
				if m[hp.portKey] > 0 {
					conflict = true
					break
				}
			}
		} else {
			conflict = ni.usedPorts[hp.ip][hp.portKey] > 0 || ni.usedPorts["0.0.0.0"][hp.portKey] > 0
		}
		if conflict {
			return &status{reasons: []string{reasonNodePorts}}
		}
	}
	return nil
}

// filterResources is NodeResourcesFit: the pod count, then each requested
// resource against allocatable minus what bound pods request. A request
// larger than the node's whole allocatable is unresolvable.
func filterResources(st *cycleState, ni *NodeInfo) *status {
	var s status
	fail := func(reason string, overAllocatable bool) {
		s.reasons = append(s.reasons, reason)
		s.unresolvable = s.unresolvable || overAllocatable
	}
	if int64(len(ni.pods))+1 > ni.allowedPods {
		fail(reasonTooManyPods, false)
	}
	req, alloc, used := &st.pod.requests, &ni.allocatable, &ni.requested
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		fail("Insufficient cpu", req.MilliCPU > alloc.MilliCPU)
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		fail("Insufficient memory", req.Memory > alloc.Memory)
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		fail("Insufficient ephemeral-storage", req.EphemeralStorage > alloc.EphemeralStorage)
	}
	for _, name := range sortedScalarNames(req.Scalar) {
		q := req.Scalar[name]
		if q > 0 && q > alloc.Scalar[name]-used.Scalar[name] {
			fail("Insufficient "+string(name), q > alloc.Scalar[name])
		}
	}
	if len(s.reasons) == 0 {
		return nil
	}
	return &s
}

// filterInterPodAffinity checks the pod's required affinity and
// anti-affinity and the required anti-affinity of pods already placed.
func filterInterPodAffinity(st *cycleState, ni *NodeInfo) *status {
	labels := ni.Node.Labels
	if terms := st.pod.requiredAffinity; len(terms) > 0 {
		podsExist := true
		for i := range terms {
			v, ok := labels[terms[i].topologyKey]
			if !ok {
				return &status{reasons: []string{reasonPodAffinity}, unresolvable: true}
			}
			if st.affinityCounts[topologyPair{terms[i].topologyKey, v}] <= 0 {
				podsExist = false
			}
		}
		// The first pod of a group with affinity to itself may go anywhere
		// that has the topology labels.
		if !podsExist && (len(st.affinityCounts) > 0 || !matchesAll(terms, st.pod.pod, st.nsLabels)) {
			return &status{reasons: []string{reasonPodAffinity}, unresolvable: true}
		}
	}
	for i := range st.pod.requiredAnti {
		t := &st.pod.requiredAnti[i]
		if v, ok := labels[t.topologyKey]; ok && st.antiAffinityCounts[topologyPair{t.topologyKey, v}] > 0 {
			return &status{reasons: []string{reasonPodAntiAffinity}}
		}
	}
	if len(st.existingAntiCounts) > 0 {
		for k, v := range labels {
			if st.existingAntiCounts[topologyPair{k, v}] > 0 {
				return &status{reasons: []string{reasonExistingAntiAffinity}}
			}
		}
	}
	return nil
}

func sortedScalarNames(m map[v1.ResourceName]int64) []v1.ResourceName {
	if len(m) == 0 {
		return nil
	}
	names := make([]v1.ResourceName, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
