package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHostNamespaces runs pods in the node's namespaces through kubectl:
// hostNetwork (IP, ports, hostname, links of the node; hostPort conflicts
// are scheduling failures; adoption after a restart; a teardown that
// leaves the node's network alone), hostPID and hostIPC.
func TestHostNamespaces(t *testing.T) {
	requireRoot(t)
	c := startCluster(t)
	t.Run("HostPIDAndIPC", func(t *testing.T) { testHostPIDAndIPC(t, c.with(t)) })
	// Last and on the cluster itself, not a subtest's copy: it restarts
	// the server.
	testHostNetwork(t, c)
}

// nodeInternalIP is the e2e node's InternalIP as the API has it.
func (c *cluster) nodeInternalIP() string {
	c.t.Helper()
	node, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	c.t.Fatalf("node has no InternalIP: %+v", node.Status.Addresses)
	return ""
}

// hostLinks lists the node's link names but veths, which other pods'
// sandboxes (the warm pool's) add and remove at any time.
func hostLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() != "veth" {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func hostRoutes(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "route", "show", "table", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, e2eBridge) { // the pod network's route stays, pods or not
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func testHostNetwork(t *testing.T, c *cluster) {
	port := closedPort(t)
	nodeIP := c.nodeInternalIP()
	linksBefore, routesBefore := strings.Join(hostLinks(t), ","), hostRoutes(t)
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'mkdir -p /tmp/www && echo served by the node > /tmp/www/index.html && exec httpd -f -p %[1]s -h /tmp/www']
    ports: [{containerPort: %[1]s}]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
`, port))
	p := c.waitPod("default", "hostnet", 90*time.Second, "Running", running)
	if p.Status.PodIP != nodeIP || p.Status.HostIP != nodeIP || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != nodeIP {
		t.Errorf("podIP %s podIPs %v hostIP %s, want the node's InternalIP %s", p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP, nodeIP)
	}
	if hp := p.Spec.Containers[0].Ports[0].HostPort; strconv.Itoa(int(hp)) != port {
		t.Errorf("hostPort defaulted to %d, want the containerPort %s", hp, port)
	}
	// Its port is the node's: served at the node's IP.
	client := &http.Client{Timeout: 5 * time.Second}
	c.eventually(30*time.Second, func() error {
		resp, err := client.Get("http://" + nodeIP + ":" + port + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(body)) != "served by the node" {
			return fmt.Errorf("node IP port %s served %q", port, body)
		}
		return nil
	})
	host, _ := os.Hostname()
	if got := c.must("exec", "hostnet", "--", "hostname"); got != host {
		t.Errorf("hostname in the pod %q, want the node's %q", got, host)
	}
	if got := c.must("exec", "hostnet", "--", "sh", "-c", "echo $POD_IP $HOST_IP"); got != nodeIP+" "+nodeIP {
		t.Errorf("POD_IP HOST_IP = %q, want the node's IP twice", got)
	}
	podLinks := c.must("exec", "hostnet", "--", "ip", "-o", "link")
	for _, l := range hostLinks(t) {
		if !strings.Contains(podLinks, ": "+l+":") && !strings.Contains(podLinks, ": "+l+"@") {
			t.Errorf("`ip link` in the pod lacks the node's %s:\n%s", l, podLinks)
		}
	}
	if hosts := c.must("exec", "hostnet", "--", "head", "-1", "/etc/hosts"); hosts != "# Kubernetes-managed hosts file (host network)." {
		t.Errorf("/etc/hosts starts with %q", hosts)
	}
	var sb *sandboxInfo
	for _, s := range psSandboxes(t, c) {
		if s.PodName == "hostnet" {
			sb = &sandboxInfo{netns: s.NetNSPath, hostNetwork: s.HostNetwork, ips: s.IPs}
		}
	}
	if sb == nil || !sb.hostNetwork || sb.netns != "" || len(sb.ips) != 1 || sb.ips[0] != nodeIP {
		t.Errorf("peapod ps: %+v, want the node's network and IP", sb)
	}
	if out, err := exec.Command(peapodBinary(t), "ps", "--data-dir", c.dir).CombinedOutput(); err != nil || !strings.Contains(string(out), "default/hostnet") || !strings.Contains(string(out), " host ") {
		t.Errorf("peapod ps does not show the sandbox in the host network (%v):\n%s", err, out)
	}

	// The same port again, as a hostNetwork pod and as a hostPort: no node fits.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hostnet-twin}
spec:
  hostNetwork: true
  containers: [{name: web, image: busybox, command: [sleep, "3600"], ports: [{containerPort: %[1]s}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostport-twin}
spec:
  containers: [{name: web, image: busybox, command: [sleep, "3600"], ports: [{containerPort: 80, hostPort: %[1]s}]}]
`, port))
	for _, name := range []string{"hostnet-twin", "hostport-twin"} {
		c.waitPod("default", name, 30*time.Second, "Unschedulable for its port", func(p *corev1.Pod) bool {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable &&
					strings.Contains(cond.Message, "node(s) didn't have free ports for the requested pod ports") {
					return p.Spec.NodeName == ""
				}
			}
			return false
		})
		c.waitEvent("default", name, "FailedScheduling", 30*time.Second)
	}
	c.must("delete", "pod", "hostnet-twin", "hostport-twin", "--wait=false")

	// Adopted after a restart like any pod: same container, same IP.
	before := c.pod("default", "hostnet")
	c.kill(syscall.SIGKILL)
	c.start()
	after := c.waitPod("default", "hostnet", 60*time.Second, "Running after the restart", running)
	if after.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID ||
		after.Status.ContainerStatuses[0].RestartCount != before.Status.ContainerStatuses[0].RestartCount || after.Status.PodIP != nodeIP {
		t.Errorf("after a restart: %+v, IP %s; before: %+v", after.Status.ContainerStatuses[0], after.Status.PodIP, before.Status.ContainerStatuses[0])
	}
	if _, err := client.Get("http://" + nodeIP + ":" + port + "/"); err != nil {
		t.Errorf("the adopted pod no longer serves: %v", err)
	}
	// The restarted node runs new pods too.
	c.must("run", "after-restart", "--image=busybox", "--", "sleep", "3600")
	c.waitPod("default", "after-restart", 60*time.Second, "Running", running)
	c.must("delete", "pod", "after-restart", "--wait=false")

	// Deleting it takes nothing of the node's network along.
	c.must("delete", "pod", "hostnet")
	c.eventually(60*time.Second, func() error {
		if c.sandboxOf(string(before.UID)) {
			return fmt.Errorf("sandbox of hostnet still on disk")
		}
		return nil
	})
	if after := strings.Join(hostLinks(t), ","); after != linksBefore {
		t.Errorf("the node's links changed:\nbefore %s\nafter  %s", linksBefore, after)
	}
	if after := hostRoutes(t); after != routesBefore {
		t.Errorf("the node's routes changed:\nbefore %s\nafter  %s", routesBefore, after)
	}
	if _, err := client.Get("http://" + nodeIP + ":" + port + "/"); err == nil {
		t.Errorf("port %s still served after the pod was deleted", port)
	}
	// The port is free again: a pod wanting it is scheduled and runs.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hostnet-again}
