package scheduler

import (
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Workloads are the objects whose selectors decide which pods a pod is
// spread against when it has no topologySpreadConstraints of its own.
// Every lister must be set.
type Workloads struct {
	Services               corelisters.ServiceLister
	ReplicationControllers corelisters.ReplicationControllerLister
	ReplicaSets            appslisters.ReplicaSetLister
	StatefulSets           appslisters.StatefulSetLister
}

var (
	rcKind = v1.SchemeGroupVersion.WithKind("ReplicationController")
	rsKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
	ssKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
)

// DefaultSpreadSelector is kube-scheduler's default spreading selector for
// pod: the union of the selectors of the Services of its namespace that
// select it (a Service without a selector selects nothing) and, when its
// controller is a ReplicationController, ReplicaSet or StatefulSet that
// still exists, of that controller's selector. An empty selector means
// the pod is spread against nothing. It only reads the listers.
func (w Workloads) DefaultSpreadSelector(pod *v1.Pod) labels.Selector {
	set := labels.Set{}
	if services, err := w.Services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, svc := range services {
			if svc.Spec.Selector != nil && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				set = labels.Merge(set, svc.Spec.Selector)
			}
		}
	}
	selector := set.AsSelector()
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return selector
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return selector
	}
	addSelector := func(ls *metav1.LabelSelector) {
		if other, err := metav1.LabelSelectorAsSelector(ls); err == nil {
			if reqs, ok := other.Requirements(); ok {
				selector = selector.Add(reqs...)
			}
		}
	}
	switch gv.WithKind(owner.Kind) {
	case rcKind:
		if rc, err := w.ReplicationControllers.ReplicationControllers(pod.Namespace).Get(owner.Name); err == nil {
			selector = labels.Merge(set, rc.Spec.Selector).AsSelector()
		}
	case rsKind:
		if rs, err := w.ReplicaSets.ReplicaSets(pod.Namespace).Get(owner.Name); err == nil {
			addSelector(rs.Spec.Selector)
		}
	case ssKind:
		if ss, err := w.StatefulSets.StatefulSets(pod.Namespace).Get(owner.Name); err == nil {
			addSelector(ss.Spec.Selector)
		}
	}
	return selector
}
