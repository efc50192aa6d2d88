package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var podsGVR = v1.SchemeGroupVersion.WithResource("pods")

// newFakeClient returns a fake clientset whose pods/binding subresource
// behaves like the API server's: it sets spec.nodeName (once) and
// PodScheduled=True.
func newFakeClient(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	c.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := action.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*v1.Binding)
		obj, err := c.Tracker().Get(podsGVR, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		if pod.Spec.NodeName != "" || (b.UID != "" && b.UID != pod.UID) {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), b.Name, fmt.Errorf("pod %s is already assigned to node %q", b.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		pod.Status.Conditions = append(pod.Status.Conditions, v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue})
		return true, b, c.Tracker().Update(podsGVR, pod, b.Namespace)
	})
	return c
}

// startScheduler runs a scheduler on c until the test ends.
func startScheduler(t *testing.T, c *fake.Clientset, opts Options) *Scheduler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff, opts.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	s := New(c, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("scheduler not ready")
	}
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, detail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func getPod(t *testing.T, c *fake.Clientset, name string) *v1.Pod {
	t.Helper()
	p, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	return p
}

func waitBound(t *testing.T, c *fake.Clientset, name, node string) {
	t.Helper()
	eventually(t, name+" bound to "+node, func() (bool, string) {
		got := getPod(t, c, name).Spec.NodeName
		return got == node, "nodeName=" + got
	})
}

// findEvent returns the first event about pod with reason.
func findEvent(c *fake.Clientset, pod, reason string) *v1.Event {
	evs, err := c.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil
	}
	for i := range evs.Items {
		if e := &evs.Items[i]; e.InvolvedObject.Name == pod && e.Reason == reason {
			return e
		}
	}
	return nil
}

func create(t *testing.T, c *fake.Clientset, obj runtime.Object) {
	t.Helper()
	var err error
	switch o := obj.(type) {
	case *v1.Pod:
		_, err = c.CoreV1().Pods(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
	case *v1.Node:
		_, err = c.CoreV1().Nodes().Create(context.Background(), o, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("create: %v", err)
	}
}

func TestRunBindsPod(t *testing.T) {
	c := newFakeClient(mkNode("n1", "2", "2Gi"))
	startScheduler(t, c, Options{})
	create(t, c, mkPod("web", req("500m", "100Mi")))
	waitBound(t, c, "web", "n1")
	eventually(t, "Scheduled event", func() (bool, string) {
		e := findEvent(c, "web", "Scheduled")
		if e == nil {
			return false, "none"
		}
		return e.Type == v1.EventTypeNormal && e.Message == "Successfully assigned default/web to n1" &&
			e.Source.Component == "default-scheduler", e.Type + " " + e.Message
	})
}

func TestRunUnschedulableUntilNodeAdded(t *testing.T) {
	c := newFakeClient(mkNode("small", "1", "1Gi"))
	startScheduler(t, c, Options{})
	create(t, c, mkPod("big", req("2", "")))
	want := "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	eventually(t, "PodScheduled=False", func() (bool, string) {
		for _, cond := range getPod(t, c, "big").Status.Conditions {
			if cond.Type == v1.PodScheduled {
				return cond.Status == v1.ConditionFalse && cond.Reason == v1.PodReasonUnschedulable && cond.Message == want,
					fmt.Sprintf("%s %s %q", cond.Status, cond.Reason, cond.Message)
			}
		}
		return false, "no condition"
	})
	eventually(t, "FailedScheduling event", func() (bool, string) {
		e := findEvent(c, "big", "FailedScheduling")
		if e == nil {
			return false, "none"
		}
		return e.Type == v1.EventTypeWarning && e.Message == want, e.Type + " " + e.Message
	})
	if n := getPod(t, c, "big").Spec.NodeName; n != "" {
		t.Fatalf("bound to %s", n)
	}
	create(t, c, mkNode("large", "4", "4Gi"))
	waitBound(t, c, "big", "large")
}

// TestRunBurstDoesNotOvercommit: pods created at once are counted as
// assumed before the informer reports them bound; deleting a bound pod
// lets a waiting one in.
func TestRunBurstDoesNotOvercommit(t *testing.T) {
	c := newFakeClient(mkNode("n1", "1", "1Gi"))
	var pods []runtime.Object
	for i := 0; i < 10; i++ {
		pods = append(pods, mkPod(fmt.Sprintf("p%d", i), req("200m", "")))
	}
	for _, p := range pods {
		create(t, c, p)
	}
	startScheduler(t, c, Options{})
	count := func() (bound, unschedulable []string) {
		list, _ := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				bound = append(bound, p.Name)
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == v1.PodScheduled && cond.Status == v1.ConditionFalse {
					unschedulable = append(unschedulable, p.Name)
				}
			}
		}
		return
	}
	eventually(t, "5 bound, 5 unschedulable", func() (bool, string) {
		b, u := count()
		return len(b) == 5 && len(u) == 5, fmt.Sprintf("bound %v unschedulable %v", b, u)
	})
	time.Sleep(100 * time.Millisecond)
	b, _ := count()
	if len(b) != 5 {
		t.Fatalf("overcommitted: bound %v", b)
	}
	if err := c.CoreV1().Pods("default").Delete(context.Background(), b[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a waiting pod takes the freed room", func() (bool, string) {
		list, _ := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		n := 0
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		return n == 5 && len(list.Items) == 9, fmt.Sprintf("%d bound of %d", n, len(list.Items))
	})
}

