// Package e2e drives a real `peapod server` process through the installed
// kubectl and client-go, as a user would: real pods, real traffic, real
// process kills.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	e2eBridge = "ppe2e0"
	// e2eClusterCIDR is the suite's cluster range; the server's own node
	// gets its first node range, e2eNodePodCIDR.
	e2eClusterCIDR = "10.217.0.0/16"
	e2eNodePodCIDR = "10.217.0.0/24"
	e2eCgroup      = "peapod"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
		t.Fatal("end-to-end test needs root, and PEAPOD_REQUIRE_ROOT=1 forbids skipping it")
	}
	t.Skip("end-to-end test: needs root")
}

// peapodBinary builds bin/peapod once per test run (make builds it too;
// building here keeps `go test ./test/e2e` honest about the code under test).
func peapodBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ppbin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "peapod")
		// The Makefile's GOFLAGS tag: without Go plugin support in
		// kustomize, the binary is 37 MB smaller.
		cmd := exec.Command("go", "build", "-tags=kustomize_disable_go_plugin_support", "-o", binary, "./cmd/peapod")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func busyboxTarball(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PEAPOD_BUSYBOX_TAR"); p != "" {
		return p
	}
	out := filepath.Join(os.TempDir(), "peapod-test-busybox.tar")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "run", "./hack/mkbusybox", "-o", out)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build busybox image: %v\n%s", err, b)
	}
	return out
}

// cluster is one `peapod server` process with its data dir.
type cluster struct {
	t          testing.TB
	dir        string
	listen     string
	agentPort  string
	kubeconfig string
	client     kubernetes.Interface
	cmd        *exec.Cmd
	logs       *lockedWriter
	exited     chan struct{}
	// extraArgs are appended to `peapod server`'s flags (startClusterWith).
	extraArgs []string
	// logTail, if set, gives the log tail failures show instead of logs
	// (a multiNode's node logs).
	logTail func() string
}

// startCluster runs a single-node cluster on a fresh data dir. Cleanup
// deletes every pod through the API, waits for the node to tear them down,
// stops the server and removes the bridge and the data dir.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	return startClusterWith(t)
}

