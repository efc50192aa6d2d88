package scheduler

import (
	"hash/fnv"

	v1 "k8s.io/api/core/v1"
)

// Schedule decides where pod goes in snap. It is pure: it reads snap and
// pod and changes neither.
//
// A pod with spec.nodeName set is honoured: Schedule returns that name
// without filtering. Otherwise every node runs the filters; if none passes
// the error is a *FitError whose Error() is the FailedScheduling message
// (ErrNoNodesAvailable when snap has no nodes). Among feasible nodes the
// highest weighted score wins; ties go to the node whose hash with the
// pod's UID is lowest, which is deterministic for one pod yet spreads
// different pods.
func Schedule(pod *v1.Pod, snap *Snapshot) (string, error) {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName, nil
	}
	nodes := make([]*NodeInfo, 0, len(snap.Nodes))
	for _, ni := range snap.Nodes {
		if ni.Node != nil {
			nodes = append(nodes, ni)
		}
	}
	if len(nodes) == 0 {
		return "", ErrNoNodesAvailable
	}
	st := newCycleState(pod, snap)
	var fitErr *FitError
	feasible := make([]*NodeInfo, 0, len(nodes))
	for _, ni := range nodes {
		if s := filter(st, ni); s != nil {
			if fitErr == nil {
				fitErr = newFitError(pod, len(nodes))
			}
			fitErr.add(ni.Node.Name, s)
			continue
		}
		feasible = append(feasible, ni)
	}
	switch len(feasible) {
	case 0:
		return "", fitErr
	case 1:
		return feasible[0].Node.Name, nil
	}
	return pick(podKey(pod), feasible, totalScores(st, feasible, snap)), nil
}

// pick returns the highest-scoring node, breaking ties by tieHash.
func pick(podKey string, nodes []*NodeInfo, scores []int64) string {
	best := -1
	var bestHash uint64
	for i, ni := range nodes {
		if best >= 0 && scores[i] < scores[best] {
			continue
		}
		h := tieHash(podKey, ni.Node.Name)
		if best < 0 || scores[i] > scores[best] || h < bestHash {
			best, bestHash = i, h
		}
	}
	return nodes[best].Node.Name
}

func tieHash(podKey, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(podKey))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}
