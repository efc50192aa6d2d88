package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

// cluster simulates what surrounds the controllers: a fast fake clock
// (50× real time), node agents renewing leases of the nodes in renewing,
// and a scheduler+kubelet putting every new pod on target, Running and
// Ready.
type cluster struct {
	client   *fake.Clientset
	clk      *testingclock.FakeClock
	target   atomic.Value // string
	renewing atomic.Value // map[string]bool
}

func newCluster(t *testing.T) *cluster {
	now := time.Now()
	c := &cluster{clk: testingclock.NewFakeClock(now)}
	c.client = controllertest.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, n := range []string{"n1", "n2"} {
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}, Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{
			Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.NewTime(now),
		}}}}
		rt := metav1.NewMicroTime(now)
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: v1.NamespaceNodeLease}, Spec: coordinationv1.LeaseSpec{RenewTime: &rt}}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.CoordinationV1().Leases(v1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.target.Store("n1")
	c.renewing.Store(map[string]bool{"n1": true, "n2": true})
	w, err := c.client.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	go func() { // scheduler + kubelet
		defer func() { done <- struct{}{} }()
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*v1.Pod); ok && ev.Type == watch.Added && p.Spec.NodeName == "" {
				c.run(ctx, p.Name, c.target.Load().(string))
			}
		}
	}()
	go func() { // the clock runs 50× faster than real time
		defer func() { done <- struct{}{} }()
		for ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
			c.clk.Step(100 * time.Millisecond)
		}
	}()
	go func() { // node agents renew leases every 5s of cluster time
		defer func() { done <- struct{}{} }()
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			for n := range c.renewing.Load().(map[string]bool) {
				l, err := c.client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, n, metav1.GetOptions{})
				if err != nil {
					continue
				}
				rt := metav1.NewMicroTime(c.clk.Now())
				l.Spec.RenewTime = &rt
				_, _ = c.client.CoordinationV1().Leases(v1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
			}
		}
	}()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := Run(ctx, c.client, Options{Workers: 2, DefaultTolerationSeconds: 30, Clock: c.clk, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		w.Stop()
		<-runDone
		<-done
		<-done
		<-done
	})
	return c
}

// run binds pod name to node and makes it Running and Ready.
func (c *cluster) run(ctx context.Context, name, node string) {
	p, err := c.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	p.Spec.NodeName = node
	if p, err = c.client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		return
	}
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(c.clk.Now())}}
	_, _ = c.client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

// readyOn returns the names of Ready pods, failing unless all n are on node.
func (c *cluster) readyOn(n int, node string) func() error {
	return func() error {
		l, err := c.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range l.Items {
			if p.Spec.NodeName != node {
				return fmt.Errorf("pod %s on %q", p.Name, p.Spec.NodeName)
			}
			for _, cd := range p.Status.Conditions {
				if cd.Type == v1.PodReady && cd.Status == v1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != n || len(l.Items) != n {
			return fmt.Errorf("%d ready of %d pods", ready, len(l.Items))
		}
		return nil
	}
}

// TestDeploymentLifecycleAcrossNodeLoss runs every controller together:
// a Deployment comes up, a deleted pod is replaced, a node whose lease
// stops is tainted and its pods are evicted and replaced on the node still
// up, and deleting the Deployment leaves no ReplicaSets or pods.
func TestDeploymentLifecycleAcrossNodeLoss(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	three := int32(3)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &three,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "httpd", Image: "busybox"}}},
			},
		},
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 10*time.Second, "3 ready pods on n1", c.readyOn(3, "n1"))

	l, _ := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	victim := l.Items[0].Name
	if err := c.client.CoreV1().Pods("default").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 10*time.Second, "replacement", func() error {
		if err := c.readyOn(3, "n1")(); err != nil {
			return err
		}
		if _, err := c.client.CoreV1().Pods("default").Get(ctx, victim, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("victim still there")
		}
		return nil
	})

	// n1 goes silent; new pods go to n2.
	c.target.Store("n2")
	c.renewing.Store(map[string]bool{"n2": true})
	controllertest.Eventually(t, 20*time.Second, "pods moved to n2", c.readyOn(3, "n2"))
	n1, _ := c.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if len(n1.Spec.Taints) != 2 || n1.Status.Conditions[0].Status != v1.ConditionUnknown {
		t.Fatalf("n1 taints %v ready %+v", n1.Spec.Taints, n1.Status.Conditions[0])
	}

	if err := c.client.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 10*time.Second, "garbage collected", func() error {
		rss, _ := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		pods, _ := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if len(rss.Items)+len(pods.Items) != 0 {
			return fmt.Errorf("%d replicasets, %d pods left", len(rss.Items), len(pods.Items))
		}
		return nil
	})
}
