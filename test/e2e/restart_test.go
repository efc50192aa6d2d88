package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/runtime"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Killing peapod (server and node agent in one process) leaves the pods
// running; the restarted agent adopts them unchanged, and catches up on
// what changed meanwhile.
func TestKillNineKeepsPodsAndAdoptsThem(t *testing.T) {
	c := startCluster(t)
	const n = 50
	for i := 0; i < n; i++ {
		c.must("run", fmt.Sprintf("p%02d", i), "--image=busybox", "--", "sleep", "3600")
	}
	before := map[string]*corev1.Pod{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%02d", i)
		before[name] = c.waitPod("default", name, 120*time.Second, "Running", running)
	}
	pauses := pausePIDs(t, c)

	c.kill(syscall.SIGKILL)
	// While the node is down, one pod's container dies; the pods stay up.
	if err := syscall.Kill(containerPID(t, c, "p00"), syscall.SIGKILL); err != nil {
		t.Fatalf("kill a container while peapod is down: %v", err)
	}
	c.start()
	// The restarted agent catches up: the dead container is restarted.
	c.waitPod("default", "p00", 60*time.Second, "its container restarted", func(p *corev1.Pod) bool {
		return running(p) && p.Status.ContainerStatuses[0].RestartCount == before["p00"].Status.ContainerStatuses[0].RestartCount+1
	})
	for name, old := range before {
		p := c.waitPod("default", name, 60*time.Second, "Running after the restart", running)
		if p.Status.PodIP != old.Status.PodIP {
			t.Errorf("%s: IP %s → %s", name, old.Status.PodIP, p.Status.PodIP)
		}
	}
	restarted := 0
	for name, old := range before {
		p := c.pod("default", name)
		d := p.Status.ContainerStatuses[0].RestartCount - old.Status.ContainerStatuses[0].RestartCount
		switch d {
		case 0:
		case 1:
			restarted++ // the container killed while peapod was down
		default:
			t.Errorf("%s: restartCount went from %d to %d", name, old.Status.ContainerStatuses[0].RestartCount, p.Status.ContainerStatuses[0].RestartCount)
		}
	}
	if restarted != 1 {
		t.Errorf("%d pods restarted a container; want exactly the one killed while peapod was down", restarted)
	}
	after := pausePIDs(t, c)
	for sb, pid := range pauses {
		if after[sb] != pid {
			t.Errorf("sandbox %s: pause PID %d → %d (sandbox recreated)", sb, pid, after[sb])
		}
	}

	// A dead pause process is a lost sandbox: recreated, with an event.
	var pid int
	for _, p := range pauses {
		pid = p
		break
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.eventually(60*time.Second, func() error {
		evs, err := c.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "SandboxChanged" {
				p := c.pod("default", e.InvolvedObject.Name)
				if running(p) {
					return nil
				}
				return fmt.Errorf("pod %s not running again after SandboxChanged", p.Name)
			}
		}
		return fmt.Errorf("no SandboxChanged event yet")
	})
}

// containerPID finds the PID of a pod's first container with `peapod ps -o json`.
func containerPID(t *testing.T, c *cluster, pod string) int {
	t.Helper()
	for _, sb := range psSandboxes(t, c) {
		if sb.PodName == pod && len(sb.Containers) > 0 && sb.Containers[0].PID > 0 {
			return sb.Containers[0].PID
		}
	}
	t.Fatalf("no running container of %s in peapod ps", pod)
	return 0
}

// psSandboxes is `peapod ps -o json`: pod sandboxes, then warm ones.
func psSandboxes(t *testing.T, c *cluster) []runtime.SandboxStatus {
	t.Helper()
	out, err := exec.Command(peapodBinary(t), "ps", "--data-dir", c.dir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("peapod ps: %v", err)
	}
	var sandboxes []runtime.SandboxStatus
	if err := json.Unmarshal(out, &sandboxes); err != nil {
		t.Fatalf("peapod ps -o json: %v", err)
	}
	return sandboxes
}

// pausePIDs maps the sandbox ID prefixes of pods to pause PIDs, as `peapod
// ps` shows them; warm sandboxes, made ahead of any pod, are left out.
func pausePIDs(t *testing.T, c *cluster) map[string]int {
	t.Helper()
	out, err := exec.Command(peapodBinary(t), "ps", "--data-dir", c.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("peapod ps: %v\n%s", err, out)
	}
	pids := map[string]int{}
	// The table follows its header; on the server's node a line on the
	// state store comes first.
	lines := strings.Split(string(out), "\n")
	for len(lines) > 0 && !strings.HasPrefix(lines[0], "SANDBOX") {
		lines = lines[1:]
	}
	if len(lines) == 0 {
		t.Fatalf("peapod ps shows no table header:\n%s", out)
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(line, " ") || f[1] == "(warm)" {
			continue
		}
		pid, err := strconv.Atoi(f[3])
		if err != nil {
			t.Fatalf("peapod ps line %q: %v", line, err)
		}
		pids[f[0]] = pid
	}
	if len(pids) == 0 {
		t.Fatalf("peapod ps shows no sandbox:\n%s", out)
	}
	return pids
}
