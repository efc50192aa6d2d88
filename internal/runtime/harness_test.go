package runtime

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/runtime/oci"
)

// Kernel tests share one bridge and pod CIDR, apart from the default ones,
// so they never touch a peapod the machine may be running.
const (
	testBridge  = "pptest0"
	testPodCIDR = "10.213.0.0/24"
	testCgroup  = "peapod-rttest"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{testCgroup},
	ProcessNames: []string{"pause", "pause-holder", "pause-pid1", "runc", "crun", "busybox", "sh", "sleep", "httpd"},
}

func TestMain(m *testing.M) {
	os.Exit(leakcheck.Suite(m, "runtime", leakOptions, nil))
}

type harness struct {
	t   testing.TB
	ctx context.Context
	cfg config.Node
	rt  *Runtime
}

// newHarness starts a runtime over a fresh data dir holding the busybox
// image. Its cleanup removes every sandbox, checks that no IP stays
// reserved, and removes the bridge and the data dir.
func newHarness(t testing.TB) *harness {
	t.Helper()
	testutil.RequiresRoot(t)
	dir, err := os.MkdirTemp("", "pprt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testutil.BusyboxTarball(t), filepath.Join(dir, "images", "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.NodeName = "testnode"
	cfg.BridgeName = testBridge
	cfg.PodCIDR = testPodCIDR
	cfg.CgroupParent = testCgroup
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := New(ctx, cfg, logger)
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		t.Fatalf("new runtime: %v", err)
	}
	h := &harness{t: t, ctx: ctx, cfg: cfg, rt: rt}
	t.Cleanup(func() {
		defer cancel()
		defer os.RemoveAll(dir)
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := rt.RemoveWarmSandboxes(cctx); err != nil {
			t.Errorf("cleanup: remove warm sandboxes: %v", err)
		}
		ids, _ := rt.sandboxIDs()
		for _, id := range ids {
			if err := rt.RemovePodSandbox(cctx, id, 0); err != nil {
				t.Errorf("cleanup: remove sandbox %s: %v", id, err)
			}
		}
		if reserved := ipReservations(t, cfg.Paths().IPAMDir()); len(reserved) > 0 {
			t.Errorf("IPs still reserved after every sandbox was removed: %v", reserved)
		}
		if err := rt.Network().RemoveNodeNetwork(cctx); err != nil {
			t.Errorf("cleanup: remove node network: %v", err)
		}
	})
	// The bridge appears with the first pod and stays for the next ones:
	// make it now, so per-test leak checks see only what their pods made.
	warm := h.start(h.pod(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warm-up"}, "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}`), "")
	if err := rt.DeletePod(ctx, warm, 0); err != nil {
		t.Fatalf("remove warm-up pod: %v", err)
	}
	return h
}

// ipReservations lists host-local's reservation files (one per IP).
func ipReservations(t testing.TB, ipamDir string) []string {
	var out []string
	_ = filepath.WalkDir(ipamDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if name == "lock" || strings.HasPrefix(name, "last_reserved_ip") {
			return nil
		}
		out = append(out, p)
		return nil
	})
	return out
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pod parses a manifest exactly as Kubernetes would and gives it an
// identity, as the API server does.
func (h *harness) pod(manifest string) *corev1.Pod {
	h.t.Helper()
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(manifest), nil, nil)
	if err != nil {
		h.t.Fatalf("decode manifest: %v", err)
	}
	pod := obj.(*corev1.Pod)
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	pod.UID = types.UID(newID())
	return pod
}

// start runs the pod and returns its sandbox ID; the pod is removed at cleanup.
func (h *harness) start(pod *corev1.Pod, handler string) string {
	h.t.Helper()
	id, err := h.rt.StartPod(h.ctx, pod, handler)
	if err != nil {
		h.t.Fatalf("start pod %s: %v", pod.Name, err)
	}
	return id
}

func (h *harness) status(id string) *SandboxStatus {
	h.t.Helper()
	st, err := h.rt.SandboxStatus(h.ctx, id)
	if err != nil {
		h.t.Fatalf("sandbox status %s: %v", id, err)
	}
	return st
}

// container returns the newest container of that name in the sandbox.
func (h *harness) container(id, name string) *ContainerStatus {
	h.t.Helper()
	var found *ContainerStatus
	for _, c := range h.status(id).Containers {
		if c.Name == name {
			found = c
		}
	}
	if found == nil {
		h.t.Fatalf("sandbox %s has no container %q", id, name)
	}
	return found
}

// exec runs cmd in the named container and returns its stdout; a non-zero
// exit fails the test unless wantCode says otherwise.
func (h *harness) exec(id, name string, cmd ...string) string {
	h.t.Helper()
	out, code := h.execCode(id, name, cmd...)
	if code != 0 {
		h.t.Fatalf("exec %v in %s: exit %d: %s", cmd, name, code, out)
	}
	return out
}

func (h *harness) execCode(id, name string, cmd ...string) (string, int) {
	h.t.Helper()
	c := h.container(id, name)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	code, err := h.rt.Exec(ctx, c.ID, cmd, oci.ExecIO{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		h.t.Fatalf("exec %v in %s: %v (stderr %q)", cmd, name, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String() + stderr.String()), code
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
