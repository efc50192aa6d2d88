package deployment

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func TestCreatesReplicaSetWithHashAndRevision(t *testing.T) {
	e := start(t, nil, true, newDeployment("web", 3, "busybox:1"))
	d := e.waitComplete(t, "web")
	rss := e.rss(t)
	if len(rss) != 1 {
		t.Fatalf("%d replicasets", len(rss))
	}
	rs := rss[0]
	hash := ComputeHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[PodTemplateHashLabel] != hash || rs.Spec.Selector.MatchLabels[PodTemplateHashLabel] != hash {
		t.Fatalf("rs %s labels %v selector %v, want hash %s", rs.Name, rs.Labels, rs.Spec.Selector, hash)
	}
	if rs.Annotations[RevisionAnnotation] != "1" || d.Annotations[RevisionAnnotation] != "1" {
		t.Fatalf("revisions rs=%q d=%q", rs.Annotations[RevisionAnnotation], d.Annotations[RevisionAnnotation])
	}
	if ref := metav1.GetControllerOf(&rs); ref == nil || ref.Kind != "Deployment" || ref.Name != "web" {
		t.Fatalf("rs controller %+v", ref)
	}
	for _, p := range e.pods(t) {
		if p.Labels[PodTemplateHashLabel] != hash {
			t.Fatalf("pod %s labels %v", p.Name, p.Labels)
		}
	}
	if c := getCondition(&d.Status, appsv1.DeploymentAvailable); c == nil || c.Status != v1.ConditionTrue || c.Reason != ReasonMinAvailable {
		t.Fatalf("Available condition %+v", c)
	}
}

func TestScaleUpAndDown(t *testing.T) {
	e := start(t, nil, true, newDeployment("web", 3, "busybox:1"))
	e.waitComplete(t, "web")
	for _, n := range []int32{10, 2} {
		e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Replicas = &n })
		e.waitComplete(t, "web")
		if rss := e.rss(t); len(rss) != 1 || *rss[0].Spec.Replicas != n {
			t.Fatalf("after scale to %d: %d replicasets", n, len(rss))
		}
	}
}

// TestRollingUpdateRespectsMaxUnavailable watches every pod and
// ReplicaSet change during a rollout and checks ready pods never drop
// below replicas − maxUnavailable nor the ReplicaSets' replicas exceed
// replicas + maxSurge. The surge bound is on spec.replicas, as in
// Kubernetes' NewRSNewReplicas: the pod count itself may briefly pass it
// while the ReplicaSet controller has yet to delete an old set's pod.
func TestRollingUpdateRespectsMaxUnavailable(t *testing.T) {
	d := rolling(newDeployment("web", 4, "busybox:1"), intstr.FromInt32(1), intstr.FromString("25%"))
	e := start(t, nil, true, d)
	e.waitComplete(t, "web")

	var violations atomic.Value
	stop := make(chan struct{})
	ctx := context.Background()
	podWatch, err := e.client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rsWatch, err := e.client.AppsV1().ReplicaSets("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		ready := 0
		for _, p := range e.pods(t) {
			if isReady(&p) {
				ready++
			}
		}
		var replicas int32
		for _, rs := range e.rss(t) {
			replicas += *rs.Spec.Replicas
		}
		if ready < 3 || replicas > 5 {
			violations.Store(fmt.Sprintf("%d ready pods, replicasets ask for %d", ready, replicas))
		}
	}
	go func() {
		defer podWatch.Stop()
		defer rsWatch.Stop()
		for {
			select {
			case <-stop:
				return
			case _, ok := <-podWatch.ResultChan():
				if !ok {
					return
				}
				check()
			case _, ok := <-rsWatch.ResultChan():
				if !ok {
					return
				}
				check()
			}
		}
	}()
	e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	done := e.waitComplete(t, "web")
	close(stop)
	if v := violations.Load(); v != nil {
		t.Fatalf("rollout broke its bounds: %v", v)
	}
	for _, p := range e.pods(t) {
		if p.Spec.Containers[0].Image != "busybox:2" {
			t.Fatalf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
	if done.Annotations[RevisionAnnotation] != "2" {
		t.Fatalf("revision %q", done.Annotations[RevisionAnnotation])
	}
	if len(e.rss(t)) != 2 {
		t.Fatalf("want old RS kept for history, got %d", len(e.rss(t)))
	}
}

// TestUndoReusesOldReplicaSet does what `kubectl rollout undo` does: patch
// the template back to revision 1's; the controller must reuse that
// ReplicaSet and give it revision 3.
func TestUndoReusesOldReplicaSet(t *testing.T) {
	e := start(t, nil, true, newDeployment("web", 2, "busybox:1"))
	e.waitComplete(t, "web")
	first := e.rss(t)[0]
	e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	e.waitComplete(t, "web")
	tmpl := first.Spec.Template.DeepCopy()
	delete(tmpl.Labels, PodTemplateHashLabel)
	e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Template = *tmpl })
	d := e.waitComplete(t, "web")
	if d.Annotations[RevisionAnnotation] != "3" {
		t.Fatalf("deployment revision %q, want 3", d.Annotations[RevisionAnnotation])
	}
	rss := e.rss(t)
	if len(rss) != 2 {
		t.Fatalf("%d replicasets, want 2 (the old one reused)", len(rss))
	}
	for _, rs := range rss {
		if rs.Name == first.Name {
			if rs.Annotations[RevisionAnnotation] != "3" || rs.Annotations[RevisionHistoryAnnotation] != "1" || *rs.Spec.Replicas != 2 {
				t.Fatalf("reused rs annotations %v replicas %d", rs.Annotations, *rs.Spec.Replicas)
			}
		} else if *rs.Spec.Replicas != 0 {
			t.Fatalf("revision 2 rs still has %d replicas", *rs.Spec.Replicas)
		}
	}
}

