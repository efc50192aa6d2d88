package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// condition returns the pod's condition of type t, or nil.
func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// resized reports whether container's status shows the wanted cpu limit
// (resources) and cpu request (allocatedResources), with no resize
// pending or in progress.
func resized(container, cpuRequest, cpuLimit string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		cs := containerStatus(p.Status.ContainerStatuses, container)
		return cs != nil && cs.State.Running != nil && cs.Resources != nil &&
			cs.Resources.Limits.Cpu().Equal(resource.MustParse(cpuLimit)) &&
			cs.AllocatedResources.Cpu().Equal(resource.MustParse(cpuRequest)) &&
			condition(p, corev1.PodResizePending) == nil && condition(p, corev1.PodResizeInProgress) == nil
	}
}

// TestInPlaceResize resizes a running pod's containers through the
// pods/resize subresource with `kubectl patch --subresource resize`, as on
// Kubernetes 1.33 and later: cpu in place (the cgroup changes, the
// container does not restart), memory with a restart where resizePolicy
// says RestartContainer; a resize larger than the node is Infeasible, one
// that does not fit beside the other pods is Deferred until room is made;
// a memory limit below what the container uses fails with
// PodResizeInProgress/Error until undone; and the API refuses what a
// resize may not change.
func TestInPlaceResize(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: elastic}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 200m, memory: 128Mi}
    resizePolicy:
    - {resourceName: cpu, restartPolicy: NotRequired}
    - {resourceName: memory, restartPolicy: RestartContainer}
  - name: filler
    image: busybox
    command: [sh, -c, 'head -c 41943040 /dev/zero > /dev/shm/fill && sleep 3600']
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 100m, memory: 128Mi}
`)
	p := c.waitPod("default", "elastic", 60*time.Second, "Running", running)
	app := c.containerCgroup(p, "app")
	if quota, _, memory := cgroupLimits(t, app); quota != 20000 || memory != 128<<20 {
		t.Fatalf("app's cgroup before: quota %d memory %d", quota, memory)
	}
	if cs := containerStatus(p.Status.ContainerStatuses, "app"); cs.Resources == nil || !cs.Resources.Limits.Cpu().Equal(resource.MustParse("200m")) ||
		!cs.AllocatedResources.Memory().Equal(resource.MustParse("64Mi")) {
		t.Errorf("app's status before: resources %v allocated %v", cs.Resources, cs.AllocatedResources)
	}
	resize := func(patch string) {
		t.Helper()
		c.must("patch", "pod", "elastic", "--subresource", "resize", "-p", patch)
	}

	t.Run("cpu in place", func(t *testing.T) {
		c := c.with(t)
		resize(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"300m"},"limits":{"cpu":"400m"}}}]}}`)
		p := c.waitPod("default", "elastic", 30*time.Second, "app resized to cpu 300m/400m", resized("app", "300m", "400m"))
		if cs := containerStatus(p.Status.ContainerStatuses, "app"); cs.RestartCount != 0 {
			t.Errorf("app restarted (%d) for a NotRequired cpu resize", cs.RestartCount)
		}
		if quota, _, _ := cgroupLimits(t, app); quota != 40000 {
			t.Errorf("app's cgroup quota %d after the resize, want 40000", quota)
		}
		// The pod cgroup holds the sum of the containers' limits.
		if quota, _, _ := cgroupLimits(t, filepath.Dir(app)); quota != 50000 {
			t.Errorf("pod cgroup quota %d, want 50000", quota)
		}
	})

	t.Run("memory with a restart", func(t *testing.T) {
		c := c.with(t)
		resize(`{"spec":{"containers":[{"name":"app","resources":{"limits":{"memory":"192Mi"}}}]}}`)
		p := c.waitPod("default", "elastic", 60*time.Second, "app restarted with 192Mi", func(p *corev1.Pod) bool {
			cs := containerStatus(p.Status.ContainerStatuses, "app")
			return cs != nil && cs.RestartCount == 1 && cs.State.Running != nil && cs.Resources != nil &&
				cs.Resources.Limits.Memory().Equal(resource.MustParse("192Mi"))
		})
		if _, _, memory := cgroupLimits(t, c.containerCgroup(p, "app")); memory != 192<<20 {
			t.Errorf("the restarted app's memory limit %d, want %d", memory, 192<<20)
		}
	})

	t.Run("infeasible", func(t *testing.T) {
		c := c.with(t)
		resize(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"64"},"limits":{"cpu":"64"}}}]}}`)
		p := c.waitPod("default", "elastic", 30*time.Second, "PodResizePending Infeasible", func(p *corev1.Pod) bool {
			cond := condition(p, corev1.PodResizePending)
			return cond != nil && cond.Reason == corev1.PodReasonInfeasible
		})
		want := fmt.Sprintf("Node didn't have enough capacity: cpu, requested: 64100, capacity: %d", nodeCPUs(c)*1000)
		if cond := condition(p, corev1.PodResizePending); cond.Status != corev1.ConditionTrue || cond.Message != want {
			t.Errorf("PodResizePending %+v, want message %q", cond, want)
		}
		if cs := containerStatus(p.Status.ContainerStatuses, "app"); !cs.Resources.Limits.Cpu().Equal(resource.MustParse("400m")) {
			t.Errorf("an infeasible resize changed app's resources: %v", cs.Resources)
		}
		resize(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"300m"},"limits":{"cpu":"400m"}}}]}}`)
		c.waitPod("default", "elastic", 30*time.Second, "the resize undone", resized("app", "300m", "400m"))
	})

	t.Run("deferred until room is made", func(t *testing.T) {
		c := c.with(t)
		hog := nodeCPUs(c)*1000 - 400 - 300 // what elastic requests now, and then too little for 500m more
		c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], resources: {requests: {cpu: %dm}}}
