package apiserver

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podViews are the pod subresources that read and write the whole Pod,
// as kube-apiserver serves them:
//
//   - pods/ephemeralcontainers adds ephemeral containers (what `kubectl
//     debug` patches); existing ones may be neither removed nor changed.
//   - pods/resize changes containers' (and sidecars') cpu and memory
//     requests and limits and their resizePolicy, for the node to apply in
//     place (`kubectl patch --subresource resize`).
//
// Everything else a write carries, metadata included, is ignored.
func podViews() map[string]*View {
	return map[string]*View{
		"ephemeralcontainers": {
			Merge: func(obj, old runtime.Object) runtime.Object {
				pod := old.(*corev1.Pod)
				pod.Spec.EphemeralContainers = obj.(*corev1.Pod).Spec.EphemeralContainers
				return pod
			},
			ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
				return ValidatePodEphemeralContainersUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
			},
		},
		"resize": {
			Merge: func(obj, old runtime.Object) runtime.Object {
				return mergeResize(obj.(*corev1.Pod), old.(*corev1.Pod))
			},
			ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
				return ValidatePodResize(obj.(*corev1.Pod), old.(*corev1.Pod))
			},
		},
	}
}

// mergeResize takes from req the resources and resizePolicy of the
// containers and init containers old has, by name (kube-apiserver's
// dropNonResizeUpdates); validation then refuses what may not change.
func mergeResize(req, old *corev1.Pod) *corev1.Pod {
	take := func(dst []corev1.Container, src []corev1.Container) {
		for _, c := range src {
			for i := range dst {
				if dst[i].Name == c.Name {
					dst[i].Resources = c.Resources
					dst[i].ResizePolicy = c.ResizePolicy
				}
			}
		}
	}
	take(old.Spec.Containers, req.Spec.Containers)
	take(old.Spec.InitContainers, req.Spec.InitContainers)
	return old
}

// ValidatePodEphemeralContainersUpdate validates a write to
// pods/ephemeralcontainers as kube-apiserver does: the pod stays valid
// (so new ephemeral containers are validated), and every ephemeral
// container the pod had is still there, unchanged. Pure.
func ValidatePodEphemeralContainersUpdate(pod, old *corev1.Pod) field.ErrorList {
	errs := ValidatePod(pod)
	p := field.NewPath("spec", "ephemeralContainers")
	now := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		now[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	for _, ec := range old.Spec.EphemeralContainers {
		cur, ok := now[ec.Name]
		switch {
		case !ok:
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("existing ephemeral containers %q may not be removed\n", ec.Name)))
		case !equality.Semantic.DeepEqual(ec, *cur):
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("existing ephemeral containers %q may not be changed\n", ec.Name)))
		}
	}
	return errs
}

// ValidatePodResize validates a write to pods/resize as kube-apiserver
// does: the pod stays valid; pods with pod-level resources and Windows
// pods are not resized; the QoS class stays; no request or limit is
// removed; only cpu and memory change, and only for containers and
// sidecars (a regular init container's resources are immutable). Pure.
func ValidatePodResize(pod, old *corev1.Pod) field.ErrorList {
	errs := ValidatePod(pod)
	root := field.NewPath("")
	if hasPodLevelResources(old) || hasPodLevelResources(pod) {
		return field.ErrorList{field.Forbidden(root, "pods with pod-level resources cannot be resized")}
	}
	if old.Spec.OS != nil && old.Spec.OS.Name == corev1.Windows {
		return field.ErrorList{field.Forbidden(root, "windows pods cannot be resized")}
	}
	spec := field.NewPath("spec")
	if podQOS(old) != podQOS(pod) {
		errs = append(errs, field.Invalid(spec, podQOS(pod), "Pod QOS Class may not change as a result of resizing"))
	}
	for i, c := range old.Spec.Containers {
		errs = append(errs, validateResourceRemoval(&pod.Spec.Containers[i].Resources, &c.Resources, spec.Child("containers").Index(i).Child("resources"))...)
	}
	for i, c := range old.Spec.InitContainers {
		if isSidecar(&c) {
			errs = append(errs, validateResourceRemoval(&pod.Spec.InitContainers[i].Resources, &c.Resources, spec.Child("initContainers").Index(i).Child("resources"))...)
		}
	}
	// Apart from cpu and memory (and resizePolicy), nothing may differ.
	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		keepOnlyCPUMemory(&munged.Containers[i], &old.Spec.Containers[i])
		if !equality.Semantic.DeepEqual(munged.Containers[i], old.Spec.Containers[i]) {
			errs = append(errs, field.Forbidden(spec, "only cpu and memory resources are mutable"))
		}
	}
	for i := range munged.InitContainers {
		if !isSidecar(&old.Spec.InitContainers[i]) {
			if !equality.Semantic.DeepEqual(munged.InitContainers[i], old.Spec.InitContainers[i]) {
				errs = append(errs, field.Forbidden(spec, "resources for non-sidecar init containers are immutable"))
			}
			continue
		}
		keepOnlyCPUMemory(&munged.InitContainers[i], &old.Spec.InitContainers[i])
		if !equality.Semantic.DeepEqual(munged.InitContainers[i], old.Spec.InitContainers[i]) {
			errs = append(errs, field.Forbidden(spec, "only cpu and memory resources for sidecar containers are mutable"))
		}
	}
	return errs
}

// keepOnlyCPUMemory gives c old's cpu and memory quantities and resize
// policy (kube-apiserver's dropCPUMemoryResourcesFromContainer), so that
// what still differs from old is what a resize may not change.
func keepOnlyCPUMemory(c, old *corev1.Container) {
	munge := func(l, oldList corev1.ResourceList) corev1.ResourceList {
		if oldList == nil {
			return nil
		}
		out := l.DeepCopy()
		if out == nil {
			out = corev1.ResourceList{}
		}
		delete(out, corev1.ResourceCPU)
		delete(out, corev1.ResourceMemory)
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := oldList[name]; ok {
				out[name] = q
			}
		}
		return out
	}
	c.Resources = corev1.ResourceRequirements{
		Limits:   munge(c.Resources.Limits, old.Resources.Limits),
		Requests: munge(c.Resources.Requests, old.Resources.Requests),
	}
	c.ResizePolicy = old.ResizePolicy
}

// validateResourceRemoval refuses a resize that drops a request or a
// limit the container had.
func validateResourceRemoval(cur, old *corev1.ResourceRequirements, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name := range old.Requests {
		if _, ok := cur.Requests[name]; !ok {
			errs = append(errs, field.Forbidden(fld.Child("requests").Key(string(name)), "resource requests cannot be removed"))
		}
	}
	for name := range old.Limits {
		if _, ok := cur.Limits[name]; !ok {
			errs = append(errs, field.Forbidden(fld.Child("limits").Key(string(name)), "resource limits cannot be removed"))
		}
	}
	return errs
}
