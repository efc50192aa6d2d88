package ctrlutil

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func pod(name string, mods ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(1000, 0)}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func onNode(p *v1.Pod)  { p.Spec.NodeName = "n" }
func running(p *v1.Pod) { p.Status.Phase = v1.PodRunning }
func readyAt(sec int64) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Unix(sec, 0)}}
	}
}
func created(sec int64) func(*v1.Pod) {
	return func(p *v1.Pod) { p.CreationTimestamp = metav1.Unix(sec, 0) }
}
func cost(c string) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Annotations = map[string]string{PodDeletionCostAnnotation: c} }
}
func restarted(n int32) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Status.ContainerStatuses = []v1.ContainerStatus{{RestartCount: n}} }
}

func TestDeletionLess(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first *v1.Pod // deleted first
		then  *v1.Pod
	}{
		{"unscheduled before scheduled", pod("a"), pod("b", onNode)},
		{"pending before running", pod("a", onNode), pod("b", onNode, running)},
		{"not ready before ready", pod("a", onNode, running), pod("b", onNode, running, readyAt(10))},
		{"lower deletion cost first", pod("a", onNode, running, readyAt(10), cost("-5")), pod("b", onNode, running, readyAt(10))},
		{"ready for less time first", pod("a", onNode, running, readyAt(20)), pod("b", onNode, running, readyAt(10))},
		{"more restarts first", pod("a", onNode, running, restarted(3)), pod("b", onNode, running, restarted(1))},
		{"newer before older", pod("a", onNode, running, created(2000)), pod("b", onNode, running, created(1000))},
		{"zero creation time is newest", pod("a", onNode, running, created(0), func(p *v1.Pod) { p.CreationTimestamp = metav1.Time{} }), pod("b", onNode, running)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !DeletionLess(tc.first, tc.then) {
				t.Errorf("want %s before %s", tc.first.Name, tc.then.Name)
			}
			if DeletionLess(tc.then, tc.first) {
				t.Errorf("ordering not antisymmetric")
			}
		})
	}
}

func TestIsPodAvailable(t *testing.T) {
	now := time.Unix(100, 0)
	for _, tc := range []struct {
		name string
		p    *v1.Pod
		min  int32
		want bool
	}{
		{"not ready", pod("a"), 0, false},
		{"ready no min", pod("a", readyAt(99)), 0, true},
		{"ready too recently", pod("a", readyAt(95)), 10, false},
		{"ready long enough", pod("a", readyAt(80)), 10, true},
	} {
		if got := IsPodAvailable(tc.p, tc.min, now); got != tc.want {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	ok, err := SlowStartBatch(10, 1, func() error { calls.Add(1); return nil })
	if ok != 10 || err != nil || calls.Load() != 10 {
		t.Fatalf("all succeed: ok=%d err=%v calls=%d", ok, err, calls.Load())
	}
	calls.Store(0)
	// Fail from the 4th call: batches 1, 2 succeed, batch of 4 fails.
	ok, err = SlowStartBatch(100, 1, func() error {
		if calls.Add(1) > 3 {
			return errors.New("quota")
		}
		return nil
	})
	if err == nil || ok != 3 || calls.Load() != 7 {
		t.Fatalf("failing: ok=%d err=%v calls=%d, want 3 ok and 7 calls", ok, err, calls.Load())
	}
}

func TestExpectations(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	e := NewExpectations(clk)
	if !e.Satisfied("k") {
		t.Fatal("fresh key not satisfied")
	}
	e.ExpectCreations("k", 2)
	e.ExpectDeletions("k", "u1")
	e.CreationObserved("k")
	e.CreationObserved("k")
	if e.Satisfied("k") {
		t.Fatal("pending delete ignored")
	}
	e.DeletionObserved("k", "other")
	if e.Satisfied("k") {
		t.Fatal("unrelated delete counted")
	}
	e.DeletionObserved("k", "u1")
	if !e.Satisfied("k") {
		t.Fatal("not satisfied after all observed")
	}
	e.ExpectCreations("k", 1)
	clk.Step(ExpectationsTimeout + time.Second)
	if !e.Satisfied("k") {
		t.Fatal("expired expectations still block")
	}
}
