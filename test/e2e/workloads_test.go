package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node lifecycle timing for the workloads cluster: the real node renews its
// Lease every 10 s, so the grace period must stay well above that.
const (
	workloadsGrace      = 20 * time.Second
	workloadsToleration = 5
)

// TestWorkloads runs issue 5's acceptance scenarios through kubectl
// against one real `peapod server`: Deployment lifecycle and rollouts,
// cascading deletes, StatefulSet ordering, an unschedulable pod, and a
// lost node's pods replaced on the real one.
func TestWorkloads(t *testing.T) {
	c := startOwnNetworkCluster(t, "ppwl0", "10.231.0.0/16", "--node-monitor-grace-period", workloadsGrace.String(),
		"--default-toleration-seconds", fmt.Sprint(workloadsToleration))
	t.Run("Deployment", func(t *testing.T) { testDeployment(t, c.with(t)) })
	t.Run("Cascade", func(t *testing.T) { testCascade(t, c.with(t)) })
	t.Run("StatefulSet", func(t *testing.T) { testStatefulSet(t, c.with(t)) })
	t.Run("Unschedulable", func(t *testing.T) { testUnschedulable(t, c.with(t)) })
	t.Run("LostNode", func(t *testing.T) { testLostNode(t, c.with(t)) })
}

// startOwnNetworkCluster is startClusterWith on its own bridge and cluster
// CIDR, so pod IPs polled from the test cannot be another concurrently
// running cluster's. The bridge is removed after the cluster is destroyed.
func startOwnNetworkCluster(t testing.TB, bridge, cidr string, extraArgs ...string) *cluster {
	t.Helper()
	requireRoot(t)
	t.Cleanup(func() { // registered first: runs after the cluster's cleanup
		if link, err := netlink.LinkByName(bridge); err == nil {
			_ = netlink.LinkDel(link)
		}
	})
	return startClusterWith(t, append([]string{"--bridge", bridge, "--cluster-cidr", cidr}, extraArgs...)...)
}

