package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestStopSignal: a container's lifecycle.stopSignal is what stops it, in
// place of SIGTERM (busybox's image names no STOPSIGNAL); the status
// reports each container's effective stop signal; and the API holds the
// field to kube-apiserver's rules (the pod must name its OS, and the
// signal must be one Linux has).
func TestStopSignal(t *testing.T) {
	c := startCluster(t)
	out := t.TempDir()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: signals}
spec:
  os: {name: linux}
  terminationGracePeriodSeconds: 30
  volumes: [{name: out, hostPath: {path: %s, type: Directory}}]
  containers:
  - name: usr1
    image: busybox
    lifecycle: {stopSignal: SIGUSR1}
    command: [sh, -c, 'trap "echo USR1 > /out/usr1; exit 0" USR1; trap "echo TERM > /out/usr1; exit 0" TERM; while true; do sleep 0.2; done']
    volumeMounts: [{name: out, mountPath: /out}]
  - name: default
    image: busybox
    command: [sh, -c, 'trap "echo USR1 > /out/default; exit 0" USR1; trap "echo TERM > /out/default; exit 0" TERM; while true; do sleep 0.2; done']
    volumeMounts: [{name: out, mountPath: /out}]
`, out))
	p := c.waitPod("default", "signals", 60*time.Second, "Running", running)
	for name, want := range map[string]corev1.Signal{"usr1": "SIGUSR1", "default": "SIGTERM"} {
		if cs := containerStatus(p.Status.ContainerStatuses, name); cs == nil || cs.StopSignal == nil || *cs.StopSignal != want {
			t.Errorf("container %s: status stopSignal %v, want %s", name, cs.StopSignal, want)
		}
	}
	c.must("delete", "pod", "signals", "--wait=true")
	for name, want := range map[string]string{"usr1": "USR1", "default": "TERM"} {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || strings.TrimSpace(string(data)) != want {
			t.Errorf("container %s was stopped by %q (%v), want %s", name, data, err, want)
		}
	}

	c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: no-os}
spec:
  containers:
  - {name: c, image: busybox, lifecycle: {stopSignal: SIGUSR1}}
`, "spec.containers[0].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`")
	c.applyRefused(`
apiVersion: v1
kind: Pod
metadata: {name: bad-signal}
spec:
  os: {name: linux}
  containers:
  - {name: c, image: busybox, lifecycle: {stopSignal: SIGWHAT}}
`, `spec.containers[0].lifecycle.stopSignal: Unsupported value: "SIGWHAT": supported values:`, `"SIGRTMIN+1"`)
}
