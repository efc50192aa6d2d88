package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

const grace = 40 * time.Second

func start(t *testing.T, clk *testingclock.FakeClock, tolerationSeconds int64, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{
			NodeMonitorGracePeriod: grace, DefaultTolerationSeconds: tolerationSeconds,
			Clock: clk, Logger: slog.New(slog.DiscardHandler),
		})
	})
	return client
}

func readyNode(name string, now time.Time) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{
			Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
		}}},
	}
}

func lease(name string, now time.Time) *coordinationv1.Lease {
	rt := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: LeaseNamespace}, Spec: coordinationv1.LeaseSpec{RenewTime: &rt}}
}

func podOn(name, node string, tols ...v1.Toleration) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       v1.PodSpec{NodeName: node, Tolerations: tols},
		Status: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{
			{Type: v1.PodReady, Status: v1.ConditionTrue},
		}},
	}
}

func renew(t *testing.T, c *fake.Clientset, name string, now time.Time) {
	t.Helper()
	l, err := c.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt := metav1.NewMicroTime(now)
	l.Spec.RenewTime = &rt
	if _, err := c.CoordinationV1().Leases(LeaseNamespace).Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func node(t *testing.T, c *fake.Clientset, name string) *v1.Node {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hasTaint(n *v1.Node, key string, e v1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == e {
			return true
		}
	}
	return false
}

func podExists(c *fake.Clientset, name string) bool {
	_, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	return !apierrors.IsNotFound(err)
}

// step advances the fake clock and gives the controller a moment to react.
func step(clk *testingclock.FakeClock, d time.Duration) {
	clk.Step(d)
	time.Sleep(30 * time.Millisecond)
}

// TestLeaseExpiryTaintsAndEvicts: a node renews its lease, stops; after the
// grace period it is Unknown and tainted unreachable, its pods not Ready;
// after the (shortened) default toleration the pods without their own
// toleration are evicted, the others at their tolerationSeconds or never;
// when the lease resumes the taints go.
func TestLeaseExpiryTaintsAndEvicts(t *testing.T) {
	now := time.Now()
	clk := testingclock.NewFakeClock(now)
	tol := func(s *int64) v1.Toleration {
		return v1.Toleration{Key: v1.TaintNodeUnreachable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: s}
	}
	c := start(t, clk, 30, readyNode("n1", now), lease("n1", now), readyNode("n2", now), lease("n2", now),
		podOn("plain", "n1"), podOn("tolerant", "n1", tol(secs(100))), podOn("forever", "n1", tol(nil)), podOn("elsewhere", "n2"))
	time.Sleep(50 * time.Millisecond)

	// 30s in, both renew: nothing happens at 50s.
	step(clk, 30*time.Second)
	renew(t, c, "n1", clk.Now())
	renew(t, c, "n2", clk.Now())
	time.Sleep(30 * time.Millisecond)
	step(clk, 20*time.Second)
	if n := node(t, c, "n1"); len(n.Spec.Taints) != 0 || n.Status.Conditions[0].Status != v1.ConditionTrue {
		t.Fatalf("renewing node changed: %+v %+v", n.Spec.Taints, n.Status.Conditions)
	}
	// Only n2 keeps renewing; n1 goes silent past its grace period.
	for range 3 {
		step(clk, 10*time.Second)
		renew(t, c, "n2", clk.Now())
	}
	step(clk, 1*time.Second) // n1 silent for 41s
	controllertest.Eventually(t, 5*time.Second, "n1 unknown and tainted", func() error {
		n := node(t, c, "n1")
		r := n.Status.Conditions[0]
		if r.Status != v1.ConditionUnknown || r.Reason != ReasonNodeStatusUnknown || r.Message != MessageNodeStatusUnknown {
			return fmt.Errorf("ready %+v", r)
		}
		if !hasTaint(n, v1.TaintNodeUnreachable, v1.TaintEffectNoSchedule) || !hasTaint(n, v1.TaintNodeUnreachable, v1.TaintEffectNoExecute) {
			return fmt.Errorf("taints %+v", n.Spec.Taints)
		}
		return nil
	})
	controllertest.Eventually(t, 5*time.Second, "pods on n1 not ready", func() error {
		p, _ := c.CoreV1().Pods("default").Get(context.Background(), "plain", metav1.GetOptions{})
		if p.Status.Conditions[0].Status != v1.ConditionFalse {
			return fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		return nil
	})
	if n := node(t, c, "n2"); len(n.Spec.Taints) != 0 {
		t.Fatalf("healthy n2 tainted: %v", n.Spec.Taints)
	}

	step(clk, 20*time.Second)
	if !podExists(c, "plain") {
		t.Fatal("evicted before its toleration ran out")
	}
	step(clk, 11*time.Second) // 31s after the taint
	controllertest.Eventually(t, 5*time.Second, "plain evicted", func() error {
		if podExists(c, "plain") {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if !podExists(c, "tolerant") || !podExists(c, "elsewhere") {
		t.Fatal("evicted a tolerating pod or one on the healthy node")
	}
	step(clk, 70*time.Second) // 101s after the taint
	controllertest.Eventually(t, 5*time.Second, "tolerant evicted", func() error {
		if podExists(c, "tolerant") {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if !podExists(c, "forever") {
		t.Fatal("pod tolerating forever was evicted")
	}

	// The lease resumes: conditions restored, taints removed.
	renew(t, c, "n1", clk.Now())
	controllertest.Eventually(t, 5*time.Second, "n1 back", func() error {
		n := node(t, c, "n1")
		if len(n.Spec.Taints) != 0 || n.Status.Conditions[0].Status != v1.ConditionTrue {
			return fmt.Errorf("taints %v ready %+v", n.Spec.Taints, n.Status.Conditions[0])
		}
		return nil
	})
}

func TestNotReadyNodeGetsNotReadyTaints(t *testing.T) {
	now := time.Now()
	clk := testingclock.NewFakeClock(now)
	n := readyNode("n1", now)
	n.Status.Conditions[0].Status = v1.ConditionFalse
	c := start(t, clk, 300, n, lease("n1", now))
	controllertest.Eventually(t, 5*time.Second, "not-ready taints", func() error {
		got := node(t, c, "n1")
		if !hasTaint(got, v1.TaintNodeNotReady, v1.TaintEffectNoSchedule) || !hasTaint(got, v1.TaintNodeNotReady, v1.TaintEffectNoExecute) || hasTaint(got, v1.TaintNodeUnreachable, v1.TaintEffectNoExecute) {
			return fmt.Errorf("taints %+v", got.Spec.Taints)
		}
		return nil
	})
}
