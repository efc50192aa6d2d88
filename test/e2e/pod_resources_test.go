package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// sandboxID returns the ID of the sandbox holding the pod with uid.
func (c *cluster) sandboxID(uid types.UID) string {
	c.t.Helper()
	entries, _ := os.ReadDir(filepath.Join(c.dir, "pods"))
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(c.dir, "pods", e.Name(), "sandbox.json"))
		if err == nil && strings.Contains(string(data), string(uid)) {
			return e.Name()
		}
	}
	c.t.Fatalf("no sandbox holds pod %s", uid)
	return ""
}

// cgroupLimits reads the CPU quota and period and the memory limit of the
// cgroup at path (below the hierarchies' roots), on cgroup v1 or v2; -1
// means no limit.
func cgroupLimits(t *testing.T, path string) (quota, period, memory int64) {
	t.Helper()
	read := func(p string) string {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read cgroup file: %v", err)
		}
		return strings.TrimSpace(string(data))
	}
	num := func(s string) int64 {
		if s == "max" {
			return -1
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("cgroup value %q: %v", s, err)
		}
		if n > 1<<62 { // v1's "no limit"
			return -1
		}
		return n
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		f := strings.Fields(read(filepath.Join("/sys/fs/cgroup", path, "cpu.max")))
		return num(f[0]), num(f[1]), num(read(filepath.Join("/sys/fs/cgroup", path, "memory.max")))
	}
	return num(read(filepath.Join("/sys/fs/cgroup/cpu", path, "cpu.cfs_quota_us"))),
		num(read(filepath.Join("/sys/fs/cgroup/cpu", path, "cpu.cfs_period_us"))),
		num(read(filepath.Join("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes")))
}

// containerCgroup is the cgroup of a pod's container, /peapod/<sandbox>/<container ID>.
func (c *cluster) containerCgroup(p *corev1.Pod, container string) string {
	c.t.Helper()
	cs := containerStatus(p.Status.ContainerStatuses, container)
	if cs == nil || cs.ContainerID == "" {
		c.t.Fatalf("container %s of %s has no ID", container, p.Name)
	}
	_, id, _ := strings.Cut(cs.ContainerID, "://")
	return filepath.Join("/", e2eCgroup, c.sandboxID(p.UID), id)
}

// TestPodLevelResources: spec.resources bounds the pod as a whole, as on
// a Kubernetes node: its cgroup gets the pod-level limits, containers
// without their own limits read the pod's through resourceFieldRef (in
// env and in downward API volumes), the status reports the QoS class the
// pod-level resources make, the scheduler counts the pod-level requests,
// and the API applies kube-apiserver's defaults and checks.
func TestPodLevelResources(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: budget}
spec:
  terminationGracePeriodSeconds: 1
  resources:
    requests: {cpu: 1500m, memory: 128Mi}
    limits: {cpu: 1500m, memory: 128Mi}
  volumes:
  - name: info
    downwardAPI:
      items:
      - path: mem
        resourceFieldRef: {containerName: a, resource: limits.memory}
  containers:
  - name: a
    image: busybox
    command: [sleep, "3600"]
    env:
    - name: CPU
      valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}
    - name: MEM
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    volumeMounts: [{name: info, mountPath: /info}]
  - name: b
    image: busybox
    command: [sleep, "3600"]
    resources: {requests: {cpu: 100m}}
`)
	p := c.waitPod("default", "budget", 60*time.Second, "Running", running)
	if p.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass %s, want Guaranteed: the pod-level requests equal the limits", p.Status.QOSClass)
	}
	if got := c.must("exec", "budget", "-c", "a", "--", "sh", "-c", `echo $CPU $MEM $(cat /info/mem)`); got != "1500 128 134217728" {
		t.Errorf("a container without limits reads %q, want the pod's limits (1500 128 134217728)", got)
	}
	quota, period, memory := cgroupLimits(t, filepath.Join("/", e2eCgroup, c.sandboxID(p.UID)))
	if quota != 150000 || period != 100000 || memory != 128<<20 {
		t.Errorf("pod cgroup: quota %d period %d memory %d, want 150000 100000 %d", quota, period, memory, 128<<20)
	}
	// The containers have no limits of their own; the pod's bound them.
	if quota, _, memory := cgroupLimits(t, c.containerCgroup(p, "a")); quota != -1 || memory != -1 {
		t.Errorf("container a's cgroup: quota %d memory %d, want none (the pod's cgroup holds the limits)", quota, memory)
	}

	// The scheduler counts 1500m for the pod, not the containers' 100m.
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: crowded}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], resources: {requests: {cpu: "1"}}}
`)
	c.eventually(30*time.Second, func() error {
		p := c.pod("default", "crowded")
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "Insufficient cpu") {
				return nil
			}
		}
		return fmt.Errorf("a 1-cpu pod beside a 1500m pod-level request on a %d-cpu node was not refused: %+v", nodeCPUs(c), p.Status.Conditions)
	})

	// Defaults: pod requests come from the containers', else the limits.
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: defaulted}
spec:
  resources: {limits: {cpu: 500m, memory: 32Mi}}
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], resources: {requests: {cpu: 100m}}}
`)
	d := c.pod("default", "defaulted")
	if r := d.Spec.Resources; r == nil || !r.Requests.Cpu().Equal(resource.MustParse("100m")) || !r.Requests.Memory().Equal(resource.MustParse("32Mi")) {
		t.Errorf("pod-level requests defaulted to %v, want cpu 100m (the containers') and memory 32Mi (the limit)", d.Spec.Resources)
	}
	if d.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass %s, want Burstable", d.Status.QOSClass)
	}

	c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: short}
spec:
  resources: {requests: {cpu: 100m}}
  containers:
  - {name: c, image: busybox, resources: {requests: {cpu: 200m}}}
`, `spec.resources.requests[cpu]: Invalid value: "100m": must be greater than or equal to aggregate container requests of 200m`)
	c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: over}
spec:
  resources: {limits: {memory: 64Mi}}
  containers:
  - {name: c, image: busybox, resources: {limits: {memory: 128Mi}}}
`, `spec.resources.containers[0][memory].limits: Invalid value: "128Mi": must be less than or equal to pod limits of 64Mi`)
	c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: storage}
spec:
  resources: {limits: {ephemeral-storage: 1Gi}}
  containers:
  - {name: c, image: busybox}
`, `spec.resources.limits[ephemeral-storage]: Unsupported value: "ephemeral-storage": supported values: "cpu", "hugepages-", "memory"`)
}

// nodeCPUs is the cpu allocatable of the cluster's node.
func nodeCPUs(c *cluster) int64 {
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
	if err != nil {
		return 0
	}
	return n.Status.Allocatable.Cpu().Value()
}