spec:
  hostNetwork: true
  containers: [{name: web, image: busybox, command: [sleep, "3600"], ports: [{containerPort: %s}]}]
`, port))
	c.waitPod("default", "hostnet-again", 60*time.Second, "Running", running)
	c.must("delete", "pod", "hostnet-again", "--wait=false")
}

type sandboxInfo struct {
	netns       string
	hostNetwork bool
	ips         []string
}

func testHostPIDAndIPC(t *testing.T, c *cluster) {
	// A SysV segment and a POSIX shm file of the node's.
	shmid, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(shmid, unix.IPC_RMID, nil) })
	posix := filepath.Join("/dev/shm", fmt.Sprintf("peapod-e2e-%d", os.Getpid()))
	if err := os.WriteFile(posix, []byte("node's"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(posix) })
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: hostpid}
spec:
  hostPID: true
  hostIPC: true
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`)
	c.waitPod("default", "hostpid", 90*time.Second, "Running", running)
	initComm, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.must("exec", "hostpid", "--", "cat", "/proc/1/comm"); got != strings.TrimSpace(string(initComm)) {
		t.Errorf("PID 1 in the pod is %q, want the node's %q", got, strings.TrimSpace(string(initComm)))
	}
	self := strconv.Itoa(os.Getpid())
	if got := c.must("exec", "hostpid", "--", "cat", "/proc/"+self+"/cmdline"); !strings.Contains(got, "e2e") {
		t.Errorf("the test process %s seen from the pod: %q", self, got)
	}
	if got := c.must("exec", "hostpid", "--", "cat", "/proc/sysvipc/shm"); !containsField(got, strconv.Itoa(shmid)) {
		t.Errorf("the node's SysV segment %d is not in the pod's /proc/sysvipc/shm:\n%s", shmid, got)
	}
	if got := c.must("exec", "hostpid", "--", "cat", posix); got != "node's" {
		t.Errorf("the node's /dev/shm file reads %q in the pod", got)
	}
	c.must("delete", "pod", "hostpid", "--wait=false")
}

