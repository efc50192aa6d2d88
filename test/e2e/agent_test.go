package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAgentKubeletFeatures drives the node agent's kubelet features through
// kubectl and client-go against one `peapod server` that trusts a registry
// the test serves on loopback.
func TestAgentKubeletFeatures(t *testing.T) {
	requireRoot(t)
	reg := startRegistry(t)
	c := startClusterWith(t, "--insecure-registry", reg)

	t.Run("NativeSidecar", func(t *testing.T) { testNativeSidecar(t, c.with(t)) })
	t.Run("TerminationMessage", func(t *testing.T) { testTerminationMessage(t, c.with(t)) })
	t.Run("ActiveDeadline", func(t *testing.T) { testActiveDeadline(t, c.with(t)) })
	t.Run("PostStart", func(t *testing.T) { testPostStart(t, c.with(t)) })
	t.Run("ImagePull", func(t *testing.T) { testImagePull(t, c.with(t), reg) })
	t.Run("LateConfigMap", func(t *testing.T) { testLateConfigMap(t, c.with(t)) })
	t.Run("Probes", func(t *testing.T) { testProbes(t, c.with(t)) })
	t.Run("GracefulDeletion", func(t *testing.T) { testGracefulDeletion(t, c.with(t)) })
	t.Run("NodeStatus", func(t *testing.T) { testNodeStatus(t, c.with(t)) })
}

func testNativeSidecar(t *testing.T, c *cluster) {
	out := t.TempDir()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: out, hostPath: {path: %s, type: Directory}}
  initContainers:
  - name: side
    image: busybox
    restartPolicy: Always
    command: [sh, -c, 'trap "echo side >> /out/stop; kill $!; exit 0" TERM; sleep 2; echo ok > /shared/hook; echo ok > /shared/index.html; httpd -f -vv -p 8081 -h /shared & wait']
    startupProbe: {tcpSocket: {port: 8081}, periodSeconds: 1, failureThreshold: 30}
    volumeMounts: [{name: shared, mountPath: /shared}, {name: out, mountPath: /out}]
  - name: after
    image: busybox
    command: [sh, -c, 'wget -q -O /dev/null http://127.0.0.1:8081/ && echo after >> /out/order']
    volumeMounts: [{name: shared, mountPath: /shared}, {name: out, mountPath: /out}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo main >> /out/order; trap "sleep 1; echo main >> /out/stop; exit 0" TERM; while true; do sleep 0.2; done']
    lifecycle: {postStart: {httpGet: {path: /hook, port: 8081}}}
    volumeMounts: [{name: out, mountPath: /out}]
`, out))
	p := c.waitPod("default", "sidecar", 90*time.Second, "Running", running)
	if data, _ := os.ReadFile(filepath.Join(out, "order")); strings.Join(strings.Fields(string(data)), ",") != "after,main" {
		t.Errorf("order = %q, want after (which needs the started sidecar's server), then main", data)
	}
	side := containerStatus(p.Status.InitContainerStatuses, "side")
	if side == nil || side.State.Running == nil || side.Started == nil || !*side.Started || !side.Ready {
		t.Errorf("sidecar status = %+v, want running, started and ready", side)
	}
	if after := containerStatus(p.Status.InitContainerStatuses, "after"); after == nil || after.State.Terminated == nil || after.State.Terminated.ExitCode != 0 {
		t.Errorf("init container after = %+v, want terminated with 0", after)
	}
	// main's postStart httpGet reached the sidecar over localhost.
	if logs := c.must("logs", "sidecar", "-c", "side"); !strings.Contains(logs, "url:/hook") {
		t.Errorf("sidecar's httpd never saw main's postStart request:\n%s", logs)
	}

	// A sidecar that exits is restarted; main is not.
	c.must("exec", "sidecar", "-c", "side", "--", "killall", "httpd")
	p = c.waitPod("default", "sidecar", 60*time.Second, "sidecar restarted", func(p *corev1.Pod) bool {
		s := containerStatus(p.Status.InitContainerStatuses, "side")
		return s != nil && s.RestartCount == 1 && s.State.Running != nil && s.Started != nil && *s.Started
	})
	if m := containerStatus(p.Status.ContainerStatuses, "main"); m.RestartCount != 0 || m.State.Running == nil {
		t.Errorf("main = %+v, want still running, never restarted", m)
	}

	// Deletion stops main first, the sidecar after it.
	c.must("delete", "pod", "sidecar", "--timeout=60s")
	if data, _ := os.ReadFile(filepath.Join(out, "stop")); strings.Join(strings.Fields(string(data)), ",") != "main,side" {
		t.Errorf("stop order = %q, want main then side", data)
	}
}

func testTerminationMessage(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: tm-file}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: [sh, -c, "echo from-file > /dev/termination-log; echo noise; exit 1"]}
---
apiVersion: v1
kind: Pod
metadata: {name: tm-path}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, terminationMessagePath: /tmp/why, command: [sh, -c, "echo from-path > /tmp/why"]}
---
apiVersion: v1
kind: Pod
metadata: {name: tm-logs}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, terminationMessagePolicy: FallbackToLogsOnError, command: [sh, -c, "for i in $(seq 1 100); do echo line$i; done; echo oops >&2; exit 2"]}
---
apiVersion: v1
kind: Pod
metadata: {name: tm-logs-ok}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, terminationMessagePolicy: FallbackToLogsOnError, command: [sh, -c, "echo fine"]}
`)
	done := func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil
	}
	msg := func(name string) string {
		return c.waitPod("default", name, 60*time.Second, "terminated", done).Status.ContainerStatuses[0].State.Terminated.Message
	}
	if m := msg("tm-file"); strings.TrimSpace(m) != "from-file" {
		t.Errorf("tm-file message = %q, want from-file", m)
	}
	if m := msg("tm-path"); strings.TrimSpace(m) != "from-path" {
		t.Errorf("tm-path message = %q, want from-path", m)
	}
	m := msg("tm-logs")
	lines := strings.Split(strings.TrimSpace(m), "\n")
	if len(lines) != 80 || lines[0] != "line22" || lines[79] != "oops" {
		t.Errorf("tm-logs message has %d lines (%q ... %q), want the last 80: line22 ... oops", len(lines), lines[0], lines[len(lines)-1])
	}
	if m := msg("tm-logs-ok"); m != "" {
		t.Errorf("tm-logs-ok message = %q, want none for a container that succeeded", m)
	}
	if out := c.must("describe", "pod", "tm-file"); !strings.Contains(out, "from-file") {
		t.Errorf("kubectl describe lacks the message:\n%s", out)
	}
	c.must("delete", "pod", "tm-file", "tm-path", "tm-logs", "tm-logs-ok")
}