// webDeployment is a busybox httpd Deployment serving body at /; pods
// count as available 2 s after Ready (minReadySeconds), which also paces
// rolling updates so the HTTP poller sees every step.
func webDeployment(ns, name string, replicas int, body string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  minReadySeconds: 2
  selector: {matchLabels: {app: %[2]s}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        command: [sh, -c]
        args: ["mkdir -p /www && echo %[4]s > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
`, ns, name, replicas, body)
}

func testDeployment(t *testing.T, c *cluster) {
	ns := c.namespace("deploy")
	c.apply(webDeployment(ns, "web", 3, "v1"))
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	pods := c.waitPods(ns, "app=web", 3, 60*time.Second)
	for _, p := range pods {
		if body, err := httpGet(p.Status.PodIP); err != nil || body != "v1" {
			t.Errorf("pod %s (%s) answers %q, %v; want v1", p.Name, p.Status.PodIP, body, err)
		}
	}

	// A deleted pod is replaced under a new name and IP.
	victim := pods[0]
	c.must("delete", "pod", "-n", ns, victim.Name, "--wait=false")
	c.eventually(60*time.Second, func() error {
		ps := c.readyPods(ns, "app=web")
		if len(ps) != 3 {
			return fmt.Errorf("%d ready pods, want 3", len(ps))
		}
		for _, p := range ps {
			if p.Name == victim.Name || p.Status.PodIP == victim.Status.PodIP {
				return fmt.Errorf("pod %s %s: the deleted pod's name or IP", p.Name, p.Status.PodIP)
			}
		}
		return nil
	})

	// Scale up and down.
	c.must("scale", "-n", ns, "deployment/web", "--replicas=10")
	c.waitPods(ns, "app=web", 10, 120*time.Second)
	c.must("scale", "-n", ns, "deployment/web", "--replicas=2")
	c.waitPods(ns, "app=web", 2, 60*time.Second)
	c.waitGone(ns, "app=web", 2, 60*time.Second)

	// A rolling update to new args keeps replicas - maxUnavailable pods
	// answering HTTP throughout.
	c.must("scale", "-n", ns, "deployment/web", "--replicas=4")
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	c.waitPods(ns, "app=web", 4, 60*time.Second)
	poll := c.pollHTTP(ns, "app=web")
	c.apply(webDeployment(ns, "web", 4, "v2"))
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	minUp, rounds := poll()
	t.Logf("rolling update: at least %d of 4 pods answered in each of %d polling rounds", minUp, rounds)
	if minUp < 3 || rounds < 3 {
		t.Errorf("rolling update: %d pods answered at worst (want >= 3 = replicas - maxUnavailable) over %d rounds", minUp, rounds)
	}
	c.expectBodies(ns, "app=web", 4, "v2")

	hist := c.must("rollout", "history", "-n", ns, "deployment/web")
	if !historyHas(hist, "1", "2") {
		t.Errorf("rollout history lacks revisions 1 and 2:\n%s", hist)
	}
	c.must("rollout", "undo", "-n", ns, "deployment/web")
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	c.expectBodies(ns, "app=web", 4, "v1")
	if hist := c.must("rollout", "history", "-n", ns, "deployment/web"); !historyHas(hist, "2", "3") || historyHas(hist, "1") {
		t.Errorf("after undo, history should show revisions 2 and 3 (1 became 3):\n%s", hist)
	}

	c.must("rollout", "restart", "-n", ns, "deployment/web")
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	for _, p := range c.waitPods(ns, "app=web", 4, 60*time.Second) {
		if p.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
			t.Errorf("pod %s after rollout restart lacks restartedAt", p.Name)
		}
	}

	c.must("set", "image", "-n", ns, "deployment/web", "web=docker.io/library/busybox:latest")
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=120s")
	for _, p := range c.waitPods(ns, "app=web", 4, 60*time.Second) {
		if img := p.Spec.Containers[0].Image; img != "docker.io/library/busybox:latest" {
			t.Errorf("pod %s image %s after set image", p.Name, img)
		}
	}
	if out := c.must("get", "rs", "-n", ns, "-l", "app=web", "-o", "name"); len(strings.Fields(out)) != 4 {
		t.Errorf("want 4 ReplicaSets (one per template: v1 (reused by undo), v2, restart, set image), got:\n%s", out)
	}

	// Background deletion (kubectl's default) leaves nothing behind.
	c.must("delete", "-n", ns, "deployment/web")
	c.waitGone(ns, "app=web", 0, 60*time.Second)
	c.eventually(30*time.Second, func() error {
		if out := c.must("get", "rs", "-n", ns, "-o", "name"); out != "" {
			return fmt.Errorf("ReplicaSets left: %s", out)
		}
		return nil
	})
}

// historyHas reports whether kubectl rollout history lists every revision.
func historyHas(out string, revs ...string) bool {
	have := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			have[f[0]] = true
		}
	}
	for _, r := range revs {
		if !have[r] {
			return false
		}
	}
	return true
}

func testCascade(t *testing.T, c *cluster) {
	ns := c.namespace("cascade")
	ctx := context.Background()

	// Foreground: the Deployment stays (deletionTimestamp, foregroundDeletion)
	// until its ReplicaSet and pods are gone.
	c.apply(webDeployment(ns, "fg", 2, "fg"))
	c.must("rollout", "status", "-n", ns, "deployment/fg", "--timeout=120s")
	c.must("delete", "-n", ns, "deployment/fg", "--cascade=foreground", "--wait=false")
	d, err := c.client.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment deleted in foreground is gone at once: %v", err)
	}
	if d.DeletionTimestamp == nil || !contains(d.Finalizers, metav1.FinalizerDeleteDependents) {
		t.Errorf("foreground delete: deletionTimestamp %v, finalizers %v", d.DeletionTimestamp, d.Finalizers)
	}
	c.eventually(90*time.Second, func() error {
		_, err := c.client.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
		if err == nil {
			return fmt.Errorf("deployment still there")
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		// Gone: its dependents must have gone first.
		if ps := c.listPods(ns, "app=fg"); len(ps) != 0 {
			t.Errorf("deployment gone in foreground before its %d pods", len(ps))
		}
		if rs, _ := c.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=fg"}); len(rs.Items) != 0 {
			t.Errorf("deployment gone in foreground before its ReplicaSet")
		}
		return nil
	})

	// Orphan: the Deployment goes, its ReplicaSet and pods stay, released.
	c.apply(webDeployment(ns, "orph", 2, "orph"))
	c.must("rollout", "status", "-n", ns, "deployment/orph", "--timeout=120s")
	before := c.waitPods(ns, "app=orph", 2, 60*time.Second)
	c.must("delete", "-n", ns, "deployment/orph", "--cascade=orphan")
	if _, err := c.client.AppsV1().Deployments(ns).Get(ctx, "orph", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("orphan delete: deployment still there (%v)", err)
	}
	time.Sleep(3 * time.Second) // give a wrong garbage collector time to act
	rss, err := c.client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=orph"})
	if err != nil || len(rss.Items) != 1 {
		t.Fatalf("orphan delete: ReplicaSets %v, %v; want 1", rss, err)
	}
	rs := rss.Items[0]
	if len(rs.OwnerReferences) != 0 || rs.DeletionTimestamp != nil {
		t.Errorf("orphaned ReplicaSet still owned or deleted: %v %v", rs.OwnerReferences, rs.DeletionTimestamp)
	}
	after := c.waitPods(ns, "app=orph", 2, 10*time.Second)
	if podNames(before) != podNames(after) {
		t.Errorf("orphan delete changed the pods: %s -> %s", podNames(before), podNames(after))
	}
	for _, p := range after {
		if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != rs.UID {
			t.Errorf("pod %s owners %v, want the orphaned ReplicaSet", p.Name, p.OwnerReferences)
		}
	}
	c.must("delete", "-n", ns, "rs/"+rs.Name)
	c.waitGone(ns, "app=orph", 0, 60*time.Second)
}

func testStatefulSet(t *testing.T, c *cluster) {
	ns := c.namespace("sts")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := c.recordPodEvents(ctx, ns, "app=web")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: web, namespace: %[1]s}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: %[1]s}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: web
        image: busybox
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1, initialDelaySeconds: 1}
`, ns))
	c.must("rollout", "status", "-n", ns, "statefulset/web", "--timeout=120s")
	pods := c.waitPods(ns, "app=web", 3, 60*time.Second)
	if got := podNames(pods); got != "web-0,web-1,web-2" {
		t.Fatalf("pods %s, want web-0,web-1,web-2", got)
	}
	for _, p := range pods {
		if body, err := httpGet(p.Status.PodIP); err != nil || body != p.Name {
			t.Errorf("pod %s answers hostname %q, %v", p.Name, body, err)
		}
	}
	// In the watch's order (etcd's revision order): web-N+1 is created only
	// after web-N was seen Ready; creation timestamps agree (in seconds).
	for i := 1; i < 3; i++ {
		prev, cur := fmt.Sprintf("web-%d", i-1), fmt.Sprintf("web-%d", i)
		readyAt, createdAt := events.first(prev, isReadyEvent), events.first(cur, isAdded)
		if readyAt < 0 || createdAt < 0 || createdAt < readyAt {
			t.Errorf("%s created at event %d, %s Ready at event %d: not in order", cur, createdAt, prev, readyAt)
		}
		if ct, rt := c.pod(ns, cur).CreationTimestamp.Time, readySince(c.pod(ns, prev)); ct.Before(rt) {
			t.Errorf("%s created %s before %s was Ready %s", cur, ct, prev, rt)
		}
	}

	// Scale down in reverse: web-1 is deleted only once web-2 is gone.
	c.must("scale", "-n", ns, "statefulset/web", "--replicas=1")
	c.waitGone(ns, "app=web", 1, 60*time.Second)
	gone2, term1 := events.first("web-2", isDeleted), events.first("web-1", isTerminating)
	if gone2 < 0 || term1 < 0 || term1 < gone2 {
		t.Errorf("web-1 began terminating at event %d, web-2 was deleted at event %d: not in reverse order", term1, gone2)
	}
	if ps := c.listPods(ns, "app=web"); podNames(ps) != "web-0" {
		t.Errorf("after scale to 1: %s, want web-0", podNames(ps))
	}
	c.must("delete", "-n", ns, "statefulset/web")
	c.waitGone(ns, "app=web", 0, 60*time.Second)
}