// containsField reports whether a whitespace-separated field of text equals f.
func containsField(text, f string) bool {
	for _, x := range strings.Fields(text) {
		if x == f {
			return true
		}
	}
	return false
}

// TestNodeFactsAndPodLifecycle covers what the node gets right of a pod
// that shares nothing with the host: a user namespace (hostUsers: false),
// seLinuxOptions on a host without SELinux, the downward API's hostIP and
// resource limits the container does not set, PodInitializing, an init
// container failing a restartPolicy Never pod, and downward API volumes
// following label and annotation changes.
func TestNodeFactsAndPodLifecycle(t *testing.T) {
	requireRoot(t)
	c := startCluster(t)
	t.Run("UserNamespace", func(t *testing.T) { testUserNamespace(t, c.with(t)) })
	t.Run("SELinuxOptionsWithoutSELinux", func(t *testing.T) { testSELinuxOptions(t, c.with(t)) })
	t.Run("DownwardAPINodeFacts", func(t *testing.T) { testDownwardNodeFacts(t, c.with(t)) })
	t.Run("PodInitializing", func(t *testing.T) { testPodInitializing(t, c.with(t)) })
	t.Run("InitFailureNever", func(t *testing.T) { testInitFailureNever(t, c.with(t)) })
	t.Run("DownwardAPIVolumeUpdates", func(t *testing.T) { testDownwardAPIUpdates(t, c.with(t)) })
}

func testUserNamespace(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: ConfigMap
metadata: {name: userns-cfg}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: userns}
spec:
  hostUsers: false
  volumes:
  - {name: cfg, configMap: {name: userns-cfg}}
  - {name: data, emptyDir: {}}
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'echo userns > /tmp/index.html && exec httpd -f -p 80 -h /tmp']
    volumeMounts: [{name: cfg, mountPath: /cfg}, {name: data, mountPath: /data}]
