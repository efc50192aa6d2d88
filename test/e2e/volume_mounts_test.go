package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// applyRefused applies a manifest that the API must refuse, and checks
// kubectl's answer names each wanted text.
func (c *cluster) applyRefused(manifest string, want ...string) {
	c.t.Helper()
	f := filepath.Join(c.dir, fmt.Sprintf("refused-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		c.t.Fatal(err)
	}
	out, err := c.kubectl("apply", "-f", f)
	if err == nil {
		c.t.Fatalf("kubectl apply accepted what the API must refuse:\n%s\n%s", manifest, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			c.t.Errorf("kubectl apply's refusal lacks %q:\n%s", w, out)
		}
	}
}

// waitWaiting waits until a container waits with reason, and returns its
// waiting message.
func (c *cluster) waitWaiting(ns, pod, container, reason string) string {
	c.t.Helper()
	p := c.waitPod(ns, pod, 60*time.Second, container+" waiting with "+reason, func(p *corev1.Pod) bool {
		return waitingReason(p, container) == reason
	})
	return containerStatus(p.Status.ContainerStatuses, container).State.Waiting.Message
}

// TestSubPathExpr runs Kubernetes' subPathExpr conformance cases through
// kubectl: $(VAR) from the container's env and the downward API picks the
// directory, created in the volume as the kubelet creates it; what the API
// refuses it refuses with kube-apiserver's errors; what only the node can
// see (an expanded value that is absolute or has "..", a variable without
// a value, a symlink out of the volume) fails the container with
// CreateContainerConfigError and the kubelet's message, and reaches
// nothing outside the volume.
func TestSubPathExpr(t *testing.T) {
	c := startCluster(t)
	out := t.TempDir()
	if err := os.Chmod(out, 0o750); err != nil {
		t.Fatal(err)
	}
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: logger}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: logs, hostPath: {path: %s, type: Directory}}
  containers:
  - name: app
    image: busybox
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - {name: KIND, value: app}
    command: [sh, -c, 'echo written-by-$POD_NAME > /logs/out.txt; sleep 3600']
    volumeMounts: [{name: logs, mountPath: /logs, subPathExpr: '$(POD_NAME)/$(KIND)'}]
  - name: reader
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: logs, mountPath: /all}]
`, out))
	c.waitPod("default", "logger", 60*time.Second, "Running", running)
	c.eventually(20*time.Second, func() error {
		got, err := c.kubectl("exec", "logger", "-c", "reader", "--", "cat", "/all/logger/app/out.txt")
		if err != nil || got != "written-by-logger" {
			return fmt.Errorf("the expanded subPath is not logger/app in the volume: %v %q", err, got)
		}
		return nil
	})
	// Created as the kubelet creates it: with the volume root's mode.
	for _, d := range []string{"logger", "logger/app"} {
		if st, err := os.Stat(filepath.Join(out, d)); err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: %v %v, want a directory with the volume's mode 0750", d, st, err)
		}
	}

	t.Run("API refusals", func(t *testing.T) {
		c := c.with(t)
		pod := func(mount string) string {
			return `
apiVersion: v1
kind: Pod
metadata: {name: refused}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    volumeMounts: [` + mount + `]
`
		}
		c.applyRefused(pod(`{name: v, mountPath: /v, subPathExpr: "/$(POD_NAME)"}`),
			`spec.containers[0].volumeMounts.subPathExpr: Invalid value: "/$(POD_NAME)": must be a relative path`)
		c.applyRefused(pod(`{name: v, mountPath: /v, subPathExpr: "$(A)/../b"}`),
			`spec.containers[0].volumeMounts.subPathExpr: Invalid value: "$(A)/../b": must not contain '..'`)
		c.applyRefused(pod(`{name: v, mountPath: /v, subPath: a, subPathExpr: "$(A)"}`),
			`spec.containers[0].volumeMounts[0].subPathExpr: Invalid value: "$(A)": subPathExpr and subPath are mutually exclusive`)
	})

	t.Run("node refusals", func(t *testing.T) {
		c := c.with(t)
		secret := filepath.Join(t.TempDir(), "host-secret")
		if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: backticks}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    env: [{name: POD_NAME, value: ".."}]
    command: [sleep, "3600"]
    volumeMounts: [{name: v, mountPath: /v, subPathExpr: "$(POD_NAME)"}]
---
apiVersion: v1
kind: Pod
metadata: {name: absolute}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    env: [{name: POD_NAME, value: /tmp}]
    command: [sleep, "3600"]
    volumeMounts: [{name: v, mountPath: /v, subPathExpr: "$(POD_NAME)"}]
---
apiVersion: v1
kind: Pod
metadata: {name: unset}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    env: [{name: EMPTY, value: ""}]
    command: [sleep, "3600"]
    volumeMounts: [{name: v, mountPath: /v, subPathExpr: "$(EMPTY)/$(NOWHERE)"}]
---
apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  volumes: [{name: v, emptyDir: {}}]
  initContainers:
  - name: link
    image: busybox
    command: [sh, -c, 'ln -s %s /v/out; ln -s / /v/root']
    volumeMounts: [{name: v, mountPath: /v}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: v, mountPath: /v, subPath: out}]
`, filepath.Dir(secret)))
		for _, tc := range []struct{ pod, want string }{
			{"backticks", "unable to provision SubPath `..`: must not contain '..'"},
			{"absolute", "error SubPath `/tmp` must not be an absolute path"},
			{"unset", "missing value for EMPTY, NOWHERE"},
			{"escape", `failed to prepare subPath for volumeMount "v" of container "c"`},
		} {
			if msg := c.waitWaiting("default", tc.pod, "c", "CreateContainerConfigError"); !strings.Contains(msg, tc.want) {
				t.Errorf("%s: waiting message %q, want %q", tc.pod, msg, tc.want)
			}
		}
		// The refused escape reached nothing outside the volume.
		if data, err := os.ReadFile(secret); err != nil || string(data) != "host" {
			t.Errorf("the host file behind the symlink changed: %q %v", data, err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(secret)); len(entries) != 1 {
			t.Errorf("something was created outside the volume: %v", entries)
		}
	})
}