// startClusterWith is startCluster with extra `peapod server` flags, kept
// across restarts.
func startClusterWith(t testing.TB, extraArgs ...string) *cluster {
	t.Helper()
	requireRoot(t)
	dir, err := os.MkdirTemp("", "ppe2e")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(busyboxTarball(t), filepath.Join(dir, "images", "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, listen: freeAddr(t), agentPort: strings.Split(freeAddr(t), ":")[1], kubeconfig: filepath.Join(dir, "admin.kubeconfig"), extraArgs: extraArgs}
	t.Cleanup(c.destroy)
	c.start()
	return c
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the server process and waits until its node is Ready.
func (c *cluster) start() {
	c.t.Helper()
	c.logs = &lockedWriter{b: &bytes.Buffer{}}
	c.cmd = exec.Command(peapodBinary(c.t), c.serverArgs()...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.exited)
	c.eventually(60*time.Second, func() error {
		select {
		case <-c.exited:
			c.t.Fatalf("peapod server exited:\n%s", c.logs)
		default:
		}
		if _, err := os.Stat(c.kubeconfig); err != nil {
			return err
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
		if err != nil {
			return err
		}
		cfg.QPS, cfg.Burst = 200, 400
		if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
			return err
		}
		node, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("node not Ready yet")
	})
}

// serverArgs are the arguments of the cluster's `peapod server`.
func (c *cluster) serverArgs() []string {
	return append([]string{"server",
		"--data-dir", c.dir, "--listen", c.listen, "--node-name", "e2e-node",
		"--bridge", e2eBridge, "--cluster-cidr", e2eClusterCIDR, "--agent-listen", ":" + c.agentPort}, c.extraArgs...)
}

// with returns the cluster for use by a subtest, failing that subtest.
func (c *cluster) with(t testing.TB) *cluster {
	cp := *c
	cp.t = t
	return &cp
}

// kill stops the server process with sig and waits for it to exit. Pods
// keep running: they belong to the node, not to the process.
func (c *cluster) kill(sig syscall.Signal) {
	c.t.Helper()
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.t.Fatal("peapod server did not exit")
	}
}

func (c *cluster) destroy() {
	if c.cmd == nil || c.exited == nil {
		os.RemoveAll(c.dir)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	select {
	case <-c.exited:
		c.start() // a test killed it: the node must clean up its pods
	default:
	}
	if c.client != nil {
		nss, _ := c.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		zero := int64(0)
		for _, ns := range nss.Items {
			_ = c.client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		}
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			entries, _ := os.ReadDir(filepath.Join(c.dir, "pods"))
			if len(entries) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if entries, _ := os.ReadDir(filepath.Join(c.dir, "pods")); len(entries) > 0 {
			c.t.Errorf("sandboxes left after every pod was deleted: %d\n%s", len(entries), c.tail())
		}
	}
	c.kill(syscall.SIGTERM)
	// The node's network (bridge, masquerade rules) outlives the process
	// by design; take it down as a user would. reset finds the node's
	// range, which the server gave it, recorded in the data dir.
	if out, err := exec.Command(peapodBinary(c.t), "reset", "--data-dir", c.dir, "--bridge", e2eBridge).CombinedOutput(); err != nil {
		c.t.Errorf("peapod reset: %v\n%s", err, out)
	}
	if c.t.Failed() {
		c.t.Logf("peapod server log (tail):\n%s", c.tail())
	}
	os.RemoveAll(c.dir)
}

func (c *cluster) tail() string {
	if c.logTail != nil {
		return c.logTail()
	}
	s := c.logs.String()
	if len(s) > 6000 {
		s = s[len(s)-6000:]
	}
	return s
}

// kubectl runs the installed kubectl against the cluster.
func (c *cluster) kubectl(args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// kubectlStdout runs kubectl and returns its standard output alone, for
// commands whose output is parsed: kubectl 1.32 logs klog lines to
// standard error during some `exec` sessions over WebSocket (and they are
// not part of the command's answer). On error, standard error is
// appended.
func (c *cluster) kubectlStdout(args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String() + "\n" + stderr.String()), err
	}
	if stderr.Len() > 0 {
		c.t.Logf("kubectl %s: stderr: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// must runs kubectl and fails the test on error.
func (c *cluster) must(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply applies a manifest given inline.
func (c *cluster) apply(manifest string) {
	c.t.Helper()
	f := filepath.Join(c.dir, fmt.Sprintf("manifest-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.must("apply", "-f", f)
}

func (c *cluster) pod(ns, name string) *corev1.Pod {
	c.t.Helper()
	p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

// waitPod waits until cond holds for the pod.
func (c *cluster) waitPod(ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	c.t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("pod %s/%s: %s not reached in %s; %s\n%s", ns, name, what, timeout, c.podReport(ns, name, last), c.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// podReport says on which side a pod stuck: whether it was ever bound
// (spec.nodeName; an unbound pod is the scheduler's, a bound one the
// node's), its last status, and its events (Scheduled, FailedScheduling,
// the node's own), oldest first.
func (c *cluster) podReport(ns, name string, last *corev1.Pod) string {
	var b strings.Builder
	if last == nil {
		b.WriteString("the pod was never read")
	} else {
		switch node := last.Spec.NodeName; node {
		case "":
			b.WriteString(`spec.nodeName: "" (never bound: the scheduler did not place it)`)
		default:
			fmt.Fprintf(&b, "spec.nodeName: %q (bound: that node did not start it)", node)
		}
		fmt.Fprintf(&b, "\nlast status: %+v", last.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := c.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": name}.AsSelector().String()})
	if err != nil {
		fmt.Fprintf(&b, "\nevents: cannot list: %v", err)
		return b.String()
	}
	var mine []corev1.Event
	for _, e := range evs.Items {
		if last == nil || e.InvolvedObject.UID == "" || e.InvolvedObject.UID == last.UID { // not an earlier pod of that name
			mine = append(mine, e)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return eventTime(&mine[i]).Before(eventTime(&mine[j])) })
	fmt.Fprintf(&b, "\nevents (%d):", len(mine))
	for _, e := range mine {
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		fmt.Fprintf(&b, "\n  %s %s %s from %s (x%d): %s", eventTime(&e).Format(time.RFC3339Nano), e.Type, e.Reason,
			from, max(e.Count, 1), e.Message)
	}
	return b.String()
}

// eventTime is when an event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *cluster) eventually(timeout time.Duration, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%v\n%s", err, c.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// namespace creates a namespace for one test.
func (c *cluster) namespace(name string) string {
	c.t.Helper()
	c.must("create", "namespace", name)
	return name
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
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