`, hog))
		c.waitPod("default", "hog", 60*time.Second, "Running", running)
		resize(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"800m"},"limits":{"cpu":"800m"}}}]}}`)
		p := c.waitPod("default", "elastic", 30*time.Second, "PodResizePending Deferred", func(p *corev1.Pod) bool {
			cond := condition(p, corev1.PodResizePending)
			return cond != nil && cond.Reason == corev1.PodReasonDeferred
		})
		want := fmt.Sprintf("Node didn't have enough resource: cpu, requested: 900, used: %d, capacity: %d", hog, nodeCPUs(c)*1000)
		if cond := condition(p, corev1.PodResizePending); cond.Message != want {
			t.Errorf("PodResizePending message %q, want %q", cond.Message, want)
		}
		c.must("delete", "pod", "hog", "--wait=true")
		p = c.waitPod("default", "elastic", 30*time.Second, "the deferred resize done once hog left", resized("app", "800m", "800m"))
		if quota, _, _ := cgroupLimits(t, c.containerCgroup(p, "app")); quota != 80000 {
			t.Errorf("app's cgroup quota %d, want 80000", quota)
		}
	})

	t.Run("memory below usage", func(t *testing.T) {
		c := c.with(t)
		resize(`{"spec":{"containers":[{"name":"filler","resources":{"requests":{"memory":"32Mi"},"limits":{"memory":"32Mi"}}}]}}`)
		p := c.waitPod("default", "elastic", 30*time.Second, "PodResizeInProgress Error", func(p *corev1.Pod) bool {
			cond := condition(p, corev1.PodResizeInProgress)
			return cond != nil && cond.Reason == corev1.PodReasonError
		})
		if cond := condition(p, corev1.PodResizeInProgress); !strings.Contains(cond.Message, "less than current memory usage") {
			t.Errorf("PodResizeInProgress message %q", cond.Message)
		}
		cs := containerStatus(p.Status.ContainerStatuses, "filler")
		if !cs.Resources.Limits.Memory().Equal(resource.MustParse("128Mi")) || cs.RestartCount != 0 {
			t.Errorf("filler after a refused shrink: resources %v, restarts %d", cs.Resources, cs.RestartCount)
		}
		resize(`{"spec":{"containers":[{"name":"filler","resources":{"requests":{"memory":"64Mi"},"limits":{"memory":"128Mi"}}}]}}`)
		c.waitPod("default", "elastic", 30*time.Second, "no resize in progress", func(p *corev1.Pod) bool {
			return condition(p, corev1.PodResizeInProgress) == nil && condition(p, corev1.PodResizePending) == nil
		})
	})

	t.Run("API refusals", func(t *testing.T) {
		c := c.with(t)
		for _, tc := range []struct{ patch, want string }{
			{`{"spec":{"containers":[{"name":"app","resources":{"limits":{"ephemeral-storage":"1Gi"}}}]}}`, "only cpu and memory resources are mutable"},
			{`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"800m","memory":"192Mi"}}},{"name":"filler","resources":{"requests":{"memory":"128Mi"}}}]}}`,
				"Pod QOS Class may not change as a result of resizing"},
		} {
			out, err := c.kubectl("patch", "pod", "elastic", "--subresource", "resize", "-p", tc.patch)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("resize %s: %v %q, want refused with %q", tc.patch, err, out, tc.want)
			}
		}
		out, err := c.kubectl("patch", "pod", "elastic", "-p", `{"spec":{"containers":[{"name":"app","resources":{"limits":{"cpu":"1"}}}]}}`)
		if err == nil || !strings.Contains(out, "pod updates may not change fields") {
			t.Errorf("resizing through the pod itself: %v %q, want refused", err, out)
		}
	})
}
