package apiserver

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	resourcehelper "k8s.io/component-helpers/resource"
)

// hasPodLevelResources reports whether spec.resources sets any request
// or limit.
func hasPodLevelResources(pod *corev1.Pod) bool {
	r := pod.Spec.Resources
	return r != nil && len(r.Requests)+len(r.Limits) > 0
}

// podLevelResourceNames are the names spec.resources may use, as
// kube-apiserver lists them in its error.
var podLevelResourceNames = []string{"cpu", "hugepages-", "memory"}

// validatePodResources checks pod-level spec.resources as kube-apiserver's
// validatePodResources and validatePodResourceConsistency do: only cpu,
// memory and hugepages, no negative quantities, requests within limits,
// pod requests covering what the containers request together, and no
// container limit above the pod's. Pure.
func validatePodResources(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	r := s.Resources
	if r == nil {
		return nil
	}
	if s.OS != nil && s.OS.Name == corev1.Windows {
		return field.ErrorList{field.Forbidden(p, "may not be set for a windows pod")}
	}
	var errs field.ErrorList
	for _, l := range []struct {
		name string
		list corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, name := range sortedNames(l.list) {
			q := l.list[name]
			fp := p.Child(l.name).Key(string(name))
			if !resourcehelper.IsSupportedPodLevelResource(name) {
				errs = append(errs, field.NotSupported(fp, name, podLevelResourceNames))
				continue
			}
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(fp, q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	for _, name := range sortedNames(r.Requests) {
		q := r.Requests[name]
		l, ok := r.Limits[name]
		switch {
		case ok && isHugePages(name) && q.Cmp(l) != 0:
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, l.String())))
		case ok && q.Cmp(l) > 0:
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, l.String())))
		}
	}
	if len(r.Claims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("claims"), unsupportedMsg))
	}
	// The pod's requests must cover its containers' effective requests.
	pod := &corev1.Pod{Spec: *s}
	aggregate := resourcehelper.AggregateContainerRequests(pod, resourcehelper.PodResourcesOptions{})
	for _, name := range sortedNames(r.Requests) {
		want := r.Requests[name]
		if agg, ok := aggregate[name]; ok && agg.Cmp(want) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), want.String(),
				fmt.Sprintf("must be greater than or equal to aggregate container requests of %s", agg.String())))
		}
	}
	// No container may be allowed more than the whole pod.
	for i, c := range s.Containers {
		for _, name := range sortedNames(c.Resources.Limits) {
			limit := c.Resources.Limits[name]
			if podLimit, ok := r.Limits[name]; ok && limit.Cmp(podLimit) > 0 {
				errs = append(errs, field.Invalid(p.Child("containers").Index(i).Key(string(name)).Child("limits"), limit.String(),
					fmt.Sprintf("must be less than or equal to pod limits of %s", podLimit.String())))
			}
		}
	}
	return errs
}

func isHugePages(name corev1.ResourceName) bool {
	return strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

// defaultPodResources fills pod-level requests and limits as Kubernetes'
// defaulting does (defaultPodRequests, then defaultPodLimits), after the
// containers' own defaults: with pod limits, a missing pod request is the
// containers' effective request for it if they have one, else the pod
// limit; with pod requests, a missing pod limit that every container sets
// is the sum of theirs. Kubernetes defaults again whenever it reads the
// object back, so the requests pass runs once more here: the result is
// what a client reads, and DefaultPod stays idempotent.
func defaultPodResources(pod *corev1.Pod) {
	if pod.Spec.Resources == nil {
		return
	}
	defaultPodRequests(pod)
	defaultPodLimits(pod)
	defaultPodRequests(pod)
}

func defaultPodRequests(pod *corev1.Pod) {
	r := pod.Spec.Resources
	if len(r.Limits) == 0 {
		return
	}
	reqs := r.Requests.DeepCopy()
	if reqs == nil {
		reqs = corev1.ResourceList{}
	}
	for name, q := range resourcehelper.AggregateContainerRequests(pod, resourcehelper.PodResourcesOptions{}) {
		if _, ok := reqs[name]; !ok && resourcehelper.IsSupportedPodLevelResource(name) && !isHugePages(name) {
			reqs[name] = q.DeepCopy()
		}
	}
	for name, q := range r.Limits {
		if _, ok := reqs[name]; !ok && resourcehelper.IsSupportedPodLevelResource(name) {
			reqs[name] = q.DeepCopy()
		}
	}
	if len(reqs) > 0 {
		r.Requests = reqs
	}
}

func defaultPodLimits(pod *corev1.Pod) {
	r := pod.Spec.Resources
	if resourcehelper.IsPodLevelLimitsSet(pod) || !resourcehelper.IsPodLevelRequestsSet(pod) {
		return
	}
	limits := r.Limits.DeepCopy()
	if limits == nil {
		limits = corev1.ResourceList{}
	}
	for name, q := range resourcehelper.AggregateContainerLimits(pod, resourcehelper.PodResourcesOptions{}) {
		if _, ok := limits[name]; !ok && resourcehelper.IsSupportedPodLevelResource(name) && !isHugePages(name) && allContainersLimit(pod, name) {
			limits[name] = q.DeepCopy()
		}
	}
	if len(limits) > 0 {
		r.Limits = limits
	}
}

// allContainersLimit reports whether every container and init container
// sets a limit for name.
func allContainersLimit(pod *corev1.Pod, name corev1.ResourceName) bool {
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if _, ok := c.Resources.Limits[name]; !ok {
			return false
		}
	}
	return true
}

// podQOS computes status.qosClass as Kubernetes' ComputePodQOS does, on
// the pod as defaulting leaves it (requests default to limits): from the
// pod-level resources when the pod has them, else from its containers and
// init containers (ephemeral containers have none); only cpu and memory
// count, and only non-zero quantities. Pure.
func podQOS(pod *corev1.Pod) corev1.PodQOSClass {
	pod = pod.DeepCopy()
	DefaultPod(pod)
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	add := func(dst, src corev1.ResourceList) int {
		found := 0
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := src[name]
			if !ok || q.Cmp(resource.Quantity{}) <= 0 {
				continue
			}
			found++
			sum := dst[name]
			sum.Add(q)
			dst[name] = sum
		}
		return found
	}
	guaranteed := true
	if r := pod.Spec.Resources; hasPodLevelResources(pod) {
		add(requests, r.Requests)
		if add(limits, r.Limits) < 2 {
			guaranteed = false
		}
	} else {
		for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
			add(requests, c.Resources.Requests)
			if add(limits, c.Resources.Limits) < 2 {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if l, ok := limits[name]; !ok || l.Cmp(req) != 0 {
				guaranteed = false
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
