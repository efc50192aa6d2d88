package apiserver

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func apps(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: resource}
}

// workloadResources registers the workload kinds: apps/v1 Deployments,
// ReplicaSets and StatefulSets and core/v1 ReplicationControllers, each
// with status and scale subresources. Their controllers live elsewhere;
// here they are stored, defaulted and validated as Kubernetes does.
func workloadResources() []*Resource {
	all := []string{"all"}
	return []*Resource{
		{
			GVR: core("replicationcontrollers"), Kind: "ReplicationController", Singular: "replicationcontroller", Namespaced: true,
			ShortNames: []string{"rc"}, Categories: all, Status: true, Table: replicationControllerTable,
			New:     func() runtime.Object { return &corev1.ReplicationController{} },
			NewList: func() runtime.Object { return &corev1.ReplicationControllerList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					rc := obj.(*corev1.ReplicationController)
					rc.Status = corev1.ReplicationControllerStatus{}
					DefaultReplicationController(rc)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultReplicationController(obj.(*corev1.ReplicationController)) },
				Validate: func(obj runtime.Object) field.ErrorList {
					return ValidateReplicationController(obj.(*corev1.ReplicationController))
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"status.replicas": fmt.Sprint(obj.(*corev1.ReplicationController).Status.Replicas)}
			},
			Scale: &ScaleAccess{
				Get: func(obj runtime.Object) (int32, int32, string) {
					rc := obj.(*corev1.ReplicationController)
					return valueOr32(rc.Spec.Replicas, 1), rc.Status.Replicas, labels.SelectorFromSet(rc.Spec.Selector).String()
				},
				Set: func(obj runtime.Object, n int32) { obj.(*corev1.ReplicationController).Spec.Replicas = &n },
			},
		},
		{
			GVR: apps("deployments"), Kind: "Deployment", Singular: "deployment", Namespaced: true,
			ShortNames: []string{"deploy"}, Categories: all, Status: true, Table: deploymentTable,
			New:     func() runtime.Object { return &appsv1.Deployment{} },
			NewList: func() runtime.Object { return &appsv1.DeploymentList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					d := obj.(*appsv1.Deployment)
					d.Status = appsv1.DeploymentStatus{}
					DefaultDeployment(d)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultDeployment(obj.(*appsv1.Deployment)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateDeployment(obj.(*appsv1.Deployment)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					d, o := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
					return append(ValidateDeployment(d), immutableSelector(d.Spec.Selector, o.Spec.Selector)...)
				},
			},
			Scale: &ScaleAccess{
				Get: func(obj runtime.Object) (int32, int32, string) {
					d := obj.(*appsv1.Deployment)
					return valueOr32(d.Spec.Replicas, 1), d.Status.Replicas, selectorString(d.Spec.Selector)
				},
				Set: func(obj runtime.Object, n int32) { obj.(*appsv1.Deployment).Spec.Replicas = &n },
			},
		},
		{
			GVR: apps("replicasets"), Kind: "ReplicaSet", Singular: "replicaset", Namespaced: true,
			ShortNames: []string{"rs"}, Categories: all, Status: true, Table: replicaSetTable,
			New:     func() runtime.Object { return &appsv1.ReplicaSet{} },
			NewList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					rs := obj.(*appsv1.ReplicaSet)
					rs.Status = appsv1.ReplicaSetStatus{}
					DefaultReplicaSet(rs)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultReplicaSet(obj.(*appsv1.ReplicaSet)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateReplicaSet(obj.(*appsv1.ReplicaSet)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					rs, o := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
					return append(ValidateReplicaSet(rs), immutableSelector(rs.Spec.Selector, o.Spec.Selector)...)
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"status.replicas": fmt.Sprint(obj.(*appsv1.ReplicaSet).Status.Replicas)}
			},
			Scale: &ScaleAccess{
				Get: func(obj runtime.Object) (int32, int32, string) {
					rs := obj.(*appsv1.ReplicaSet)
					return valueOr32(rs.Spec.Replicas, 1), rs.Status.Replicas, selectorString(rs.Spec.Selector)
				},
				Set: func(obj runtime.Object, n int32) { obj.(*appsv1.ReplicaSet).Spec.Replicas = &n },
			},
		},
		{
			GVR: apps("statefulsets"), Kind: "StatefulSet", Singular: "statefulset", Namespaced: true,
			ShortNames: []string{"sts"}, Categories: all, Status: true, Table: statefulSetTable,
			New:     func() runtime.Object { return &appsv1.StatefulSet{} },
			NewList: func() runtime.Object { return &appsv1.StatefulSetList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					s := obj.(*appsv1.StatefulSet)
					s.Status = appsv1.StatefulSetStatus{}
					DefaultStatefulSet(s)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultStatefulSet(obj.(*appsv1.StatefulSet)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateStatefulSet(obj.(*appsv1.StatefulSet)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return append(ValidateStatefulSet(obj.(*appsv1.StatefulSet)), ValidateStatefulSetUpdate(obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet))...)
				},
			},
			Scale: &ScaleAccess{
				Get: func(obj runtime.Object) (int32, int32, string) {
					s := obj.(*appsv1.StatefulSet)
					return valueOr32(s.Spec.Replicas, 1), s.Status.Replicas, selectorString(s.Spec.Selector)
				},
				Set: func(obj runtime.Object, n int32) { obj.(*appsv1.StatefulSet).Spec.Replicas = &n },
			},
		},
	}
}

