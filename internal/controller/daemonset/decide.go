package daemonset

import (
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// nodePlan is what one node needs (Kubernetes' podsShouldBeOnNode): a
// pod created, pods deleted, and failed pods the caller deletes unless
// their node is in back-off.
type nodePlan struct {
	create bool
	delete []*v1.Pod
	failed []*v1.Pod
}

// planNode decides for node, given the daemon pods targeting it. Pure.
func planNode(ds *appsv1.DaemonSet, node *v1.Node, pods []*v1.Pod, hash string, now time.Time) nodePlan {
	var plan nodePlan
	shouldRun, shouldContinue := ShouldRun(node, ds)
	switch {
	case shouldRun && len(pods) == 0:
		plan.create = true
	case shouldContinue:
		var running []*v1.Pod
		for _, p := range pods {
			switch {
			case p.DeletionTimestamp != nil:
			case p.Status.Phase == v1.PodFailed:
				plan.failed = append(plan.failed, p)
			case p.Status.Phase == v1.PodSucceeded:
				plan.delete = append(plan.delete, p)
			default:
				running = append(running, p)
			}
		}
		sortOldestFirst(running)
		if !allowsSurge(ds) {
			// One pod a node: keep the oldest. A node whose only pod
			// failed gets its new one once that is gone.
			if len(running) > 1 {
				plan.delete = append(plan.delete, running[1:]...)
			}
			break
		}
		if len(running) <= 1 {
			plan.create = len(running) == 0 && shouldRun
			break
		}
		// Surging: keep the oldest new and the oldest old pod; the old
		// one goes once it is not ready or the new one is available.
		gen := templateGeneration(ds)
		var oldestNew, oldestOld *v1.Pod
		for _, p := range running {
			if IsPodUpdated(p, hash, gen) {
				if oldestNew == nil {
					oldestNew = p
					continue
				}
			} else if oldestOld == nil {
				oldestOld = p
				continue
			}
			plan.delete = append(plan.delete, p)
		}
		if oldestNew != nil && oldestOld != nil &&
			(!ctrlutil.IsPodReady(oldestOld) || ctrlutil.IsPodAvailable(oldestNew, ds.Spec.MinReadySeconds, now)) {
			plan.delete = append(plan.delete, oldestOld)
		}
	case len(pods) > 0:
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				plan.delete = append(plan.delete, p)
			}
		}
	}
	return plan
}

// sortOldestFirst orders pods scheduled first, then by creation time,
// then by name (Kubernetes' podByCreationTimestampAndPhase).
func sortOldestFirst(pods []*v1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if (a.Spec.NodeName != "") != (b.Spec.NodeName != "") {
			return a.Spec.NodeName != ""
		}
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}

// allowsSurge: RollingUpdate with a non-zero maxSurge.
func allowsSurge(ds *appsv1.DaemonSet) bool {
	n, err := surgeCount(ds, 1)
	return err == nil && n != 0
}

func surgeCount(ds *appsv1.DaemonSet, desired int) (int, error) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil {
		return 0, nil
	}
	return intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true)
}

func unavailableCount(ds *appsv1.DaemonSet, desired int) (int, error) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxUnavailable == nil {
		return 0, nil
	}
	return intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true)
}

