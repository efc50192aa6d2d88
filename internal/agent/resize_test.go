package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/peapod/peapod/internal/runtime"
)

func res(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func resizePod(uid, cpu string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, UID: k8stypes.UID("uid-" + uid)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: res("cpu", cpu, "memory", "64Mi"), Limits: res("cpu", cpu, "memory", "128Mi")}}}}}
}

func TestResizeFit(t *testing.T) {
	alloc := res("cpu", "2", "memory", "1Gi")
	for _, tc := range []struct {
		name        string
		desired     *corev1.Pod
		others      []*corev1.Pod
		reason, msg string
	}{
		{"fits", resizePod("a", "1"), []*corev1.Pod{resizePod("b", "500m")}, "", ""},
		{"its own old allocation does not count", resizePod("a", "1500m"), []*corev1.Pod{resizePod("a", "1")}, "", ""},
		{"more than the node", resizePod("a", "3"), nil, corev1.PodReasonInfeasible, "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000"},
		{"more memory than the node", func() *corev1.Pod {
			p := resizePod("a", "1")
			p.Spec.Containers[0].Resources.Requests["memory"] = resource.MustParse("2Gi")
			return p
		}(), nil, corev1.PodReasonInfeasible, "Node didn't have enough capacity: memory, requested: 2147483648, capacity: 1073741824"},
		{"not beside the others", resizePod("a", "1"), []*corev1.Pod{resizePod("b", "1500m")}, corev1.PodReasonDeferred,
			"Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, msg := resizeFit(tc.desired, tc.others, alloc)
			if reason != tc.reason || msg != tc.msg {
				t.Errorf("got %q %q, want %q %q", reason, msg, tc.reason, tc.msg)
			}
		})
	}
}

func TestNeedsRestart(t *testing.T) {
	have := corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "64Mi"), Limits: res("cpu", "200m", "memory", "128Mi")}
	policy := []corev1.ContainerResizePolicy{{ResourceName: "cpu", RestartPolicy: corev1.NotRequired}, {ResourceName: "memory", RestartPolicy: corev1.RestartContainer}}
	for _, tc := range []struct {
		name string
		want corev1.ResourceRequirements
		pol  []corev1.ContainerResizePolicy
		yes  bool
	}{
		{"cpu with NotRequired", corev1.ResourceRequirements{Requests: res("cpu", "300m", "memory", "64Mi"), Limits: res("cpu", "400m", "memory", "128Mi")}, policy, false},
		{"memory limit with RestartContainer", corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "64Mi"), Limits: res("cpu", "200m", "memory", "256Mi")}, policy, true},
		{"memory request only reaches no cgroup", corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "96Mi"), Limits: res("cpu", "200m", "memory", "128Mi")}, policy, false},
		{"no policy means NotRequired", corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "64Mi"), Limits: res("cpu", "200m", "memory", "256Mi")}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Name: "c", Resources: tc.want, ResizePolicy: tc.pol}
			if got := needsRestart(c, have); got != tc.yes {
				t.Errorf("needsRestart = %v, want %v", got, tc.yes)
			}
		})
	}
}

func TestAllocationBookkeeping(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	recorded := resizePod("a", "100m")
	recorded.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: res("cpu", "10m")}},
		{Name: "init", Resources: corev1.ResourceRequirements{Requests: res("cpu", "50m")}}}
	desired := recorded.DeepCopy()
	desired.Spec.Containers[0].Resources.Limits["cpu"] = resource.MustParse("500m")
	desired.Spec.InitContainers[0].Resources.Requests["cpu"] = resource.MustParse("20m")
	if sameResources(desired, recorded) || !sandboxStale(recorded, desired) {
		t.Fatal("a resized container and sidecar went unnoticed")
	}
	alloc := withAllocation(desired, recorded)
	if !sameResources(alloc, recorded) || sandboxStale(recorded, alloc) {
		t.Fatalf("withAllocation did not give back the recorded resources: %+v", alloc.Spec)
	}
	withDebug := recorded.DeepCopy()
	withDebug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg"}}}
	if !sandboxStale(recorded, withDebug) {
		t.Fatal("an added ephemeral container went unnoticed")
	}
	if got := resizableContainers(recorded); len(got) != 2 || got[0].Name != "side" || got[1].Name != "c" {
		t.Fatalf("resizable containers: %v", got)
	}
}

