package apiserver

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodPrintStatus(t *testing.T) {
	now := time.Now()
	yes := true
	always := corev1.ContainerRestartPolicyAlways
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	two := []corev1.Container{{Name: "a"}, {Name: "b"}}
	for _, tc := range []struct {
		name         string
		pod          corev1.Pod
		ready, state string
		restarts     string
	}{
		{"pending", corev1.Pod{Spec: corev1.PodSpec{Containers: two}, Status: corev1.PodStatus{Phase: corev1.PodPending}}, "0/2", "Pending", "0"},
		{"running", corev1.Pod{Spec: corev1.PodSpec{Containers: two}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", Ready: true, State: running}, {Name: "b", Ready: true, State: running}}}}, "2/2", "Running", "0"},
		{"waiting reason", corev1.Pod{Spec: corev1.PodSpec{Containers: two}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}}}, "0/2", "ImagePullBackOff", "0"},
		{"crashloop with restarts", corev1.Pod{Spec: corev1.PodSpec{Containers: two[:1]}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", RestartCount: 3, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(now.Add(-2 * time.Minute))}}}}}}, "0/1", "CrashLoopBackOff", "3 (2m ago)"},
		{"completed", corev1.Pod{Spec: corev1.PodSpec{Containers: two[:1]}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}}}, "0/1", "Completed", "0"},
		{"exit code", corev1.Pod{Spec: corev1.PodSpec{Containers: two[:1]}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}}}}}, "0/1", "ExitCode:2", "0"},
		{"init running", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i1"}, {Name: "i2"}}, Containers: two[:1]},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "i2", State: running}}}}, "0/1", "Init:1/2", "0"},
		{"init failed", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i1"}}, Containers: two[:1]},
			Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
				{Name: "i1", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}}, "0/1", "Init:Error", "0"},
		{"sidecar counts", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "s", RestartPolicy: &always}}, Containers: two[:1]},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
				InitContainerStatuses: []corev1.ContainerStatus{{Name: "s", Ready: true, Started: &yes, State: running}},
				ContainerStatuses:     []corev1.ContainerStatus{{Name: "a", Ready: true, State: running}}}}, "2/2", "Running", "0"},
		{"terminating", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: now}}, Spec: corev1.PodSpec{Containers: two[:1]},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}, "0/1", "Terminating", "0"},
		{"evicted reason", corev1.Pod{Spec: corev1.PodSpec{Containers: two[:1]}, Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}}, "0/1", "Evicted", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PodPrintStatus(&tc.pod, now)
			if got.Ready != tc.ready || got.Status != tc.state || got.Restarts != tc.restarts {
				t.Fatalf("got %s %s %s, want %s %s %s", got.Ready, got.Status, got.Restarts, tc.ready, tc.state, tc.restarts)
			}
		})
	}
}

func TestDefaultPod(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 80}}},
		{Name: "b", Image: "nginx:1.25"},
		{Name: "c", Image: "reg:5000/x:latest"},
		{Name: "d", Image: "x@sha256:abc"},
	}}}
	DefaultPod(pod)
	DefaultPod(pod) // idempotent
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyAlways || s.DNSPolicy != corev1.DNSClusterFirst || *s.TerminationGracePeriodSeconds != 30 ||
		s.SchedulerName != "default-scheduler" || !*s.EnableServiceLinks || s.ServiceAccountName != "default" || s.SecurityContext == nil {
		t.Fatalf("spec defaults: %+v", s)
	}
	want := []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullIfNotPresent}
	for i, c := range s.Containers {
		if c.ImagePullPolicy != want[i] || c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
			t.Errorf("container %s: %s %s", c.Name, c.ImagePullPolicy, c.TerminationMessagePath)
		}
	}
	if s.Containers[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Error("port protocol not defaulted")
	}
	if len(s.Tolerations) != 2 || *s.Tolerations[0].TolerationSeconds != 300 {
		t.Fatalf("tolerations: %+v", s.Tolerations)
	}
}
