package agent

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/runtime"
)

// observed is what the agent knows of one pod on this node at one moment:
// the runtime's view plus what only the agent tracks (probe results, why a
// container is waiting). computeStatus turns it into the pod's status.
type observed struct {
	sandbox *runtime.SandboxStatus
	// runs holds each container's runs, oldest first.
	runs map[string][]*runtime.ContainerStatus
	// waiting says why a container that is not running waits, when the
	// agent knows (ErrImagePull, CrashLoopBackOff, ...).
	waiting map[string]waitReason
	// ready and started are the readiness and startup probe results.
	ready, started map[string]bool
	// restarts carries restart counts over from an earlier sandbox.
	restarts map[string]int32
	hostIP   string
	// phase overrides the computed phase (DeadlineExceeded, ...).
	failed *waitReason
	// pullFailed is when each container's image pull last failed (only in
	// the worker's memory, for the pull back-off).
	pullFailed map[string]time.Time
	// allocated is the pod with the resources the node allocated to its
	// containers; nil means the spec's.
	allocated *corev1.Pod
	// resize is where the pod's in-place resize stands.
	resize resizeState
}

type waitReason struct{ Reason, Message string }

// computeStatus derives a pod's status the way the kubelet does. It is
// pure: prev supplies the fields that must not change (startTime, IPs of
// a finished pod, condition transition times).
func computeStatus(pod *corev1.Pod, o observed, now time.Time) corev1.PodStatus {
	prev := pod.Status
	st := corev1.PodStatus{
		HostIP:    o.hostIP,
		StartTime: prev.StartTime,
		QOSClass:  qosClass(pod),
		// The spec this status was computed from, as the kubelet reports it.
		ObservedGeneration: pod.Generation,
	}
	if o.hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: o.hostIP}}
	}
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	if o.sandbox != nil && len(o.sandbox.IPs) > 0 {
		st.PodIP = o.sandbox.IPs[0]
		for _, ip := range o.sandbox.IPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	} else if isTerminal(prev.Phase) {
		st.PodIP, st.PodIPs = prev.PodIP, prev.PodIPs
	}

	st.InitContainerStatuses = containerStatuses(pod, pod.Spec.InitContainers, prev.InitContainerStatuses, o, true)
	st.ContainerStatuses = containerStatuses(pod, pod.Spec.Containers, prev.ContainerStatuses, o, false)
	st.Phase = podPhase(pod, st, o)
	if o.failed != nil {
		st.Phase, st.Reason, st.Message = corev1.PodFailed, o.failed.Reason, o.failed.Message
	}

	initialized := initDone(pod, st.InitContainerStatuses)
	containersReady := initialized && len(st.ContainerStatuses) > 0
	for _, cs := range st.ContainerStatuses {
		containersReady = containersReady && cs.Ready
	}
	for _, cs := range st.InitContainerStatuses {
		if isSidecar(pod, cs.Name) {
			containersReady = containersReady && cs.Ready
		}
	}
	sandboxReady := o.sandbox != nil && o.sandbox.Ready && o.sandbox.Alive
	conds := []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, sandboxReady, "", ""),
		condition(corev1.PodInitialized, initialized, "ContainersNotInitialized", "containers with incomplete status: "+fmt.Sprint(notDone(pod, st.InitContainerStatuses))),
		condition(corev1.ContainersReady, containersReady, "ContainersNotReady", "containers with unready status: "+fmt.Sprint(notReady(st.ContainerStatuses))),
		condition(corev1.PodReady, containersReady, "ContainersNotReady", "containers with unready status: "+fmt.Sprint(notReady(st.ContainerStatuses))),
	}
	for i := range conds {
		conds[i].ObservedGeneration = pod.Generation
	}
	if isTerminal(st.Phase) {
		// The kubelet's generate*ConditionForTerminalPhase.
		reason := "PodCompleted"
		if st.Phase == corev1.PodFailed {
			reason = "PodFailed"
		}
		for i := range conds[2:] {
			conds[2+i].Status, conds[2+i].Reason = corev1.ConditionFalse, reason
			conds[2+i].Message = ""
		}
	}
	// Keep the scheduler's condition, and transition times that did not change.
	for _, c := range prev.Conditions {
		if c.Type == corev1.PodScheduled {
			conds = append([]corev1.PodCondition{c}, conds...)
		}
	}
	conds = append(conds, resizeConditions(o.resize, pod.Generation)...)
	for i := range conds {
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, p := range prev.Conditions {
			if p.Type == conds[i].Type && p.Status == conds[i].Status {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
		if conds[i].LastTransitionTime.IsZero() {
			conds[i].LastTransitionTime = metav1.NewTime(now)
		}
	}
	st.Conditions = conds
	st.EphemeralContainerStatuses = ephemeralStatuses(pod, o)
	fillContainerResources(&st, pod, o)
	return st
}

func condition(t corev1.PodConditionType, ok bool, reason, message string) corev1.PodCondition {
	if ok {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
	}
	return corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: message}
}

// defaultWaitingReason is why a container that has not run yet waits, the
// kubelet's default waiting state: PodInitializing, for init and app
// containers alike, in a pod with init containers, else ContainerCreating.
func defaultWaitingReason(pod *corev1.Pod) string {
	if len(pod.Spec.InitContainers) > 0 {
		return "PodInitializing"
	}
	return "ContainerCreating"
}

