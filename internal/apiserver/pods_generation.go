package apiserver

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod's metadata.generation follows Kubernetes: 1 at creation whatever
// the client sent, one more per update that changes the spec (never for
// status, metadata or binding), and one more when graceful deletion or
// finalization starts (the generic update and delete paths do those). The
// node agent reports the generation it acted on in status.observedGeneration
// and in its conditions.

// preserveObservedGeneration keeps the status' and each condition's
// observedGeneration when an update leaves them unset, as Kubernetes' pod
// status strategy does, so a writer that does not know the field cannot
// clear it.
func preserveObservedGeneration(pod, old *corev1.Pod) {
	if pod.Status.ObservedGeneration == 0 {
		pod.Status.ObservedGeneration = old.Status.ObservedGeneration
	}
	previous := map[corev1.PodConditionType][]int64{}
	for _, c := range old.Status.Conditions {
		previous[c.Type] = append(previous[c.Type], c.ObservedGeneration)
	}
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		var g int64
		if gens := previous[c.Type]; len(gens) > 0 {
			g, previous[c.Type] = gens[0], gens[1:]
		}
		if c.ObservedGeneration == 0 {
			c.ObservedGeneration = g
		}
	}
}

// setPodCondition sets cond in st as Kubernetes' UpdatePodCondition does:
// the transition time moves only when the status changes.
func setPodCondition(st *corev1.PodStatus, cond corev1.PodCondition, now time.Time) {
	cond.LastTransitionTime = metav1.NewTime(now)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != cond.Type {
			continue
		}
		if c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
		cond.LastProbeTime = c.LastProbeTime
		*c = cond
		return
	}
	st.Conditions = append(st.Conditions, cond)
}
