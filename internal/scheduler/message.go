package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// ErrNoNodesAvailable is Schedule's error when the cluster has no nodes; its
// text is Kubernetes'.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// Preemption outcomes Kubernetes reports per node. peapod does not preempt,
// so a node that failed for a reason eviction could fix reports what
// Kubernetes reports when no lower-priority victims exist.
const (
	preemptionNotHelpful = "Preemption is not helpful for scheduling"
	preemptionNoVictims  = "No preemption victims found for incoming pod"
	preemptionNever      = "not eligible due to preemptionPolicy=Never."
)

// FitError is Schedule's error when no node fits the pod. Error() is the
// FailedScheduling message, formatted as Kubernetes' FitError.Error with
// the default preemption plugin's postfilter message appended.
type FitError struct {
	// NumAllNodes is how many nodes were considered.
	NumAllNodes int
	// Reasons maps each node to why it was rejected.
	Reasons map[string][]string

	unresolvable  map[string]bool
	neverPreempts bool
}

func newFitError(pod *v1.Pod, numNodes int) *FitError {
	return &FitError{
		NumAllNodes:   numNodes,
		Reasons:       make(map[string][]string, numNodes),
		unresolvable:  map[string]bool{},
		neverPreempts: pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == v1.PreemptNever,
	}
}

func (e *FitError) add(node string, s *status) {
	e.Reasons[node] = s.reasons
	if s.unresolvable {
		e.unresolvable[node] = true
	}
}

// Error returns, for example, "0/3 nodes are available: 1 Insufficient cpu,
// 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes
// are available: 3 Preemption is not helpful for scheduling."
func (e *FitError) Error() string {
	counts := map[string]int{}
	for _, rs := range e.Reasons {
		for _, r := range rs {
			counts[r]++
		}
	}
	msg := fmt.Sprintf("0/%d nodes are available:", e.NumAllNodes) + histogram(counts)
	if e.neverPreempts {
		return msg + " preemption: " + preemptionNever
	}
	post := map[string]int{}
	for node := range e.Reasons {
		if e.unresolvable[node] {
			post[preemptionNotHelpful]++
		} else {
			post[preemptionNoVictims]++
		}
	}
	return msg + fmt.Sprintf(" preemption: 0/%d nodes are available:", e.NumAllNodes) + histogram(post)
}

// histogram renders " <count> <reason>, ... ." sorted as Kubernetes sorts
// it: as strings, so by count and then text for counts of one digit.
func histogram(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(counts))
	for r, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return " " + strings.Join(parts, ", ") + "."
}
