package scheduler

import (
	v1 "k8s.io/api/core/v1"
)

// maxScore is the top of every normalized score, as in Kubernetes.
const maxScore int64 = 100

// hardPodAffinityWeight is what an existing pod's required affinity to the
// incoming pod adds to its domain (Kubernetes' default).
const hardPodAffinityWeight int64 = 1

// scorer is one score plugin: it returns a score in [0, maxScore] for each
// feasible node, already normalized, and its weight in the sum.
type scorer struct {
	name   string
	weight int64
	score  func(st *cycleState, nodes []*NodeInfo, snap *Snapshot) []int64
}

// scorers are the score plugins with kube-scheduler's default weights.
var scorers = []scorer{
	{"TaintToleration", 3, scoreTaints},
	{"NodeAffinity", 2, scoreNodeAffinity},
	{"PodTopologySpread", 2, scorePodTopologySpread},
	{"InterPodAffinity", 2, scoreInterPodAffinity},
	{"NodeResourcesLeastAllocated", 1, scoreLeastAllocated},
}

// totalScores returns the weighted sum of every scorer for each node.
func totalScores(st *cycleState, nodes []*NodeInfo, snap *Snapshot) []int64 {
	total := make([]int64, len(nodes))
	for _, s := range scorers {
		for i, v := range s.score(st, nodes, snap) {
			total[i] += v * s.weight
		}
	}
	return total
}

// scoreNodeAffinity is NodeAffinity's score: the sum of the weights of the
// preferred terms each node matches, scaled so the best node gets maxScore.
func scoreNodeAffinity(st *cycleState, nodes []*NodeInfo, _ *Snapshot) []int64 {
	out := make([]int64, len(nodes))
	prefs := st.nodeAffinity.preferred
	if prefs == nil {
		return out
	}
	for i, ni := range nodes {
		out[i] = prefs.Score(ni.Node)
	}
	return scaleToMax(out, false)
}

// scoreTaints counts the PreferNoSchedule taints a node has that the pod
// does not tolerate: fewer is better.
func scoreTaints(st *cycleState, nodes []*NodeInfo, _ *Snapshot) []int64 {
	out := make([]int64, len(nodes))
	var tols []v1.Toleration
	for _, t := range st.pod.pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == v1.TaintEffectPreferNoSchedule {
			tols = append(tols, t)
		}
	}
	for i, ni := range nodes {
		for j := range ni.taints {
			if ni.taints[j].Effect == v1.TaintEffectPreferNoSchedule && !tolerated(tols, &ni.taints[j]) {
				out[i]++
			}
		}
	}
	return scaleToMax(out, true)
}

// scoreInterPodAffinity is Kubernetes' InterPodAffinity score: each
// existing pod matched by the pod's preferred affinity (anti-affinity) adds
// (subtracts) the term's weight to its topology domain, as do existing pods'
// preferred terms (and required affinity, with weight 1) that match the
// pod; a node scores the sum of its domains, scaled between the worst and
// best node.
func scoreInterPodAffinity(st *cycleState, nodes []*NodeInfo, snap *Snapshot) []int64 {
	out := make([]int64, len(nodes))
	pi := st.pod
	hasPref := len(pi.preferredAffinity)+len(pi.preferredAnti) > 0
	var domains map[topologyPair]int64
	add := func(n *v1.Node, t *affinityTerm, w int64) {
		if v, ok := n.Labels[t.topologyKey]; ok && w != 0 {
			if domains == nil {
				domains = map[topologyPair]int64{}
			}
			domains[topologyPair{t.topologyKey, v}] += w
		}
	}
	for _, ni := range snap.Nodes {
		if ni.Node == nil || (!hasPref && ni.withAffinity == 0) {
			continue
		}
		for _, ep := range ni.pods {
			if hasPref {
				for i := range pi.preferredAffinity {
					if t := &pi.preferredAffinity[i]; t.matches(ep.pod, st.nsLabels) {
						add(ni.Node, t, int64(t.weight))
					}
				}
				for i := range pi.preferredAnti {
					if t := &pi.preferredAnti[i]; t.matches(ep.pod, st.nsLabels) {
						add(ni.Node, t, -int64(t.weight))
					}
				}
			}
			if !ep.hasAffinity() {
				continue
			}
			for i := range ep.requiredAffinity {
				if t := &ep.requiredAffinity[i]; t.matches(pi.pod, st.nsLabels) {
					add(ni.Node, t, hardPodAffinityWeight)
				}
			}
			for i := range ep.preferredAffinity {
				if t := &ep.preferredAffinity[i]; t.matches(pi.pod, st.nsLabels) {
					add(ni.Node, t, int64(t.weight))
				}
			}
			for i := range ep.preferredAnti {
				if t := &ep.preferredAnti[i]; t.matches(pi.pod, st.nsLabels) {
					add(ni.Node, t, -int64(t.weight))
				}
			}
		}
	}
	if len(domains) == 0 {
		return out
	}
	for i, ni := range nodes {
		for tp, w := range domains {
			if v, ok := ni.Node.Labels[tp.key]; ok && v == tp.value {
				out[i] += w
			}
		}
	}
	lo, hi := out[0], out[0]
	for _, v := range out {
		lo, hi = min(lo, v), max(hi, v)
	}
	for i, v := range out {
		if hi > lo {
			out[i] = maxScore * (v - lo) / (hi - lo)
		} else {
			out[i] = 0
		}
	}
	return out
}

// scoreLeastAllocated favours the node with the most CPU and memory left
// after placing the pod (requests, with the scheduler's defaults for
// containers without any), CPU and memory weighing alike.
func scoreLeastAllocated(st *cycleState, nodes []*NodeInfo, _ *Snapshot) []int64 {
	out := make([]int64, len(nodes))
	free := func(alloc, req int64) int64 {
		if alloc == 0 || req > alloc {
			return 0
		}
		return (alloc - req) * maxScore / alloc
	}
	for i, ni := range nodes {
		cpu := free(ni.allocatable.MilliCPU, ni.nonZeroRequested.MilliCPU+st.pod.nonZero.MilliCPU)
		mem := free(ni.allocatable.Memory, ni.nonZeroRequested.Memory+st.pod.nonZero.Memory)
		out[i] = (cpu + mem) / 2
	}
	return out
}

// scaleToMax scales raw scores so the highest is maxScore; reverse makes
// the lowest raw score the best. All-zero raw scores give maxScore with
// reverse and 0 without.
func scaleToMax(raw []int64, reverse bool) []int64 {
	var hi int64
	for _, v := range raw {
		hi = max(hi, v)
	}
	for i, v := range raw {
		switch {
		case hi == 0 && reverse:
			raw[i] = maxScore
		case hi == 0:
			raw[i] = 0
		case reverse:
			raw[i] = maxScore - maxScore*v/hi
		default:
			raw[i] = maxScore * v / hi
		}
	}
	return raw
}