// updatedAndOld returns a node's one new and one old live pod; ok is
// false when there are more of either (the manage round prunes them).
func updatedAndOld(ds *appsv1.DaemonSet, pods []*v1.Pod, hash string) (newPod, oldPod *v1.Pod, ok bool) {
	gen := templateGeneration(ds)
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if IsPodUpdated(p, hash, gen) {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

// rollingUpdate decides one round of a RollingUpdate (Kubernetes'
// rollingUpdate): the old pods to delete and, when surging, the nodes to
// start a new pod on beside the old one. byNode holds the daemon pods by
// target node. Pure; byNode is not modified.
func rollingUpdate(ds *appsv1.DaemonSet, nodes []*v1.Node, byNode map[string][]*v1.Pod, hash string, now time.Time) (deletes []string, creates []string) {
	// Every node that should run a pod counts, with or without one.
	desired := 0
	nodeByName := map[string]*v1.Node{}
	candidates := map[string][]*v1.Pod{}
	for n, pods := range byNode {
		candidates[n] = pods
	}
	for _, n := range nodes {
		nodeByName[n.Name] = n
		if run, _ := ShouldRun(n, ds); run {
			desired++
			if _, ok := candidates[n.Name]; !ok {
				candidates[n.Name] = nil
			}
		}
	}
	maxSurge, err := surgeCount(ds, desired)
	if err != nil {
		return nil, nil
	}
	maxUnavailable, err := unavailableCount(ds, desired)
	if err != nil {
		return nil, nil
	}
	if desired > 0 && maxSurge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1 // an impossible setting falls back to the default
	}
	available := func(p *v1.Pod) bool { return ctrlutil.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) }
	// Visit nodes in name order so a round's choice is deterministic.
	names := make([]string, 0, len(candidates))
	for n := range candidates {
		names = append(names, n)
	}
	sort.Strings(names)

	if maxSurge == 0 {
		numUnavailable := 0
		var replace, pick []string
		for _, n := range names {
			newPod, oldPod, ok := updatedAndOld(ds, candidates[n], hash)
			switch {
			case !ok, oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				numUnavailable++ // the manage round creates or prunes here
			case newPod != nil:
				if !available(newPod) {
					numUnavailable++
				}
			case !available(oldPod):
				replace = append(replace, oldPod.Name) // costs nothing more
				numUnavailable++
			case numUnavailable < maxUnavailable:
				pick = append(pick, oldPod.Name)
			}
		}
		room := max(0, min(maxUnavailable-numUnavailable, len(pick)))
		return append(replace, pick[:room]...), nil
	}

	numSurge, numAvailable := 0, 0
	var surgeNow, pick, sunset []string
	for _, n := range names {
		newPod, oldPod, ok := updatedAndOld(ds, candidates[n], hash)
		if !ok {
			numSurge++
			continue
		}
		if oldPod != nil && available(oldPod) || oldPod == nil && newPod != nil && available(newPod) {
			numAvailable++
		}
		switch {
		case oldPod == nil:
		case newPod == nil:
			node := nodeByName[n]
			run := false
			if node != nil {
				run, _ = ShouldRun(node, ds)
			}
			switch {
			case !available(oldPod):
				if !run {
					deletes = append(deletes, oldPod.Name)
					continue
				}
				surgeNow = append(surgeNow, n)
			case !run:
				sunset = append(sunset, oldPod.Name)
			case numSurge < maxSurge:
				pick = append(pick, n)
			}
		default:
			if !available(newPod) {
				numSurge++
				continue
			}
			deletes = append(deletes, oldPod.Name)
		}
	}
	// Pods on nodes that should no longer run one go only while enough
	// others are available.
	if extra := min(numAvailable-desired, len(sunset)); extra > 0 {
		deletes = append(deletes, sunset[:extra]...)
	}
	room := max(0, min(maxSurge-numSurge, len(pick)))
	return deletes, append(surgeNow, pick[:room]...)
}

// computeStatus counts ds's pods as Kubernetes' updateDaemonSetStatus
// does; the oldest pod of a node speaks for it. It also returns how long
// until a ready pod becomes available (0: none waiting). Pure.
func computeStatus(ds *appsv1.DaemonSet, nodes []*v1.Node, byNode map[string][]*v1.Pod, hash string, now time.Time) (appsv1.DaemonSetStatus, time.Duration) {
	st := *ds.Status.DeepCopy()
	st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.NumberMisscheduled = 0, 0, 0
	st.NumberReady, st.UpdatedNumberScheduled, st.NumberAvailable, st.NumberUnavailable = 0, 0, 0, 0
	gen := templateGeneration(ds)
	var wait time.Duration
	for _, n := range nodes {
		run, _ := ShouldRun(n, ds)
		pods := byNode[n.Name]
		if !run {
			if len(pods) > 0 {
				st.NumberMisscheduled++
			}
			continue
		}
		st.DesiredNumberScheduled++
		if len(pods) == 0 {
			continue
		}
		st.CurrentNumberScheduled++
		sorted := append([]*v1.Pod(nil), pods...)
		sortOldestFirst(sorted)
		p := sorted[0]
		if ctrlutil.IsPodReady(p) {
			st.NumberReady++
			if ctrlutil.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) {
				st.NumberAvailable++
			} else if d := ctrlutil.AvailableIn(p, ds.Spec.MinReadySeconds, now); d > 0 && (wait == 0 || d < wait) {
				wait = d
			}
		}
		if IsPodUpdated(p, hash, gen) {
			st.UpdatedNumberScheduled++
		}
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	return st, wait
}