func containerStatuses(pod *corev1.Pod, specs []corev1.Container, prev []corev1.ContainerStatus, o observed, init bool) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, c := range specs {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		var prevCS *corev1.ContainerStatus
		for i := range prev {
			if prev[i].Name == c.Name {
				prevCS = &prev[i]
			}
		}
		runs := o.runs[c.Name]
		restarts := o.restarts[c.Name]
		if n := len(runs); n > 0 {
			last := runs[n-1]
			restarts = max(restarts, int32(last.Attempt))
			cs.ContainerID = containerID(last)
			cs.ImageID = last.ImageRef
			cs.State = runState(last)
			if n > 1 {
				ls := runState(runs[n-2])
				cs.LastTerminationState = ls
			} else if prevCS != nil && prevCS.ContainerID != cs.ContainerID && prevCS.State.Terminated != nil {
				cs.LastTerminationState = prevCS.State
			} else if prevCS != nil {
				cs.LastTerminationState = prevCS.LastTerminationState
			}
		} else if prevCS != nil && prevCS.State.Terminated != nil {
			// Finished in an earlier sandbox; keep what was seen.
			cs.State, cs.ContainerID, cs.ImageID = prevCS.State, prevCS.ContainerID, prevCS.ImageID
			cs.LastTerminationState = prevCS.LastTerminationState
		}
		if w, ok := o.waiting[c.Name]; ok && cs.State.Running == nil {
			if cs.State.Terminated != nil {
				cs.LastTerminationState = cs.State
			}
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}}
		}
		if cs.State.Running == nil && cs.State.Terminated == nil && cs.State.Waiting == nil {
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: defaultWaitingReason(pod)}}
		}
		cs.RestartCount = restarts
		running := cs.State.Running != nil
		started := running && (o.started[c.Name] || c.StartupProbe == nil)
		cs.Started = &started
		cs.Ready = running && started && (o.ready[c.Name] || c.ReadinessProbe == nil)
		if init && !isSidecarContainer(c) {
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		}
		out = append(out, cs)
	}
	return out
}

func containerID(c *runtime.ContainerStatus) string { return c.Handler + "://" + c.ID }

func runState(c *runtime.ContainerStatus) corev1.ContainerState {
	switch c.State {
	case runtime.ContainerRunning:
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.StartedAt)}}
	case runtime.ContainerExited, runtime.ContainerUnknown:
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode:    int32(c.ExitCode),
			Reason:      c.Reason,
			Message:     c.Message,
			StartedAt:   metav1.NewTime(c.StartedAt),
			FinishedAt:  metav1.NewTime(c.FinishedAt),
			ContainerID: containerID(c),
		}}
	default:
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	}
}

// podPhase follows the kubelet's getPhase.
func podPhase(pod *corev1.Pod, st corev1.PodStatus, o observed) corev1.PodPhase {
	if isTerminal(pod.Status.Phase) {
		return pod.Status.Phase
	}
	for i, cs := range st.InitContainerStatuses {
		c := pod.Spec.InitContainers[i]
		if isSidecarContainer(c) {
			continue
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
	}
	if !initDone(pod, st.InitContainerStatuses) {
		return corev1.PodPending
	}
	var running, waiting, succeeded, failed int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				running++ // restarting
			} else {
				waiting++
			}
		}
	}
	n := len(st.ContainerStatuses)
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case succeeded+failed == n:
		switch pod.Spec.RestartPolicy {
		case corev1.RestartPolicyAlways:
			return corev1.PodRunning // about to restart
		case corev1.RestartPolicyOnFailure:
			if failed > 0 {
				return corev1.PodRunning
			}
			return corev1.PodSucceeded
		default:
			if failed > 0 {
				return corev1.PodFailed
			}
			return corev1.PodSucceeded
		}
	}
	return corev1.PodPending
}

func isTerminal(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }

func isSidecarContainer(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func isSidecar(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return isSidecarContainer(c)
		}
	}
	return false
}

// initDone: every regular init container succeeded and every sidecar started.
func initDone(pod *corev1.Pod, statuses []corev1.ContainerStatus) bool {
	return len(notDone(pod, statuses)) == 0
}

func notDone(pod *corev1.Pod, statuses []corev1.ContainerStatus) []string {
	var out []string
	for i, cs := range statuses {
		c := pod.Spec.InitContainers[i]
		if isSidecarContainer(c) {
			if cs.Started == nil || !*cs.Started {
				out = append(out, cs.Name)
			}
			continue
		}
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			out = append(out, cs.Name)
		}
	}
	return out
}

func notReady(statuses []corev1.ContainerStatus) []string {
	var out []string
	for _, cs := range statuses {
		if !cs.Ready {
			out = append(out, cs.Name)
		}
	}
	sort.Strings(out)
	return out
}

// qosClass follows Kubernetes' ComputePodQOS, pod-level resources included.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	zero := resource.MustParse("0")
	guaranteed := true
	all := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	if r := pod.Spec.Resources; r != nil && len(r.Requests)+len(r.Limits) > 0 {
		all = []corev1.Container{{Resources: *r}} // pod-level resources decide
	}
	for _, c := range all {
		for name, q := range c.Resources.Requests {
			if (name == corev1.ResourceCPU || name == corev1.ResourceMemory) && q.Cmp(zero) > 0 {
				v := requests[name]
				v.Add(q)
				requests[name] = v
			}
		}
		got := 0
		for name, q := range c.Resources.Limits {
			if (name == corev1.ResourceCPU || name == corev1.ResourceMemory) && q.Cmp(zero) > 0 {
				got++
				v := limits[name]
				v.Add(q)
				limits[name] = v
			}
		}
		if got != 2 {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, r := range requests {
			if l, ok := limits[name]; !ok || l.Cmp(r) != 0 {
				guaranteed = false
			}
		}
	}
	if guaranteed && len(limits) == 2 {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
