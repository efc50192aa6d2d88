package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The tutorials' pod: web and client containers sharing localhost and an
// emptyDir volume.
const multiContainerPod = `
apiVersion: v1
kind: Pod
metadata:
  name: multi-container-pod
spec:
  volumes:
  - name: shared-data
    emptyDir: {}
  containers:
  - name: container1
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    volumeMounts:
    - name: shared-data
      mountPath: /data
  - name: container2
    image: busybox
    command: ["sh", "-c", "echo hello from container2 > /data/index.html; exec sleep 3600"]
    volumeMounts:
    - name: shared-data
      mountPath: /data
`

func TestTutorialScenarios(t *testing.T) {
	c := startCluster(t)
	tools := t.TempDir()
	if out, err := exec.Command("musl-gcc", "-static", "-O2", "-o", filepath.Join(tools, "sysvshm"), "../../internal/runtime/testdata/sysvshm.c").CombinedOutput(); err != nil {
		t.Fatalf("build sysvshm: %v\n%s", err, out)
	}
	c.apply(multiContainerPod)
	pod := c.waitPod("default", "multi-container-pod", 60*time.Second, "Running", running)

	t.Run("get pods -o wide shows IP and node", func(t *testing.T) {
		c := c.with(t)
		out := c.must("get", "pods", "-o", "wide")
		for _, want := range []string{"multi-container-pod", "2/2", "Running", pod.Status.PodIP, "e2e-node"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get pods -o wide lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("containers talk over localhost and share the volume", func(t *testing.T) {
		c := c.with(t)
		c.eventually(10*time.Second, func() error {
			out, err := c.kubectl("exec", "multi-container-pod", "-c", "container2", "--", "wget", "-qO-", "http://localhost/index.html")
			if err != nil || out != "hello from container2" {
				return fmt.Errorf("wget over localhost: %v %q", err, out)
			}
			return nil
		})
		h1 := c.must("exec", "multi-container-pod", "-c", "container1", "--", "hostname")
		h2 := c.must("exec", "multi-container-pod", "-c", "container2", "--", "hostname")
		if h1 != "multi-container-pod" || h2 != h1 {
			t.Errorf("hostnames %q and %q, want the pod's name in both", h1, h2)
		}
	})
	t.Run("the pause process is visible with peapod ps", func(t *testing.T) {
		c := c.with(t)
		pids := pausePIDs(t, c)
		for _, pid := range pids {
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err != nil || strings.TrimSpace(string(comm)) != "pause" {
				t.Errorf("pause PID %d: comm %q (%v)", pid, comm, err)
			}
		}
	})
	t.Run("a pod starts in a warm sandbox that peapod ps showed", func(t *testing.T) {
		c := c.with(t)
		warm := map[string]bool{}
		c.eventually(30*time.Second, func() error {
			for _, sb := range psSandboxes(t, c) {
				if sb.Warm && sb.Ready && sb.Alive {
					warm[sb.ID] = true
				}
			}
			if len(warm) == 0 {
				return fmt.Errorf("peapod ps shows no warm sandbox")
			}
			return nil
		})
		c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: warmed}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
`)
		p := c.waitPod("default", "warmed", 60*time.Second, "Running", running)
		for _, sb := range psSandboxes(t, c) {
			if sb.PodName == "warmed" && !warm[sb.ID] {
				t.Errorf("pod runs in sandbox %s, none of the warm %v", sb.ID, warm)
			}
		}
		if got := c.must("exec", "warmed", "--", "hostname"); got != "warmed" {
			t.Errorf("hostname = %q, want the pod's name", got)
		}
		if got := c.must("exec", "warmed", "--", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(got, p.Status.PodIP+"/") {
			t.Errorf("eth0 = %q, want the pod IP %s", got, p.Status.PodIP)
		}
		c.must("delete", "pod", "warmed", "--grace-period=1")
	})
	t.Run("shared IPC", func(t *testing.T) {
		c := c.with(t)
		c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: ipc}
spec:
  volumes: [{name: tools, hostPath: {path: %s, type: Directory}}]
  containers:
  - {name: one, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: tools, mountPath: /tools}]}
  - name: two
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: tools, mountPath: /tools}]
    securityContext: {capabilities: {add: [IPC_LOCK]}}
`, tools))
		c.waitPod("default", "ipc", 60*time.Second, "Running", running)
		c.must("exec", "ipc", "-c", "one", "--", "sh", "-c", "echo shared > /dev/shm/note")
		if got := c.must("exec", "ipc", "-c", "two", "--", "cat", "/dev/shm/note"); got != "shared" {
			t.Errorf("second container reads %q from /dev/shm", got)
		}
		id := c.must("exec", "ipc", "-c", "one", "--", "/tools/sysvshm", "create", "0x7ea")
		if got := c.must("exec", "ipc", "-c", "two", "--", "/tools/sysvshm", "find", "0x7ea"); got != id {
			t.Errorf("second container finds SysV segment %q, want %q", got, id)
		}
		if _, err := c.kubectl("exec", "multi-container-pod", "-c", "container1", "--", "cat", "/dev/shm/note"); err == nil {
			t.Error("another pod sees the /dev/shm file")
		}
	})
	t.Run("pods on one port, each with its own IP", func(t *testing.T) {
		c := c.with(t)
		for _, name := range []string{"web-a", "web-b", "web-c"} {
			c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %[1]s, labels: {app: web}}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "echo I am %[1]s > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
    ports: [{containerPort: 80}]
`, name))
		}
		ips := map[string]string{}
		for _, name := range []string{"web-a", "web-b", "web-c"} {
			ips[name] = c.waitPod("default", name, 60*time.Second, "Running", running).Status.PodIP
		}
		seen := map[string]bool{}
		for _, ip := range ips {
			if seen[ip] {
				t.Fatalf("two pods share IP %s: %v", ip, ips)
			}
			seen[ip] = true
		}
		for from := range ips {
			for to, ip := range ips {
				if from == to {
					continue
				}
				want := "I am " + to
				c.eventually(10*time.Second, func() error {
					out, err := c.kubectl("exec", from, "--", "wget", "-qO-", "http://"+ip+"/")
					if err != nil || out != want {
						return fmt.Errorf("%s → %s (%s): %v %q", from, to, ip, err, out)
					}
					return nil
				})
			}
			// And from the node, without NAT.
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ips[from] + "/")
			if err != nil {
				t.Fatalf("node → %s: %v", from, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) != "I am "+from {
				t.Errorf("node → %s: %q", from, body)
			}
		}
	})
	t.Run("a container that dies comes back with the pod's IP", func(t *testing.T) {
		c := c.with(t)
		before := c.pod("default", "web-a")
		if err := syscall.Kill(containerPID(t, c, "web-a"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		after := c.waitPod("default", "web-a", 60*time.Second, "restarted and Running", func(p *corev1.Pod) bool {
			return running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		if after.Status.PodIP != before.Status.PodIP {
			t.Errorf("IP changed across a container restart: %s → %s", before.Status.PodIP, after.Status.PodIP)
		}
	})
	t.Run("logs and port-forward", func(t *testing.T) {
		c := c.with(t)
		c.must("run", "counter", "--image=busybox", "--", "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done")
		c.waitPod("default", "counter", 60*time.Second, "Running", running)
		c.eventually(10*time.Second, func() error {
			out, err := c.kubectl("logs", "counter", "--tail=2")
			if err != nil || len(strings.Split(out, "\n")) != 2 || !strings.HasPrefix(out, "line ") {
				return fmt.Errorf("kubectl logs --tail=2: %v %q", err, out)
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "logs", "-f", "counter")
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		got := 0
		for got < 15 && sc.Scan() {
			got++
		}
		cancel()
		_ = cmd.Wait()
		if got < 15 {
			t.Errorf("kubectl logs -f delivered %d lines", got)
		}

		local := strings.Split(freeAddr(t), ":")[1]
		pf := exec.CommandContext(context.Background(), "kubectl", "--kubeconfig", c.kubeconfig, "port-forward", "pod/web-b", local+":80")
		pfOut, _ := pf.StdoutPipe()
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		line, _ := bufio.NewReader(pfOut).ReadString('\n')
		if !strings.Contains(line, "Forwarding from") {
			t.Fatalf("port-forward says %q", line)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + local + "/")
		if err != nil {
			t.Fatalf("through port-forward: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != "I am web-b" {
			t.Errorf("through port-forward: %q", body)
		}
	})
}