func valueOr32(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}

func int32p(v int32) *int32 { return &v }

// selectorString renders a label selector as kubectl does; an invalid
// one renders as "<error>".
func selectorString(ls *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return "<error>"
	}
	return sel.String()
}

// DefaultPodTemplate applies the pod-spec defaults Kubernetes applies to
// a template: DefaultPod's, without what only admission of real pods adds
// (tolerations, service account, priority, enableServiceLinks). Pure and
// idempotent.
func DefaultPodTemplate(t *corev1.PodTemplateSpec) {
	keep := t.Spec
	pod := &corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}
	DefaultPod(pod)
	s := &pod.Spec
	s.Tolerations, s.ServiceAccountName, s.DeprecatedServiceAccount = keep.Tolerations, keep.ServiceAccountName, keep.DeprecatedServiceAccount
	s.Priority, s.PreemptionPolicy, s.EnableServiceLinks = keep.Priority, keep.PreemptionPolicy, keep.EnableServiceLinks
	t.Spec = *s
}

// DefaultDeployment applies apps/v1 defaults: replicas 1, RollingUpdate
// 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600 and the
// template's pod defaults. Pure and idempotent.
func DefaultDeployment(d *appsv1.Deployment) {
	s := &d.Spec
	if s.Replicas == nil {
		s.Replicas = int32p(1)
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		q := intstr.FromString("25%")
		if s.Strategy.RollingUpdate.MaxUnavailable == nil {
			s.Strategy.RollingUpdate.MaxUnavailable = &q
		}
		if s.Strategy.RollingUpdate.MaxSurge == nil {
			q2 := q
			s.Strategy.RollingUpdate.MaxSurge = &q2
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = int32p(10)
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = int32p(600)
	}
	DefaultPodTemplate(&s.Template)
}

// DefaultReplicaSet applies apps/v1 defaults: replicas 1 and the
// template's pod defaults. Pure and idempotent.
func DefaultReplicaSet(rs *appsv1.ReplicaSet) {
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = int32p(1)
	}
	DefaultPodTemplate(&rs.Spec.Template)
}

// DefaultReplicationController applies core/v1 defaults: replicas 1, and
// selector and labels taken from the template's labels when empty. Pure
// and idempotent.
func DefaultReplicationController(rc *corev1.ReplicationController) {
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = int32p(1)
	}
	if rc.Spec.Template != nil {
		if len(rc.Spec.Selector) == 0 {
			rc.Spec.Selector = copyLabels(rc.Spec.Template.Labels)
		}
		if len(rc.Labels) == 0 {
			rc.Labels = copyLabels(rc.Spec.Template.Labels)
		}
		DefaultPodTemplate(rc.Spec.Template)
	}
}

// DefaultStatefulSet applies apps/v1 defaults: replicas 1,
// podManagementPolicy OrderedReady, updateStrategy RollingUpdate with
// partition 0, revisionHistoryLimit 10, PVC retention Retain/Retain and
// the template's pod defaults. Pure and idempotent.
func DefaultStatefulSet(s *appsv1.StatefulSet) {
	sp := &s.Spec
	if sp.Replicas == nil {
		sp.Replicas = int32p(1)
	}
	if sp.PodManagementPolicy == "" {
		sp.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if sp.UpdateStrategy.Type == "" {
		sp.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if sp.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if sp.UpdateStrategy.RollingUpdate == nil {
			sp.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if sp.UpdateStrategy.RollingUpdate.Partition == nil {
			sp.UpdateStrategy.RollingUpdate.Partition = int32p(0)
		}
	}
	if sp.RevisionHistoryLimit == nil {
		sp.RevisionHistoryLimit = int32p(10)
	}
	if sp.PersistentVolumeClaimRetentionPolicy == nil {
		sp.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if sp.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		sp.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if sp.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		sp.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	DefaultPodTemplate(&sp.Template)
	for i := range sp.VolumeClaimTemplates {
		t := &sp.VolumeClaimTemplates[i]
		t.APIVersion, t.Kind = "v1", "PersistentVolumeClaim"
		if t.Status.Phase == "" {
			t.Status.Phase = corev1.ClaimPending
		}
		DefaultPersistentVolumeClaim(t)
	}
}

func copyLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
