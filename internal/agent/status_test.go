package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/runtime"
)

func statusPod(restart corev1.RestartPolicy, inits ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-1"},
		Spec: corev1.PodSpec{
			RestartPolicy: restart,
			Containers:    []corev1.Container{{Name: "app", Image: "busybox"}},
		},
	}
	for _, name := range inits {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: name, Image: "busybox"})
	}
	return pod
}

func observedRuns(cs ...*runtime.ContainerStatus) observed {
	sb := &runtime.SandboxStatus{ID: "sb", Ready: true, Alive: true, IPs: []string{"10.0.0.5"}, Containers: cs}
	return observed{sandbox: sb, runs: groupRuns(sb), waiting: map[string]waitReason{}, ready: map[string]bool{}, started: map[string]bool{}}
}

func waiting(statuses []corev1.ContainerStatus, name string) string {
	for _, cs := range statuses {
		if cs.Name == name && cs.State.Waiting != nil {
			return cs.State.Waiting.Reason
		}
	}
	return ""
}

func cond(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// TestStatusPodInitializing: while init containers run, the containers not
// started yet wait as PodInitializing, the kubelet's default waiting state
// of a pod with init containers; without init containers it is
// ContainerCreating.
func TestStatusPodInitializing(t *testing.T) {
	now := time.Now()
	pod := statusPod(corev1.RestartPolicyAlways, "init1", "init2")
	st := computeStatus(pod, observedRuns(&runtime.ContainerStatus{ID: "c1", Name: "init1", Init: true,
		State: runtime.ContainerRunning, StartedAt: now, Handler: "runc"}), now)
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}
	if got := waiting(st.ContainerStatuses, "app"); got != "PodInitializing" {
		t.Errorf("app container waits as %q, want PodInitializing", got)
	}
	if got := waiting(st.InitContainerStatuses, "init2"); got != "PodInitializing" {
		t.Errorf("second init container waits as %q, want PodInitializing", got)
	}
	if c := cond(st, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" {
		t.Errorf("Initialized = %+v", c)
	}

	plain := statusPod(corev1.RestartPolicyAlways)
	st = computeStatus(plain, observedRuns(), now)
	if got := waiting(st.ContainerStatuses, "app"); got != "ContainerCreating" {
		t.Errorf("without init containers the app waits as %q, want ContainerCreating", got)
	}
}

// TestStatusInitFailureNever: a failed init container of a restartPolicy
// Never pod fails the pod, with the kubelet's conditions, and the app
// container is left waiting, never started.
func TestStatusInitFailureNever(t *testing.T) {
	now := time.Now()
	pod := statusPod(corev1.RestartPolicyNever, "init")
	st := computeStatus(pod, observedRuns(&runtime.ContainerStatus{ID: "c1", Name: "init", Init: true,
		State: runtime.ContainerExited, ExitCode: 3, Reason: "Error", StartedAt: now, FinishedAt: now, Handler: "runc"}), now)
	if st.Phase != corev1.PodFailed {
		t.Fatalf("phase %s, want Failed", st.Phase)
	}
	ics := st.InitContainerStatuses[0]
	if ics.State.Terminated == nil || ics.State.Terminated.ExitCode != 3 || ics.State.Terminated.Reason != "Error" {
		t.Errorf("init status %+v", ics.State)
	}
	if got := waiting(st.ContainerStatuses, "app"); got != "PodInitializing" {
		t.Errorf("app container waits as %q, want PodInitializing", got)
	}
	for _, ct := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		if c := cond(st, ct); c.Status != corev1.ConditionFalse || c.Reason != "PodFailed" {
			t.Errorf("%s = %+v, want False/PodFailed", ct, c)
		}
	}
	if c := cond(st, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" {
		t.Errorf("Initialized = %+v", c)
	}
	// The same failure with OnFailure is retried: the pod stays Pending.
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if st := computeStatus(pod, observedRuns(&runtime.ContainerStatus{ID: "c1", Name: "init", Init: true,
		State: runtime.ContainerExited, ExitCode: 3, StartedAt: now, FinishedAt: now}), now); st.Phase != corev1.PodPending {
		t.Errorf("OnFailure: phase %s, want Pending", st.Phase)
	}
}

// TestStatusHostNetworkPodIP: a hostNetwork pod's sandbox reports the
// node's IP, which becomes the pod's IP beside its hostIP.
func TestStatusHostNetworkPodIP(t *testing.T) {
	pod := statusPod(corev1.RestartPolicyAlways)
	pod.Spec.HostNetwork = true
	o := observedRuns()
	o.sandbox.IPs, o.sandbox.HostNetwork = []string{"192.0.2.10"}, true
	o.hostIP = "192.0.2.10"
	st := computeStatus(pod, o, time.Now())
	if st.PodIP != "192.0.2.10" || len(st.PodIPs) != 1 || st.PodIPs[0].IP != "192.0.2.10" || st.HostIP != "192.0.2.10" {
		t.Errorf("podIP %q podIPs %v hostIP %q", st.PodIP, st.PodIPs, st.HostIP)
	}
}