func testActiveDeadline(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 3
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
`)
	c.waitPod("default", "deadline", 60*time.Second, "Running", running)
	start := time.Now()
	p := c.waitPod("default", "deadline", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	t.Logf("failed %s after Running", time.Since(start).Round(100*time.Millisecond))
	if p.Status.Reason != "DeadlineExceeded" {
		t.Errorf("reason = %q, want DeadlineExceeded", p.Status.Reason)
	}
	c.waitEvent("default", "deadline", "DeadlineExceeded", 10*time.Second)
	c.eventually(30*time.Second, func() error {
		if c.sandboxOf(string(p.UID)) {
			return fmt.Errorf("the failed pod's sandbox (and its container) is still there")
		}
		return nil
	})
	if out := c.must("get", "pod", "deadline"); !strings.Contains(out, "DeadlineExceeded") {
		t.Errorf("kubectl get pod shows:\n%s", out)
	}
	c.must("delete", "pod", "deadline")
}

func testPostStart(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: hook-exec}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    lifecycle: {postStart: {exec: {command: [sh, -c, "sleep 2; echo hooked > /tmp/hook"]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: hook-fail}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    lifecycle: {postStart: {exec: {command: [sh, -c, "exit 3"]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: hook-http-fail}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    lifecycle: {postStart: {httpGet: {path: /, port: 9}}}
`)
	// The first status that says Running comes after the hook finished.
	c.waitPod("default", "hook-exec", 60*time.Second, "Running", running)
	if out := c.must("exec", "hook-exec", "--", "cat", "/tmp/hook"); out != "hooked" {
		t.Errorf("when first Running, the postStart hook's file holds %q, want hooked", out)
	}
	for _, name := range []string{"hook-fail", "hook-http-fail"} {
		p := c.waitPod("default", name, 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if cs := p.Status.ContainerStatuses[0]; cs.State.Terminated == nil || cs.RestartCount != 0 {
			t.Errorf("%s: container = %+v, want killed, not restarted", name, cs)
		}
		c.waitEvent("default", name, "FailedPostStartHook", 10*time.Second)
	}
	c.must("delete", "pod", "hook-exec", "hook-fail", "hook-http-fail")
}

