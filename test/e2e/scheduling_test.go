package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestScheduling runs issue 9's placement scenarios through kubectl on one
// real node plus fake Nodes (Node objects without an agent: pods bound to
// them never run, but binding is what the scheduler decides): node
// affinity, pod affinity and anti-affinity, topology spread, scheduling
// gates, plus the pod generation and the API's 404s.
func TestScheduling(t *testing.T) {
	c := startCluster(t)
	t.Run("RequiredNodeAffinity", func(t *testing.T) { testRequiredNodeAffinity(t, c.with(t)) })
	t.Run("PreferredNodeAffinity", func(t *testing.T) { testPreferredNodeAffinity(t, c.with(t)) })
	t.Run("PodAntiAffinity", func(t *testing.T) { testPodAntiAffinity(t, c.with(t)) })
	t.Run("PodAffinity", func(t *testing.T) { testPodAffinity(t, c.with(t)) })
	t.Run("TopologySpread", func(t *testing.T) { testTopologySpread(t, c.with(t)) })
	t.Run("SchedulingGates", func(t *testing.T) { testSchedulingGates(t, c.with(t)) })
	t.Run("Generation", func(t *testing.T) { testGeneration(t, c.with(t)) })
	t.Run("UnknownResources", func(t *testing.T) { testUnknownResources(t, c.with(t)) })
}

// labelRealNode puts key=value on the real node for the test's duration.
func labelRealNode(t *testing.T, c *cluster, key, value string) {
	t.Helper()
	c.must("label", "node", "e2e-node", key+"="+value, "--overwrite")
	t.Cleanup(func() { _, _ = c.kubectl("label", "node", "e2e-node", key+"-") })
}

// nodeOf waits until the pod is bound and returns its node.
func (c *cluster) nodeOf(ns, name string) string {
	c.t.Helper()
	return c.waitPod(ns, name, 30*time.Second, "bound", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" }).Spec.NodeName
}

// failedScheduling waits for a FailedScheduling event of the pod whose
// message contains every fragment, and returns it.
func (c *cluster) failedScheduling(ns, pod string, fragments ...string) string {
	c.t.Helper()
	var msg string
	c.eventually(30*time.Second, func() error {
		out := c.must("get", "events", "-n", ns, "--field-selector", "involvedObject.name="+pod+",reason=FailedScheduling",
			"-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
		for _, line := range strings.Split(out, "\n") {
			ok := line != ""
			for _, f := range fragments {
				ok = ok && strings.Contains(line, f)
			}
			if ok {
				msg = line
				return nil
			}
		}
		return fmt.Errorf("FailedScheduling events of %s:\n%s\nwant one containing %q", pod, out, fragments)
	})
	return msg
}

// dropDeployment scales a Deployment to nothing and force-deletes its
// pods: those bound to fake nodes would otherwise stay Terminating, with
// no agent to confirm their end.
func (c *cluster) dropDeployment(ns, name, sel string) {
	c.t.Helper()
	c.must("scale", "-n", ns, "deployment/"+name, "--replicas=0")
	c.must("delete", "pods", "-n", ns, "-l", sel, "--grace-period=0", "--force")
	c.waitGone(ns, sel, 0, 60*time.Second)
}

// perNode counts the bound pods matching sel by node.
func (c *cluster) perNode(ns, sel string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, p := range c.listPods(ns, sel) {
		if p.Spec.NodeName != "" {
			out[p.Spec.NodeName]++
		}
	}
	return out
}

func testRequiredNodeAffinity(t *testing.T, c *cluster) {
	ns := c.namespace("nodeaff")
	addFakeNode(t, c.client, "aff-hdd", map[string]string{"e2e/disk": "hdd"}, "64", "64Gi")
	addFakeNode(t, c.client, "aff-ssd", map[string]string{"e2e/disk": "ssd"}, "2", "2Gi")
	// The labelled node is the smallest: only the affinity can send the
	// pod there.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: wants-ssd, namespace: %s}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: e2e/disk, operator: In, values: [ssd, nvme]}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	if n := c.nodeOf(ns, "wants-ssd"); n != "aff-ssd" {
		t.Errorf("wants-ssd bound to %s, want aff-ssd", n)
	}
	// No node matches: Kubernetes' message, nothing bound.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: wants-tape, namespace: %s}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: e2e/disk, operator: In, values: [tape]}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	c.failedScheduling(ns, "wants-tape", "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
	// Bad input is refused naming the field.
	out, err := c.kubectl("run", "bad-op", "-n", ns, "--image=busybox", "--restart=Never", "--overrides",
		`{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"e2e/disk","operator":"Equals","values":["ssd"]}]}]}}}}}`)
	if err == nil || !strings.Contains(out, `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator`) {
		t.Errorf("bad operator: err %v, output:\n%s", err, out)
	}
}

func testPreferredNodeAffinity(t *testing.T, c *cluster) {
	ns := c.namespace("prefaff")
	// Two identical nodes: only the preferred term tells them apart.
	addFakeNode(t, c.client, "pref-a", map[string]string{"e2e/pool": "pref"}, "8", "8Gi")
	addFakeNode(t, c.client, "pref-b", map[string]string{"e2e/pool": "pref", "e2e/gpu": "yes"}, "8", "8Gi")
	for i := 0; i < 3; i++ {
		c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: pref-%d, namespace: %s}
spec:
  nodeSelector: {e2e/pool: pref}
  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        preference:
          matchExpressions:
          - {key: e2e/gpu, operator: Exists}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, i, ns))
		if n := c.nodeOf(ns, fmt.Sprintf("pref-%d", i)); n != "pref-b" {
			t.Errorf("pref-%d bound to %s, want pref-b (the preferred node)", i, n)
		}
	}
}

