package apiserver

import (
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func core(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Version: "v1", Resource: resource}
}

// builtinResources is the registration table of this slice.
func builtinResources() []*Resource {
	dnsLabel := func(n string, _ bool) []string { return validation.IsDNS1123Label(n) }
	return append([]*Resource{
		{
			GVR: core("namespaces"), Kind: "Namespace", Singular: "namespace", ShortNames: []string{"ns"},
			New: func() runtime.Object { return &corev1.Namespace{} }, NewList: func() runtime.Object { return &corev1.NamespaceList{} },
			Status: true, Table: namespaceTable,
			Strategy: Strategy{
				ValidateName: dnsLabel,
				PrepareForCreate: func(obj runtime.Object) {
					ns := obj.(*corev1.Namespace)
					ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
					ensureNamespaceFinalizer(ns)
					if ns.Labels == nil {
						ns.Labels = map[string]string{}
					}
					ns.Labels[corev1.LabelMetadataName] = ns.Name
				},
				PrepareForUpdate: func(obj, _ runtime.Object) {
					ns := obj.(*corev1.Namespace)
					if ns.Labels == nil {
						ns.Labels = map[string]string{}
					}
					ns.Labels[corev1.LabelMetadataName] = ns.Name
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
			},
			AfterCreate: seedNamespace, Terminate: terminateNamespace, AfterTerminate: startNamespaceCleanup,
		},
		{
			GVR: core("pods"), Kind: "Pod", Singular: "pod", Namespaced: true, ShortNames: []string{"po"}, Categories: []string{"all"},
			New: func() runtime.Object { return &corev1.Pod{} }, NewList: func() runtime.Object { return &corev1.PodList{} },
			Status: true, Table: podTable,
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					pod := obj.(*corev1.Pod)
					pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podQOS(pod)}
					DefaultPod(pod)
					prepareSchedulingOnCreate(pod)
				},
				PrepareForUpdate: func(obj, old runtime.Object) {
					pod := obj.(*corev1.Pod)
					DefaultPod(pod)
					preserveObservedGeneration(pod, old.(*corev1.Pod))
				},
				Validate: func(obj runtime.Object) field.ErrorList { return ValidatePodCreate(obj.(*corev1.Pod)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return ValidatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				p := obj.(*corev1.Pod)
				return fields.Set{
					"spec.nodeName": p.Spec.NodeName, "spec.restartPolicy": string(p.Spec.RestartPolicy),
					"spec.schedulerName": p.Spec.SchedulerName, "spec.serviceAccountName": p.Spec.ServiceAccountName,
					"spec.hostNetwork": fmt.Sprint(p.Spec.HostNetwork), "status.phase": string(p.Status.Phase),
					"status.podIP": p.Status.PodIP, "status.nominatedNodeName": p.Status.NominatedNodeName,
				}
			},
			GracefulDelete: func(obj runtime.Object) int64 {
				p := obj.(*corev1.Pod)
				if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					return 0
				}
				if p.Spec.TerminationGracePeriodSeconds != nil {
					return *p.Spec.TerminationGracePeriodSeconds
				}
				return corev1.DefaultTerminationGracePeriodSeconds
			},
			Subresources: map[string]SubresourceHandler{"binding": bindPod},
			Views:        podViews(),
		},
		{
			GVR: core("nodes"), Kind: "Node", Singular: "node", ShortNames: []string{"no"},
			New: func() runtime.Object { return &corev1.Node{} }, NewList: func() runtime.Object { return &corev1.NodeList{} },
			Status: true, Table: nodeTable, Strategy: nodeStrategy,
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"spec.unschedulable": fmt.Sprint(obj.(*corev1.Node).Spec.Unschedulable)}
			},
		},
		{
			GVR: core("events"), Kind: "Event", Singular: "event", Namespaced: true, ShortNames: []string{"ev"}, Expires: true,
			New: func() runtime.Object { return &corev1.Event{} }, NewList: func() runtime.Object { return &corev1.EventList{} },
			Table: eventTable,
			Fields: func(obj runtime.Object) fields.Set {
				e := obj.(*corev1.Event)
				return fields.Set{
					"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.namespace": e.InvolvedObject.Namespace,
					"involvedObject.name": e.InvolvedObject.Name, "involvedObject.uid": string(e.InvolvedObject.UID),
					"involvedObject.apiVersion": e.InvolvedObject.APIVersion, "involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
					"involvedObject.fieldPath": e.InvolvedObject.FieldPath, "reason": e.Reason, "reportingComponent": e.ReportingController,
					"source": e.Source.Component, "type": e.Type,
				}
			},
		},
		{
			GVR: core("configmaps"), Kind: "ConfigMap", Singular: "configmap", Namespaced: true, ShortNames: []string{"cm"},
			New: func() runtime.Object { return &corev1.ConfigMap{} }, NewList: func() runtime.Object { return &corev1.ConfigMapList{} },
			Table: configMapTable,
			Strategy: Strategy{Validate: func(obj runtime.Object) field.ErrorList {
				c := obj.(*corev1.ConfigMap)
				var errs field.ErrorList
				total := 0
				for k, v := range c.Data {
					errs = append(errs, configKey(field.NewPath("data").Key(k), k)...)
					total += len(v)
				}
				for k, v := range c.BinaryData {
					errs = append(errs, configKey(field.NewPath("binaryData").Key(k), k)...)
					total += len(v)
				}
				return append(errs, dataSize(field.NewPath("data"), total)...)
			}},
		},
		{
			GVR: core("secrets"), Kind: "Secret", Singular: "secret", Namespaced: true,
			New: func() runtime.Object { return &corev1.Secret{} }, NewList: func() runtime.Object { return &corev1.SecretList{} },
			Table: secretTable,
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) { defaultSecret(obj.(*corev1.Secret)) },
				PrepareForUpdate: func(obj, _ runtime.Object) { defaultSecret(obj.(*corev1.Secret)) },
				Validate: func(obj runtime.Object) field.ErrorList {
					var errs field.ErrorList
					total := 0
					for k, v := range obj.(*corev1.Secret).Data {
						errs = append(errs, configKey(field.NewPath("data").Key(k), k)...)
						total += len(v)
					}
					return append(errs, dataSize(field.NewPath("data"), total)...)
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
			},
		},
		{
			GVR: core("serviceaccounts"), Kind: "ServiceAccount", Singular: "serviceaccount", Namespaced: true, ShortNames: []string{"sa"},
			New: func() runtime.Object { return &corev1.ServiceAccount{} }, NewList: func() runtime.Object { return &corev1.ServiceAccountList{} },
			Table: serviceAccountTable,
		},
		{
			GVR: schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, Kind: "Lease", Singular: "lease", Namespaced: true,
			New: func() runtime.Object { return &coordinationv1.Lease{} }, NewList: func() runtime.Object { return &coordinationv1.LeaseList{} },
		},
		{
			GVR: schema.GroupVersionResource{Group: "node.k8s.io", Version: "v1", Resource: "runtimeclasses"}, Kind: "RuntimeClass", Singular: "runtimeclass",
			New: func() runtime.Object { return &nodev1.RuntimeClass{} }, NewList: func() runtime.Object { return &nodev1.RuntimeClassList{} },
			Strategy: Strategy{Validate: func(obj runtime.Object) field.ErrorList {
				rc := obj.(*nodev1.RuntimeClass)
				return dns1123Label(field.NewPath("handler"), rc.Handler)
			}},
		},
	}, extendedResources()...)
}

// dataSize refuses ConfigMap and Secret values over 1 MiB in total, as
// Kubernetes' validation does (corev1.MaxSecretSize), so the limit is a
// 422 naming the field rather than whatever the state store answers.
func dataSize(p *field.Path, total int) field.ErrorList {
	if total > corev1.MaxSecretSize {
		return field.ErrorList{field.TooLong(p, "", corev1.MaxSecretSize)}
	}
	return nil
}

func configKey(p *field.Path, k string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(k) {
		errs = append(errs, field.Invalid(p, k, msg))
	}
	return errs
}

func defaultSecret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	for k, v := range s.StringData {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}