// sharedMount mounts a tmpfs at a new directory under the test's temp dir
// with the given propagation (unix.MS_SHARED or unix.MS_PRIVATE) and
// unmounts it, and everything below it, when the test ends.
func sharedMount(t *testing.T, propagation uintptr) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountTree(t, dir) })
	if err := unix.Mount("", dir, "", propagation, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// unmountTree unmounts every mount at or below dir, deepest first.
func unmountTree(t *testing.T, dir string) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Error(err)
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i].Mountpoint, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmount %s: %v", mounts[i].Mountpoint, err)
		}
	}
}

func isMountPoint(path string) bool {
	ok, err := mountinfo.Mounted(path)
	return err == nil && ok
}

// TestMountPropagation: a hostPath mounted HostToContainer receives a
// mount the host makes below it after the container started; a privileged
// container's Bidirectional mount reaches the host; between two
// containers of a pod, an emptyDir carries a mount from the Bidirectional
// one to the HostToContainer one (the pod's volumes are put on a shared
// mount, as the kubelet keeps its pods directory shared); and a hostPath
// whose host mount is private is refused with containerd's error.
func TestMountPropagation(t *testing.T) {
	c := startCluster(t)
	host := sharedMount(t, unix.MS_SHARED)
	private := sharedMount(t, unix.MS_PRIVATE)
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: watcher}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: host, hostPath: {path: %[1]s}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: host, mountPath: /host, mountPropagation: HostToContainer}]
---
apiVersion: v1
kind: Pod
metadata: {name: mounter}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: host, hostPath: {path: %[1]s}}]
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
    command: [sh, -c, 'mkdir -p /host/from-pod && mount -t tmpfs -o size=1m tmpfs /host/from-pod && echo made-in-pod > /host/from-pod/f && sleep 3600']
    volumeMounts: [{name: host, mountPath: /host, mountPropagation: Bidirectional}]
---
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: shared, emptyDir: {}}]
  containers:
  - name: maker
    image: busybox
    securityContext: {privileged: true}
    command: [sh, -c, 'mkdir -p /shared/m && mount -t tmpfs -o size=1m tmpfs /shared/m && echo from-maker > /shared/m/f && sleep 3600']
    volumeMounts: [{name: shared, mountPath: /shared, mountPropagation: Bidirectional}]
  - name: seer
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: shared, mountPath: /shared, mountPropagation: HostToContainer}]
---
apiVersion: v1
kind: Pod
metadata: {name: private}
spec:
  volumes: [{name: host, hostPath: {path: %[2]s}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: host, mountPath: /host, mountPropagation: HostToContainer}]
`, host, private))
	c.waitPod("default", "watcher", 60*time.Second, "Running", running)

	// The host mounts after the container started; HostToContainer shows it.
	late := filepath.Join(host, "late")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(late, "hello"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, func() error {
		if got, err := c.kubectl("exec", "watcher", "--", "cat", "/host/late/hello"); err != nil || got != "from-host" {
			return fmt.Errorf("a host mount made after the start did not reach the HostToContainer container: %v %q", err, got)
		}
		return nil
	})

	// The privileged container's mount reaches the host.
	c.waitPod("default", "mounter", 60*time.Second, "Running", running)
	fromPod := filepath.Join(host, "from-pod")
	c.eventually(10*time.Second, func() error {
		data, err := os.ReadFile(filepath.Join(fromPod, "f"))
		if !isMountPoint(fromPod) || err != nil || strings.TrimSpace(string(data)) != "made-in-pod" {
			return fmt.Errorf("the Bidirectional container's mount is not on the host: mounted %v, %q %v", isMountPoint(fromPod), data, err)
		}
		return nil
	})
	// ... and from there to the other pod's HostToContainer mount.
	c.eventually(10*time.Second, func() error {
		if got, err := c.kubectl("exec", "watcher", "--", "cat", "/host/from-pod/f"); err != nil || got != "made-in-pod" {
			return fmt.Errorf("one pod's Bidirectional mount did not reach the other's HostToContainer view: %v %q", err, got)
		}
		return nil
	})

	// Between two containers of one pod, over an emptyDir.
	c.waitPod("default", "pair", 60*time.Second, "Running", running)
	c.eventually(10*time.Second, func() error {
		if got, err := c.kubectl("exec", "pair", "-c", "seer", "--", "cat", "/shared/m/f"); err != nil || got != "from-maker" {
			return fmt.Errorf("the maker's mount in the emptyDir did not reach the seer: %v %q", err, got)
		}
		return nil
	})

	// A private host mount cannot carry HostToContainer: containerd's error.
	p := c.waitPod("default", "private", 60*time.Second, "CreateContainerError", func(p *corev1.Pod) bool {
		return waitingReason(p, "c") == "CreateContainerError"
	})
	if msg := containerStatus(p.Status.ContainerStatuses, "c").State.Waiting.Message; !strings.Contains(msg, fmt.Sprintf("path %q is mounted on %q but it is not a shared or slave mount", private, private)) {
		t.Errorf("waiting message %q, want containerd's shared-or-slave error", msg)
	}

	// The pods go; what the pod mounted on the host is the host's to
	// unmount (the cleanup above does).
	c.must("delete", "pod", "watcher", "mounter", "pair", "private", "--wait=true")
}
