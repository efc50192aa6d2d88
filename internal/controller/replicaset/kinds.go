package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kind selects the resource a Controller manages.
type Kind int

const (
	// KindReplicaSet is apps/v1 ReplicaSet.
	KindReplicaSet Kind = iota
	// KindReplicationController is core/v1 ReplicationController.
	KindReplicationController
)

// set is the kind-neutral view of a ReplicaSet or ReplicationController.
type set struct {
	obj             metav1.Object
	replicas        int32
	minReadySeconds int32
	selector        labels.Selector
	template        *v1.PodTemplateSpec
	status          appsv1.ReplicaSetStatus
}

// adapter binds the core to one kind.
type adapter interface {
	gvk() schema.GroupVersionKind
	informer() cache.SharedIndexInformer
	get(ns, name string) (*set, error)
	list(ns string) ([]*set, error)
	// getLive reads the object uncached (for adoption checks).
	getLive(ctx context.Context, ns, name string) (metav1.Object, error)
	updateStatus(ctx context.Context, s *set, st appsv1.ReplicaSetStatus) error
}

type rsAdapter struct {
	client kubernetes.Interface
	inf    informers.SharedInformerFactory
}

func (rsAdapter) gvk() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
}
func (a rsAdapter) informer() cache.SharedIndexInformer {
	return a.inf.Apps().V1().ReplicaSets().Informer()
}

func fromRS(rs *appsv1.ReplicaSet) *set {
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || rs.Spec.Selector == nil {
		sel = labels.Nothing()
	}
	return &set{
		obj:             rs,
		replicas:        ptrOr(rs.Spec.Replicas, 1),
		minReadySeconds: rs.Spec.MinReadySeconds,
		selector:        sel,
		template:        &rs.Spec.Template,
		status:          rs.Status,
	}
}

func (a rsAdapter) get(ns, name string) (*set, error) {
	rs, err := a.inf.Apps().V1().ReplicaSets().Lister().ReplicaSets(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return fromRS(rs), nil
}

func (a rsAdapter) list(ns string) ([]*set, error) {
	l, err := a.inf.Apps().V1().ReplicaSets().Lister().ReplicaSets(ns).List(labels.Everything())
	out := make([]*set, 0, len(l))
	for _, rs := range l {
		out = append(out, fromRS(rs))
	}
	return out, err
}

func (a rsAdapter) getLive(ctx context.Context, ns, name string) (metav1.Object, error) {
	return a.client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (a rsAdapter) updateStatus(ctx context.Context, s *set, st appsv1.ReplicaSetStatus) error {
	rs := s.obj.(*appsv1.ReplicaSet).DeepCopy()
	rs.Status = st
	_, err := a.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
	return err
}

type rcAdapter struct {
	client kubernetes.Interface
	inf    informers.SharedInformerFactory
}

func (rcAdapter) gvk() schema.GroupVersionKind {
	return v1.SchemeGroupVersion.WithKind("ReplicationController")
}
func (a rcAdapter) informer() cache.SharedIndexInformer {
	return a.inf.Core().V1().ReplicationControllers().Informer()
}

func fromRC(rc *v1.ReplicationController) *set {
	sel := rc.Spec.Selector
	if len(sel) == 0 && rc.Spec.Template != nil {
		sel = rc.Spec.Template.Labels // the API server's defaulting
	}
	selector := labels.Nothing()
	if len(sel) > 0 {
		selector = labels.SelectorFromSet(sel)
	}
	tmpl := rc.Spec.Template
	if tmpl == nil {
		tmpl = &v1.PodTemplateSpec{}
	}
	st := appsv1.ReplicaSetStatus{
		Replicas:             rc.Status.Replicas,
		FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
		ReadyReplicas:        rc.Status.ReadyReplicas,
		AvailableReplicas:    rc.Status.AvailableReplicas,
		ObservedGeneration:   rc.Status.ObservedGeneration,
	}
	for _, c := range rc.Status.Conditions {
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	return &set{obj: rc, replicas: ptrOr(rc.Spec.Replicas, 1), minReadySeconds: rc.Spec.MinReadySeconds, selector: selector, template: tmpl, status: st}
}

func (a rcAdapter) get(ns, name string) (*set, error) {
	rc, err := a.inf.Core().V1().ReplicationControllers().Lister().ReplicationControllers(ns).Get(name)
	if err != nil {
		return nil, err
	}
	return fromRC(rc), nil
}

func (a rcAdapter) list(ns string) ([]*set, error) {
	l, err := a.inf.Core().V1().ReplicationControllers().Lister().ReplicationControllers(ns).List(labels.Everything())
	out := make([]*set, 0, len(l))
	for _, rc := range l {
		out = append(out, fromRC(rc))
	}
	return out, err
}

func (a rcAdapter) getLive(ctx context.Context, ns, name string) (metav1.Object, error) {
	return a.client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
}

func (a rcAdapter) updateStatus(ctx context.Context, s *set, st appsv1.ReplicaSetStatus) error {
	rc := s.obj.(*v1.ReplicationController).DeepCopy()
	rc.Status = v1.ReplicationControllerStatus{
		Replicas:             st.Replicas,
		FullyLabeledReplicas: st.FullyLabeledReplicas,
		ReadyReplicas:        st.ReadyReplicas,
		AvailableReplicas:    st.AvailableReplicas,
		ObservedGeneration:   st.ObservedGeneration,
	}
	for _, c := range st.Conditions {
		rc.Status.Conditions = append(rc.Status.Conditions, v1.ReplicationControllerCondition{
			Type: v1.ReplicationControllerConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	_, err := a.client.CoreV1().ReplicationControllers(rc.Namespace).UpdateStatus(ctx, rc, metav1.UpdateOptions{})
	return err
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
