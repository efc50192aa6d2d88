package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/runtime"
)

// Ephemeral containers, as the kubelet runs them: started in the pod's
// sandbox as soon as they appear in its spec (even while init containers
// run), each exactly once, never restarted, without probes or hooks; an
// ephemeral container with a targetContainerName shares that container's
// PID namespace (the runtime's job). Their state is reported in
// status.ephemeralContainerStatuses and nowhere else: they take no part in
// the pod's phase or readiness.

// ephemeralContainers returns the pod's ephemeral containers as the
// Containers they are field for field.
func ephemeralContainers(pod *corev1.Pod) []corev1.Container {
	out := make([]corev1.Container, len(pod.Spec.EphemeralContainers))
	for i := range pod.Spec.EphemeralContainers {
		out[i] = corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
	}
	return out
}

// startEphemeralContainers starts every ephemeral container that has not
// run yet. It returns when an image pull back-off ends, if
// one holds one back.
func (a *Agent) startEphemeralContainers(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus) time.Duration {
	runs := groupRuns(sb)
	var requeue time.Duration
	for _, c := range ephemeralContainers(pod) {
		if len(runs[c.Name]) > 0 || ephemeralRan(pod, c.Name) {
			continue
		}
		if d := a.launchContainer(ctx, w, pod, sb, c, nil); d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	return requeue
}

// ephemeralRan reports whether the pod's status shows that the ephemeral
// container ran, in this sandbox or one before it: then it is not run
// again.
func ephemeralRan(pod *corev1.Pod, name string) bool {
	for _, cs := range pod.Status.EphemeralContainerStatuses {
		if cs.Name == name && cs.ContainerID != "" {
			return true
		}
	}
	return false
}

// ephemeralStatuses reports the pod's ephemeral containers: their run's
// state, a waiting reason while they are not started, and what an
// earlier sandbox saw of one that finished. They are never ready.
func ephemeralStatuses(pod *corev1.Pod, o observed) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, c := range ephemeralContainers(pod) {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		var prev *corev1.ContainerStatus
		for i := range pod.Status.EphemeralContainerStatuses {
			if pod.Status.EphemeralContainerStatuses[i].Name == c.Name {
				prev = &pod.Status.EphemeralContainerStatuses[i]
			}
		}
		if runs := o.runs[c.Name]; len(runs) > 0 {
			last := runs[len(runs)-1]
			cs.ContainerID, cs.ImageID, cs.State = containerID(last), last.ImageRef, runState(last)
			if last.StopSignal != "" {
				sig := corev1.Signal(last.StopSignal)
				cs.StopSignal = &sig
			}
		} else if prev != nil && prev.ContainerID != "" {
			// It ran in a sandbox since lost, and is not run again.
			cs.State, cs.ContainerID, cs.ImageID, cs.StopSignal = prev.State, prev.ContainerID, prev.ImageID, prev.StopSignal
			if cs.State.Terminated == nil {
				cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerStatusUnknown",
					Message: "The container could not be located when the pod was terminated", ContainerID: prev.ContainerID}}
			}
		}
		if wr, ok := o.waiting[c.Name]; ok && cs.State.Running == nil && cs.State.Terminated == nil {
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: wr.Reason, Message: wr.Message}}
		}
		if cs.State.Running == nil && cs.State.Terminated == nil && cs.State.Waiting == nil {
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
		}
		out = append(out, cs)
	}
	return out
}
