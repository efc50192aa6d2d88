package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

const startTimeout = 60 * time.Second

// startOneByOne creates n pods in ns one after another, each once the one
// before is Running, and returns each one's create-to-Running time.
func startOneByOne(ctx context.Context, client kubernetes.Interface, ns, prefix string, n int) ([]time.Duration, error) {
	tr, err := newTracker(ctx, client, ns)
	if err != nil {
		return nil, err
	}
	var took []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		start := time.Now()
		if _, err := client.CoreV1().Pods(ns).Create(ctx, benchPod(name, ns, nil), metav1.CreateOptions{}); err != nil {
			return took, fmt.Errorf("create pod %s: %w", name, err)
		}
		at, err := tr.wait(ctx, name, startTimeout)
		if err != nil {
			return took, err
		}
		took = append(took, at.Sub(start))
	}
	return took, nil
}

// burst creates n pods in ns at once and returns the time from the first
// create to the last pod Running, and each pod's create-to-Running time.
func burst(ctx context.Context, c *cluster, ns, prefix string, n int) (time.Duration, []time.Duration, error) {
	tr, err := newTracker(ctx, c.client, ns)
	if err != nil {
		return 0, nil, err
	}
	starts := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("%s-%d", prefix, i)
			starts[i] = time.Now()
			_, errs[i] = c.client.CoreV1().Pods(ns).Create(ctx, benchPod(name, ns, nil), metav1.CreateOptions{})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return 0, nil, fmt.Errorf("create pod %s-%d: %w", prefix, i, err)
		}
	}
	var last time.Time
	took := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		at, err := tr.wait(ctx, fmt.Sprintf("%s-%d", prefix, i), startTimeout)
		if err != nil {
			return 0, nil, err
		}
		took[i] = at.Sub(starts[i])
		if at.After(last) {
			last = at
		}
	}
	return last.Sub(begin), took, nil
}

