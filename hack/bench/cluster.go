package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peapod/peapod/internal/proxy"
)

const (
	benchBridge = "ppbench0"
	// benchClusterCIDR gives the node a /22: the density section alone
	// runs 200 pods, beside what earlier sections left terminating.
	benchClusterCIDR  = "10.218.0.0/16"
	benchNodeCIDRMask = "22"
	benchNode         = "bench-node"
)

// cluster is one `peapod server` process on a fresh data dir with its own
// bridge, pod CIDR and ports (the approach of test/e2e/cluster_test.go).
type cluster struct {
	bin        string
	dir        string
	kubeconfig string
	client     kubernetes.Interface
	cmd        *exec.Cmd
	logs       *lockedWriter
	exited     chan struct{}
}

// startCluster starts `peapod server` and waits until its node is Ready.
// The caller must call stop, also on failure.
func startCluster(ctx context.Context, bin, busybox string, extra ...string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "ppb")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, kubeconfig: filepath.Join(dir, "admin.kubeconfig"), logs: &lockedWriter{}}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		return c, err
	}
	if err := os.Symlink(busybox, filepath.Join(dir, "images", "busybox.tar")); err != nil {
		return c, err
	}
	listen, err := freeAddr()
	if err != nil {
		return c, err
	}
	agent, err := freeAddr()
	if err != nil {
		return c, err
	}
	args := append([]string{"server", "--data-dir", dir, "--listen", listen, "--node-name", benchNode,
		"--bridge", benchBridge, "--cluster-cidr", benchClusterCIDR, "--node-cidr-mask-size", benchNodeCIDRMask, "--agent-listen", ":" + strings.Split(agent, ":")[1]}, extra...)
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		return c, err
	}
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.exited)
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := c.ready(ctx)
		if err == nil {
			return c, nil
		}
		select {
		case <-c.exited:
			return c, fmt.Errorf("peapod server exited:\n%s", c.tail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return c, fmt.Errorf("peapod server not ready: %v\n%s", err, c.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) ready(ctx context.Context) error {
	if _, err := os.Stat(c.kubeconfig); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 1e6, 1e6
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	node, err := c.client.CoreV1().Nodes().Get(ctx, benchNode, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			// The namespace's default ServiceAccount must exist before pods can be created.
			_, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err
		}
	}
	return errors.New("node not Ready yet")
}

func (c *cluster) pid() int { return c.cmd.Process.Pid }

// deleteAll deletes every pod with grace period 0 and waits until the node
// has torn down every sandbox.
func (c *cluster) deleteAll(ctx context.Context) error {
	if c.client == nil {
		return nil
	}
	zero := int64(0)
	nss, err := c.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, ns := range nss.Items {
		_ = c.client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pods, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		entries, _ := os.ReadDir(filepath.Join(c.dir, "pods"))
		if err == nil && len(pods.Items) == 0 && len(entries) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pods left after deleting every pod: %d in the API, %d sandboxes", len(pods.Items), len(entries))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop deletes every pod, stops the server and removes the bridge and the
// data dir. It is idempotent.
func (c *cluster) stop() {
	if c == nil {
		return
	}
	if c.cmd != nil && c.exited != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		if err := c.deleteAll(ctx); err != nil {
			logf("cleanup: %v", err)
		}
		cancel()
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		c.exited = nil
	}
	// reset removes the bridge and the masquerade rules of the node's
	// range, which it finds recorded in the data dir.
	if c.dir != "" {
		if out, err := exec.Command(c.bin, "reset", "--data-dir", c.dir, "--bridge", benchBridge).CombinedOutput(); err != nil {
			logf("cleanup: peapod reset: %v: %s", err, out)
		}
	}
	if link, err := netlink.LinkByName(benchBridge); err == nil {
		_ = netlink.LinkDel(link)
	}
	// The service proxy's table outlives the server by design (pods keep
	// their Services across restarts), as `peapod reset` knows.
	if err := proxy.Cleanup(context.Background(), proxy.DefaultTable); err != nil {
		logf("cleanup: %v", err)
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *cluster) tail() string {
	s := c.logs.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

// sandbox is what `peapod ps -o json` reports of one sandbox, the fields
// the benchmarks use.
type sandbox struct {
	ID           string
	PodName      string
	PodNamespace string
	PausePID     int
	PIDNSPID     int
	NetNSPath    string
	IPs          []string
	HostVeth     string
}

// sandboxes runs `peapod ps -o json` on the cluster's data dir.
func (c *cluster) sandboxes(ctx context.Context) ([]sandbox, error) {
	out, err := exec.CommandContext(ctx, c.bin, "ps", "-o", "json", "--data-dir", c.dir,
		"--bridge", benchBridge, "--node-name", benchNode).Output()
	if err != nil {
		return nil, fmt.Errorf("peapod ps: %w", err)
	}
	var sbs []sandbox
	if err := json.Unmarshal(out, &sbs); err != nil {
		return nil, fmt.Errorf("peapod ps: %w", err)
	}
	return sbs, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// tracker records when each pod of a namespace is first seen Running with
// its IP through one pod watch, re-opened from the last resourceVersion if
// the server closes it.
type tracker struct {
	mu      sync.Mutex
	running map[string]time.Time
	waiters map[string]chan struct{}
}

func newTracker(ctx context.Context, cs kubernetes.Interface, ns string) (*tracker, error) {
	t := &tracker{running: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("watch pods in %s: %w", ns, err)
	}
	go func() {
		rv := ""
		for {
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				if (ev.Type == watch.Added || ev.Type == watch.Modified) && podRunning(p) {
					t.seen(p.Name)
				}
			}
			if ctx.Err() != nil {
				return
			}
			for {
				w, err = cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				rv = "" // too old: start from now; Added events repeat the running pods
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return t, nil
}

func (t *tracker) seen(name string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.running[name]; ok {
		return
	}
	t.running[name] = now
	if ch, ok := t.waiters[name]; ok {
		close(ch)
	}
}

// wait returns when the pod was first seen Running, waiting up to timeout.
func (t *tracker) wait(ctx context.Context, name string, timeout time.Duration) (time.Time, error) {
	t.mu.Lock()
	if at, ok := t.running[name]; ok {
		t.mu.Unlock()
		return at, nil
	}
	ch, ok := t.waiters[name]
	if !ok {
		ch = make(chan struct{})
		t.waiters[name] = ch
	}
	t.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("pod %s not Running with an IP after %s", name, timeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running[name], nil
}

func podRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func benchPod(name, ns string, nodeSelector map[string]string) *corev1.Pod {
	zero := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "3600"}, ImagePullPolicy: corev1.PullIfNotPresent}},
			TerminationGracePeriodSeconds: &zero,
			NodeSelector:                  nodeSelector,
		},
	}
}

func (c *cluster) namespace(ctx context.Context, name string) error {
	_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	// Pods need the namespace's default ServiceAccount, made by a controller.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s has no default ServiceAccount: %w", name, err)
		}
	}
}

// raiseMaxPods sets the node's pod capacity and allocatable to at least n.
// The agent reports the kubelet's default of 110 pods, below the density
// run's 200, and has no setting for it; the agent rewrites its status only
// every few minutes, longer than the density run takes.
func (c *cluster) raiseMaxPods(ctx context.Context, n int64) error {
	node, err := c.client.CoreV1().Nodes().Get(ctx, benchNode, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if q := node.Status.Allocatable[corev1.ResourcePods]; q.Value() >= n {
		return nil
	}
	q := *resource.NewQuantity(n, resource.DecimalSI)
	node.Status.Capacity[corev1.ResourcePods] = q
	node.Status.Allocatable[corev1.ResourcePods] = q
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("raise the node's pod capacity to %d: %w", n, err)
	}
	return nil
}