func testImagePull(t *testing.T, c *cluster, reg string) {
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: pull-never}
spec:
  containers:
  - {name: c, image: example.invalid/none:1, imagePullPolicy: Never}
---
apiVersion: v1
kind: Pod
metadata: {name: pull-fail}
spec:
  containers:
  - {name: c, image: "127.0.0.1:%s/none:1", imagePullPolicy: Always}
---
apiVersion: v1
kind: Pod
metadata: {name: pulled}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "%s/e2e/busybox:v1", imagePullPolicy: Always, command: [sleep, "3600"]}
`, closedPort(t), reg))
	c.waitPod("default", "pull-never", 30*time.Second, "ErrImageNeverPull", func(p *corev1.Pod) bool { return waitingReason(p, "c") == "ErrImageNeverPull" })
	seen := map[string]bool{}
	c.waitPod("default", "pull-fail", 60*time.Second, "ErrImagePull then ImagePullBackOff", func(p *corev1.Pod) bool {
		seen[waitingReason(p, "c")] = true
		return seen["ErrImagePull"] && seen["ImagePullBackOff"]
	})
	c.waitEvent("default", "pull-fail", "Failed", 5*time.Second)
	c.waitEvent("default", "pull-fail", "BackOff", 5*time.Second)
	if out := c.must("get", "pod", "pull-never", "pull-fail"); !strings.Contains(out, "ErrImageNeverPull") || !strings.Contains(out, "ImagePullBackOff") {
		t.Errorf("kubectl get pods shows:\n%s", out)
	}

	p := c.waitPod("default", "pulled", 60*time.Second, "Running", running)
	if id := p.Status.ContainerStatuses[0].ImageID; !strings.Contains(id, "@sha256:") && !strings.HasPrefix(id, "sha256:") {
		t.Errorf("imageID = %q, want a digest", id)
	}
	c.waitEvent("default", "pulled", "Pulling", 5*time.Second)
	c.waitEvent("default", "pulled", "Pulled", 5*time.Second)
	c.must("delete", "pod", "pull-never", "pull-fail", "pulled", "--grace-period=1")
}

// A pod whose ConfigMap does not exist yet waits in ContainerCreating with
// FailedMount events, and starts soon after the ConfigMap appears, as with
// the kubelet (its volume reconciler retries within a second at first).
func testLateConfigMap(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: late-cm}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: cfg, configMap: {name: late}}]
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: cfg, mountPath: /cfg}]}
`)
	c.waitEvent("default", "late-cm", "FailedMount", 20*time.Second)
	if p := c.waitPod("default", "late-cm", 10*time.Second, "ContainerCreating", func(p *corev1.Pod) bool {
		return waitingReason(p, "c") == "ContainerCreating"
	}); p.Status.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", p.Status.Phase)
	}
	c.must("create", "configmap", "late", "--from-literal=greeting=hello")
	c.waitPod("default", "late-cm", 15*time.Second, "Running", running)
	if got := c.must("exec", "late-cm", "--", "cat", "/cfg/greeting"); got != "hello" {
		t.Errorf("/cfg/greeting = %q, want hello", got)
	}
	c.must("delete", "pod", "late-cm", "--grace-period=1")
	c.must("delete", "configmap", "late")
}

