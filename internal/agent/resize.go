package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/peapod/peapod/internal/runtime"
)

// In-place resize, as the kubelet does it since Kubernetes 1.33:
//
//  1. allocate: when a container's desired resources (the pod's spec, which
//     pods/resize changes) differ from the allocated ones (what the sandbox
//     records), the node admits the change if it fits: not more than the
//     node's allocatable (else PodResizePending/Infeasible), and not more
//     than what the other pods leave of it (else PodResizePending/Deferred,
//     retried when a pod leaves the node and every few minutes). An
//     admitted change becomes the allocation (runtime.UpdatePod, which also
//     grows the pod cgroup's limits where they grow).
//  2. actuate: a running container whose cgroup does not have its
//     allocated resources is resized in place (runtime's `runc update`),
//     or killed and started again when its resizePolicy says
//     RestartContainer for a resource that changed; then the pod cgroup
//     shrinks where it shrinks. While some running container does not
//     have its allocation, PodResizeInProgress is set, with reason Error
//     and the failure when applying it failed.
//
// containerStatuses[].allocatedResources reports the allocated requests
// and containerStatuses[].resources what the container's cgroup has (the
// allocation for one that is not running).

// resizeState is what a pod's worker knows of its resize.
type resizeState struct {
	// pendingReason (Infeasible or Deferred) and pendingMessage say why
	// the desired resources are not allocated; "" when they are.
	pendingReason, pendingMessage string
	// inProgress: some running container does not have its allocated
	// resources yet; errMessage says why applying them failed last.
	inProgress bool
	errMessage string
}

// Resize retry periods: a deferred resize is tried again at least this
// often (the kubelet's retryPeriod), and applying a resize that failed
// after this long.
const (
	deferredResizeRetry = 3 * time.Minute
	resizeErrorRetry    = 10 * time.Second
)

