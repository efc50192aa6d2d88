package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// fakeNode is a Node object with no agent behind it: the test renews its
// Lease until stop is called. Pods bound to it never run.
type fakeNode struct {
	name string
	stop func()
}

// addFakeNode registers a Ready node with the given capacity and renews
// its Lease every second until stop. Cleanup deletes the Node and Lease.
func addFakeNode(t testing.TB, client kubernetes.Interface, name string, labels map[string]string, cpu, mem string) *fakeNode {
	t.Helper()
	ctx := context.Background()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[corev1.LabelHostname] = name
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	now := metav1.Now()
	status := corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "fake node of the e2e suite", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
	}
	// The node IPAM controller gives the new Node its podCIDR meanwhile:
	// write the status on the newest object, as a kubelet would.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		created.Status = status
		_, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if latest, getErr := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); getErr == nil {
				created = latest
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("node %s status: %v", name, err)
	}
	holder, secs := name, int32(40)
	renew := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &renew},
	}
	lease, err = client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create lease %s: %v", name, err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			renew := metav1.NewMicroTime(time.Now())
			lease.Spec.RenewTime = &renew
			if l, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, lease, metav1.UpdateOptions{}); err == nil {
				lease = l
			} else if l, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{}); err == nil {
				lease = l
			}
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return &fakeNode{name: name, stop: stop}
}

// testLostNode: a ReplicaSet's pods sit on a node whose Lease stops being
// renewed. The node goes Unknown with the unreachable taints; once the
// (shortened) default toleration runs out its pods are deleted, and, as in
// Kubernetes, stay Terminating (no kubelet confirms) while the ReplicaSet
// replaces them on the real node.
func testLostNode(t *testing.T, c *cluster) {
	ns := c.namespace("lost")
	ctx := context.Background()
	fake := addFakeNode(t, c.client, "e2e-lost", nil, "8", "16Gi")
	c.eventually(30*time.Second, func() error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, fake.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(n.Spec.Taints) != 0 {
			return fmt.Errorf("fake node taints %v", n.Spec.Taints)
		}
		return nil
	})

	// The fake node is the only schedulable one while the pods are placed.
	c.must("cordon", "e2e-node")
	t.Cleanup(func() { _, _ = c.kubectl("uncordon", "e2e-node") })
	c.apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: lost, namespace: %s}
spec:
  replicas: 2
  selector: {matchLabels: {app: lost}}
  template:
    metadata: {labels: {app: lost}}
    spec:
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
`, ns))
	var stranded []corev1.Pod
	c.eventually(30*time.Second, func() error {
		stranded = c.listPods(ns, "app=lost")
		if len(stranded) != 2 {
			return fmt.Errorf("%d pods", len(stranded))
		}
		for _, p := range stranded {
			if p.Spec.NodeName != fake.name {
				return fmt.Errorf("pod %s on %q", p.Name, p.Spec.NodeName)
			}
		}
		return nil
	})
	c.must("uncordon", "e2e-node")

	stopped := time.Now()
	fake.stop()
	c.eventually(workloadsGrace+30*time.Second, func() error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, fake.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var readyCond *corev1.NodeCondition
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				readyCond = &n.Status.Conditions[i]
			}
		}
		if readyCond == nil || readyCond.Status != corev1.ConditionUnknown || readyCond.Reason != "NodeStatusUnknown" {
			return fmt.Errorf("Ready condition %+v", readyCond)
		}
		effects := map[corev1.TaintEffect]bool{}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable {
				effects[taint.Effect] = true
			}
		}
		if !effects[corev1.TaintEffectNoSchedule] || !effects[corev1.TaintEffectNoExecute] {
			return fmt.Errorf("taints %v, want unreachable NoSchedule and NoExecute", n.Spec.Taints)
		}
		return nil
	})
	unknownAfter := time.Since(stopped)
	if unknownAfter < workloadsGrace-2*time.Second {
		t.Errorf("node Unknown %s after its last renewal, before the %s grace period", unknownAfter, workloadsGrace)
	}
	if out := c.must("get", "node", fake.name); !strings.Contains(out, "NotReady") {
		t.Errorf("kubectl get node:\n%s", out)
	}

	// Evicted after the toleration; replaced on the real node.
	c.eventually(time.Duration(workloadsToleration)*time.Second+60*time.Second, func() error {
		for _, p := range stranded {
			cur, err := c.client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("stranded pod %s: %v (want it Terminating, as Kubernetes keeps it)", p.Name, err)
			}
			if cur.DeletionTimestamp == nil {
				return fmt.Errorf("stranded pod %s not evicted yet", p.Name)
			}
		}
		var up []string
		for _, p := range c.listPods(ns, "app=lost") {
			if p.DeletionTimestamp == nil && p.Spec.NodeName == "e2e-node" && running(&p) {
				up = append(up, p.Name)
			}
		}
		if len(up) != 2 {
			return fmt.Errorf("replacements running on e2e-node: %v", up)
		}
		return nil
	})
	t.Logf("node Unknown %s after its Lease stopped; pods evicted and replaced %s after", unknownAfter.Round(time.Second), time.Since(stopped).Round(time.Second))
	if out := c.must("get", "pods", "-n", ns, "-o", "wide"); !strings.Contains(out, "Terminating") {
		t.Errorf("kubectl get pods shows no Terminating pod:\n%s", out)
	}
	if out := c.must("get", "events", "-n", ns); !strings.Contains(out, "TaintManagerEviction") {
		t.Logf("no TaintManagerEviction event (Kubernetes records one):\n%s", out)
	}
	// The lost node is removed; its pods go with grace 0 in cleanup.
	c.must("delete", "rs", "-n", ns, "lost")
	c.waitGone(ns, "app=lost", 2, 60*time.Second)
}