func testProbes(t *testing.T, c *cluster) {
	grpcDir := grpcHealthBinary(t)
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: probe-grpc}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: bin, hostPath: {path: %s, type: Directory}}]
  containers:
  - name: c
    image: busybox
    command: [/grpc/grpchealth, "9555"]
    volumeMounts: [{name: bin, mountPath: /grpc}]
    readinessProbe: {grpc: {port: 9555}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: probe-tcp}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "sleep 2; exec httpd -f -p 8080 -h /tmp"]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, initialDelaySeconds: 5}
---
apiVersion: v1
kind: Pod
metadata: {name: probe-startup}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 100}
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: probe-threshold}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1, successThreshold: 3}
`, grpcDir))
	// tcpSocket: Ready once the port listens, and liveness keeps it alive.
	c.waitPod("default", "probe-tcp", 60*time.Second, "Ready by tcpSocket", ready)
	time.Sleep(6 * time.Second)
	if p := c.pod("default", "probe-tcp"); p.Status.ContainerStatuses[0].RestartCount != 0 || !ready(p) {
		t.Errorf("probe-tcp: restarts %d, ready %v; want 0 and true", p.Status.ContainerStatuses[0].RestartCount, ready(p))
	}

	// startupProbe holds liveness back: a failing liveness probe restarts
	// nothing until the container has started.
	c.waitPod("default", "probe-startup", 60*time.Second, "Running", running)
	time.Sleep(4 * time.Second)
	p := c.pod("default", "probe-startup")
	if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 0 || cs.Started == nil || *cs.Started {
		t.Errorf("before its startupProbe passed: restarts %d, started %v; want 0 and false", cs.RestartCount, cs.Started)
	}
	c.must("exec", "probe-startup", "--", "touch", "/tmp/started")
	c.waitPod("default", "probe-startup", 30*time.Second, "restarted by liveness once started", func(p *corev1.Pod) bool {
		return p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	c.waitEvent("default", "probe-startup", "Unhealthy", 5*time.Second)

	// successThreshold 3: Ready needs three successes in a row.
	c.waitPod("default", "probe-threshold", 60*time.Second, "Running", running)
	c.must("exec", "probe-threshold", "--", "touch", "/tmp/ready")
	touched := time.Now()
	c.waitPod("default", "probe-threshold", 20*time.Second, "Ready", ready)
	if d := time.Since(touched); d < 1500*time.Millisecond {
		t.Errorf("Ready %s after the probe began to succeed; successThreshold 3 at 1 s periods needs about 2 s", d)
	}
	// grpc (last: a failure here ends the subtest): NOT_SERVING until /tmp/serving exists.
	c.waitPod("default", "probe-grpc", 60*time.Second, "Running", running)
	time.Sleep(2 * time.Second)
	if ready(c.pod("default", "probe-grpc")) {
		t.Errorf("probe-grpc is Ready while its health service says NOT_SERVING")
	}
	c.must("exec", "probe-grpc", "--", "touch", "/tmp/serving")
	c.waitPod("default", "probe-grpc", 20*time.Second, "Ready by grpc", ready)
	c.must("exec", "probe-grpc", "--", "rm", "/tmp/serving")
	c.waitPod("default", "probe-grpc", 20*time.Second, "not Ready by grpc", func(p *corev1.Pod) bool { return !ready(p) })

	c.must("delete", "pod", "probe-grpc", "probe-tcp", "probe-startup", "probe-threshold")
}

func testGracefulDeletion(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - {name: c, image: busybox, command: [sh, -c, 'trap "" TERM; while true; do sleep 0.2; done']}
---
apiVersion: v1
kind: Pod
metadata: {name: forced}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - {name: c, image: busybox, command: [sh, -c, 'trap "" TERM; while true; do sleep 0.2; done']}
`)
	c.waitPod("default", "stubborn", 60*time.Second, "Running", running)
	forced := c.waitPod("default", "forced", 60*time.Second, "Running", running)

	start := time.Now()
	c.must("delete", "pod", "stubborn", "--grace-period=3", "--timeout=60s")
	if d := time.Since(start); d < 2500*time.Millisecond || d > 20*time.Second {
		t.Errorf("delete --grace-period=3 of a pod ignoring SIGTERM took %s, want about 3 s", d)
	}

	start = time.Now()
	c.must("delete", "pod", "forced", "--force", "--grace-period=0")
	if _, err := c.client.CoreV1().Pods("default").Get(context.Background(), "forced", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a forced delete the pod is still in the API (err %v)", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("forced delete took %s", d)
	}
	c.eventually(30*time.Second, func() error {
		if c.sandboxOf(string(forced.UID)) {
			return fmt.Errorf("the force-deleted pod's sandbox is still on the node")
		}
		return nil
	})
}

