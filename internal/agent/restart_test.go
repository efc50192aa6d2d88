package agent

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/runtime"
)

// TestAgentCatchesUpAfterDowntime stops the agent, changes the API behind
// its back, and starts a new agent (over a new runtime, as a restarted
// process would): the pod that stayed is adopted untouched, the pod deleted
// outright is torn down, the pod deleted gracefully is stopped and removed
// from the API, and the pod created meanwhile is started.
func TestAgentCatchesUpAfterDowntime(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pods := n.client.CoreV1().Pods("default")

	first := n.startAgent()
	stay := n.createPod("stay", "sleep", "3600")
	gone := n.createPod("gone", "sleep", "3600")
	graceful := n.createPod("graceful", "sleep", "3600")
	before := n.waitPod("stay", 60*time.Second, "Running", isRunning)
	n.waitPod("gone", 60*time.Second, "Running", isRunning)
	n.waitPod("graceful", 60*time.Second, "Running", isRunning)
	stayBox := sandboxesOfUID(t, first.rt, stay.UID)
	first.stop()

	// While the agent is down: one pod vanishes from the API (a forced
	// delete), one is marked for graceful deletion, one is created.
	if err := pods.Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	g, err := pods.Get(ctx, "graceful", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	g.DeletionTimestamp, g.DeletionGracePeriodSeconds = &now, ptrTo(int64(1))
	if _, err := pods.Update(ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.createPod("new", "sleep", "3600")
	if len(sandboxesOfUID(t, first.rt, gone.UID)) != 1 || len(sandboxesOfUID(t, first.rt, graceful.UID)) != 1 {
		t.Fatal("pods' sandboxes did not outlive the agent")
	}

	second := n.startAgent()
	n.waitPod("new", 60*time.Second, "Running", isRunning)
	deadline := time.Now().Add(30 * time.Second)
	for len(sandboxesOfUID(t, second.rt, gone.UID)) > 0 || len(sandboxesOfUID(t, second.rt, graceful.UID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("sandboxes of pods deleted while the agent was down were not removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := pods.Get(ctx, "graceful", metav1.GetOptions{}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gracefully deleted pod was not finished off in the API")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The pod that stayed: same sandbox, same container, same IP, no restart.
	time.Sleep(time.Second)
	after, err := pods.Get(ctx, "stay", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stayNow := sandboxesOfUID(t, second.rt, stay.UID)
	if len(stayNow) != 1 || stayNow[0].ID != stayBox[0].ID {
		t.Errorf("the surviving pod's sandbox changed: %v → %v", stayBox, stayNow)
	}
	b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
	if a.ContainerID != b.ContainerID || a.RestartCount != 0 || after.Status.PodIP != before.Status.PodIP || a.State.Running == nil {
		t.Errorf("the surviving pod changed: container %s → %s, restarts %d, IP %s → %s, state %+v",
			b.ContainerID, a.ContainerID, a.RestartCount, before.Status.PodIP, after.Status.PodIP, a.State)
	}
}

// TestIdlePodsCPU runs 100 idle pods under one agent and measures the
// agent's CPU (this test process: agent, runtime and a fake API) over an
// idle interval. The target is at most 2% of a core.
func TestIdlePodsCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 pods")
	}
	n := newNode(t)
	const pods = 100
	window := 30 * time.Second
	if s := os.Getenv("PEAPOD_IDLE_WINDOW"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			window = d
		}
	}
	n.startAgent()
	// The node status loop and the lease run as they do in production;
	// the window below spans several of their 10 s periods.
	start := time.Now()
	for i := 0; i < pods; i++ {
		n.createPod(fmt.Sprintf("idle-%03d", i), "sleep", "3600")
	}
	for i := 0; i < pods; i++ {
		n.waitPod(fmt.Sprintf("idle-%03d", i), 5*time.Minute, "Running", isRunning)
	}
	t.Logf("%d pods Running in %s", pods, time.Since(start).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // let the last status writes and events settle

	cpu0, t0 := procCPU(t), time.Now()
	time.Sleep(window)
	used, elapsed := procCPU(t)-cpu0, time.Since(t0)
	pct := 100 * used.Seconds() / elapsed.Seconds()
	t.Logf("agent CPU with %d idle pods: %s over %s = %.2f%% of a core", pods, used, elapsed.Round(time.Millisecond), pct)
	if pct > 2 {
		t.Errorf("agent uses %.2f%% of a core with %d idle pods, want ≤ 2%%", pct, pods)
	}
}

// procCPU reads this process's user+system CPU time from /proc/self/stat.
func procCPU(t *testing.T) time.Duration {
	t.Helper()
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces) start at state.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

var _ = corev1.PodRunning

// An agent killed between creating a container and starting it leaves it
// created, and nothing else would ever start it: the next agent removes
// it and runs the container again, in the same sandbox, as the kubelet
// restarts a created container.
func TestContainerCreatedButNeverStartedRunsAgain(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	first := n.startAgent()
	first.stop()

	// What a killed agent leaves: the pod's sandbox, and its container
	// created but not started.
	pod := n.createPod("half", "sleep", "3600")
	if _, err := first.rt.EnsureImage(ctx, "busybox", corev1.PullIfNotPresent, nil); err != nil {
		t.Fatal(err)
	}
	sb, err := first.rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	created, err := first.rt.CreateContainer(ctx, sb, "c", runtime.ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}

	second := n.startAgent()
	p := n.waitPod("half", 60*time.Second, "Running", isRunning)
	boxes := sandboxesOfUID(t, second.rt, pod.UID)
	if len(boxes) != 1 || boxes[0].ID != sb {
		t.Fatalf("sandboxes %v, want the one left behind (%s)", boxes, sb)
	}
	if len(boxes[0].Containers) != 1 || boxes[0].Containers[0].ID == created || boxes[0].Containers[0].State != runtime.ContainerRunning {
		t.Fatalf("containers %+v, want one running run replacing %s", boxes[0].Containers, created)
	}
	if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 0 || cs.State.Running == nil {
		t.Fatalf("container status %+v, want running, never restarted", cs)
	}
}
