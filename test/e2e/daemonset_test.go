package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// daemonSet is a busybox DaemonSet whose pods report version in their
// environment; pods count as available 1 s after Ready, which paces a
// rolling update so a poller sees every step.
func daemonSet(ns, name, version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  minReadySeconds: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: c
        image: busybox
        command: [sleep, "3600"]
        env: [{name: VERSION, value: %[3]s}]
`, ns, name, version)
}

func podEnv(p *corev1.Pod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// waitVersion waits until every node in nodes runs exactly one Ready pod
// of sel at version, and no other pod of sel is left.
func (c *cluster) waitVersion(ns, sel, version string, nodes []string, timeout time.Duration) []corev1.Pod {
	c.t.Helper()
	var pods []corev1.Pod
	c.eventually(timeout, func() error {
		all := c.listPods(ns, sel)
		pods = c.readyPods(ns, sel)
		if len(all) != len(nodes) || len(pods) != len(nodes) {
			return fmt.Errorf("%d pods (%s), %d Ready; want one on each of %v", len(all), podNames(all), len(pods), nodes)
		}
		on := map[string]bool{}
		for _, p := range pods {
			if v := podEnv(&p, "VERSION"); v != version {
				return fmt.Errorf("pod %s on %s runs %s, want %s", p.Name, p.Spec.NodeName, v, version)
			}
			on[p.Spec.NodeName] = true
		}
		for _, n := range nodes {
			if !on[n] {
				return fmt.Errorf("no pod on node %s", n)
			}
		}
		return nil
	})
	return pods
}

// TestDaemonSet is issue 13's DaemonSet acceptance on one node, through
// kubectl: the DaemonSet runs exactly one pod there, pinned by the node
// affinity Kubernetes uses and bound by the scheduler; `kubectl get ds`
// shows kubectl's columns; a new template replaces the pod (rollout
// status waits for it), history lists both revisions and undo brings the
// first back as revision 3; bad input is refused naming the field, with
// nothing made; deleting the DaemonSet removes its pods and history.
func TestDaemonSet(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	node := nodes.Items[0].Name
	ns := c.namespace("ds")

	c.apply(daemonSet(ns, "agent", "v1"))
	c.must("rollout", "status", "-n", ns, "ds/agent", "--timeout=120s")
	first := c.waitVersion(ns, "app=agent", "v1", []string{node}, time.Minute)[0]
	terms := first.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Key != "metadata.name" || terms[0].MatchFields[0].Values[0] != node {
		t.Errorf("pod %s not pinned to %s: %+v", first.Name, node, terms)
	}
	tolerates := func(key string, effect corev1.TaintEffect) bool {
		for _, tol := range first.Spec.Tolerations {
			if tol.Key == key && tol.Effect == effect && tol.Operator == corev1.TolerationOpExists && tol.TolerationSeconds == nil {
				return true
			}
		}
		return false
	}
	if !tolerates(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) || !tolerates(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule) {
		t.Errorf("pod %s lacks the daemon tolerations: %+v", first.Name, first.Spec.Tolerations)
	}
	table := c.must("get", "ds", "-n", ns)
	lines := strings.Split(table, "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "agent 1 1 1 1 1 <none> ") {
		t.Errorf("kubectl get ds:\n%s", table)
	}

	// A new template replaces the pod.
	c.must("set", "env", "-n", ns, "ds/agent", "VERSION=v2")
	c.must("rollout", "status", "-n", ns, "ds/agent", "--timeout=120s")
	second := c.waitVersion(ns, "app=agent", "v2", []string{node}, time.Minute)[0]
	if second.UID == first.UID {
		t.Errorf("pod %s kept across the rollout", first.Name)
	}
	if hist := c.must("rollout", "history", "-n", ns, "ds/agent"); !historyHas(hist, "1", "2") {
		t.Errorf("rollout history lacks revisions 1 and 2:\n%s", hist)
	}
	if out := c.must("rollout", "history", "-n", ns, "ds/agent", "--revision=1"); !strings.Contains(out, "VERSION:\tv1") && !strings.Contains(out, "VERSION: v1") {
		t.Errorf("rollout history --revision=1 does not show the first template:\n%s", out)
	}
	c.must("rollout", "undo", "-n", ns, "ds/agent")
	c.must("rollout", "status", "-n", ns, "ds/agent", "--timeout=120s")
	c.waitVersion(ns, "app=agent", "v1", []string{node}, time.Minute)
	if hist := c.must("rollout", "history", "-n", ns, "ds/agent"); !historyHas(hist, "2", "3") || historyHas(hist, "1") {
		t.Errorf("after undo, history should show revisions 2 and 3 (1 became 3):\n%s", hist)
	}
	if out := c.must("get", "controllerrevisions", "-n", ns); !strings.Contains(out, "daemonset.apps/agent") {
		t.Errorf("kubectl get controllerrevisions:\n%s", out)
	}

	// Bad input: the field named, nothing made.
	bad := strings.Replace(daemonSet(ns, "bad", "v1"), "  minReadySeconds: 1\n", "  minReadySeconds: 1\n  updateStrategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}\n", 1)
	c.applyRefused(bad, "spec.updateStrategy.rollingUpdate.maxSurge", "may not be set when maxUnavailable is non-zero")
	if _, err := c.client.AppsV1().DaemonSets(ns).Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("refused DaemonSet: %v, want NotFound", err)
	}

	c.must("delete", "-n", ns, "ds/agent")
	c.waitGone(ns, "app=agent", 0, time.Minute)
	c.eventually(30*time.Second, func() error {
		if out := c.must("get", "controllerrevisions", "-n", ns, "-o", "name"); out != "" {
			return fmt.Errorf("revisions left: %s", out)
		}
		return nil
	})
}
