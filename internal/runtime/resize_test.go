package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func TestPodCgroupFor(t *testing.T) {
	ctr := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want podCgroupConfig
	}{
		{"best effort: minimum shares only", corev1.PodSpec{Containers: []corev1.Container{ctr(nil, nil)}}, podCgroupConfig{Shares: 2}},
		{"every container limited: sums", corev1.PodSpec{Containers: []corev1.Container{
			ctr(rl("cpu", "100m"), rl("cpu", "200m", "memory", "64Mi")), ctr(rl("cpu", "300m"), rl("cpu", "300m", "memory", "32Mi"))}},
			podCgroupConfig{Shares: 409, Quota: 50000, Period: 100000, Memory: 96 << 20}},
		{"one container without a memory limit: none for the pod", corev1.PodSpec{Containers: []corev1.Container{
			ctr(rl("cpu", "100m"), rl("cpu", "200m", "memory", "64Mi")), ctr(nil, rl("cpu", "100m"))}},
			podCgroupConfig{Shares: 102, Quota: 30000, Period: 100000}},
		{"pod-level resources decide", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("cpu", "1500m", "memory", "128Mi")},
			Containers: []corev1.Container{ctr(rl("cpu", "100m"), nil), ctr(nil, nil)}},
			podCgroupConfig{Shares: 1024, Quota: 150000, Period: 100000, Memory: 128 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podCgroupFor(&corev1.Pod{Spec: tc.spec}); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	a := podCgroupConfig{Shares: 100, Quota: 20000, Period: 100000, Memory: 64 << 20}
	b := podCgroupConfig{Shares: 50, Quota: 40000, Period: 100000, Memory: 32 << 20}
	if got := a.grownTo(b); got != (podCgroupConfig{Shares: 100, Quota: 40000, Period: 100000, Memory: 64 << 20}) {
		t.Errorf("grownTo: %+v", got)
	}
	if got := a.grownTo(podCgroupConfig{Shares: 2}); got.Quota != 0 || got.Memory != 0 {
		t.Errorf("growing to unlimited keeps a limit: %+v", got)
	}
}