`)
	p := c.waitPod("default", "userns", 90*time.Second, "Running", running)
	pid := containerPID(t, c, "userns")
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(uidMap))
	if len(f) != 3 || f[0] != "0" || f[2] != "65536" {
		t.Fatalf("uid_map of the container %q, want 0 HOSTID 65536", uidMap)
	}
	hostID, _ := strconv.Atoi(f[1])
	if hostID < 65536 || hostID%65536 != 0 {
		t.Errorf("host ID %d: want a multiple of 65536 above it", hostID)
	}
	if gidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/gid_map", pid)); strings.Join(strings.Fields(string(gidMap)), " ") != strings.Join(f, " ") {
		t.Errorf("gid_map %q differs from uid_map %q", gidMap, uidMap)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d", pid), &st); err != nil || int(st.Uid) != hostID {
		t.Errorf("the container's process runs as host uid %d (%v), want the unprivileged %d", st.Uid, err, hostID)
	}
	if got := c.must("exec", "userns", "--", "id", "-u"); got != "0" {
		t.Errorf("id -u in the pod = %q, want 0", got)
	}
	if got := c.must("exec", "userns", "--", "cat", "/cfg/greeting"); got != "hello" {
		t.Errorf("configMap volume reads %q", got)
	}
	c.must("exec", "userns", "--", "sh", "-c", "echo kept > /data/f && cat /data/f")
	// Its root owns its network namespace: port 80 is served.
	c.eventually(30*time.Second, func() error {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.Status.PodIP + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	for _, s := range psSandboxes(t, c) {
		if s.PodName == "userns" && s.UserNamespace != strings.Join(f, " ") {
			t.Errorf("peapod ps shows user namespace %q, want %q", s.UserNamespace, strings.Join(f, " "))
		}
	}
	c.must("delete", "pod", "userns", "--wait=false")
}

func testSELinuxOptions(t *testing.T, c *cluster) {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/selinux", &st) == nil && uint32(st.Type) == 0xf97cff8c {
		t.Fatal("this host has SELinux: the test covers the disabled path, where labels are ignored")
	}
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: selinux}
spec:
  securityContext: {seLinuxOptions: {level: "s0:c123,c456"}}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    securityContext: {seLinuxOptions: {type: spc_t, user: system_u, role: system_r}}
`)
	p := c.waitPod("default", "selinux", 90*time.Second, "Running", running)
	if got := c.must("exec", "selinux", "--", "echo", "ran"); got != "ran" {
		t.Errorf("exec: %q", got)
	}
	// The labels are ignored here, as on a Kubernetes node without SELinux:
	// the OCI spec carries none.
	cid := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "runc://")
	matches, _ := filepath.Glob(filepath.Join(c.dir, "pods", "*", "containers", cid, "config.json"))
	if len(matches) != 1 {
		t.Fatalf("bundle of %s: %v", cid, matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Process struct {
			SelinuxLabel string `json:"selinuxLabel"`
		} `json:"process"`
		Linux struct {
			MountLabel string `json:"mountLabel"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Process.SelinuxLabel != "" || spec.Linux.MountLabel != "" {
		t.Errorf("labels on a host without SELinux: %q, %q", spec.Process.SelinuxLabel, spec.Linux.MountLabel)
	}
	c.must("delete", "pod", "selinux", "--wait=false")
}

func testDownwardNodeFacts(t *testing.T, c *cluster) {
	nodeIP := c.nodeInternalIP()
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: facts}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env:
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: HOST_IPS, valueFrom: {fieldRef: {fieldPath: status.hostIPs}}}
    - {name: CPU_LIMIT_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: CPU_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: MEM_LIMIT_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    volumeMounts: [{name: info, mountPath: /info}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: mem_limit, resourceFieldRef: {containerName: c, resource: limits.memory}}
      - {path: cpu_limit, resourceFieldRef: {containerName: c, resource: limits.cpu, divisor: 1m}}
`)
	c.waitPod("default", "facts", 90*time.Second, "Running", running)
	node, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cpu, mem := node.Status.Allocatable.Cpu(), node.Status.Allocatable.Memory()
	// Rounded up to whole divisors, as the kubelet rounds.
	want := fmt.Sprintf("%s %s %d %d %d", nodeIP, nodeIP, cpu.MilliValue(), cpu.Value(), (mem.Value()+(1<<20)-1)/(1<<20))
	if got := c.must("exec", "facts", "--", "sh", "-c", "echo $HOST_IP $HOST_IPS $CPU_LIMIT_M $CPU_LIMIT $MEM_LIMIT_MI"); got != want {
		t.Errorf("env = %q, want %q (node IP and allocatable)", got, want)
	}
	if got := c.must("exec", "facts", "--", "cat", "/info/mem_limit", "/info/cpu_limit"); got != fmt.Sprintf("%d%d", mem.Value(), cpu.MilliValue()) {
		t.Errorf("downward API volume = %q, want the node's allocatable %d and %d", got, mem.Value(), cpu.MilliValue())
	}
	c.must("delete", "pod", "facts", "--wait=false")
}

func testPodInitializing(t *testing.T, c *cluster) {
	gate := t.TempDir()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: initializing}
spec:
  volumes: [{name: gate, hostPath: {path: %s, type: Directory}}]
  initContainers:
  - name: wait
    image: busybox
    command: [sh, -c, 'until [ -f /gate/open ]; do sleep 0.2; done']
    volumeMounts: [{name: gate, mountPath: /gate}]
  containers: [{name: app, image: busybox, command: [sleep, "3600"]}]
`, gate))
	p := c.waitPod("default", "initializing", 90*time.Second, "its init container running", func(p *corev1.Pod) bool {
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].State.Running != nil
	})
	if got := waitingReason(p, "app"); got != "PodInitializing" {
		t.Errorf("app container waits as %q while the init container runs, want PodInitializing", got)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	if out := c.must("get", "pod", "initializing", "--no-headers"); !strings.Contains(out, "Init:0/1") {
		t.Errorf("kubectl get: %q, want Init:0/1", out)
	}
	if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitPod("default", "initializing", 60*time.Second, "Running", running)
	c.must("delete", "pod", "initializing", "--wait=false")
}

func testInitFailureNever(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: init-fails}
spec:
  restartPolicy: Never
  initContainers: [{name: setup, image: busybox, command: [sh, -c, 'exit 3']}]
  containers: [{name: app, image: busybox, command: [sleep, "3600"]}]
`)
	p := c.waitPod("default", "init-fails", 90*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	ics := p.Status.InitContainerStatuses[0]
	if ics.State.Terminated == nil || ics.State.Terminated.ExitCode != 3 || ics.State.Terminated.Reason != "Error" {
		t.Errorf("init container state %+v, want terminated with 3 (Error)", ics.State)
	}
	app := p.Status.ContainerStatuses[0]
	if app.ContainerID != "" || app.State.Waiting == nil || app.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("app container %+v: want never started, waiting as PodInitializing", app)
	}
	for _, cond := range p.Status.Conditions {
		switch cond.Type {
		case corev1.PodReady, corev1.ContainersReady:
			if cond.Status != corev1.ConditionFalse || cond.Reason != "PodFailed" {
				t.Errorf("%s = %s/%s, want False/PodFailed", cond.Type, cond.Status, cond.Reason)
			}
		case corev1.PodInitialized:
			if cond.Status != corev1.ConditionFalse || cond.Reason != "ContainersNotInitialized" {
				t.Errorf("Initialized = %s/%s, want False/ContainersNotInitialized", cond.Status, cond.Reason)
			}
		}
	}
	if out := c.must("get", "pod", "init-fails", "--no-headers"); !strings.Contains(out, "Init:Error") {
		t.Errorf("kubectl get: %q, want Init:Error", out)
	}
	list, err := c.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=init-fails"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if strings.Contains(e.Message, "container app") || strings.Contains(e.Message, "container: app") {
			t.Errorf("event about the app container, which must never start: %s %s", e.Reason, e.Message)
		}
	}
	c.eventually(60*time.Second, func() error {
		if c.sandboxOf(string(p.UID)) {
			return fmt.Errorf("the failed pod still has its sandbox")
		}
		return nil
	})
	c.must("delete", "pod", "init-fails", "--wait=false")
}