func testUnschedulable(t *testing.T, c *cluster) {
	ns := c.namespace("sched")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hog, namespace: %s}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"], resources: {requests: {cpu: "1000"}}}
`, ns))
	c.waitPod(ns, "hog", 30*time.Second, "PodScheduled=False", func(p *corev1.Pod) bool {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return true
			}
		}
		return false
	})
	// Since Kubernetes 1.31 a request above the node's whole allocatable is
	// unresolvable, so preemption is "not helpful" rather than "no victims".
	const want = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	c.eventually(30*time.Second, func() error {
		out := c.must("get", "events", "-n", ns, "--field-selector", "involvedObject.name=hog,reason=FailedScheduling",
			"-o", "jsonpath={range .items[*]}{.type}|{.message}{\"\\n\"}{end}")
		if !strings.Contains(out, "Warning|"+want) {
			return fmt.Errorf("FailedScheduling events:\n%s\nwant Warning %q", out, want)
		}
		return nil
	})
	if p := c.pod(ns, "hog"); p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Errorf("hog bound to %q, phase %s", p.Spec.NodeName, p.Status.Phase)
	}
	if out := c.must("describe", "pod", "-n", ns, "hog"); !strings.Contains(out, "FailedScheduling") {
		t.Errorf("kubectl describe pod lacks FailedScheduling:\n%s", out)
	}
	c.must("delete", "pod", "-n", ns, "hog", "--grace-period=0", "--force")
}

// waitPods waits until exactly n pods match sel, none terminating, all
// Ready, and returns them sorted by name.
func (c *cluster) waitPods(ns, sel string, n int, timeout time.Duration) []corev1.Pod {
	c.t.Helper()
	var out []corev1.Pod
	c.eventually(timeout, func() error {
		all := c.listPods(ns, sel)
		out = c.readyPods(ns, sel)
		if len(out) != n || len(all) != n {
			return fmt.Errorf("%s in %s: %d pods, %d of them Ready and not terminating; want %d", sel, ns, len(all), len(out), n)
		}
		return nil
	})
	return out
}

// waitGone waits until at most n pods match sel, terminating ones included.
func (c *cluster) waitGone(ns, sel string, n int, timeout time.Duration) {
	c.t.Helper()
	c.eventually(timeout, func() error {
		if ps := c.listPods(ns, sel); len(ps) > n {
			return fmt.Errorf("%s in %s: %d pods (%s), want %d", sel, ns, len(ps), podNames(ps), n)
		}
		return nil
	})
}

func (c *cluster) listPods(ns, sel string) []corev1.Pod {
	c.t.Helper()
	l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		c.t.Fatalf("list pods %s: %v", sel, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

// readyPods lists the Ready, not terminating pods matching sel.
func (c *cluster) readyPods(ns, sel string) []corev1.Pod {
	c.t.Helper()
	var out []corev1.Pod
	for _, p := range c.listPods(ns, sel) {
		if p.DeletionTimestamp == nil && ready(&p) && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	return out
}

// expectBodies waits for n Ready pods and checks every one serves body.
func (c *cluster) expectBodies(ns, sel string, n int, body string) {
	c.t.Helper()
	c.eventually(30*time.Second, func() error {
		ps := c.readyPods(ns, sel)
		if len(ps) != n {
			return fmt.Errorf("%d ready pods, want %d", len(ps), n)
		}
		for _, p := range ps {
			if got, err := httpGet(p.Status.PodIP); err != nil || got != body {
				return fmt.Errorf("pod %s answers %q, %v; want %q", p.Name, got, err, body)
			}
		}
		return nil
	})
}

// pollHTTP polls, every 100 ms until the returned stop is called, every
// pod matching sel that has an IP and is not terminating, and records the
// fewest that answered HTTP in one round.
func (c *cluster) pollHTTP(ns, sel string) (stop func() (minUp, rounds int)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	minUp, rounds := 1<<30, 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				continue
			}
			var up sync.WaitGroup
			var mu sync.Mutex
			n := 0
			for _, p := range l.Items {
				if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
					continue // terminating pods do not count as available
				}
				up.Add(1)
				go func(ip string) {
					defer up.Done()
					if _, err := httpGet(ip); err == nil {
						mu.Lock()
						n++
						mu.Unlock()
					}
				}(p.Status.PodIP)
			}
			up.Wait()
			rounds++
			minUp = min(minUp, n)
		}
	}()
	return func() (int, int) {
		close(done)
		wg.Wait()
		return minUp, rounds
	}
}

var httpClient = &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet fetches http://ip/ and returns the body without its newline.
func httpGet(ip string) (string, error) {
	resp, err := httpClient.Get("http://" + ip + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

func podNames(ps []corev1.Pod) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func readySince(p *corev1.Pod) time.Time {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			return cond.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// podEvent is one watch event on a pod.
type podEvent struct {
	typ string
	pod *corev1.Pod
}

// podEvents records a namespace's pod watch events in order.
type podEvents struct {
	mu     sync.Mutex
	events []podEvent
}

// recordPodEvents watches pods matching sel until ctx ends.
func (c *cluster) recordPodEvents(ctx context.Context, ns, sel string) *podEvents {
	c.t.Helper()
	w, err := c.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		c.t.Fatalf("watch pods: %v", err)
	}
	pe := &podEvents{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			pe.mu.Lock()
			pe.events = append(pe.events, podEvent{typ: string(ev.Type), pod: p})
			pe.mu.Unlock()
		}
	}()
	return pe
}

// first returns the index of the first event on pod name matching f, or -1.
func (pe *podEvents) first(name string, f func(podEvent) bool) int {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	for i, ev := range pe.events {
		if ev.pod.Name == name && f(ev) {
			return i
		}
	}
	return -1
}

func isAdded(ev podEvent) bool      { return ev.typ == "ADDED" }
func isDeleted(ev podEvent) bool    { return ev.typ == "DELETED" }
func isReadyEvent(ev podEvent) bool { return ev.typ != "DELETED" && ready(ev.pod) }
func isTerminating(ev podEvent) bool {
	return ev.pod.DeletionTimestamp != nil
}
