package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/runtime"
)

// Kernel tests of the agent use their own bridge, pod CIDR and cgroup, so
// they never touch a peapod the machine may be running.
const (
	testBridge  = "ppagt0"
	testPodCIDR = "10.214.0.0/22"
	testCgroup  = "peapod-agtest"
	testNode    = "agent-test-node"
)

// node is a data dir with the busybox image, the runtimes made over it
// and a fake API. Its cleanup removes every sandbox, the bridge and the
// data dir.
type node struct {
	t      testing.TB
	cfg    config.Node
	client *fake.Clientset
}

func newNode(t testing.TB) *node {
	t.Helper()
	testutil.RequiresRoot(t)
	dir, err := os.MkdirTemp("", "ppag")
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
	cfg.NodeName = testNode
	cfg.BridgeName = testBridge
	cfg.PodCIDR = testPodCIDR
	cfg.CgroupParent = testCgroup
	cfg.NodeIP = "127.0.0.1"
	n := &node{t: t, cfg: cfg, client: fake.NewSimpleClientset()}
	t.Cleanup(func() {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rt, err := runtime.New(ctx, cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			sbs, _ := rt.ListSandboxes(ctx)
			for _, sb := range sbs {
				if err := rt.RemovePodSandbox(ctx, sb.ID, 0); err != nil {
					t.Errorf("cleanup: remove sandbox %s: %v", sb.ID, err)
				}
			}
		} else {
			t.Errorf("cleanup: runtime: %v", err)
		}
		if link, err := netlink.LinkByName(testBridge); err == nil {
			_ = netlink.LinkDel(link)
		}
	})
	return n
}

// running is one agent over its own runtime, as one `peapod agent`
// process would be.
type running struct {
	rt     *runtime.Runtime
	cancel context.CancelFunc
	done   chan error
}

// startAgent makes a runtime over the node's data dir (adopting what is
// there) and runs an agent on it until stop.
func (n *node) startAgent() *running {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(testWriter{n.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := runtime.New(ctx, n.cfg, logger)
	if err != nil {
		cancel()
		n.t.Fatalf("new runtime: %v", err)
	}
	a := New(n.client, rt, Config{NodeName: testNode, Logger: logger})
	r := &running{rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	n.t.Cleanup(r.stop)
	return r
}

// stop ends the agent as a SIGKILL would, as far as pods go: they keep
// running. Idempotent.
func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	<-r.done
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// createPod adds a one-container busybox pod bound to the node to the fake API.
func (n *node) createPod(name string, command ...string) *corev1.Pod {
	n.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName:                      testNode,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptrTo(int64(1)),
			Containers: []corev1.Container{{
				Name: "c", Image: "busybox", Command: command,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				TerminationMessagePath:   corev1.TerminationMessagePathDefault,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
		},
	}
	created, err := n.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatalf("create pod %s: %v", name, err)
	}
	return created
}

func ptrTo[T any](v T) *T { return &v }

// waitPod waits until cond holds for the pod in the fake API.
func (n *node) waitPod(name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := n.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("pod %s: %s not reached in %s (err %v); status %+v", name, what, timeout, err, statusOf(p))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOf(p *corev1.Pod) any {
	if p == nil {
		return nil
	}
	return p.Status
}

func isRunning(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
}

// sandboxesOf lists the pod's sandboxes on the node.
func sandboxesOfUID(t testing.TB, rt *runtime.Runtime, uid types.UID) []*runtime.SandboxStatus {
	t.Helper()
	all, err := rt.ListSandboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*runtime.SandboxStatus
	for _, sb := range all {
		if types.UID(sb.PodUID) == uid {
			out = append(out, sb)
		}
	}
	return out
}