func TestRecreateStopsOldPodsFirst(t *testing.T) {
	d := newDeployment("web", 3, "busybox:1")
	d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	e := start(t, nil, true, d)
	e.waitComplete(t, "web")
	var mixed atomic.Bool
	stop := make(chan struct{})
	watcher, err := e.client.CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer watcher.Stop()
		for {
			select {
			case <-stop:
				return
			case _, ok := <-watcher.ResultChan():
				if !ok {
					return
				}
				images := map[string]bool{}
				for _, p := range e.pods(t) {
					images[p.Spec.Containers[0].Image] = true
				}
				if len(images) > 1 {
					mixed.Store(true)
				}
			}
		}
	}()
	e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "busybox:2" })
	e.waitComplete(t, "web")
	close(stop)
	if mixed.Load() {
		t.Fatal("old and new pods coexisted under Recreate")
	}
}

func TestPausedDoesNotRollOut(t *testing.T) {
	e := start(t, nil, true, newDeployment("web", 2, "busybox:1"))
	e.waitComplete(t, "web")
	e.update(t, "web", func(d *appsv1.Deployment) {
		d.Spec.Paused = true
		d.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	})
	controllertest.Eventually(t, 5*time.Second, "paused condition", func() error {
		c := getCondition(&e.get(t, "web").Status, appsv1.DeploymentProgressing)
		if c == nil || c.Reason != ReasonPaused {
			return fmt.Errorf("progressing %+v", c)
		}
		return nil
	})
	if n := len(e.rss(t)); n != 1 {
		t.Fatalf("paused deployment created a replicaset (%d)", n)
	}
	e.update(t, "web", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	e.waitComplete(t, "web")
	if n := len(e.rss(t)); n != 2 {
		t.Fatalf("resumed: %d replicasets", n)
	}
}

func TestRestartAndHistoryLimit(t *testing.T) {
	d := newDeployment("web", 1, "busybox:1")
	one := int32(1)
	d.Spec.RevisionHistoryLimit = &one
	e := start(t, nil, true, d)
	e.waitComplete(t, "web")
	for i := range 3 {
		// What `kubectl rollout restart` does.
		e.update(t, "web", func(d *appsv1.Deployment) {
			d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": fmt.Sprint(i)}
		})
		e.waitComplete(t, "web")
	}
	controllertest.Eventually(t, 5*time.Second, "history cleaned", func() error {
		if n := len(e.rss(t)); n != 2 {
			return fmt.Errorf("%d replicasets, want new + 1 old", n)
		}
		return nil
	})
	if r := e.get(t, "web").Annotations[RevisionAnnotation]; r != "4" {
		t.Fatalf("revision %q", r)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	d := newDeployment("web", 2, "busybox:1")
	ten := int32(10)
	d.Spec.ProgressDeadlineSeconds = &ten
	e := start(t, clk, false, d)
	controllertest.Eventually(t, 5*time.Second, "progressing", func() error {
		c := getCondition(&e.get(t, "web").Status, appsv1.DeploymentProgressing)
		if c == nil || c.Status != v1.ConditionTrue {
			return fmt.Errorf("progressing %+v", c)
		}
		return nil
	})
	controllertest.Eventually(t, 5*time.Second, "deadline exceeded", func() error {
		clk.Step(2 * time.Second)
		c := getCondition(&e.get(t, "web").Status, appsv1.DeploymentProgressing)
		if c == nil || c.Status != v1.ConditionFalse || c.Reason != ReasonTimedOut || !strings.Contains(c.Message, "timed out") {
			return fmt.Errorf("progressing %+v", c)
		}
		return nil
	})
	if c := getCondition(&e.get(t, "web").Status, appsv1.DeploymentAvailable); c == nil || c.Status != v1.ConditionFalse {
		t.Fatalf("available %+v", c)
	}
}