func TestRunLeavesOtherSchedulersPods(t *testing.T) {
	c := newFakeClient(mkNode("n1", "2", "2Gi"))
	startScheduler(t, c, Options{})
	create(t, c, mkPod("theirs", func(p *v1.Pod) { p.Spec.SchedulerName = "other" }))
	create(t, c, mkPod("ours"))
	waitBound(t, c, "ours", "n1")
	time.Sleep(100 * time.Millisecond)
	if n := getPod(t, c, "theirs").Spec.NodeName; n != "" {
		t.Fatalf("other scheduler's pod bound to %s", n)
	}
}

// TestRunRetriesWhenNodeBecomesReady: a node update that matters (Ready)
// moves parked pods; a bind failure is retried.
func TestRunRetriesWhenNodeBecomesReady(t *testing.T) {
	c := newFakeClient(mkNode("n1", "2", "2Gi", readiness(v1.ConditionFalse)))
	failures := 1
	c.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() == "binding" && failures > 0 {
			failures--
			return true, nil, apierrors.NewInternalError(fmt.Errorf("injected"))
		}
		return false, nil, nil
	})
	startScheduler(t, c, Options{})
	create(t, c, mkPod("p"))
	eventually(t, "not-ready message", func() (bool, string) {
		e := findEvent(c, "p", "FailedScheduling")
		return e != nil && strings.Contains(e.Message, "node.kubernetes.io/not-ready"), fmt.Sprint(e)
	})
	n := mkNode("n1", "2", "2Gi")
	if _, err := c.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, c, "p", "n1")
}

func TestRunTwice(t *testing.T) {
	c := newFakeClient()
	s := startScheduler(t, c, Options{})
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// TestRunWaitsForSchedulingGates: a gated pod is never tried (no
// FailedScheduling, no binding) while a later pod is bound; removing its
// gates lets it in.
func TestRunWaitsForSchedulingGates(t *testing.T) {
	c := newFakeClient(mkNode("n1", "2", "2Gi"))
	startScheduler(t, c, Options{})
	create(t, c, mkPod("gated", func(p *v1.Pod) {
		p.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "example.com/a"}, {Name: "example.com/b"}}
	}))
	// The informer delivers events in order: once the later pod is bound,
	// the gated one has been seen and left alone.
	create(t, c, mkPod("free"))
	waitBound(t, c, "free", "n1")
	if p := getPod(t, c, "gated"); p.Spec.NodeName != "" || findEvent(c, "gated", "FailedScheduling") != nil {
		t.Fatalf("gated pod was tried: nodeName %q", p.Spec.NodeName)
	}
	ungate := func(gates []v1.PodSchedulingGate) {
		p := getPod(t, c, "gated")
		p.Spec.SchedulingGates = gates
		if _, err := c.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ungate([]v1.PodSchedulingGate{{Name: "example.com/b"}})
	create(t, c, mkPod("free2"))
	waitBound(t, c, "free2", "n1")
	if p := getPod(t, c, "gated"); p.Spec.NodeName != "" {
		t.Fatalf("pod with one gate left bound to %s", p.Spec.NodeName)
	}
	ungate(nil)
	waitBound(t, c, "gated", "n1")
}

// TestRunRetriesWhenPodRelabelled: a pod whose required pod affinity
// finds no match waits, and is scheduled once a bound pod gets the label.
func TestRunRetriesWhenPodRelabelled(t *testing.T) {
	zone := v1.LabelTopologyZone
	c := newFakeClient(mkNode("n1", "2", "2Gi", nodeLabel(zone, "a")), mkNode("n2", "2", "2Gi", nodeLabel(zone, "b")),
		mkPod("db", on("n2")))
	startScheduler(t, c, Options{})
	create(t, c, mkPod("web", affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("db", zone)},
	}})))
	eventually(t, "FailedScheduling", func() (bool, string) {
		e := findEvent(c, "web", "FailedScheduling")
		return e != nil && strings.Contains(e.Message, "node(s) didn't match pod affinity rules"), fmt.Sprint(e)
	})
	db := getPod(t, c, "db")
	db.Labels = map[string]string{"app": "db"}
	if _, err := c.CoreV1().Pods("default").Update(context.Background(), db, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, c, "web", "n2")
}

// TestRunSpreadsReplicaSetByDefault: pods of a ReplicaSet without
// constraints of their own are spread by the system default constraints,
// found through the ReplicaSet's selector.
func TestRunSpreadsReplicaSetByDefault(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "default", UID: "rs-1"},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	// n1 has far more room: without spreading every pod would go there.
	c := newFakeClient(mkNode("n1", "64", "64Gi"), mkNode("n2", "4", "4Gi"), rs)
	startScheduler(t, c, Options{})
	for i := 0; i < 4; i++ {
		create(t, c, mkPod(fmt.Sprintf("web-%d", i), label("app", "web"), ownedBy("rs-1"), func(p *v1.Pod) { p.OwnerReferences[0].Name = "rs" }))
		waitBound(t, c, fmt.Sprintf("web-%d", i), map[bool]string{true: "n1", false: "n2"}[i%2 == 0])
	}
}