// createMany creates n pods in ns with 16 client-go workers and returns how
// long the creates took.
func createMany(ctx context.Context, c *cluster, ns, prefix string, n int, nodeSelector map[string]string) (time.Duration, error) {
	var mu sync.Mutex
	next := 0
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				name := fmt.Sprintf("%s-%d", prefix, i)
				if _, err := c.client.CoreV1().Pods(ns).Create(ctx, benchPod(name, ns, nodeSelector), metav1.CreateOptions{}); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create pod %s: %w", name, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// waitRunning waits until n pods named prefix-0..n-1 in ns are Running.
func waitRunning(ctx context.Context, c *cluster, ns string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			running := 0
			for i := range pods.Items {
				if podRunning(&pods.Items[i]) {
					running++
				}
			}
			if running >= n {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d pods Running in %s after %s", running, n, ns, timeout)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("list pods in %s: %w", ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubectlApply applies a one-container pod manifest n times (a new pod
// each time) and returns each apply-to-Running time.
func kubectlApply(ctx context.Context, c *cluster, ns string, n int) ([]time.Duration, error) {
	tr, err := newTracker(ctx, c.client, ns)
	if err != nil {
		return nil, err
	}
	var took []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("apply-%d", i)
		f := filepath.Join(c.dir, name+".yaml")
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
`, name, ns)
		if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
			return took, err
		}
		start := time.Now()
		if out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "apply", "-f", f).CombinedOutput(); err != nil {
			return took, fmt.Errorf("kubectl apply: %w\n%s", err, out)
		}
		at, err := tr.wait(ctx, name, startTimeout)
		if err != nil {
			return took, err
		}
		took = append(took, at.Sub(start))
	}
	return took, nil
}

// processCPU returns the CPU use of pids over window as a percentage of one
// core; it fails if one of them ends meanwhile.
func processCPU(ctx context.Context, window time.Duration, pids ...int) (float64, error) {
	// Processes that end within the window are left out of both sums.
	sum := func(pids []int) (time.Duration, []int) {
		var total time.Duration
		var alive []int
		for _, pid := range pids {
			if t, err := cpuTime(pid); err == nil {
				total += t
				alive = append(alive, pid)
			}
		}
		return total, alive
	}
	_, pids = sum(pids)
	if len(pids) == 0 {
		return 0, fmt.Errorf("no process to measure")
	}
	before, pids := sum(pids)
	start := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, alive := sum(pids)
	if len(alive) != len(pids) {
		return 0, fmt.Errorf("%d of %d processes ended during the window", len(pids)-len(alive), len(pids))
	}
	return 100 * float64(after-before) / float64(time.Since(start)), nil
}

// teardown deletes every pod in ns at once (grace period 0) and returns the
// time until all are gone from the API and every node resource of their
// sandboxes is released.
func teardown(ctx context.Context, c *cluster, ns string) (time.Duration, error) {
	all, err := c.sandboxes(ctx)
	if err != nil {
		return 0, err
	}
	var sbs []sandbox
	for _, sb := range all {
		if sb.PodNamespace == ns {
			sbs = append(sbs, sb)
		}
	}
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	zero := int64(0)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(pods.Items))
	for i, p := range pods.Items {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			errs[i] = c.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}(i, p.Name)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("delete pod: %w", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		left, what := c.leftovers(ctx, ns, sbs)
		if left == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("teardown: %d resources left after %s, e.g. %s", left, time.Since(start), what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leftovers counts what remains of the pods of ns and of sbs: pods in the
// API, netns, host veths, IP reservations, mounts, cgroups, pause
// processes and sandbox dirs.
func (c *cluster) leftovers(ctx context.Context, ns string, sbs []sandbox) (int, string) {
	left, what := 0, ""
	note := func(s string) {
		left++
		if what == "" {
			what = s
		}
	}
	if pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) > 0 {
		note("pods in the API")
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	cgroupRoots, _ := filepath.Glob("/sys/fs/cgroup/*/peapod")
	ipamFiles, _ := filepath.Glob(filepath.Join(c.dir, "cni", "networks", "*", "*"))
	reserved := map[string]bool{}
	for _, f := range ipamFiles {
		reserved[filepath.Base(f)] = true
	}
	for _, sb := range sbs {
		if _, err := os.Lstat(sb.NetNSPath); err == nil {
			note("netns " + sb.NetNSPath)
		}
		if sb.HostVeth != "" {
			if _, err := os.Lstat("/sys/class/net/" + sb.HostVeth); err == nil {
				note("veth " + sb.HostVeth)
			}
		}
		for _, ip := range sb.IPs {
			if reserved[ip] {
				note("IP reservation " + ip)
			}
		}
		if strings.Contains(string(mounts), sb.ID) {
			note("mount of sandbox " + sb.ID)
		}
		for _, root := range cgroupRoots {
			if _, err := os.Stat(filepath.Join(root, sb.ID)); err == nil {
				note("cgroup " + filepath.Join(root, sb.ID))
			}
		}
		if sb.PausePID > 0 {
			if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", sb.PausePID)); err == nil && strings.TrimSpace(string(comm)) == "pause" {
				note(fmt.Sprintf("pause process %d", sb.PausePID))
			}
		}
		if _, err := os.Stat(filepath.Join(c.dir, "pods", sb.ID)); err == nil {
			note("sandbox dir " + sb.ID)
		}
	}
	return left, what
}

// density reports what peapod keeps per running pod besides the pods' own
// processes: the pause processes' RSS plus the server process's RSS growth.
type densityResult struct {
	Pods                int
	PauseKiB, GrowthKiB int
}

func (d densityResult) perPodKiB() float64 {
	return float64(d.PauseKiB+d.GrowthKiB) / float64(d.Pods)
}

func density(ctx context.Context, c *cluster, ns string, n int) (densityResult, error) {
	time.Sleep(2 * time.Second)
	before := rssKiB(c.pid())
	if _, err := createMany(ctx, c, ns, "dense", n, nil); err != nil {
		return densityResult{}, err
	}
	if err := waitRunning(ctx, c, ns, n, 3*time.Minute); err != nil {
		return densityResult{}, err
	}
	time.Sleep(5 * time.Second) // let status writes and probes settle
	after := rssKiB(c.pid())
	sbs, err := c.sandboxes(ctx)
	if err != nil {
		return densityResult{}, err
	}
	d := densityResult{GrowthKiB: after - before}
	for _, sb := range sbs {
		if sb.PodNamespace != ns {
			continue
		}
		d.Pods++
		d.PauseKiB += rssKiB(sb.PausePID)
		if sb.PIDNSPID > 0 && sb.PIDNSPID != sb.PausePID {
			d.PauseKiB += rssKiB(sb.PIDNSPID)
		}
	}
	if d.Pods != n {
		return d, fmt.Errorf("density: %d sandboxes in %s, want %d", d.Pods, ns, n)
	}
	return d, nil
}

// controlPlane measures creates per second of 1,000 Pending pods, `kubectl
// get pods` over them, and watch delivery latency.
type controlPlaneResult struct {
	CreatesPerSec float64
	KubectlGet    []time.Duration
	Watch         []time.Duration
}

func controlPlane(ctx context.Context, c *cluster, ns string, pods, watches int) (controlPlaneResult, error) {
	var r controlPlaneResult
	took, err := createMany(ctx, c, ns, "pending", pods, map[string]string{"peapod.bench/nowhere": "true"})
	if err != nil {
		return r, err
	}
	r.CreatesPerSec = float64(pods) / took.Seconds()
	for i := 0; i < 5; i++ {
		start := time.Now()
		out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "get", "pods", "-n", ns, "--no-headers").Output()
		if err != nil {
			return r, fmt.Errorf("kubectl get pods: %w", err)
		}
		r.KubectlGet = append(r.KubectlGet, time.Since(start))
		if lines := strings.Count(string(out), "\n"); lines != pods {
			return r, fmt.Errorf("kubectl get pods listed %d pods, want %d", lines, pods)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := c.client.CoreV1().ConfigMaps(ns).Watch(wctx, metav1.ListOptions{LabelSelector: "bench=watch"})
	if err != nil {
		return r, err
	}
	defer w.Stop()
	for i := 0; i < watches; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", i), Labels: map[string]string{"bench": "watch"}}}
		written := time.Now()
		if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return r, err
		}
		for done := false; !done; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					return r, fmt.Errorf("watch closed")
				}
				if ev.Type == watch.Added {
					if got, ok := ev.Object.(*corev1.ConfigMap); ok && got.Name == cm.Name {
						done = true
					}
				}
			case <-time.After(10 * time.Second):
				return r, fmt.Errorf("no watch event for configmap %s", cm.Name)
			}
		}
		r.Watch = append(r.Watch, time.Since(written))
	}
	return r, nil
}
