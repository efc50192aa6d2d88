package replicaset

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

type (
	statusT       = appsv1.ReplicaSetStatus
	runtimeObject = runtime.Object
)

// calculateStatus is the status s should have given its active claimed
// pods and the outcome of this sync's create/delete round.
func calculateStatus(s *set, pods []*v1.Pod, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	st := *s.status.DeepCopy()
	st.Replicas = int32(len(pods))
	st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas = 0, 0, 0
	tmplLabels := labels.Set(s.template.Labels).AsSelectorPreValidated()
	for _, p := range pods {
		if tmplLabels.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if ctrlutil.IsPodReady(p) {
			st.ReadyReplicas++
			if ctrlutil.IsPodAvailable(p, s.minReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
	}
	st.ObservedGeneration = s.obj.GetGeneration()
	cond := -1
	for i, c := range st.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure {
			cond = i
		}
	}
	switch {
	case manageErr != nil && cond < 0:
		reason := "FailedCreate"
		if int32(len(pods)) > s.replicas {
			reason = "FailedDelete"
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: v1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now), Reason: reason, Message: manageErr.Error(),
		})
	case manageErr == nil && cond >= 0:
		st.Conditions = append(st.Conditions[:cond], st.Conditions[cond+1:]...)
	}
	return st
}

func statusEqual(a, b appsv1.ReplicaSetStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}