// cgroupFile reads a file of cgroup p's controller on cgroup v1, or the
// v2 file, trimmed.
func cgroupFile(t *testing.T, p, v1controller, v1file, v2file string) string {
	t.Helper()
	path := filepath.Join("/sys/fs/cgroup", v1controller, p, v1file)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		path = filepath.Join("/sys/fs/cgroup", p, v2file)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func cpuQuota(t *testing.T, p string) string {
	q := cgroupFile(t, p, "cpu", "cpu.cfs_quota_us", "cpu.max")
	return strings.Fields(q)[0]
}

func memoryLimit(t *testing.T, p string) string {
	return cgroupFile(t, p, "memory", "memory.limit_in_bytes", "memory.max")
}

// TestResizeInPlace changes a running container's cgroup under runc and
// under crun, refuses a memory limit below what it uses, and gives the
// pod cgroup the pod's resources.
func TestResizeInPlace(t *testing.T) {
	h := newHarness(t)
	for _, handler := range []string{"runc", "crun"} {
		t.Run(handler, func(t *testing.T) {
			if _, err := h.rt.Handler(handler); err != nil {
				t.Fatalf("handler %s unavailable: %v", handler, err)
			}
			pod := h.pod(fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "resize-%s"}, "spec": {"containers": [
				{"name": "c", "image": "busybox", "command": ["sh", "-c", "head -c 20971520 /dev/zero > /dev/shm/fill; sleep 3600"],
				 "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}}]}}`, handler))
			id := h.start(pod, handler)
			c := h.container(id, "c")
			cg := h.rt.containerCgroup(id, c.ID)
			if q := cpuQuota(t, cg); q != "20000" {
				t.Fatalf("quota before %s", q)
			}
			if q := cpuQuota(t, h.rt.podCgroup(id)); q != "20000" || memoryLimit(t, h.rt.podCgroup(id)) != strconv.Itoa(64<<20) {
				t.Errorf("pod cgroup: quota %s memory %s, want the container's sums", q, memoryLimit(t, h.rt.podCgroup(id)))
			}
			eventually(t, 10*time.Second, func() error {
				if out := h.exec(id, "c", "ls", "-l", "/dev/shm/fill"); !strings.Contains(out, "20971520") {
					return fmt.Errorf("not filled yet: %s", out)
				}
				return nil
			})

			grown := corev1.ResourceRequirements{Requests: rl("cpu", "300m", "memory", "32Mi"), Limits: rl("cpu", "400m", "memory", "96Mi")}
			resized := pod.DeepCopy()
			resized.Spec.Containers[0].Resources = grown
			if err := h.rt.UpdatePod(h.ctx, id, resized); err != nil {
				t.Fatal(err)
			}
			if q := cpuQuota(t, h.rt.podCgroup(id)); q != "40000" {
				t.Errorf("UpdatePod did not grow the pod cgroup first: quota %s", q)
			}
			if err := h.rt.UpdateContainerResources(h.ctx, c.ID, grown); err != nil {
				t.Fatal(err)
			}
			if q, m := cpuQuota(t, cg), memoryLimit(t, cg); q != "40000" || m != strconv.Itoa(96<<20) {
				t.Errorf("after the resize: quota %s memory %s", q, m)
			}
			if st := h.container(id, "c"); st.State != ContainerRunning || st.Resources == nil || !st.Resources.Limits.Cpu().Equal(resource.MustParse("400m")) {
				t.Errorf("status after the resize: %s %+v", st.State, st.Resources)
			}
			// 20 MiB are in use: a 16Mi limit is refused and nothing changes.
			shrunk := *grown.DeepCopy()
			shrunk.Limits[corev1.ResourceMemory] = resource.MustParse("16Mi")
			shrunk.Requests[corev1.ResourceMemory] = resource.MustParse("16Mi")
			err := h.rt.UpdateContainerResources(h.ctx, c.ID, shrunk)
			if err == nil || !strings.Contains(err.Error(), "less than current memory usage") {
				t.Errorf("a memory limit below usage: %v", err)
			}
			if m := memoryLimit(t, cg); m != strconv.Itoa(96<<20) {
				t.Errorf("a refused shrink changed the limit to %s", m)
			}
			if err := h.rt.SyncPodCgroup(h.ctx, id); err != nil {
				t.Fatal(err)
			}
			if q := cpuQuota(t, h.rt.podCgroup(id)); q != "40000" {
				t.Errorf("pod cgroup after the sync: quota %s", q)
			}
			if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEphemeralContainerJoinsTarget adds an ephemeral container to a
// running pod: it runs in the pod's sandbox (its network), in the target
// container's PID namespace, and its stop signal is its own.
func TestEphemeralContainerJoinsTarget(t *testing.T) {
	h := newHarness(t)
	out := t.TempDir()
	pod := h.pod(fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debugged"}, "spec": {
		"os": {"name": "linux"},
		"volumes": [{"name": "out", "hostPath": {"path": %q}}],
		"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]},
		               {"name": "other", "image": "busybox", "command": ["sleep", "3601"]}]}}`, out))
	id := h.start(pod, "")
	debug := pod.DeepCopy()
	debug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "app", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "dbg", Image: "busybox", Lifecycle: &corev1.Lifecycle{StopSignal: ptrTo(corev1.SIGUSR2)},
		Command:      []string{"sh", "-c", `trap "echo USR2 > /out/dbg; exit 0" USR2; while true; do sleep 0.2; done`},
		VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}}}}
	if err := h.rt.UpdatePod(h.ctx, id, debug); err != nil {
		t.Fatal(err)
	}
	cid, err := h.rt.CreateContainer(h.ctx, id, "dbg", ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rt.StartContainer(h.ctx, cid); err != nil {
		t.Fatal(err)
	}
	ps := h.exec(id, "dbg", "ps", "-o", "pid,args")
	if !strings.Contains(ps, "sleep 3600") || strings.Contains(ps, "sleep 3601") {
		t.Errorf("the ephemeral container does not see (only) its target's processes:\n%s", ps)
	}
	if st := h.container(id, "dbg"); st.StopSignal != "SIGUSR2" {
		t.Errorf("recorded stop signal %q", st.StopSignal)
	}
	if err := h.rt.StopContainer(h.ctx, cid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(out, "dbg")); err != nil || strings.TrimSpace(string(data)) != "USR2" {
		t.Errorf("the ephemeral container was stopped by %q (%v), want its stop signal", data, err)
	}
	if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
}

func ptrTo[T any](v T) *T { return &v }