func testDownwardAPIUpdates(t *testing.T, c *cluster) {
	c.apply(`
apiVersion: v1
kind: Pod
metadata:
  name: podinfo
  labels: {tier: before}
  annotations: {build: one}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: info, mountPath: /info}, {name: all, mountPath: /all}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
  - name: all
    projected:
      sources:
      - downwardAPI:
          items: [{path: tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}]
`)
	c.waitPod("default", "podinfo", 90*time.Second, "Running", running)
	c.must("label", "pod", "podinfo", "tier=after", "--overwrite")
	c.must("annotate", "pod", "podinfo", "build=two", "--overwrite")
	// The kubelet's sync period is about a minute: wait for the contents.
	c.eventually(90*time.Second, func() error {
		labels, _ := c.kubectl("exec", "podinfo", "--", "cat", "/info/labels")
		annotations, _ := c.kubectl("exec", "podinfo", "--", "cat", "/info/annotations")
		tier, _ := c.kubectl("exec", "podinfo", "--", "cat", "/all/tier")
		if !strings.Contains(labels, `tier="after"`) || !strings.Contains(annotations, `build="two"`) || tier != "after" {
			return fmt.Errorf("downward API shows labels %q, annotations %q, projected tier %q", labels, annotations, tier)
		}
		return nil
	})
	c.must("delete", "pod", "podinfo", "--wait=false")
}
