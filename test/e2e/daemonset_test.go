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
	c.eventually(30*time.Second, func() error {
		out := c.must("describe", "-n", ns, "ds/agent")
		for _, want := range []string{"Desired Number of Nodes Scheduled: 1", "Number of Nodes Scheduled with Available Pods: 1", "1 Running / 0 Waiting", "SuccessfulCreate"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("kubectl describe ds lacks %q:\n%s", want, out)
			}
		}
		return nil
	})

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

// TestDaemonSetAcrossNodes is issue 13's DaemonSet acceptance on the
// shared 3-node cluster: exactly one pod on every node; a new template
// rolls out one node at a time (never two nodes without a Ready pod, as
// maxUnavailable 1 allows); a node that joins gets its pod and a node
// that leaves loses it (the pod garbage collector, after its quarantine),
// the DaemonSet's counts following.
func TestDaemonSetAcrossNodes(t *testing.T) {
	mn := sharedMultiNode(t)
	ctx := context.Background()
	var nodes []string
	for _, n := range mn.state(t).Nodes {
		nodes = append(nodes, n.Name)
	}
	if len(nodes) != 3 {
		t.Fatalf("the shared cluster has %d nodes, want 3", len(nodes))
	}
	ns := mn.namespace("ds-nodes")
	defer func() {
		if out, err := mn.kubectl("delete", "namespace", ns, "--wait=false"); err != nil {
			t.Errorf("delete namespace %s: %v %s", ns, err, out)
		}
		mn.waitGone(ns, "", 0, 2*time.Minute)
	}()
	desired := func(want int32) {
		t.Helper()
		mn.eventually(time.Minute, func() error {
			ds, err := mn.client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if st := ds.Status; st.DesiredNumberScheduled != want || st.NumberAvailable != want || st.UpdatedNumberScheduled != want || st.ObservedGeneration != ds.Generation {
				return fmt.Errorf("status %+v, want %d desired, available and updated", st, want)
			}
			return nil
		})
	}

	mn.apply(daemonSet(ns, "agent", "v1"))
	mn.must("rollout", "status", "-n", ns, "ds/agent", "--timeout=180s")
	mn.waitVersion(ns, "app=agent", "v1", nodes, 2*time.Minute)
	desired(3)

	t.Run("a new template rolls out one node at a time", func(t *testing.T) {
		mn := mn.with(t)
		stop := make(chan struct{})
		done := make(chan struct{})
		worst, rounds := len(nodes), 0
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				l, err := mn.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
				if err != nil {
					continue
				}
				up := map[string]bool{}
				for _, p := range l.Items {
					if p.DeletionTimestamp == nil && ready(&p) {
						up[p.Spec.NodeName] = true
					}
				}
				worst = min(worst, len(up))
				rounds++
			}
		}()
		mn.must("set", "env", "-n", ns, "ds/agent", "VERSION=v2")
		mn.must("rollout", "status", "-n", ns, "ds/agent", "--timeout=180s")
		close(stop)
		<-done
		mn.waitVersion(ns, "app=agent", "v2", nodes, time.Minute)
		t.Logf("rollout: at least %d of %d nodes had a Ready pod in each of %d polling rounds", worst, len(nodes), rounds)
		if worst < len(nodes)-1 || rounds < 5 {
			t.Errorf("rollout: %d nodes with a Ready pod at worst (want >= %d, maxUnavailable 1) over %d rounds", worst, len(nodes)-1, rounds)
		}
	})

	t.Run("a node that joins gets its pod, a node that leaves loses it", func(t *testing.T) {
		mn := mn.with(t)
		before := map[string]bool{}
		for _, n := range nodes {
			before[n] = true
		}
		mn.mustRun("node", "add", "--image", busyboxTarball(t))
		var added string
		for _, n := range mn.state(t).Nodes {
			if !before[n.Name] {
				added = n.Name
			}
		}
		if added == "" {
			t.Fatal("node add made no new node")
		}
		removed := false
		defer func() {
			if !removed {
				mn.run("node", "rm", added)
			}
		}()
		mn.waitVersion(ns, "app=agent", "v2", append(append([]string(nil), nodes...), added), 3*time.Minute)
		desired(4)

		mn.mustRun("node", "rm", added)
		removed = true
		mn.waitVersion(ns, "app=agent", "v2", nodes, 3*time.Minute)
		desired(3)
		if out := mn.must("get", "ds", "-n", ns, "agent", "--no-headers"); !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "agent 3 3 3 3 3 ") {
			t.Errorf("kubectl get ds after the node left: %s", out)
		}
	})
}