func testPodAntiAffinity(t *testing.T, c *cluster) {
	ns := c.namespace("antiaff")
	labelRealNode(t, c, "e2e/pool", "anti")
	addFakeNode(t, c.client, "anti-a", map[string]string{"e2e/pool": "anti"}, "8", "8Gi")
	addFakeNode(t, c.client, "anti-b", map[string]string{"e2e/pool": "anti"}, "8", "8Gi")
	c.apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: %s}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {e2e/pool: anti}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	c.eventually(60*time.Second, func() error {
		got := c.perNode(ns, "app=spread")
		if len(got) != 3 || got["e2e-node"] != 1 || got["anti-a"] != 1 || got["anti-b"] != 1 {
			return fmt.Errorf("replicas per node %v, want one on each of e2e-node, anti-a, anti-b", got)
		}
		return nil
	})
	// The replica on the real node runs.
	for _, p := range c.listPods(ns, "app=spread") {
		if p.Spec.NodeName == "e2e-node" {
			c.waitPod(ns, p.Name, 60*time.Second, "Running", running)
		}
	}
	// A fourth replica has no hostname left.
	c.must("scale", "-n", ns, "deployment/spread", "--replicas=4")
	var pending string
	c.eventually(30*time.Second, func() error {
		for _, p := range c.listPods(ns, "app=spread") {
			if p.Spec.NodeName == "" {
				pending = p.Name
				return nil
			}
		}
		return fmt.Errorf("no pending fourth replica: %v", c.perNode(ns, "app=spread"))
	})
	c.failedScheduling(ns, pending, "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
	c.dropDeployment(ns, "spread", "app=spread")
}

func testPodAffinity(t *testing.T, c *cluster) {
	ns := c.namespace("podaff")
	for _, n := range []string{"coloc-a", "coloc-b", "coloc-c"} {
		addFakeNode(t, c.client, n, map[string]string{"e2e/pool": "coloc"}, "8", "8Gi")
	}
	// The follower comes first: nothing it wants exists, and it does not
	// match its own term, so it waits...
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: follower, namespace: %s, labels: {app: follower}}
spec:
  nodeSelector: {e2e/pool: coloc}
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {app: cache}}
        topologyKey: kubernetes.io/hostname
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	c.failedScheduling(ns, "follower", "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 node(s) didn't match pod affinity rules.")
	// ...until the pod it wants is bound: then it joins it.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: %s, labels: {app: cache}}