// TestStatusOfResize: the statuses report allocated requests and what the
// running container's cgroup has, and the resize conditions show what is
// pending or failing.
func TestStatusOfResize(t *testing.T) {
	now := time.Now()
	desired := resizePod("a", "500m")
	desired.Generation = 3 // the resize bumped it
	alloc := resizePod("a", "100m")
	running := &runtime.ContainerStatus{ID: "c1", Name: "c", State: runtime.ContainerRunning, StartedAt: now, StopSignal: "SIGUSR1",
		Resources: &corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "64Mi"), Limits: res("cpu", "100m", "memory", "96Mi")}}
	o := observed{
		runs:      map[string][]*runtime.ContainerStatus{"c": {running}},
		waiting:   map[string]waitReason{},
		allocated: alloc,
		resize: resizeState{pendingReason: corev1.PodReasonDeferred, pendingMessage: "Node didn't have enough resource: cpu",
			inProgress: true},
	}
	st := computeStatus(desired, o, now)
	cs := st.ContainerStatuses[0]
	if !equalList(cs.AllocatedResources, res("cpu", "100m", "memory", "64Mi")) {
		t.Errorf("allocatedResources %v", cs.AllocatedResources)
	}
	if cs.Resources == nil || !equalList(cs.Resources.Limits, res("cpu", "100m", "memory", "96Mi")) {
		t.Errorf("resources %v: want what the cgroup has", cs.Resources)
	}
	if cs.StopSignal == nil || *cs.StopSignal != "SIGUSR1" {
		t.Errorf("stopSignal %v", cs.StopSignal)
	}
	conds := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range st.Conditions {
		conds[c.Type] = c
	}
	if c := conds[corev1.PodResizePending]; c.Status != corev1.ConditionTrue || c.Reason != corev1.PodReasonDeferred || c.ObservedGeneration != 3 {
		t.Errorf("PodResizePending %+v", c)
	}
	if c := conds[corev1.PodResizeInProgress]; c.Status != corev1.ConditionTrue || c.Reason != "" {
		t.Errorf("PodResizeInProgress %+v", c)
	}
	o.resize = resizeState{errMessage: "aborting attempt"}
	st = computeStatus(desired, o, now)
	found := false
	for _, c := range st.Conditions {
		found = found || (c.Type == corev1.PodResizeInProgress && c.Reason == corev1.PodReasonError && c.Message == "aborting attempt")
		if c.Type == corev1.PodResizePending {
			t.Errorf("PodResizePending stays after the resize was allocated: %+v", c)
		}
	}
	if !found {
		t.Errorf("no PodResizeInProgress Error condition: %+v", st.Conditions)
	}
}

func TestEphemeralStatuses(t *testing.T) {
	now := time.Now()
	pod := resizePod("a", "100m")
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}},
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "new", Image: "busybox"}},
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "lost", Image: "busybox"}},
	}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "lost", ContainerID: "runc://x",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	o := observed{runs: map[string][]*runtime.ContainerStatus{"dbg": {{ID: "d1", Name: "dbg", Handler: "runc", State: runtime.ContainerRunning, StartedAt: now}}},
		waiting: map[string]waitReason{}}
	st := computeStatus(pod, o, now)
	if len(st.EphemeralContainerStatuses) != 3 {
		t.Fatalf("ephemeral statuses %+v", st.EphemeralContainerStatuses)
	}
	dbg, fresh, lost := st.EphemeralContainerStatuses[0], st.EphemeralContainerStatuses[1], st.EphemeralContainerStatuses[2]
	if dbg.State.Running == nil || dbg.ContainerID != "runc://d1" || dbg.Ready {
		t.Errorf("running ephemeral container: %+v", dbg)
	}
	if fresh.State.Waiting == nil || fresh.State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("ephemeral container not started yet: %+v", fresh)
	}
	if lost.State.Terminated == nil || lost.State.Terminated.Reason != "ContainerStatusUnknown" || !ephemeralRan(pod, "lost") || ephemeralRan(pod, "new") {
		t.Errorf("ephemeral container of a lost sandbox: %+v", lost)
	}
	if len(st.ContainerStatuses) != 1 {
		t.Errorf("ephemeral containers leaked into containerStatuses: %+v", st.ContainerStatuses)
	}
}

func equalList(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}
