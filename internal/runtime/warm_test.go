package runtime

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
)

// runPool runs the warm pool until the test ends and waits for it to tear
// its sandboxes down.
func runPool(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.rt.RunWarmPool(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("warm pool: %v", err)
		}
		if left, _ := h.rt.WarmSandboxes(); len(left) > 0 {
			t.Errorf("%d warm sandboxes left after the pool stopped", len(left))
		}
	})
}

func warmIDs(t *testing.T, h *harness, want int) []string {
	t.Helper()
	var ids []string
	eventually(t, 30*time.Second, func() error {
		warm, err := h.rt.WarmSandboxes()
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, sb := range warm {
			if sb.Ready && sb.Alive && len(sb.IPs) == 1 && sb.Warm {
				ids = append(ids, sb.ID)
			}
		}
		if len(ids) != want {
			return fmt.Errorf("%d ready warm sandboxes, want %d", len(ids), want)
		}
		return nil
	})
	return ids
}

// A pod the warm pool can serve gets a sandbox made ahead, and sees it as
// its own: its hostname, /etc files and IP. Pods whose sandbox depends on
// them (host ports, a shared PID namespace) get one made for them.
func TestWarmSandboxServesAPod(t *testing.T) {
	h := newHarness(t)
	runPool(t, h)
	warm := warmIDs(t, h, h.cfg.WarmSandboxes)

	id := h.start(h.pod(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warmed"},
		"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}`), "")
	if !slices.Contains(warm, id) {
		t.Fatalf("pod got sandbox %s, not one of the warm %v", id, warm)
	}
	st := h.status(id)
	if st.Warm || st.PodName != "warmed" || !st.Ready {
		t.Errorf("taken sandbox reads warm=%v pod=%q ready=%v", st.Warm, st.PodName, st.Ready)
	}
	if got := h.exec(id, "c", "hostname"); got != "warmed" {
		t.Errorf("hostname in the pod = %q, want warmed", got)
	}
	if got := h.exec(id, "c", "cat", "/etc/hostname"); got != "warmed" {
		t.Errorf("/etc/hostname = %q", got)
	}
	if hosts := h.exec(id, "c", "cat", "/etc/hosts"); !strings.Contains(hosts, st.IPs[0]+"\twarmed") {
		t.Errorf("/etc/hosts does not map %s to the pod:\n%s", st.IPs[0], hosts)
	}
	if got := h.exec(id, "c", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(got, st.IPs[0]+"/") {
		t.Errorf("eth0 in the pod: %q, want %s", got, st.IPs[0])
	}
	if _, err := os.Stat(h.rt.warmDir(id)); !os.IsNotExist(err) {
		t.Errorf("taken sandbox still has its warm dir: %v", err)
	}

	// A pod whose volumes fail gives the warm sandbox back to nobody: it
	// is torn down, netns and all.
	warm = warmIDs(t, h, h.cfg.WarmSandboxes)
	bad := h.pod(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": {
		"volumes": [{"name": "v", "hostPath": {"path": "/nonexistent/peapod-test", "type": "Directory"}}],
		"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}`)
	if _, err := h.rt.RunPodSandbox(h.ctx, bad, ""); err == nil || !strings.Contains(err.Error(), "volumes") {
		t.Fatalf("pod with a missing hostPath: err = %v, want a volumes error", err)
	}
	taken := 0
	for _, w := range warm {
		if _, err := os.Stat(h.rt.sandboxDir(w)); err == nil {
			t.Errorf("failed pod left sandbox %s", w)
		}
		if _, err := os.Stat(h.rt.warmDir(w)); os.IsNotExist(err) {
			taken++
			if netns.Exists(h.cfg.NetNSDir + "/peapod-" + w) {
				t.Errorf("failed pod left the netns of warm sandbox %s", w)
			}
		}
	}
	if taken != 1 {
		t.Errorf("%d warm sandboxes taken by the failed pod, want 1", taken)
	}
	if got, _ := h.rt.PodSandboxes(h.ctx, string(bad.UID)); len(got) != 0 {
		t.Errorf("failed pod still has sandboxes: %v", got)
	}

	for name, spec := range map[string]string{
		"host port":            `"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"], "ports": [{"containerPort": 80, "hostPort": 18089}]}]`,
		"shared PID namespace": `"shareProcessNamespace": true, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]`,
	} {
		cold := h.start(h.pod(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cold"}, "spec": {`+spec+`}}`), "")
		if slices.Contains(warm, cold) {
			t.Errorf("pod with a %s took warm sandbox %s", name, cold)
		}
		if err := h.rt.DeletePod(h.ctx, cold, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The pool makes up for the one taken.
	warmIDs(t, h, h.cfg.WarmSandboxes)
}

// Warm sandboxes an earlier peapod left behind (killed) are torn down when
// the pool starts again, netns and all.
func TestWarmPoolSweepsLeftovers(t *testing.T) {
	h := newHarness(t)
	left := newID()
	if err := h.rt.makeWarm(h.ctx, left); err != nil {
		t.Fatal(err)
	}
	nsPath := h.cfg.NetNSDir + "/peapod-" + left
	if !netns.Exists(nsPath) {
		t.Fatalf("warm sandbox %s has no netns", left)
	}
	runPool(t, h)
	ids := warmIDs(t, h, h.cfg.WarmSandboxes)
	if slices.Contains(ids, left) {
		t.Errorf("leftover warm sandbox %s kept", left)
	}
	if netns.Exists(nsPath) {
		t.Errorf("leftover warm sandbox's netns %s kept", nsPath)
	}
}
