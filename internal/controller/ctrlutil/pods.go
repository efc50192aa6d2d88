package ctrlutil

import (
	"sort"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodDeletionCostAnnotation lets users rank pods for scale-down: lower cost
// goes first (Kubernetes' controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// IsPodActive reports whether p counts towards a controller's replicas: not
// Succeeded or Failed and not being deleted.
func IsPodActive(p *v1.Pod) bool {
	return p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed && p.DeletionTimestamp == nil
}

// IsPodTerminal reports whether p reached Succeeded or Failed.
func IsPodTerminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// PodReadyCondition returns p's Ready condition, or nil.
func PodReadyCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady reports whether p has condition Ready=True.
func IsPodReady(p *v1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == v1.ConditionTrue
}

// IsPodAvailable reports whether p has been Ready for at least
// minReadySeconds at now (Kubernetes' podutil.IsPodAvailable).
func IsPodAvailable(p *v1.Pod, minReadySeconds int32, now time.Time) bool {
	c := PodReadyCondition(p)
	if c == nil || c.Status != v1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	d := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(d).Before(now)
}

// AvailableIn returns how long until a Ready pod p becomes available, or 0
// when it already is or is not Ready (used to requeue for minReadySeconds).
func AvailableIn(p *v1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	c := PodReadyCondition(p)
	if minReadySeconds == 0 || c == nil || c.Status != v1.ConditionTrue || c.LastTransitionTime.IsZero() {
		return 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if !at.After(now) {
		return 0
	}
	return at.Sub(now) + time.Second
}

func deletionCost(p *v1.Pod) int64 {
	c, err := strconv.ParseInt(p.Annotations[PodDeletionCostAnnotation], 10, 32)
	if err != nil {
		return 0
	}
	return c
}

func restarts(p *v1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n = max(n, c.RestartCount)
	}
	return n
}

var phaseRank = map[v1.PodPhase]int{v1.PodPending: 0, v1.PodUnknown: 1, v1.PodRunning: 2}

// DeletionLess orders pods the way Kubernetes' ActivePods does for
// scale-down: the pod to delete first sorts first. In order: unscheduled
// before scheduled; Pending before Unknown before Running; not Ready before
// Ready; lower pod-deletion-cost first; Ready for less time first; more
// container restarts first; newer before older.
func DeletionLess(a, b *v1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if ra, rb := phaseRank[a.Status.Phase], phaseRank[b.Status.Phase]; ra != rb {
		return ra < rb
	}
	if IsPodReady(a) != IsPodReady(b) {
		return !IsPodReady(a)
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if IsPodReady(a) && IsPodReady(b) {
		ta, tb := PodReadyCondition(a).LastTransitionTime, PodReadyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return afterOrZero(&ta, &tb)
		}
	}
	if ra, rb := restarts(a), restarts(b); ra != rb {
		return ra > rb
	}
	ca, cb := a.CreationTimestamp, b.CreationTimestamp
	if !ca.Equal(&cb) {
		return afterOrZero(&ca, &cb)
	}
	return a.Name < b.Name
}

// afterOrZero reports whether a is newer than b; a zero time is newest.
func afterOrZero(a, b *metav1.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero()
	}
	return b.Before(a)
}

// SortForDeletion sorts pods in place, the first to delete first.
func SortForDeletion(pods []*v1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool { return DeletionLess(pods[i], pods[j]) })
}