spec:
  nodeSelector: {kubernetes.io/hostname: coloc-b}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	if n := c.nodeOf(ns, "follower"); n != "coloc-b" {
		t.Errorf("follower bound to %s, want coloc-b with the cache pod", n)
	}
	// Preferred affinity co-locates too, against free room elsewhere.
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: soft, namespace: %s}
spec:
  nodeSelector: {e2e/pool: coloc}
  affinity:
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector: {matchLabels: {app: cache}}
          topologyKey: kubernetes.io/hostname
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	if n := c.nodeOf(ns, "soft"); n != "coloc-b" {
		t.Errorf("soft bound to %s, want coloc-b", n)
	}
}

func testTopologySpread(t *testing.T, c *cluster) {
	ns := c.namespace("spread")
	labelRealNode(t, c, "e2e/pool", "tsc")
	addFakeNode(t, c.client, "tsc-a", map[string]string{"e2e/pool": "tsc"}, "8", "8Gi")
	addFakeNode(t, c.client, "tsc-b", map[string]string{"e2e/pool": "tsc"}, "8", "8Gi")
	c.apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: even, namespace: %s}
spec:
  replicas: 6
  selector: {matchLabels: {app: even}}
  template:
    metadata: {labels: {app: even}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {e2e/pool: tsc}
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: even}}
        matchLabelKeys: [pod-template-hash]
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	c.eventually(60*time.Second, func() error {
		got := c.perNode(ns, "app=even")
		if got["e2e-node"] != 2 || got["tsc-a"] != 2 || got["tsc-b"] != 2 {
			return fmt.Errorf("replicas per node %v, want 2/2/2", got)
		}
		return nil
	})
	// The API merged matchLabelKeys into the selector, as Kubernetes does.
	for _, p := range c.listPods(ns, "app=even") {
		sel := p.Spec.TopologySpreadConstraints[0].LabelSelector
		if len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "pod-template-hash" ||
			sel.MatchExpressions[0].Values[0] != p.Labels["pod-template-hash"] {
			t.Errorf("pod %s: spread selector %+v lacks its pod-template-hash", p.Name, sel)
		}
	}
	// A fourth domain appears without room (tainted): its 0 pods are the
	// new minimum, so no node with room may take a seventh replica.
	addFakeNode(t, c.client, "tsc-full", map[string]string{"e2e/pool": "tsc"}, "8", "8Gi")
	c.must("taint", "node", "tsc-full", "e2e/full=yes:NoSchedule")
	c.must("scale", "-n", ns, "deployment/even", "--replicas=7")
	var seventh string
	c.eventually(30*time.Second, func() error {
		for _, p := range c.listPods(ns, "app=even") {
			if p.Spec.NodeName == "" {
				seventh = p.Name
				return nil
			}
		}
		return fmt.Errorf("no pending seventh replica: %v", c.perNode(ns, "app=even"))
	})
	c.failedScheduling(ns, seventh, "0/4 nodes are available: 1 node(s) had untolerated taint {e2e/full: yes}, 3 node(s) didn't match pod topology spread constraints.")
	if p := c.pod(ns, seventh); p.Spec.NodeName != "" {
		t.Fatalf("seventh replica bound to %s", p.Spec.NodeName)
	}
	// Room in the empty domain: the seventh goes there.
	c.must("taint", "node", "tsc-full", "e2e/full-")
	if n := c.nodeOf(ns, seventh); n != "tsc-full" {
		t.Errorf("seventh replica bound to %s, want tsc-full", n)
	}
	// Validation as Kubernetes'.
	out, err := c.kubectl("run", "bad-spread", "-n", ns, "--image=busybox", "--restart=Never", "--overrides",
		`{"spec":{"topologySpreadConstraints":[{"maxSkew":0,"topologyKey":"","whenUnsatisfiable":"Sometimes"}]}}`)
	for _, want := range []string{
		"spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
		"spec.topologySpreadConstraints[0].topologyKey: Required value: can not be empty",
		`spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"`,
	} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("bad spread constraint: err %v, output lacks %q:\n%s", err, want, out)
		}
	}
	c.dropDeployment(ns, "even", "app=even")
}