// resizableContainers returns the pod's containers that resize in place,
// pointers into pod: its containers and its sidecar init containers.
func resizableContainers(pod *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecarContainer(pod.Spec.InitContainers[i]) {
			out = append(out, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// withAllocation returns a copy of pod whose resizable containers have
// the resources recorded has for them. Pure.
func withAllocation(pod, recorded *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	have := map[string]corev1.ResourceRequirements{}
	for _, c := range resizableContainers(recorded) {
		have[c.Name] = c.Resources
	}
	for _, c := range resizableContainers(out) {
		if r, ok := have[c.Name]; ok {
			c.Resources = *r.DeepCopy()
		}
	}
	return out
}

// sameResources reports whether two versions of a pod give every
// resizable container the same resources.
func sameResources(a, b *corev1.Pod) bool {
	ac, bc := resizableContainers(a), resizableContainers(b)
	if len(ac) != len(bc) {
		return false
	}
	for i := range ac {
		if ac[i].Name != bc[i].Name || !equality.Semantic.DeepEqual(ac[i].Resources, bc[i].Resources) {
			return false
		}
	}
	return true
}

// sandboxStale reports whether the sandbox's record of its pod lacks what
// containers are made from that changed: ephemeral containers added, or
// resources allocated, or resize policies changed.
func sandboxStale(recorded, pod *corev1.Pod) bool {
	if !equality.Semantic.DeepEqual(recorded.Spec.EphemeralContainers, pod.Spec.EphemeralContainers) || !sameResources(recorded, pod) {
		return true
	}
	rc, pc := resizableContainers(recorded), resizableContainers(pod)
	for i := range rc {
		if !equality.Semantic.DeepEqual(rc[i].ResizePolicy, pc[i].ResizePolicy) {
			return true
		}
	}
	return false
}

// resizeFit decides whether the node can give desired its requests, as
// the kubelet's canResizePod does: Infeasible when the pod alone asks for
// more cpu or memory than the node has, Deferred when it does not fit
// beside the other pods' allocations. It returns "" when the resize fits.
// Pure.
func resizeFit(desired *corev1.Pod, others []*corev1.Pod, allocatable corev1.ResourceList) (reason, message string) {
	req := resourcehelper.PodRequests(desired, resourcehelper.PodResourcesOptions{})
	cpu, mem := req.Cpu().MilliValue(), req.Memory().Value()
	cpuCap, memCap := allocatable.Cpu().MilliValue(), allocatable.Memory().Value()
	switch {
	case mem > memCap:
		return corev1.PodReasonInfeasible, fmt.Sprintf("Node didn't have enough capacity: memory, requested: %d, capacity: %d", mem, memCap)
	case cpu > cpuCap:
		return corev1.PodReasonInfeasible, fmt.Sprintf("Node didn't have enough capacity: cpu, requested: %d, capacity: %d", cpu, cpuCap)
	}
	var usedCPU, usedMem int64
	for _, p := range others {
		if p.UID == desired.UID {
			continue
		}
		r := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		usedCPU += r.Cpu().MilliValue()
		usedMem += r.Memory().Value()
	}
	switch {
	case usedCPU+cpu > cpuCap:
		return corev1.PodReasonDeferred, fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", cpu, usedCPU, cpuCap)
	case usedMem+mem > memCap:
		return corev1.PodReasonDeferred, fmt.Sprintf("Node didn't have enough resource: memory, requested: %d, used: %d, capacity: %d", mem, usedMem, memCap)
	}
	return "", ""
}

// allocate admits what it can of the pod's desired resources and records
// the pod as its containers are to be made (ephemeral containers included)
// in the sandbox. It returns the pod with the allocated resources.
func (a *Agent) allocate(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus) *corev1.Pod {
	recorded, err := a.rt.SandboxPod(sb.ID)
	if err != nil {
		a.log.Warn("read sandbox's pod", "pod", key(pod), "err", err)
		return pod
	}
	alloc := withAllocation(pod, recorded)
	var reason, message string
	if !sameResources(pod, alloc) {
		others, err := a.rt.AllocatedPods()
		if err != nil {
			a.log.Warn("read allocated pods", "pod", key(pod), "err", err)
			return alloc
		}
		if reason, message = resizeFit(pod, others, a.rt.NodeCapacity()); reason == "" {
			alloc = pod.DeepCopy()
		}
	}
	if sandboxStale(recorded, alloc) {
		if err := a.rt.UpdatePod(ctx, sb.ID, alloc); err != nil {
			a.log.Error("record pod in its sandbox", "pod", key(pod), "err", err)
			return withAllocation(pod, recorded)
		}
	}
	w.setResize(func(r *resizeState) { r.pendingReason, r.pendingMessage = reason, message })
	w.setAllocated(alloc)
	return alloc
}

// actuateResize gives every running resizable container its allocated
// resources, in place or, where its resizePolicy says so, by restarting
// it; then the pod cgroup gets the pod's. It returns when to try again,
// or 0.
func (a *Agent) actuateResize(ctx context.Context, w *podWorker, alloc *corev1.Pod, seen *runtime.SandboxStatus) time.Duration {
	if !resizeInProgress(alloc, seen) {
		// Nothing to apply (containers started since were made with the
		// allocation): no need to read the sandbox again.
		w.setResize(func(r *resizeState) { r.inProgress, r.errMessage = false, "" })
		return 0
	}
	sb, err := a.rt.SandboxStatus(ctx, seen.ID)
	if err != nil {
		return resizeErrorRetry
	}
	runs := groupRuns(sb)
	var failure string
	changed := false
	for _, c := range resizableContainers(alloc) {
		last := lastRun(runs[c.Name])
		if last == nil || last.State != runtime.ContainerRunning || last.Resources == nil ||
			equality.Semantic.DeepEqual(*last.Resources, c.Resources) {
			continue
		}
		changed = true
		if needsRestart(c, *last.Resources) {
			a.killContainer(ctx, alloc, last, fmt.Sprintf("Container %s resize requires restart", c.Name))
			a.launchContainer(ctx, w, alloc, sb, *c, runs[c.Name])
			continue
		}
		if err := a.rt.UpdateContainerResources(ctx, last.ID, c.Resources); err != nil {
			failure = err.Error()
			a.events.Event(alloc, corev1.EventTypeWarning, "ResizeError", failure)
		}
	}
	if changed && failure == "" {
		if err := a.rt.SyncPodCgroup(ctx, sb.ID); err != nil {
			failure = err.Error()
			a.events.Event(alloc, corev1.EventTypeWarning, "ResizeError", failure)
		}
	}
	inProgress := false
	if fresh, err := a.rt.SandboxStatus(ctx, sb.ID); err == nil {
		inProgress = resizeInProgress(alloc, fresh)
	}
	w.setResize(func(r *resizeState) { r.inProgress, r.errMessage = inProgress, failure })
	if failure != "" {
		return resizeErrorRetry
	}
	return 0
}

// needsRestart reports whether giving c its allocated resources in place
// of have needs a restart: a resource whose cgroup value changes (cpu
// request or limit, memory limit) has resizePolicy RestartContainer. A
// memory request reaches no cgroup. Pure.
func needsRestart(c *corev1.Container, have corev1.ResourceRequirements) bool {
	policy := map[corev1.ResourceName]corev1.ResourceResizeRestartPolicy{}
	for _, p := range c.ResizePolicy {
		policy[p.ResourceName] = p.RestartPolicy
	}
	want := c.Resources
	cpuChanged := !want.Requests.Cpu().Equal(*have.Requests.Cpu()) || !want.Limits.Cpu().Equal(*have.Limits.Cpu())
	memChanged := !want.Limits.Memory().Equal(*have.Limits.Memory())
	return (cpuChanged && policy[corev1.ResourceCPU] == corev1.RestartContainer) ||
		(memChanged && policy[corev1.ResourceMemory] == corev1.RestartContainer)
}

// resizeInProgress reports whether a running resizable container of the
// sandbox does not have its allocated resources.
func resizeInProgress(alloc *corev1.Pod, sb *runtime.SandboxStatus) bool {
	runs := groupRuns(sb)
	for _, c := range resizableContainers(alloc) {
		last := lastRun(runs[c.Name])
		if last != nil && last.State == runtime.ContainerRunning && last.Resources != nil &&
			!equality.Semantic.DeepEqual(*last.Resources, c.Resources) {
			return true
		}
	}
	return false
}

// retryDeferredResizes wakes the pods whose resize waits for room on the
// node, as the kubelet retries pending resizes when a pod leaves.
func (a *Agent) retryDeferredResizes() {
	a.mu.Lock()
	workers := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		workers = append(workers, w)
	}
	a.mu.Unlock()
	for _, w := range workers {
		if w.resize().pendingReason == corev1.PodReasonDeferred {
			w.poke()
		}
	}
}

// resizeConditions are the pod conditions a resize shows, as the kubelet
// sets them, observing the pod's generation (the one the resize made).
func resizeConditions(r resizeState, generation int64) []corev1.PodCondition {
	var out []corev1.PodCondition
	if r.pendingReason != "" {
		out = append(out, corev1.PodCondition{Type: corev1.PodResizePending, Status: corev1.ConditionTrue,
			Reason: r.pendingReason, Message: r.pendingMessage, ObservedGeneration: generation})
	}
	switch {
	case r.errMessage != "":
		out = append(out, corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue,
			Reason: corev1.PodReasonError, Message: r.errMessage, ObservedGeneration: generation})
	case r.inProgress:
		out = append(out, corev1.PodCondition{Type: corev1.PodResizeInProgress, Status: corev1.ConditionTrue, ObservedGeneration: generation})
	}
	return out
}

// fillContainerResources sets, for each resizable container's status, the
// allocated requests and the resources its cgroup has (the allocation for
// one not running), and for every container the stop signal of its run.
// Pure.
func fillContainerResources(st *corev1.PodStatus, pod *corev1.Pod, o observed) {
	alloc := o.allocated
	if alloc == nil {
		alloc = pod
	}
	allocated := map[string]corev1.ResourceRequirements{}
	for _, c := range resizableContainers(alloc) {
		allocated[c.Name] = c.Resources
	}
	fill := func(statuses []corev1.ContainerStatus) {
		for i := range statuses {
			cs := &statuses[i]
			last := lastRun(o.runs[cs.Name])
			if last != nil && last.StopSignal != "" {
				sig := corev1.Signal(last.StopSignal)
				cs.StopSignal = &sig
			}
			r, ok := allocated[cs.Name]
			if !ok {
				continue
			}
			if len(r.Requests) > 0 {
				cs.AllocatedResources = r.Requests.DeepCopy()
			}
			actual := r.DeepCopy()
			if cs.State.Running != nil && last != nil && last.State == runtime.ContainerRunning && last.Resources != nil {
				actual = last.Resources.DeepCopy()
			}
			cs.Resources = actual
		}
	}
	fill(st.InitContainerStatuses)
	fill(st.ContainerStatuses)
}