func testNodeStatus(t *testing.T, c *cluster) {
	var node corev1.Node
	if err := json.Unmarshal([]byte(c.must("get", "node", "e2e-node", "-o", "json")), &node); err != nil {
		t.Fatal(err)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods, corev1.ResourceEphemeralStorage} {
		if q, ok := node.Status.Capacity[r]; !ok || q.IsZero() {
			t.Errorf("capacity lacks %s: %v", r, node.Status.Capacity)
		}
		if q, ok := node.Status.Allocatable[r]; !ok || q.IsZero() {
			t.Errorf("allocatable lacks %s: %v", r, node.Status.Allocatable)
		}
	}
	addrs := map[corev1.NodeAddressType]string{}
	for _, a := range node.Status.Addresses {
		addrs[a.Type] = a.Address
	}
	if addrs[corev1.NodeInternalIP] == "" || addrs[corev1.NodeHostName] == "" {
		t.Errorf("addresses = %v, want InternalIP and Hostname", node.Status.Addresses)
	}
	info := node.Status.NodeInfo
	if info.KernelVersion == "" || info.OSImage == "" || !strings.Contains(info.ContainerRuntimeVersion, "runc://") || info.KubeletVersion == "" || info.BootID == "" {
		t.Errorf("nodeInfo = %+v", info)
	}
	if node.Spec.PodCIDR != e2eNodePodCIDR {
		t.Errorf("podCIDR = %q, want %q", node.Spec.PodCIDR, e2eNodePodCIDR)
	}
	conds := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, cond := range node.Status.Conditions {
		conds[cond.Type] = cond.Status
	}
	want := map[corev1.NodeConditionType]corev1.ConditionStatus{
		corev1.NodeReady: corev1.ConditionTrue, corev1.NodeMemoryPressure: corev1.ConditionFalse,
		corev1.NodeDiskPressure: corev1.ConditionFalse, corev1.NodePIDPressure: corev1.ConditionFalse,
		corev1.NodeNetworkUnavailable: corev1.ConditionFalse,
	}
	for k, v := range want {
		if conds[k] != v {
			t.Errorf("condition %s = %q, want %q", k, conds[k], v)
		}
	}

	// The Lease is renewed every 10 s.
	renewTime := func() time.Time {
		var lease coordinationv1.Lease
		if err := json.Unmarshal([]byte(c.must("get", "lease", "-n", "kube-node-lease", "e2e-node", "-o", "json")), &lease); err != nil {
			t.Fatal(err)
		}
		if lease.Spec.RenewTime == nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "e2e-node" {
			t.Fatalf("lease = %+v", lease.Spec)
		}
		return lease.Spec.RenewTime.Time
	}
	first := renewTime()
	var second time.Time
	c.eventually(15*time.Second, func() error {
		if second = renewTime(); !second.After(first) {
			return fmt.Errorf("lease not renewed since %s", first)
		}
		return nil
	})
	c.eventually(15*time.Second, func() error {
		if third := renewTime(); !third.After(second) {
			return fmt.Errorf("lease not renewed since %s", second)
		}
		return nil
	})
	if out := c.must("get", "lease", "-n", "kube-node-lease"); !strings.Contains(out, "e2e-node") {
		t.Errorf("kubectl get lease:\n%s", out)
	}
	out := c.must("describe", "node", "e2e-node")
	for _, want := range []string{"Ready", "MemoryPressure", "Capacity:", "Allocatable:", "System Info:", "Kernel Version:", "InternalIP:", "PodCIDR:", "HolderIdentity:  e2e-node"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe node lacks %q:\n%s", want, out)
		}
	}
}