func testSchedulingGates(t *testing.T, c *cluster) {
	ns := c.namespace("gates")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: gated, namespace: %s}
spec:
  schedulingGates:
  - name: example.com/quota
  - name: example.com/arch
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	isGated := func(p *corev1.Pod) bool {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled {
				return cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonSchedulingGated &&
					cond.Message == "Scheduling is blocked due to non-empty scheduling gates"
			}
		}
		return false
	}
	if p := c.pod(ns, "gated"); !isGated(p) || p.Spec.NodeName != "" {
		t.Fatalf("gated pod: nodeName %q, conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
	if out := c.must("get", "pod", "-n", ns, "gated", "--no-headers"); !strings.Contains(out, "SchedulingGated") {
		t.Errorf("kubectl get pod shows %q, want SchedulingGated", out)
	}
	// Adding a gate is refused, as Kubernetes refuses it.
	out, err := c.kubectl("patch", "pod", "-n", ns, "gated", "--type=json",
		"-p", `[{"op":"add","path":"/spec/schedulingGates/-","value":{"name":"example.com/more"}}]`)
	if err == nil || !strings.Contains(out, "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'example.com/more'") {
		t.Errorf("adding a gate: err %v, output:\n%s", err, out)
	}
	// One gate left: still gated, never tried by the scheduler.
	c.must("patch", "pod", "-n", ns, "gated", "--type=json", "-p", `[{"op":"remove","path":"/spec/schedulingGates/0"}]`)
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: free, namespace: %s}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	c.nodeOf(ns, "free")
	if p := c.pod(ns, "gated"); !isGated(p) || p.Spec.NodeName != "" {
		t.Fatalf("pod with one gate left: nodeName %q, conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
	if out := c.must("get", "events", "-n", ns, "--field-selector", "involvedObject.name=gated,reason=FailedScheduling", "-o", "name"); out != "" {
		t.Errorf("the scheduler tried a gated pod: %s", out)
	}
	// The last gate removed: scheduled and running.
	c.must("patch", "pod", "-n", ns, "gated", "--type=json", "-p", `[{"op":"remove","path":"/spec/schedulingGates"}]`)
	p := c.waitPod(ns, "gated", 60*time.Second, "Running", running)
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status != corev1.ConditionTrue {
			t.Errorf("PodScheduled %s %s after binding", cond.Status, cond.Reason)
		}
	}
}

func testGeneration(t *testing.T, c *cluster) {
	ns := c.namespace("generation")
	ctx := context.Background()
	pods := c.client.CoreV1().Pods(ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gen", Generation: 100},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox",
			// Ignores SIGTERM, so a graceful deletion leaves it running.
			Command: []string{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"}}}},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 {
		t.Errorf("created with generation 100: got %d, want 1", created.Generation)
	}
	c.waitPod(ns, "gen", 60*time.Second, "Running", running)
	observed := func(gen int64) {
		t.Helper()
		c.waitPod(ns, "gen", 30*time.Second, fmt.Sprintf("generation and observedGeneration %d", gen), func(p *corev1.Pod) bool {
			if p.Generation != gen || p.Status.ObservedGeneration != gen {
				return false
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type != corev1.PodScheduled && cond.ObservedGeneration != gen {
					return false
				}
			}
			return true
		})
	}
	observed(1) // binding did not bump it
	patch := func(p string) {
		t.Helper()
		if _, err := pods.Patch(ctx, "gen", types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatalf("patch %s: %v", p, err)
		}
	}
	patch(`{"metadata":{"labels":{"touched":"yes"},"annotations":{"a":"b"}}}`)
	patch(`{"metadata":{"generation":42}}`)
	if got := c.pod(ns, "gen").Generation; got != 1 {
		t.Errorf("after metadata-only and client-set generation updates: generation %d, want 1", got)
	}
	patch(`{"spec":{"activeDeadlineSeconds":3600}}`)
	observed(2)
	patch(`{"spec":{"activeDeadlineSeconds":3000}}`)
	observed(3)
	// kubectl sees the same.
	var shown struct {
		Metadata struct{ Generation int64 }
		Status   struct{ ObservedGeneration int64 }
	}
	if err := json.Unmarshal([]byte(c.must("get", "pod", "-n", ns, "gen", "-o", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Metadata.Generation != 3 || shown.Status.ObservedGeneration != 3 {
		t.Errorf("kubectl shows generation %d, observedGeneration %d; want 3, 3", shown.Metadata.Generation, shown.Status.ObservedGeneration)
	}
	// A graceful deletion bumps it once; the agent observes it while the
	// container ignores SIGTERM.
	grace := int64(60)
	if err := pods.Delete(ctx, "gen", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	observed(4)
	c.must("delete", "pod", "-n", ns, "gen", "--grace-period=0", "--force")
}

func testUnknownResources(t *testing.T, c *cluster) {
	ns := c.namespace("unknown")
	// kubectl's own wording for a group the server does not serve
	// (policy/v1: PodDisruptionBudgets).
	pdb := []string{"create", "poddisruptionbudget", "x", "-n", ns, "--selector=app=x", "--min-available=1"}
	out, err := c.kubectl(pdb...)
	if err == nil || !strings.Contains(out, "the server could not find the requested resource") {
		t.Errorf("kubectl create poddisruptionbudget: err %v, output:\n%s", err, out)
	}
	if strings.Contains(out, `namespaces.policy`) {
		t.Errorf("kubectl create poddisruptionbudget names a namespaces resource:\n%s", out)
	}
	out, err = c.kubectl("get", "poddisruptionbudgets", "-n", ns)
	if err == nil || !strings.Contains(out, `the server doesn't have a resource type "poddisruptionbudgets"`) {
		t.Errorf("kubectl get poddisruptionbudgets: err %v, output:\n%s", err, out)
	}
	// The kubectl peapod embeds says the same.
	embedded, err := exec.Command(peapodBinary(t), append([]string{"kubectl", "--kubeconfig", c.kubeconfig}, pdb...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(embedded), "the server could not find the requested resource") {
		t.Errorf("peapod kubectl create poddisruptionbudget: err %v, output:\n%s", err, embedded)
	}
	out, err = c.kubectl("get", "widgets.example.com")
	if err == nil || !strings.Contains(out, `the server doesn't have a resource type "widgets"`) {
		t.Errorf("kubectl get widgets.example.com: err %v, output:\n%s", err, out)
	}
	for _, path := range []string{"/apis/policy/v1", "/apis/policy/v1/namespaces/" + ns + "/poddisruptionbudgets", "/apis/apps/v1beta1", "/api/v1/widgets", "/api/v1/namespaces/" + ns + "/widgets/x"} {
		out, err := c.kubectl("get", "--raw", path)
		if err == nil || !strings.Contains(out, "Error from server (NotFound): the server could not find the requested resource") {
			t.Errorf("get --raw %s: err %v, output:\n%s", path, err, out)
		}
	}
	// client-go sees 404s, with the Status kind the path calls for.
	_, err = c.client.CoreV1().RESTClient().Get().AbsPath("/apis/policy/v1/namespaces", ns, "poddisruptionbudgets").DoRaw(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the server could not find the requested resource") {
		t.Errorf("client-go GET poddisruptionbudgets: %v", err)
	}
}
